"""worker/metrics.py's pieces, the stream entry's documented number format, and the one-line
error for a missing optional package."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

from worker.cli.app import describe_error
from worker.domain.model import Offer
from worker.metrics import LLM_BUCKETS, Histogram, _problems


def test_problems_are_named_by_their_prefix() -> None:
    error = (
        "engine_timeout: Request timed out.; discount_above_cap: 14 > 12; message_has_number_word"
    )
    assert _problems(error) == ["engine_timeout", "discount_above_cap", "message_has_number_word"]
    assert _problems(None) == [] and _problems("") == []


def test_histogram_is_cumulative_with_an_inf_bucket() -> None:
    hist = Histogram((0.1, 1.0))
    for value in (0.05, 0.1, 0.5, 3.0):
        hist.observe(value)
    assert hist.cumulative() == [("0.1", 2), ("1.0", 3), ("+Inf", 4)]
    assert hist.total == 3.65
    assert list(LLM_BUCKETS) == sorted(LLM_BUCKETS)


def _offer(discount: float, cap: float) -> Offer:
    now = datetime(2026, 12, 1, 10, tzinfo=UTC)
    return Offer(
        offer_id="o1", event_id="e1", session_id="s1", user_id="u1", currency="EUR",
        cart_value=120.0, margin=0.4, segment="mid", cap_pct=cap, discount_pct=discount,
        code="SGR-AAAA-BBBB-CCCC", expires_at=now + timedelta(hours=48), engine="policy",
        model=None, reasoning={}, message="Hello", guardrail=None, created_at=now,
    )  # fmt: skip


def test_stream_numbers_are_decimal_text_as_the_readme_says() -> None:
    entry = _offer(7.25, 12.0).stream_entry()
    assert entry["discount_pct"] == "7.25" and entry["cap_pct"] == "12.0"
    assert entry["model"] == "" and entry["expires_at"] == "2026-12-03T10:00:00.000000+00:00"
    for discount, cap in ((12.0, 12.0), (1.0, 30.0), (29.99, 30.0)):
        entry = _offer(discount, cap).stream_entry()
        assert re.fullmatch(r"\d+\.\d{1,2}", entry["discount_pct"]), entry
        assert re.fullmatch(r"\d+\.\d", entry["cap_pct"]), entry


def test_a_missing_extra_is_one_line_naming_it() -> None:
    message = describe_error(ModuleNotFoundError("No module named 'duckdb'", name="duckdb"))
    assert message is not None and "sgr-discount-manager[cold]" in message
    matplotlib = describe_error(ModuleNotFoundError("x", name="matplotlib.pyplot"))
    assert matplotlib is not None and "[bench]" in matplotlib
    assert describe_error(ModuleNotFoundError("x", name="numpyy")) is None  # a bug, not an extra


def test_the_exporter_reads_either_backend_through_one_set_of_queries(
    tmp_path: Path, hot_store_url: str
) -> None:
    """The metrics reader opens the store the settings name and runs ``sql/metrics`` on it:
    an outcome recorded is counted and folded once, on SQLite and PostgreSQL alike."""
    from stores.hot import open_hot_store
    from worker.metrics import StoreReader
    from worker.settings import Settings

    settings = Settings(data_dir=tmp_path, hot_store_url=hot_store_url)
    hot = open_hot_store(hot_store_url, settings.hot_db)
    now = datetime(2026, 12, 7, 12, tzinfo=UTC)
    with hot.transaction():
        hot.record_outcome(
            event_id="m1", type="cart_abandoned", outcome="no_offer", reason="low_value",
            finished_at=now, attempts=1,
        )  # fmt: skip
    reader = StoreReader(settings)
    counts = reader.rows("event_counts")
    assert [(r["type"], r["outcome"], r["n"]) for r in counts] == [
        ("cart_abandoned", "no_offer", 1)
    ]
    assert [r["event_id"] for r in reader.finished_since(now - timedelta(seconds=1))] == ["m1"]
    assert reader.finished_since(now + timedelta(seconds=1)) == []
