"""Replies are plain text by construction: the reply's schema pattern (the grammar the LLM is
constrained by, ``negotiation_schemas.REPLY_PATTERN``) allows no markup, link, bare domain, e-mail
address or phone number, and ``rules.message_problems`` checks every engine's text again, with
look-alikes. A hostile corpus, wrapped in a friendly sentence so that only the hostile part can
fail the pattern, and the replies the system itself sends."""

from __future__ import annotations

import json
import re

import jsonschema
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from tests.unit.test_message_quality import GOOD
from worker.domain.rules import markup_problems, message_problems, message_quality_problems
from worker.engines.negotiation_schemas import (
    REPLY_CHARS_MAX,
    REPLY_PATTERN,
    AnswerInvalid,
    Respond,
    TurnPricing,
    parse_pricing,
    parse_router,
    pricing_schema,
    reply_field,
    router_schema,
)
from worker.engines.policy import ACCEPT_REPLY, ESCALATE_REPLY, PRICE_REPLY, RESPOND_REPLY
from worker.handlers.message import (
    ACCEPTED_REPLY,
    HOLD_REPLY,
    NO_OPEN_OFFER_REPLY,
    NO_PRICE_REPLY,
)

HOSTILE = [
    "<img src=x onerror=alert(document.cookie)> Thanks for waiting",
    "<script>alert(1)</script>",
    "<a href=x>your cart</a>",
    "Please pay at https://evil.example.com/pay",
    "Please pay at http://evil.example.com",
    "visit www.evil.com today",
    "visit evil.example.com",
    "go to shop.evil now",
    "our new home is evil.com",
    "see evil．example．com",  # full-width full stops
    "see evil。com",  # ideographic full stop
    "mail me at a@b.co",
    "write to help＠evil.com",  # full-width at sign
    "mailto:a@b.co",
    "call +1 555 0100",
    "call us on +44 20 7946 0958",
    "ring (555) 010-0100",
    "tel:5550100",
    "‹script›alert‹/script›",  # single angle quotation marks
    "＜b＞bold＜/b＞",  # full-width less-than and greater-than
    "〈img src=x〉",  # angle brackets
    "⟨b⟩hi⟨/b⟩",  # mathematical angle brackets
    "ᐸscriptᐳ",  # Canadian syllabics look-alikes
    "˂b˃hi",  # modifier letter arrowheads
    "﹤b﹥hi",  # small less-than and greater-than
    "&lt;script&gt;",
    "Thanks\u200bfor visiting",  # zero-width space
    "\ufeffThanks for visiting",  # zero-width no-break space
    "Thanks\u2060for visiting",  # word joiner
    "Thanks\u200dfor visiting",  # zero-width joiner
    "Thanks\u3164for visiting",  # Hangul filler (a letter that shows nothing)
    "Thanks\u2800for visiting",  # Braille blank
    "click javascript:alert(document.cookie)",
    "JaVaScRiPt:void",
    "ｊavascript：x",  # full-width letter and colon
    "data:text/html;base64,PHNjcmlwdD4=",
    "data:image/svg+xml,hi",
    "[Claim your gift](https://evil.example.com)",
    "[x](y)",
    "![](https://evil.example.com/pixel.png)",
    "![pixel](x)",
    "[gift]: x",
    "see `rm -rf`",
    "vbscript:msgbox",
    "ftp://evil",
]
# Plain letters the grammar cannot tell from words; only the richer check refuses them.
CHECK_ONLY = [
    "Visit www dot evil dot com for more",
    "Open the javascript console and paste this",
    "Go to http evil dot com",
    "Visit evil dot shop today",
]
SYSTEM_REPLIES = [
    RESPOND_REPLY,
    ESCALATE_REPLY,
    ACCEPT_REPLY,
    PRICE_REPLY,
    HOLD_REPLY,
    NO_PRICE_REPLY,
    NO_OPEN_OFFER_REPLY,
    ACCEPTED_REPLY,
]


def wrapped(hostile: str) -> str:
    """The hostile text inside an otherwise good reply: the rest passes the pattern."""
    return f"Thanks for waiting, {hostile} and see you soon."


def pattern_allows(text: str) -> bool:
    try:
        jsonschema.validate(text, reply_field())
    except jsonschema.ValidationError:
        return False
    return True


def test_the_pattern_is_for_the_grammar_simple_and_bounded_inside() -> None:
    field = reply_field()
    assert field == {"type": "string", "pattern": REPLY_PATTERN}  # no min/maxLength beside it
    assert "(?" not in REPLY_PATTERN  # no lookaround, no non-capturing group, no flags
    assert REPLY_PATTERN.startswith("^") and REPLY_PATTERN.endswith("$")
    assert not re.search(r"\\[dswb]|\\[pP]", REPLY_PATTERN)  # character classes spelled out
    for schema in (router_schema(True), pricing_schema(8.0, None, 1.0)):
        text = json.dumps(schema)
        assert text.count(json.dumps(REPLY_PATTERN)) == (3 if "anyOf" in text else 1)
        assert "minLength" not in text.split("reply")[-1][:80]


@pytest.mark.parametrize("hostile", HOSTILE)
def test_the_grammar_refuses_the_hostile_text(hostile: str) -> None:
    assert not pattern_allows(hostile)
    assert not pattern_allows(wrapped(hostile))
    assert pattern_allows(wrapped("we kept your cart"))  # the wrapping alone is fine


@pytest.mark.parametrize("hostile", HOSTILE + CHECK_ONLY)
def test_the_rules_refuse_the_hostile_text_again(hostile: str) -> None:
    assert message_problems(hostile), hostile
    assert message_problems(wrapped(hostile)), hostile


@pytest.mark.parametrize("hostile", CHECK_ONLY)
def test_spelled_out_links_pass_the_grammar_but_not_the_rules(hostile: str) -> None:
    assert pattern_allows(wrapped(hostile))
    assert "message_has_link" in markup_problems(wrapped(hostile))


@pytest.mark.parametrize("hostile", HOSTILE)
def test_a_hostile_reply_is_an_invalid_answer_wherever_a_reply_is(hostile: str) -> None:
    text = wrapped(hostile)
    for tool in ("respond", "escalate_to_person", "accept_offer"):
        router = {"analysis": "asks", "action": {"tool": tool, "reply": text}}
        with pytest.raises(AnswerInvalid, match="reply"):
            parse_router(json.dumps(router), router_schema(True))
    schema = pricing_schema(8.0, None, 1.0)
    pricing = {
        "customer_analysis": "new",
        "negotiation_analysis": "first",
        "max_allowed_discount": 8.0,
        "discount_percent": 4.0,
        "reply": text,
    }
    with pytest.raises(AnswerInvalid, match="reply"):
        parse_pricing(json.dumps(pricing), schema)
    with pytest.raises(ValidationError):  # the models refuse it too, whoever builds them
        Respond(tool="respond", reply=text)
    with pytest.raises(ValidationError):
        TurnPricing(**{**pricing, "reply": text})


@pytest.mark.parametrize("text", SYSTEM_REPLIES + GOOD)
def test_the_systems_replies_and_good_messages_pass_both(text: str) -> None:
    assert pattern_allows(text), text
    assert message_problems(text) == [], text
    assert message_quality_problems(text) == [], text


def test_a_good_pricing_answer_still_parses() -> None:
    schema = pricing_schema(8.0, None, 1.0)
    answer = {
        "customer_analysis": "new",
        "negotiation_analysis": "first",
        "max_allowed_discount": 8.0,
        "discount_percent": 4.0,
        "reply": PRICE_REPLY,
    }
    assert parse_pricing(json.dumps(answer), schema).reply == PRICE_REPLY


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(st.from_regex(REPLY_PATTERN, fullmatch=True))
def test_whatever_the_grammar_allows_is_plain_text_and_fits_the_model(text: str) -> None:
    assert len(text) <= REPLY_CHARS_MAX
    assert Respond(tool="respond", reply=text).reply == text  # schema and model agree
    found = set(markup_problems(text))
    assert found <= {"message_has_link"}, (text, found)
    if found:  # only a spelled-out link: words the grammar cannot tell from others
        assert re.search(r"www|http|script|\bdot\b|\bpunkt\b|\bpoint\b", text, re.I), text
    assert not re.search(r"[<>:/@\d\[\]()`&+]", text)
    assert not re.search(r"[A-Za-z]\.[A-Za-z]", text)  # no dot between letters: no domain


@given(st.text(max_size=200))
def test_the_check_never_crashes(text: str) -> None:
    assert all(isinstance(p, str) for p in markup_problems(text))


def test_the_docs_state_the_pattern_the_code_sends() -> None:
    from pathlib import Path

    doc = (Path(__file__).parents[2] / "docs" / "negotiation.md").read_text()
    assert f"`{REPLY_PATTERN}`" in doc
