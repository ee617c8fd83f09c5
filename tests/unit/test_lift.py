"""The lift report's statistics on simulated worlds with a known uplift (seeded, fast)."""

from __future__ import annotations

import math
import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from producers.synthetic import World, simulated_carts
from worker.domain import lift
from worker.domain.experiment import NO_EXPERIMENT, Experiment


def world_rows(
    world: World, carts: int, seed: int, share: float, *, assign_share: float | None = None
) -> list[lift.CartRow]:
    """One simulated experiment: carts split by the experiment's keyed hash (``assign_share``
    tampers with the split the report is told), offers at the cap, orders drawn by the world."""
    experiment = Experiment(
        assign_share if assign_share is not None else share, f"s{seed}".encode()
    )
    rng = random.Random(seed)
    rows = []
    for cart in simulated_carts(carts, seed):
        group = experiment.group_of(cart.user_id)
        discount = cart.cap_pct if group == "treatment" else 0.0
        converted = world.orders(rng, cart.segment, discount, cart.cap_pct)
        rows.append(
            lift.CartRow(
                group,
                cart.segment,
                converted,
                cart.value if converted else 0.0,
                cart.margin,
                discount if converted else 0.0,
            )
        )
    return rows


def test_wilson_and_newcombe_match_the_published_examples() -> None:
    # Newcombe (1998), table II: 56/70 - 48/80, method 10: 0.0524 to 0.3339
    low, high = lift.newcombe(56, 70, 48, 80)
    assert (round(low, 4), round(high, 4)) == (0.0524, 0.3339)
    # Wilson of 0/10: 0 to 0.2775
    assert tuple(round(x, 4) for x in lift.wilson(0, 10)) == (0.0, 0.2775)


@pytest.mark.parametrize(("df", "exact"), [(5, 2.5706), (10, 2.2281), (30, 2.0423), (1000, 1.9623)])
def test_t_quantile_is_close_to_the_tables(df: float, exact: float) -> None:
    assert lift.t_quantile(df) == pytest.approx(exact, abs=0.002)


@given(
    x1=st.integers(0, 500), e1=st.integers(0, 500), x2=st.integers(0, 500), e2=st.integers(0, 500)
)
def test_newcombe_holds_the_difference_and_stays_in_bounds(
    x1: int, e1: int, x2: int, e2: int
) -> None:
    n1, n2 = x1 + e1, x2 + e2
    low, high = lift.newcombe(x1, n1, x2, n2)
    assert -1.0 <= low <= high <= 1.0
    if n1 and n2:
        assert low - 1e-12 <= x1 / n1 - x2 / n2 <= high + 1e-12


def test_welch_interval_of_known_samples() -> None:
    a, b = [1.0, 2.0, 3.0, 4.0, 5.0], [2.0, 4.0, 6.0, 8.0, 10.0]
    d = lift.welch(a, b)
    assert d.diff == pytest.approx(-3.0)
    # se = sqrt(2.5/5 + 10/5) = 1.5811; df = 5.88; t = 2.4582 (exact 2.45)
    assert d.low == pytest.approx(-3.0 - 2.45 * 1.5811, abs=0.05)
    assert d.high == pytest.approx(-3.0 + 2.45 * 1.5811, abs=0.05)


def test_in_100_worlds_with_an_uplift_the_interval_covers_it_at_least_90_times() -> None:
    world = World(uplift=0.06)
    covered = 0
    for seed in range(100):
        r = lift.report(world_rows(world, 3000, seed, 0.2), 0.2).overall
        covered += r.ci_low <= 0.06 <= r.ci_high
    assert covered >= 90


def test_in_100_worlds_without_uplift_the_interval_covers_zero_at_least_90_times() -> None:
    world = World(uplift=0.0)
    covered = sum(
        lift.report(world_rows(world, 3000, seed, 0.2), 0.2).overall.spans_zero
        for seed in range(100)
    )
    assert covered >= 90


@pytest.mark.parametrize("uplift", [0.08, 0.0])
def test_20000_carts_with_a_true_uplift_of_8_points_or_none(uplift: float) -> None:
    world = World(uplift=uplift)
    rep = lift.report(world_rows(world, 20_000, 4242, 0.2), 0.2)
    o = rep.overall
    assert o.ci_low <= uplift <= o.ci_high
    assert o.treatment.carts + o.holdout.carts == 20_000
    assert not rep.srm_flag
    if uplift:
        assert o.ci_low > 0 and "more orders" in rep.verdict()
        assert o.net_margin_per_cart.diff != 0
    else:
        assert o.spans_zero


def test_srm_flags_a_world_whose_holdout_share_was_tampered_with() -> None:
    world = World(uplift=0.05)
    tampered = lift.report(world_rows(world, 10_000, 7, 0.2, assign_share=0.25), 0.2)
    assert tampered.srm_flag and tampered.srm_p < 0.001
    assert "sample ratio mismatch" in tampered.verdict()
    honest = sum(
        lift.report(world_rows(world, 2000, seed, 0.2), 0.2).srm_flag for seed in range(100)
    )
    assert honest <= 2  # at p < 0.001, about 0.1 false flags in 100


def test_the_report_has_every_segment_and_says_how_many_carts_are_missing() -> None:
    rep = lift.report(world_rows(World(uplift=0.02), 400, 3, 0.2), 0.2)
    out = rep.as_dict()
    assert {s["segment"] for s in out["segments"]} == set(lift.SEGMENTS)
    assert set(out["groups"]) == {"treatment", "holdout"}
    assert {"carts", "orders", "conversion"} <= set(out["groups"]["holdout"])
    if rep.overall.spans_zero:
        assert rep.more_carts_needed > 0
        assert f"about {rep.more_carts_needed} more carts" in rep.verdict()


def test_segment_names_of_the_rules_map_to_the_report_segments() -> None:
    assert lift.segment_of("new_customer") == "new"
    assert lift.segment_of("mid_churn+loyal") == "mid_churn"
    assert lift.segment_of("high_churn") == "high_churn"


def test_groups_are_stable_keyed_and_near_the_share() -> None:
    exp = Experiment(0.1, b"a-salt-of-ours")
    users = [f"u{i:06d}" for i in range(20_000)]
    groups = [exp.group_of(u) for u in users]
    assert groups == [exp.group_of(u) for u in users]  # a customer stays in one group
    share = groups.count("holdout") / len(users)
    assert abs(share - 0.1) < 4 * math.sqrt(0.1 * 0.9 / len(users))
    other = Experiment(0.1, b"another-salt")
    assert sum(a != b for a, b in zip(groups, map(other.group_of, users), strict=True)) > 1000
    assert other.id != exp.id and "salt" not in exp.id
    assert NO_EXPERIMENT.group_of("u1") == "treatment" and not NO_EXPERIMENT.active
