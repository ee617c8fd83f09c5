"""The approved-copy catalogue from its file (``SGR_COPY_CATALOGUE``; the shipped default is
``worker/engines/copy_catalogue.json``), read and checked once per process.

Every entry must pass the message checks the model's text passes (``rules.message_problems`` and
``rules.message_quality_problems`` on the text without its slots) and the claims check
(``claims.claim_problems``) under the facts its own tags guarantee (a ``low_stock`` entry is read
as going to a low-stock cart, any other as going to a cart in stock; one not tagged
``returning`` that new customers may get as going to a new customer), so a catalogue cannot bring
in a number, a code, a link or a promise its tags do not back. A bad file is one clear error
naming the entry and the field.
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path

from worker.domain import claims, rules
from worker.domain.copy import Catalogue, CatalogueError, parse_catalogue, without_slots

DEFAULT_CATALOGUE = Path(__file__).with_name("copy_catalogue.json")


def entry_problems(catalogue: Catalogue) -> list[str]:
    """What the message and claims checks refuse in the catalogue's entries (``id: problem``)."""
    found = []
    for entry in catalogue.entries:
        text = without_slots(entry.text)
        stock = "low_stock" if "low_stock" in entry.occasions else "in_stock"
        to_new = "returning" not in entry.occasions and bool(
            {"any", "new_customer"} & set(entry.segments)
        )
        facts = claims.ClaimFacts(inventory=stock, offer_expires=True, new_customer=to_new)
        problems = (
            rules.message_problems(text)
            + rules.message_quality_problems(text)
            + claims.claim_problems(text, facts)
        )
        found += [f"{entry.id}: {p}" for p in problems]
    return found


def load_catalogue(path: Path | str | None = None) -> Catalogue:
    """The catalogue at ``path`` (None: the shipped default), checked; CatalogueError otherwise."""
    return _load(str(Path(path) if path else DEFAULT_CATALOGUE))


@lru_cache(maxsize=8)
def _load(path: str) -> Catalogue:
    where = Path(path)
    try:
        data = json.loads(where.read_text(encoding="utf-8"))
    except OSError as exc:
        raise CatalogueError(f"{where}: cannot read the copy catalogue: {exc.strerror}") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise CatalogueError(f"{where}: the copy catalogue is not JSON: {exc}") from None
    catalogue = parse_catalogue(data, str(where))
    problems = entry_problems(catalogue)
    if problems:
        raise CatalogueError(f"{where}: entries the message checks refuse: {'; '.join(problems)}")
    return catalogue
