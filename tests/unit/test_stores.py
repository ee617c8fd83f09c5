"""The hot store on a real SQLite file: ordering, idempotency, two processes writing at once."""

from __future__ import annotations

import multiprocessing
from datetime import timedelta
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from stores.cold import ColdStore
from stores.sqlite import SqliteHotStore
from tests.conftest import NOW, event
from worker.domain.timefmt import to_text


def params(event_id: str, at: object, status: str | None, value: float | None) -> dict[str, object]:
    return {
        "session_id": "s1",
        "user_id": "u1",
        "status": status,
        "cart_value": value,
        "margin": 0.3 if value else None,
        "currency": "EUR" if value else None,
        "inventory": "in_stock",
        "event_id": event_id,
        "occurred_at": to_text(at),  # type: ignore[arg-type]
    }


def test_older_event_never_rolls_state_back(tmp_path: Path) -> None:
    hot = SqliteHotStore(tmp_path / "hot.sqlite")
    assert hot.apply_event(params("e2", NOW, "abandoned", 80.0), NOW)
    assert not hot.apply_event(params("e1", NOW - timedelta(minutes=5), "active", 10.0), NOW)
    state = hot.get_session("s1")
    assert state is not None
    assert (state.status, state.cart_value, state.last_event_id) == ("abandoned", 80.0, "e2")


def test_ordered_is_final_and_messages_keep_status(tmp_path: Path) -> None:
    hot = SqliteHotStore(tmp_path / "hot.sqlite")
    hot.apply_event(params("e1", NOW, "ordered", 50.0), NOW)
    hot.apply_event(params("e2", NOW + timedelta(seconds=1), "abandoned", 50.0), NOW)
    hot.apply_event(params("e3", NOW + timedelta(seconds=2), None, None), NOW)
    state = hot.get_session("s1")
    assert state is not None
    assert state.status == "ordered"
    assert state.cart_value == 50.0
    assert state.last_event_id == "e3"


def test_an_outcome_is_recorded_once(tmp_path: Path) -> None:
    hot = SqliteHotStore(tmp_path / "hot.sqlite")
    assert hot.record_outcome(event_id="e1", outcome="no_offer", reason="a", finished_at=NOW)
    assert not hot.record_outcome(event_id="e1", outcome="offer", finished_at=NOW)
    recorded = hot.get_outcome("e1")
    assert recorded is not None
    assert (recorded.outcome, recorded.reason) == ("no_offer", "a")


def _writer(path: str, prefix: str, count: int) -> None:
    hot = SqliteHotStore(path)
    for i in range(count):
        with hot.transaction():
            hot.apply_event(
                {
                    **params(f"{prefix}{i}", NOW + timedelta(microseconds=i), "active", 1.0),
                    "session_id": f"{prefix}-s{i % 7}",
                },
                NOW,
            )
            hot.record_outcome(event_id=f"{prefix}{i}", outcome="no_offer", finished_at=NOW)
    hot.close()


def test_two_processes_write_the_same_file(tmp_path: Path) -> None:
    path = str(tmp_path / "hot.sqlite")
    SqliteHotStore(path).close()
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_writer, args=(path, p, 200)) for p in ("a", "b")]
    for proc in procs:
        proc.start()
    for proc in procs:
        proc.join(60)
        assert proc.exitcode == 0
    hot = SqliteHotStore(path)
    assert hot.summary()["events"] == 400
    assert hot.conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_cold_store_knows_customers_and_says_none_for_new(data_dir: Path) -> None:
    cold = ColdStore(data_dir / "cold.duckdb")
    known = cold.history("u000001")
    assert known is not None and 0 <= known.churn_probability <= 1
    assert cold.history("never-seen") is None


EVENT_KINDS = [
    "cart_updated",
    "checkout_started",
    "cart_abandoned",
    "order_completed",
    "customer_message",
]


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(st.sampled_from(EVENT_KINDS), st.integers(0, 6), st.integers(0, 3)),
        min_size=1,
        max_size=12,
    )
)
def test_pipeline_predicts_the_state_sql_commits(steps: list[tuple[str, int, int]]) -> None:
    """The pipeline decides on the session as it will be once the event is applied
    (``session_after``), before the one transaction applies it with sql/hot/upsert_session.sql:
    both must agree on status and staleness for any order of events, duplicates included."""
    import tempfile

    from worker.domain.events import parse_event
    from worker.domain.session import session_after
    from worker.pipeline import state_params

    with tempfile.TemporaryDirectory() as tmp:
        hot = SqliteHotStore(Path(tmp) / "hot.sqlite")
        for kind, second, n in steps:
            at = NOW + timedelta(seconds=second)
            extra = {"message": "hello?"} if kind == "customer_message" else {}
            ev = parse_event(event(kind, event_id=f"e{n}", at=at, session="s", **extra))
            before = hot.get_session("s")
            status, stale = session_after(ev, before)
            applied = hot.apply_event(state_params(ev), NOW)
            assert stale == (applied is None)
            current = hot.get_session("s")
            assert current is not None and current.status == status
        hot.close()
