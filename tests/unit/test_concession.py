"""Negotiation concedes in steps the rules set (``rules.counter_offer``): the first counter-offer
at most ``SGR_NEGOTIATION_FIRST_SHARE`` of the cap, each later one at most a step above the offer
on the table, the cap only from the ``SGR_NEGOTIATION_TURNS_TO_CAP``-th price turn on; never above
the cap, never down. Property tests over the settings' ranges."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from worker.domain import rules
from worker.engines.negotiation_schemas import pricing_schema
from worker.settings import Settings


def ladder(cap: float, cfg: rules.RuleConfig, turns: int, start: float | None) -> list[float]:
    """The offers on the table after each price turn when the customer pushes every time and the
    engine takes the most the rules allow."""
    floor, seen = start, []
    for k in range(turns):
        nxt = rules.counter_offer(cap, floor, cfg, prior_price_turns=k)
        if nxt is not None:
            floor = nxt
        seen.append(floor if floor is not None else 0.0)
    return seen


@given(
    cap=st.floats(1.0, 30.0),
    first=st.floats(0.05, 1.0),
    step=st.floats(0.05, 1.0),
    to_cap=st.integers(1, 6),
    turns=st.integers(1, 12),
)
def test_never_above_the_cap_monotone_bounded_steps(
    cap: float, first: float, step: float, to_cap: int, turns: int
) -> None:
    cfg = Settings(
        negotiation_first_share=first, negotiation_step_share=step, negotiation_turns_to_cap=to_cap
    ).rule_config()
    cap = rules.floor_to(cap)
    offers = ladder(cap, cfg, turns, None)
    opening = rules.share_of_cap(cap, cfg, first)
    assert offers[0] == opening <= cap  # the first counter-offer: at most the share of the cap
    limit = rules.concession_step(cap, cfg)
    for before, after in zip(offers, offers[1:], strict=False):
        assert before <= after <= cap + 1e-9  # never down, never above the cap
        assert after - before <= limit + 1e-9  # a bounded step
    for k, offer in enumerate(offers, start=1):
        if k < to_cap and opening < cap:
            assert offer < cap  # the cap only after several turns


def test_the_defaults_open_at_half_and_reach_the_cap_on_the_third_push() -> None:
    cfg = Settings().rule_config()
    assert ladder(20.0, cfg, 5, None) == [10.0, 15.0, 20.0, 20.0, 20.0]
    assert rules.counter_offer(20.0, 20.0, cfg, 3) is None  # at the cap: the offer stands


@given(cap=st.floats(1.0, 30.0), k=st.integers(0, 8), floor=st.none() | st.floats(0.5, 30.0))
def test_the_pricing_schema_carries_the_turns_ceiling(
    cap: float, k: int, floor: float | None
) -> None:
    cfg = Settings().rule_config()
    cap = rules.floor_to(cap)
    ceiling = rules.counter_offer(cap, floor, cfg, k)
    if ceiling is None:
        return
    schema = pricing_schema(cap, floor, cfg.min_discount_pct, ceiling)
    bound = schema["properties"]["discount_percent"]
    assert bound["maximum"] == ceiling <= cap
    assert rules.counter_offer_problems(ceiling + 0.5, cap, cap, floor, cfg, ceiling) != [] or (
        ceiling + 0.5 > cap
    )
