"""The holdout experiment on both hot-store backends: who is held out, what is recorded, how
orders are attributed, and `sgr report lift --json` on what was recorded."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tests.conftest import NOW, Clock, event, make_deps
from worker.cli import app
from worker.deps import Deps
from worker.domain.events import parse_event
from worker.domain.experiment import Experiment
from worker.runner import process

SALT = "salt-of-the-test"


def users(group: str, count: int) -> list[str]:
    exp = Experiment(0.5, SALT.encode())
    found = [u for u in (f"u{i:06d}" for i in range(400)) if exp.group_of(u) == group]
    return found[:count]


def deps_for(data_dir: Path, hot_store_url: str, clock: Clock) -> Deps:
    return make_deps(
        data_dir,
        clock=clock,
        hot_store_url=hot_store_url,
        holdout_pct=50,
        experiment_salt=SALT,
        attribution_hours=48,
    )


def run(deps: Deps, payload: dict[str, object]) -> tuple[str, str | None]:
    out = process(parse_event(payload, deps.clock()), deps)
    return out.outcome, out.reason


def test_held_out_customers_get_no_offer_with_their_cap_recorded_and_orders_attributed(
    data_dir: Path, hot_store_url: str
) -> None:
    clock = Clock()
    deps = deps_for(data_dir, hot_store_url, clock)
    held, treated = users("holdout", 3), users("treatment", 3)
    for i, user in enumerate(held + treated):
        want = ("no_offer", "holdout") if user in held else ("offer", None)
        assert run(deps, event(event_id=f"a{i}", user=user, session=f"s{i}")) == want
    # a held-out customer waits the offer window as a treated one does
    assert run(deps, event(event_id="again", user=held[0], session="s-again")) == (
        "no_offer",
        "offer_window",
    )
    clock.advance(hours=2)
    for i, user in enumerate([held[0], treated[0]]):
        order = event(
            "order_completed", event_id=f"o{i}", user=user, session=f"s9{i}", at=clock.now
        )
        order["cart"] = {"currency": "EUR", "value": 99.5, "margin": 0.4}
        assert run(deps, order) == ("no_offer", "not_a_trigger")
    rows = deps.hot.lift_rows(deps.experiment.id, NOW - timedelta(days=1))
    assert sorted(r.group for r in rows) == ["holdout"] * 3 + ["treatment"] * 3
    converted = sorted((r.group, r.order_value) for r in rows if r.converted)
    assert converted == [("holdout", 99.5), ("treatment", 99.5)]
    assert all(r.discount_pct == 0 for r in rows)  # no code was redeemed
    # an order outside the window is attributed to nothing
    clock.advance(hours=60)
    late = event("order_completed", event_id="late", user=held[1], session="s-late", at=clock.now)
    run(deps, late)
    assert (
        sum(r.converted for r in deps.hot.lift_rows(deps.experiment.id, NOW - timedelta(days=1)))
        == 2
    )
    # a replay of the order changes nothing
    run(deps, event("order_completed", event_id="o0", user=held[0], session="s90", at=clock.now))
    assert (
        sum(r.converted for r in deps.hot.lift_rows(deps.experiment.id, NOW - timedelta(days=1)))
        == 2
    )


def test_the_customers_own_price_message_is_never_held_out(
    data_dir: Path, hot_store_url: str
) -> None:
    deps = deps_for(data_dir, hot_store_url, Clock())
    user = users("holdout", 1)[0]
    outcome = run(deps, event(event_id="m1", user=user, message="Can I get a discount?"))
    assert outcome == ("offer", None)
    assert deps.hot.lift_rows(deps.experiment.id, NOW - timedelta(days=1)) == []


def test_a_new_salt_is_a_new_experiment(data_dir: Path, hot_store_url: str) -> None:
    deps = deps_for(data_dir, hot_store_url, Clock())
    run(deps, event(event_id="x1", user=users("holdout", 1)[0]))
    other = Experiment(0.5, b"another-salt-here")
    assert deps.hot.lift_rows(other.id, NOW - timedelta(days=1)) == []
    assert [e["experiment"] for e in deps.hot.experiments()] == [deps.experiment.id]


def test_sgr_report_lift_json_on_both_backends(
    data_dir: Path, hot_store_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    deps = deps_for(data_dir, hot_store_url, Clock())
    for i, user in enumerate(users("holdout", 4) + users("treatment", 4)):
        run(deps, event(event_id=f"r{i}", user=user, session=f"r{i}"))
    deps.hot.close()
    monkeypatch.setenv("SGR_HOLDOUT_PCT", "50")
    monkeypatch.setenv("SGR_EXPERIMENT_SALT", SALT)
    monkeypatch.setenv("SGR_HOT_STORE_URL", hot_store_url)
    plot = data_dir / "lift.png"
    result = CliRunner().invoke(
        app, ["report", "lift", "--data-dir", str(data_dir), "--json", "--plot", str(plot)]
    )
    assert result.exit_code == 0, result.output
    out = json.loads(result.output.strip().splitlines()[-1])
    assert out["groups"]["treatment"]["carts"] == 4 and out["groups"]["holdout"]["carts"] == 4
    assert {"carts", "orders", "conversion"} <= set(out["groups"]["holdout"])
    for name in ("lift", "ci_low", "ci_high", "srm_p"):
        assert isinstance(out[name], float)
    assert {s["segment"] for s in out["segments"]} == {
        "new",
        "low_churn",
        "mid_churn",
        "high_churn",
    }
    assert "not enough data yet" in out["verdict"]
    assert plot.stat().st_size > 1000
    text = CliRunner().invoke(app, ["report", "lift", "--data-dir", str(data_dir)])
    assert text.exit_code == 0 and "lift in conversion" in text.output


def test_report_lift_without_an_experiment_says_how_to_start_one(data_dir: Path) -> None:
    make_deps(data_dir).hot.close()
    result = CliRunner().invoke(app, ["report", "lift", "--data-dir", str(data_dir), "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["experiment"] is None
    assert "SGR_HOLDOUT_PCT" in result.output


def test_a_holdout_without_a_salt_is_refused_naming_the_variable() -> None:
    from worker.settings import SettingsError, load_settings

    with pytest.raises(SettingsError, match="SGR_EXPERIMENT_SALT"):
        load_settings(holdout_pct=10)


def test_the_exporter_counts_the_experiment_per_group(data_dir: Path, hot_store_url: str) -> None:
    import fakeredis

    from worker.metrics import FleetCollector, StoreReader
    from worker.settings import Settings

    deps = deps_for(data_dir, hot_store_url, Clock())
    held, treated = users("holdout", 2), users("treatment", 3)
    for i, user in enumerate(held + treated):
        run(deps, event(event_id=f"g{i}", user=user, session=f"g{i}"))
    order = event("order_completed", event_id="go", user=held[0], session="g-o")
    order["cart"] = {"currency": "EUR", "value": 40.0, "margin": 0.4}
    run(deps, order)
    settings = Settings(
        data_dir=data_dir, hot_store_url=hot_store_url, holdout_pct=50, experiment_salt=SALT
    )
    collector = FleetCollector(settings, fakeredis.FakeRedis(), StoreReader(settings))
    found = {(m.name, s.labels["group"]): s.value for m in collector._lift() for s in m.samples}
    assert found[("sgr_lift_carts", "holdout")] == 2
    assert found[("sgr_lift_carts", "treatment")] == 3
    assert found[("sgr_lift_orders", "holdout")] == 1
    assert found[("sgr_lift_revenue", "holdout")] == 40.0
