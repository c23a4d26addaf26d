"""The statistics budget (stream/budget.py) on a fake clock: everything is measured while the
receiver keeps up (it waits longer for each message than a measurement costs); while it is behind,
a burst, then `share` of the time that passes."""

from __future__ import annotations

import math

import pytest

from stream.budget import COST_WEIGHT, SLACK_WEIGHT, StatisticsBudget


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def run(budget: StatisticsBudget, clock: Clock, messages: int, interval_s: float, cost_s: float,
        behind: bool) -> int:
    """Messages every `interval_s` after the previous one was handled (the receiver waited that long,
    or 0 if `behind`: they were queued), each measured one costing `cost_s`; how many were measured."""
    measured = 0
    for _ in range(messages):
        if budget.allows(0.0 if behind else interval_s):
            measured += 1
            clock.now += cost_s
            budget.spend(cost_s)
        clock.now += interval_s
    return measured


def in_one_burst(burst_s: float, cost_s: float, share: float) -> int:
    """Back-to-back measurements a full bucket pays for: each costs cost_s and refills share of it."""
    return math.ceil(burst_s / (cost_s * (1.0 - share)))


def test_every_pulse_is_measured_while_the_receiver_keeps_up() -> None:
    clock = Clock()
    budget = StatisticsBudget(share=0.03, burst_s=0.05, clock=clock)
    # 100 Hz with a statistics cost of 2.7 ms (2048² bitshuffle_lz4 without profiles): all of them
    assert run(budget, clock, 10_000, 0.0073, 0.0027, behind=False) == 10_000


def fallen_behind(budget: StatisticsBudget, cost_s: float) -> None:
    """A budget that knows what a measurement costs and that the receiver has no slack."""
    assert budget.allows(1e-9)  # a message barely waited for: the slack estimate starts near 0
    budget.spend(cost_s)  # not behind yet (the cost was not known): free


def test_while_behind_a_burst_then_the_share() -> None:
    clock = Clock()
    budget = StatisticsBudget(share=0.03, burst_s=0.05, clock=clock)
    cost = 0.00075
    fallen_behind(budget, cost)
    burst = run(budget, clock, 200, 0.0, cost, behind=True)  # back to back: the bucket pays
    assert burst == in_one_burst(0.05, cost, 0.03) == 69
    assert not budget.allows(0.0)
    # then 10 s of messages every 0.6 ms: the statistics take 3 % of the time
    start = clock.now
    measured = run(budget, clock, 16_000, 0.0006, cost, behind=True)
    spent = measured * cost
    assert spent / (clock.now - start) == pytest.approx(0.03 / 1.03, rel=0.05)
    assert 300 < measured < 16_000 // 10


def test_behind_is_less_slack_per_message_than_a_measurement_costs() -> None:
    clock = Clock()
    budget = StatisticsBudget(share=0.03, burst_s=0.0, clock=clock)  # an empty bucket: behind is refused
    assert budget.allows(math.inf)  # the first message: nothing known yet
    budget.spend(0.002)
    assert budget.cost_s == 0.002
    assert budget.allows(0.008) and budget.slack_s == pytest.approx(0.010)  # waited 8 ms + 2 ms measuring
    budget.spend(0.003)
    assert budget.cost_s == pytest.approx(0.002 + COST_WEIGHT * 0.001)  # the estimate follows gradually
    # a few messages queued behind a slow moment (no slack at all) are not being behind
    assert all(budget.allows(0.0) for _ in range(5)) and budget.slack_s == pytest.approx(0.010 * (1 - SLACK_WEIGHT) ** 5)
    # queued message after queued message: a sender that keeps the receiver busy
    measured = 5
    while budget.allows(0.0):
        budget.spend(0.002)
        measured += 1
    expected = math.log(budget.cost_s / 0.010) / math.log(1 - SLACK_WEIGHT)  # slack decays below the cost
    assert abs(measured - expected) <= 2 and budget.slack_s < budget.cost_s
    # messages that come with little slack (0.5 ms waited, measuring would take 2 ms) are not
    # measured either, and their slack keeps the receiver behind
    assert not any(budget.allows(0.0005) for _ in range(400)) and budget.slack_s == pytest.approx(0.0005, rel=0.05)
    # the sender slows down: 20 ms of slack, measured again once the estimate is above the cost
    allowed = [budget.allows(0.02) for _ in range(40)]
    expected = math.log((0.02 - budget.cost_s) / (0.02 - 0.0005)) / math.log(1 - SLACK_WEIGHT)
    assert abs(allowed.index(True) - expected) <= 2 and all(allowed[allowed.index(True):])


def test_a_backlog_met_on_connecting_is_not_being_behind() -> None:
    """The first messages after connecting were queued (no slack): measured all the same (the
    estimate starts at the first message waited for); then a 100 Hz camera, 4 ms to measure each."""
    clock = Clock()
    budget = StatisticsBudget(share=0.03, burst_s=0.0, clock=clock)  # an empty bucket: behind is refused
    assert budget.allows(math.inf)
    budget.spend(0.004)
    for _ in range(100):
        assert budget.allows(0.0)
        budget.spend(0.004)
    assert budget.slack_s == math.inf
    for _ in range(100):
        assert budget.allows(0.006)  # 6 ms waited + 4 ms measuring the previous one
        budget.spend(0.004)
    assert budget.slack_s == pytest.approx(0.010)


def test_the_bucket_refills_while_the_receiver_keeps_up() -> None:
    clock = Clock()
    budget = StatisticsBudget(share=0.03, burst_s=0.05, clock=clock)
    fallen_behind(budget, 0.001)
    run(budget, clock, 200, 0.0, 0.001, behind=True)
    assert not budget.allows(0.0)
    clock.now += 1000.0  # far longer than a refill takes: the bucket holds no more than burst_s
    assert run(budget, clock, 100, 0.0, 0.001, behind=True) == in_one_burst(0.05, 0.001, 0.03) == 52


def test_time_spent_while_keeping_up_costs_nothing() -> None:
    clock = Clock()
    budget = StatisticsBudget(share=0.03, burst_s=0.01, clock=clock)
    run(budget, clock, 1000, 0.02, 0.01, behind=False)  # 10 s of statistics, all while keeping up
    assert budget.allows(0.0) and budget.cost_s == pytest.approx(0.01)  # the bucket is still full


@pytest.mark.parametrize("share, burst", [(0.0, 0.05), (1.5, 0.05), (0.03, -1.0)])
def test_nonsense_budgets_are_refused(share: float, burst: float) -> None:
    with pytest.raises(ValueError):
        StatisticsBudget(share=share, burst_s=burst)
