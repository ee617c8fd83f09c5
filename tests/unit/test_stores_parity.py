"""Both hot stores behave alike, method by method (each test runs on the SQLite file and on a real
PostgreSQL database): offers and their times round-trip, batches, savepoints, the outbox, codes,
negotiation turns; and PostgreSQL's own edges (an unreachable server, NUL characters)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from stores.base import HotStore, StoreUnavailable
from stores.hot import open_hot_store
from testbench.redisproc import free_port
from tests.conftest import NOW
from worker.domain.codes import new_code, new_offer_id
from worker.domain.conversation import Turn
from worker.domain.model import Offer
from worker.domain.timefmt import to_text


@pytest.fixture
def hot(hot_store_url: str, tmp_path: Path) -> Iterator[HotStore]:
    store = open_hot_store(hot_store_url, tmp_path / "hot.sqlite")
    yield store
    store.close()


def offer(n: int, user: str = "u1", discount: float = 7.25, at: object = NOW) -> Offer:
    return Offer(
        offer_id=new_offer_id(),
        event_id=f"e{n}",
        session_id=f"s{n}",
        user_id=user,
        currency="EUR",
        cart_value=120.5,
        margin=0.4,
        segment="mid_churn",
        cap_pct=12.5,
        discount_pct=discount,
        code=new_code(),
        expires_at=NOW + timedelta(hours=48),
        engine="policy",
        model=None,
        reasoning={"pricing": {"discount_percent": discount}},
        message="A little something.",
        guardrail=("above_cap: 40 > 12.5",),
        created_at=at,  # type: ignore[arg-type]
    )


def session(event_id: str, session_id: str, user: str = "u1") -> dict[str, object]:
    return {
        "session_id": session_id,
        "user_id": user,
        "status": "abandoned",
        "cart_value": 120.5,
        "margin": 0.4,
        "currency": "EUR",
        "inventory": "in_stock",
        "event_id": event_id,
        "occurred_at": to_text(NOW),
    }


def test_an_offer_round_trips_with_aware_times_and_exact_numbers(hot: HotStore) -> None:
    made = offer(1, at=NOW + timedelta(microseconds=7))
    with hot.transaction():
        hot.insert_offer(made)
    got = hot.get_offer(made.offer_id)
    assert got == made  # every field: floats exact, times aware and to the microsecond
    assert got is not None and got.created_at.utcoffset() == timedelta(0)
    assert hot.last_offer_at("u1") == made.created_at
    assert [o.offer_id for o in hot.unpublished_offers()] == [made.offer_id]
    hot.mark_published(made.offer_id, NOW + timedelta(seconds=1))
    assert hot.unpublished_offers() == []
    assert [o.offer_id for o in hot.recently_published(NOW)] == [made.offer_id]
    assert hot.offers_by_engine() == {"policy": 1}
    assert hot.largest_offer() == {"discount_pct": 7.25, "cap_pct": 12.5}
    assert hot.summary()["over_cap"] == 0 and hot.summary()["unpublished"] == 0


def test_a_failed_transaction_leaves_nothing(hot: HotStore) -> None:
    with pytest.raises(RuntimeError), hot.transaction():
        hot.apply_event(session("e1", "s1"), NOW)
        hot.record_outcome(event_id="e1", outcome="no_offer", finished_at=NOW)
        raise RuntimeError("crash before commit")
    assert hot.get_session("s1") is None and hot.get_outcome("e1") is None


def test_batches_read_in_order_and_a_savepoint_undoes_one_item(hot: HotStore) -> None:
    first = offer(1)
    with hot.transaction():
        hot.apply_event(session("e1", "s1"), NOW)
        hot.record_outcome(event_id="e1", outcome="offer", offer_id=first.offer_id, finished_at=NOW)
        hot.insert_offer(first)
        with pytest.raises(ValueError), hot.savepoint():
            hot.record_outcome(event_id="e2", outcome="no_offer", finished_at=NOW)
            raise ValueError("this item fails alone")
    contexts = hot.event_contexts([("e2", "s2", "u2"), ("e1", "s1", "u1")])
    assert [c.outcome is None for c in contexts] == [True, False]
    assert contexts[1].outcome is not None and contexts[1].outcome.offer_id == first.offer_id
    assert contexts[1].session is not None and contexts[1].session.cart_value == 120.5
    assert contexts[1].last_offer_at == NOW and contexts[0].last_offer_at is None
    second = offer(2, user="u2")
    with hot.transaction():
        hot.insert_offer(second)
    ids = [first.offer_id, second.offer_id]
    assert {o.offer_id for o in hot.get_offers(ids)} == set(ids)
    hot.mark_published_many(ids, NOW)
    assert hot.unpublished_offers() == []


def test_codes_redeem_once_and_a_voided_code_never(hot: HotStore) -> None:
    a, b = offer(1), offer(2)
    with hot.transaction():
        hot.insert_offer(a)
        hot.insert_offer(b)
        hot.void_offer(a.offer_id, b.offer_id, NOW)
    state = hot.code_state(a.code)
    assert state is not None and state.superseded_by == b.offer_id and state.voided_at == NOW
    assert not hot.redeem(a.code, NOW)
    assert hot.redeem(b.code, NOW) and not hot.redeem(b.code, NOW)
    assert hot.code_state("SGR-NONE-NONE-NONE") is None
    live = hot.live_offer("u1")
    assert live is not None and live.offer_id == b.offer_id and live.redeemed_at == NOW


def test_a_code_redeems_only_for_its_customer_when_one_is_named(hot: HotStore) -> None:
    mine, theirs = offer(1, user="u1"), offer(2, user="u2")
    with hot.transaction():
        hot.insert_offer(mine)
        hot.insert_offer(theirs)
    assert not hot.redeem(theirs.code, NOW, user_id="u1")  # another customer's code
    state = hot.code_state(theirs.code)
    assert state is not None and state.redeemed_at is None  # left as it was
    assert hot.redeem(mine.code, NOW, user_id="u1")
    assert hot.redeem(theirs.code, NOW)  # no customer named: the code alone decides


def test_a_redeemed_offer_is_never_voided(hot: HotStore) -> None:
    used, counter = offer(1), offer(2)
    with hot.transaction():
        hot.insert_offer(used)
        hot.insert_offer(counter)
    assert hot.redeem(used.code, NOW)
    with hot.transaction():
        assert hot.void_offer(used.offer_id, counter.offer_id, NOW) is False
    state = hot.code_state(used.code)
    assert state is not None and state.voided_at is None and state.redeemed_at == NOW
    with hot.transaction():  # an unredeemed one is voided, once
        assert hot.void_offer(counter.offer_id, used.offer_id, NOW) is True
        assert hot.void_offer(counter.offer_id, used.offer_id, NOW) is False


def test_lock_customer_serializes_one_customers_decisions(
    hot_store_url: str, tmp_path: Path
) -> None:
    """A second transaction locking the customer waits for the first to end, then sees its offer
    (on PostgreSQL another customer does not wait; on SQLite every writer does)."""
    first_store = open_hot_store(hot_store_url, tmp_path / "hot.sqlite")
    second_store = open_hot_store(hot_store_url, tmp_path / "hot.sqlite")
    held, order = threading.Event(), []

    def first() -> None:
        with first_store.transaction():
            first_store.lock_customer("u1")
            held.set()
            time.sleep(0.5)
            first_store.insert_offer(offer(1))
            order.append("first")

    thread = threading.Thread(target=first)
    thread.start()
    try:
        assert held.wait(10)
        if hot_store_url:  # PostgreSQL: a lock per customer
            with second_store.transaction():
                second_store.lock_customer("u2")
            assert order == []  # u2 did not wait for u1's transaction
        with second_store.transaction():
            second_store.lock_customer("u1")
            seen = second_store.last_offer_at("u1")
            order.append("second")
    finally:
        thread.join(10)
    assert order == ["first", "second"] and seen == NOW
    with pytest.raises(RuntimeError, match="outside a transaction"):
        second_store.lock_customer("u1")
    first_store.close()
    second_store.close()


def turn(event_id: str, session_id: str = "s1") -> Turn:
    return Turn(
        event_id=event_id,
        session_id=session_id,
        user_id="u1",
        turn=0,
        message="10% more?",
        route="respond",
        reason=None,
        reply="We can look at that.",
        reasoning={"route": "respond"},
        offer_id=None,
        discount_pct=None,
        cap_pct=None,
        code=None,
        engine="policy",
        model=None,
        problems=None,
        created_at=NOW,
    )


def test_turns_are_numbered_per_session_and_recorded_once(hot: HotStore) -> None:
    with hot.transaction():
        assert hot.insert_turn(turn("t1")) == 1
        assert hot.insert_turn(turn("t2")) == 2
        assert hot.insert_turn(turn("t1")) is None  # the event already has its turn
        assert hot.insert_turn(turn("t3", "s2")) == 1
    talk = hot.conversation("s1", "u1")
    assert [t.turn for t in talk.turns] == [1, 2] and talk.live_offer is None
    got = hot.get_turn("t2")
    assert got is not None and got.created_at == NOW and got.reasoning == {"route": "respond"}
    assert {t.event_id for t in hot.unpublished_turns()} == {"t1", "t2", "t3"}
    hot.mark_turn_published("t1", NOW)
    assert {t.event_id for t in hot.unpublished_turns()} == {"t2", "t3"}


def test_an_error_text_with_a_nul_character_is_recorded(hot: HotStore) -> None:
    assert hot.record_outcome(
        event_id="e1", outcome="dead_letter", error="bad\x00byte", finished_at=NOW
    )
    recorded = hot.get_outcome("e1")
    assert recorded is not None and (recorded.error or "").startswith("bad")


def test_an_unreachable_postgresql_is_one_clear_error_without_the_password(
    tmp_path: Path,
) -> None:
    url = f"postgresql://sgr:s3cret-pw@127.0.0.1:{free_port()}/sgr"
    with pytest.raises(StoreUnavailable) as caught:
        open_hot_store(url, tmp_path / "unused.sqlite")
    text = str(caught.value)
    assert "s3cret-pw" not in text
    assert text.startswith("hot store postgresql://***@127.0.0.1:") and "refused" in text


def test_an_unknown_scheme_names_the_setting(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="SGR_HOT_STORE_URL: unsupported scheme 'mysql'"):
        open_hot_store("mysql://u:p@h/db", tmp_path / "hot.sqlite")


def test_a_lost_database_connection_is_the_store_unavailable(pg_database: str) -> None:
    """Sessions ended by the server (a restart, a failover) mid-transaction: StoreUnavailable
    naming the redacted URL (the worker stops taking jobs; the job goes back to the queue), nothing
    half-written, and the next call works on a fresh connection."""
    import psycopg

    hot = open_hot_store(pg_database, Path("unused"))
    with pytest.raises(StoreUnavailable, match=r"^hot store postgresql://.*unavailable"):  # noqa: SIM117
        with hot.transaction():
            hot.apply_event(session("e1", "s1"), NOW)
            with psycopg.connect(pg_database, autocommit=True) as admin:
                admin.execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                    " WHERE datname = current_database() AND pid <> pg_backend_pid()"
                )
            hot.record_outcome(event_id="e1", outcome="no_offer", finished_at=NOW)
    assert hot.get_session("s1") is None  # the pool replaced the dead connection
    assert hot.record_outcome(event_id="e1", outcome="no_offer", finished_at=NOW)
    hot.close()


@pytest.mark.parametrize(
    "url",
    ["mysql://u:hunter2@db/x", "/var/lib/hunter2.sqlite", "hunter2"],
)
def test_a_hot_store_url_that_is_not_one_is_one_line_without_its_secret(
    url: str, tmp_path: Path
) -> None:
    """What `sgr` prints for it is the store's own one line (not 'unexpected'), and no part of
    the value that may be a password."""
    from stores.base import StoreConfigError
    from worker.cli.app import describe_error

    with pytest.raises(StoreConfigError) as caught:
        open_hot_store(url, tmp_path / "hot.sqlite")
    line = describe_error(caught.value)
    assert line is not None and line.startswith("SGR_HOT_STORE_URL: ")
    assert "hunter2" not in line


def test_a_libpq_key_value_dsn_opens_postgresql(pg_database: str, tmp_path: Path) -> None:
    """``host=... dbname=...`` is PostgreSQL's own form of the same place: it opens the store
    (not a SQLite file, not a refusal), and the store is named without its password."""
    import psycopg

    pairs = psycopg.conninfo.conninfo_to_dict(pg_database)
    dsn = " ".join(f"{k}={v}" for k, v in pairs.items()) + " password=hunter2"
    hot = open_hot_store(dsn, tmp_path / "hot.sqlite")
    try:
        assert type(hot).__name__ == "PostgresHotStore"
        assert hot.where.startswith("postgresql://***@") and "hunter2" not in hot.where
        assert not (tmp_path / "hot.sqlite").exists()
    finally:
        hot.close()


def test_a_pooled_connection_the_server_closed_while_idle_is_replaced_without_a_failed_call(
    pg_database: str,
) -> None:
    """The check before use is a poll of the socket, not a round trip: a connection ended by the
    server while it sat in the pool (``pg_terminate_backend``: its FATAL, then the socket's end)
    is seen as such and replaced, so the next calls succeed; an untouched one passes as quiet."""
    import psycopg

    from stores.postgres import PostgresHotStore, _quiet

    hot = open_hot_store(pg_database, Path("unused"))
    assert isinstance(hot, PostgresHotStore)
    assert hot.record_outcome(event_id="q0", outcome="no_offer", finished_at=NOW)
    idle = hot.pool.getconn()
    assert _quiet(idle)
    hot.pool.putconn(idle)
    with psycopg.connect(pg_database, autocommit=True) as admin:
        admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and _quiet(idle):
        time.sleep(0.01)  # the server's goodbye is on its way
    assert not _quiet(idle)
    for n in range(1, 4):  # every call succeeds: none is sent on the dead connection
        assert hot.record_outcome(event_id=f"q{n}", outcome="no_offer", finished_at=NOW)
    hot.close()
