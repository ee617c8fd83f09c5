"""Cart recovery (docs/recovery.md): due times and quiet hours as pure functions with a fixed
clock (hypothesis), and the one runner on both hot stores: an abandonment scheduled, decided by a
due run on the session's newest state, an order that closes the customer's live offer with one
void notice (unless it used the code), and attribution."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import fakeredis
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from stores.base import HotStore
from tests.conftest import Clock, event, make_deps
from worker.deps import Deps, JobInfo
from worker.domain.events import InvalidEvent, parse_event
from worker.domain.model import SessionState
from worker.domain.recovery import QuietHours, RecoveryConfig, at_due, due_at, quiet_end
from worker.keys import Keys
from worker.runner import run
from worker.schedule import DueSet
from worker.settings import Settings, SettingsError, load_settings

BERLIN = ZoneInfo("Europe/Berlin")
NIGHT = QuietHours(time(21, 0), time(9, 0))


# --- pure: quiet hours and due times ----------------------------------------------------------
def test_quiet_hours_parse_and_refuse_with_the_text() -> None:
    assert QuietHours.parse("21:00-09:00") == NIGHT
    assert QuietHours.parse("") is None
    for bad in ("21-09", "25:00-09:00", "09:00-09:00", "9:00-10:00"):
        with pytest.raises(ValueError, match="quiet hours"):
            QuietHours.parse(bad)


def test_settings_name_bad_recovery_values() -> None:
    with pytest.raises(SettingsError, match="21:00-9"):
        load_settings(quiet_hours="21:00-9")
    with pytest.raises(SettingsError, match="Mars/Base"):
        load_settings(timezone="Mars/Base")


def test_a_decision_due_in_the_night_waits_for_the_morning_in_the_customers_zone() -> None:
    cfg = RecoveryConfig(timedelta(hours=4), NIGHT, "UTC")
    # abandoned at 18:30 Berlin (17:30 UTC): due 22:30 Berlin, in the quiet hours: 09:00 next day
    at = datetime(2026, 3, 10, 17, 30, tzinfo=UTC)
    due, why = due_at(at, cfg, "Europe/Berlin")
    assert (due, why) == (datetime(2026, 3, 11, 8, 0, tzinfo=UTC), "quiet_hours")
    # the same moment in the default zone (UTC): due 21:30 UTC, quiet too: 09:00 UTC
    assert due_at(at, cfg, None) == (datetime(2026, 3, 11, 9, 0, tzinfo=UTC), "quiet_hours")
    # an afternoon abandonment is due in the evening, before the quiet hours
    noon = datetime(2026, 3, 10, 11, 0, tzinfo=UTC)
    assert due_at(noon, cfg, "Europe/Berlin") == (noon + timedelta(hours=4), None)
    # early morning: the quiet hours end the same day
    early = datetime(2026, 3, 10, 7, 15, tzinfo=BERLIN)
    assert quiet_end(early, NIGHT, BERLIN) == datetime(2026, 3, 10, 9, 0, tzinfo=BERLIN)


ZONES = st.sampled_from(["UTC", "Europe/Berlin", "America/New_York", "Asia/Kolkata"])
MOMENTS = st.datetimes(
    min_value=datetime(2024, 1, 1), max_value=datetime(2030, 1, 1), timezones=st.just(UTC)
)
TIMES = st.times().map(lambda t: t.replace(second=0, microsecond=0))


@settings(max_examples=300, deadline=None)
@given(MOMENTS, TIMES, TIMES, ZONES, st.floats(0, 24 * 60))
def test_a_deferred_decision_is_never_earlier_and_never_in_quiet_hours(
    moment: datetime, start: time, end: time, zone_name: str, delay_min: float
) -> None:
    if start == end:
        return
    quiet = QuietHours(start, end)
    cfg = RecoveryConfig(timedelta(minutes=delay_min), quiet, zone_name)
    due, why = due_at(moment, cfg, None)
    plain = moment + cfg.delay
    tz = ZoneInfo(zone_name)
    assert due >= plain
    assert due - plain <= timedelta(hours=25)  # at most one night (and a DST hour)
    assert not quiet.contains(due.astimezone(tz).time().replace(tzinfo=None))
    assert (why == "quiet_hours") == quiet.contains(plain.astimezone(tz).time().replace(tzinfo=None))  # fmt: skip
    if why is None:
        assert due == plain


def test_at_due_reads_the_newest_state() -> None:
    def state(status: str, last: str) -> SessionState:
        return SessionState("s", "u", status, 10.0, 0.4, "EUR", "in_stock", last, datetime.now(UTC))

    assert at_due("e1", state("abandoned", "e1")) is None
    assert at_due("e1", state("ordered", "e2")) == "order_completed"
    assert at_due("e1", state("active", "e2")) == "superseded"
    assert at_due("e1", state("abandoned", "e3")) == "superseded"  # a newer abandonment


def test_the_contract_takes_a_timezone_and_an_order_block_naming_bad_values() -> None:
    ok = parse_event(
        event("order_completed", timezone="Asia/Kolkata",
              order={"order_id": "o-1", "value": 10.5, "currency": "EUR", "code": "SGR-X"})
    )  # fmt: skip
    assert ok.timezone == "Asia/Kolkata" and ok.order is not None and ok.order.value == 10.5
    with pytest.raises(InvalidEvent, match=r"timezone: is not an IANA time zone name \(got 'Mars"):
        parse_event(event(timezone="Mars/Olympus"))
    with pytest.raises(InvalidEvent, match=r"order.currency"):
        parse_event(event("order_completed", order={"order_id": "o", "currency": "euro"}))
    with pytest.raises(InvalidEvent, match="only for order_completed"):
        parse_event(event(order={"order_id": "o"}))


# --- the runner on both hot stores ------------------------------------------------------------
@pytest.fixture
def client() -> fakeredis.FakeRedis:
    return fakeredis.FakeRedis()


def deps_with(data_dir: Path, hot_store_url: str, client: fakeredis.FakeRedis, clock: Clock, delay_min: float) -> Deps:  # fmt: skip
    deps = make_deps(data_dir, client, clock=clock, hot_store_url=hot_store_url)
    return replace(deps, recovery=RecoveryConfig(timedelta(minutes=delay_min), None, "UTC"))


def due_run(deps: Deps, event_ids: list[str], claimant: str = "job-1") -> list[object]:
    """What ``worker.jobs.handle_due`` does: claim, then the runner with ``due``."""
    claimed = deps.hot.claim_due(event_ids, claimant, deps.clock(), 180)
    events = [parse_event(json.loads(p)) for _, p, _ in claimed]
    return list(run(events, deps, JobInfo(job_id=claimant, due=True)))


def stream(client: fakeredis.FakeRedis) -> list[dict[str, str]]:
    return [{k.decode(): v.decode() for k, v in f.items()} for _, f in client.xrange("sgr:offers")]


def test_an_abandonment_waits_then_is_decided_once_on_the_newest_state(
    data_dir: Path, hot_store_url: str, client: fakeredis.FakeRedis
) -> None:
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=1)
    clock = Clock(start)
    deps = deps_with(data_dir, hot_store_url, client, clock, delay_min=60)
    hot: HotStore = deps.hot
    ab = parse_event(event(event_id="ab1", session="s1", user="u1", at=start))
    ab2 = parse_event(event(event_id="ab2", session="s2", user="u2", at=start))
    first = run([ab, ab2], deps)
    assert [o.outcome for o in first] == ["scheduled", "scheduled"]  # type: ignore[union-attr]
    assert first[0].due_at == start + timedelta(hours=1)  # type: ignore[union-attr]
    keys = Keys.from_settings(Settings())
    assert DueSet(client, keys).size() == 2 and stream(client) == []
    assert run([ab], deps)[0].outcome == "scheduled"  # type: ignore[union-attr]  # a redelivery
    recorded = hot.get_outcome("ab1")
    assert recorded is not None and recorded.outcome == "scheduled"
    assert ("scheduled", "", 2) in hot.outcome_counts()

    clock.advance(minutes=30)  # an order on session 1 meanwhile
    run([parse_event(event("order_completed", event_id="o1", session="s1", user="u1",
                           at=start + timedelta(minutes=30)))], deps)  # fmt: skip
    clock.advance(minutes=31)
    assert sorted(DueSet(client, keys).take_due(clock())) == ["ab1", "ab2"]
    assert DueSet(client, keys).take_due(clock()) == []  # taken once
    results = due_run(deps, ["ab1", "ab2"])
    assert [(o.outcome, o.reason) for o in results] == [  # type: ignore[attr-defined]
        ("no_offer", "order_completed"),
        ("offer", None),
    ]
    assert [e["event_id"] for e in stream(client) if e["type"] == "offer"] == ["ab2"]
    # a second due run (Redis gave the entry twice, a job retried) changes nothing
    assert due_run(deps, ["ab1", "ab2"], "job-2") == []
    done = hot.get_outcome("ab2")
    assert done is not None and done.decided_at == clock() and done.due_at == start + timedelta(hours=1)  # fmt: skip
    assert hot.undecided_due(clock() + timedelta(days=1), clock(), 180) == []


def test_an_order_closes_the_live_offer_once_unless_it_used_the_code(
    data_dir: Path, hot_store_url: str, client: fakeredis.FakeRedis
) -> None:
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=10)
    clock = Clock(start)
    deps = deps_with(data_dir, hot_store_url, client, clock, delay_min=0)
    a = run([parse_event(event(event_id="a1", session="s1", user="u1", at=start))], deps)[0]
    b = run([parse_event(event(event_id="b1", session="s2", user="u2", at=start))], deps)[0]
    offer_a = deps.hot.get_offer(a.offer_id)  # type: ignore[union-attr, arg-type]
    offer_b = deps.hot.get_offer(b.offer_id)  # type: ignore[union-attr, arg-type]
    assert offer_a is not None and offer_b is not None
    clock.advance(minutes=5)
    order = event("order_completed", event_id="o1", session="s9", user="u1",
                  at=start + timedelta(minutes=5), order={"order_id": "A1", "value": 99.5})  # fmt: skip
    run([parse_event(order)], deps)
    run([parse_event(order)], deps)  # replayed: nothing more
    paid = event("order_completed", event_id="o2", session="s2", user="u2",
                 at=start + timedelta(minutes=5),
                 order={"order_id": "B1", "value": 100.0, "code": offer_b.code})  # fmt: skip
    run([parse_event(paid)], deps)
    voids = [e for e in stream(client) if e["type"] == "void"]
    assert [(v["offer_id"], v["code"], v["reason"], v["order_event_id"]) for v in voids] == [
        (offer_a.offer_id, offer_a.code, "order_completed", "o1")
    ]
    state_a, state_b = deps.hot.code_state(offer_a.code), deps.hot.code_state(offer_b.code)
    assert state_a is not None and state_a.voided_at is not None and state_a.redeemed_at is None
    assert state_b is not None and state_b.redeemed_at is not None and state_b.voided_at is None
    assert deps.outbox.flush() == 0  # the notice is marked published
    rows = {r["offer_id"]: r for r in deps.hot.attribution(72, clock())}
    assert rows[offer_a.offer_id]["attribution"] == "converted"
    assert rows[offer_a.offer_id]["order_value"] == 99.5
    assert rows[offer_b.offer_id]["attribution"] == "redeemed"
    assert rows[offer_b.offer_id]["order_id"] == "B1"
    later = deps.hot.attribution(72, clock() + timedelta(hours=73))
    assert all(r["window_closed"] for r in later)


def test_a_lost_due_entry_comes_back_from_the_hot_store(
    data_dir: Path, hot_store_url: str, client: fakeredis.FakeRedis
) -> None:
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=1)
    clock = Clock(start)
    deps = deps_with(data_dir, hot_store_url, client, clock, delay_min=10)
    run([parse_event(event(event_id="ab1", at=start))], deps)
    client.flushall()  # Redis lost everything
    rows = deps.hot.undecided_due(clock() + timedelta(days=1), clock(), 180)
    assert [e for e, _ in rows] == ["ab1"]
    # a claim holds it away from the sweep until its lease ends
    assert len(deps.hot.claim_due(["ab1"], "job-a", clock(), 180)) == 1
    assert deps.hot.claim_due(["ab1"], "job-b", clock(), 180) == []
    assert deps.hot.undecided_due(clock() + timedelta(days=1), clock(), 180) == []
    clock.advance(seconds=181)
    assert len(deps.hot.undecided_due(clock() + timedelta(days=1), clock(), 180)) == 1
    assert len(deps.hot.claim_due(["ab1"], "job-b", clock(), 180)) == 1
