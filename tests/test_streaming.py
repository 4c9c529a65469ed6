"""Streaming equals batch (docs/EVALUATION.md, streaming equals batch) over random profiles,
arrival orders and late bursts."""

from __future__ import annotations

import os
import random

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st
from strategies import profiles as random_profiles

from coldchain.evaluation import evaluate
from coldchain.models import MS_PER_MIN
from coldchain.streaming import ShipmentMonitor

EXAMPLES = int(os.environ.get("COLDCHAIN_HYPOTHESIS_EXAMPLES", "300"))
T0 = 1_764_126_000_000
TEMPS = st.sampled_from([-30.0, -5.0, -2.0, 0.0, 1.5, 2.0, 5.0, 8.0, 8.5, 20.0])


@st.composite
def cases(draw: st.DrawFn):
    profile = draw(random_profiles(name="p"))
    step = draw(st.sampled_from([MS_PER_MIN // 2, MS_PER_MIN]))
    offsets = sorted(set(draw(st.lists(st.integers(0, 60), max_size=40))))
    points = [(T0 + o * step, draw(TEMPS)) for o in offsets]
    end = (points[-1][0] if points else T0) + draw(st.sampled_from([0, 1, 3, 10])) * step
    prior = {b.id: draw(st.sampled_from([0.0, 0.5, 4.0])) for b in profile.budget}
    # arrival: in order, shuffled, or a late burst (a held-back stretch sent at the end)
    order = draw(st.sampled_from(["in-order", "shuffled", "late-burst"]))
    arrival = points[:]
    rng = random.Random(draw(st.integers(0, 2**32)))
    if order == "shuffled":
        rng.shuffle(arrival)
    elif order == "late-burst" and len(arrival) > 2:
        a = rng.randrange(len(arrival) - 1)
        b = rng.randrange(a + 1, len(arrival))
        held = arrival[a:b]
        rng.shuffle(held)
        arrival = arrival[:a] + arrival[b:] + held
    dups = draw(st.lists(st.integers(0, max(len(points) - 1, 0)), max_size=5)) if points else []
    arrival += [points[i] for i in dups]
    chunk = draw(st.integers(1, 8))
    return profile, points, arrival, end, prior, chunk


@settings(max_examples=EXAMPLES, deadline=None)
@given(case=cases())
def test_streaming_equals_batch_for_random_profiles_and_arrivals(case):
    profile, points, arrival, end, prior, chunk = case
    monitor = ShipmentMonitor("S", profile, end_ms=end, prior_budget_min=prior)
    live: set[tuple[str, int, int]] = set()

    def apply(new):
        live.update((f.alarm_id, f.episode_start_ms, f.triggered_ms) for f in new)
        for rev in monitor.take_changes().revisions:
            live.discard((rev.old.alarm_id, rev.old.episode_start_ms, rev.old.triggered_ms))
            if rev.new is not None:
                live.add((rev.new.alarm_id, rev.new.episode_start_ms, rev.new.triggered_ms))

    for i in range(0, len(arrival), chunk):
        apply(monitor.add(arrival[i : i + chunk]))
    apply(monitor.tick(end + 60 * MS_PER_MIN))

    batch = evaluate("S", profile, points, now_ms=end, end_ms=end, prior_budget_min=prior)
    expected = {(f.alarm_id, f.episode_start_ms, f.triggered_ms) for f in batch.firings}
    assert {x for x in live if not x[0].startswith("budget:")} == expected
    budget_live = {x[0]: x[2] for x in live if x[0].startswith("budget:")}
    for figure in batch.budgets:
        assert budget_live.get(f"budget:{figure.id}:low") == figure.low_ms
        assert budget_live.get(f"budget:{figure.id}:exhausted") == figure.exhausted_ms
    streamed = monitor.evaluate(now_ms=end)
    assert orjson.dumps(
        evaluate("S", profile, monitor.points(), now_ms=end, end_ms=end).to_json()
    ) == orjson.dumps(evaluate("S", profile, points, now_ms=end, end_ms=end).to_json())
    assert streamed.verdict == evaluate("S", profile, points, now_ms=end, end_ms=end).verdict
