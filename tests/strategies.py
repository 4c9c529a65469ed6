"""Hypothesis strategies shared by the evaluation property tests."""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st

from coldchain.profiles import Profile

LIMITS = (-1.0, 0.0, 2.0, 2.5, 8.0)


@st.composite
def limited(draw: st.DrawFn) -> dict[str, float]:
    side = draw(st.sampled_from(["above_c", "below_c"]))
    return {side: draw(st.sampled_from(LIMITS))}


@st.composite
def profiles(draw: st.DrawFn, name: str = "p") -> Profile:
    alarms: list[dict[str, Any]] = []
    for i in range(draw(st.integers(0, 4))):
        delay = draw(st.sampled_from([None, 0.0, 1.0, 2.5, 5.0]))
        cumulative = draw(st.sampled_from([None, 0.0, 3.0, 10.0]))
        if delay is None and cumulative is None:
            delay = 0.0
        alarm: dict[str, Any] = {"id": f"a{i}", **draw(limited())}
        alarm["severity"] = draw(st.sampled_from(["info", "warning", "critical"]))
        if delay is not None:
            alarm["delay_min"] = delay
        if cumulative is not None:
            alarm["cumulative_min"] = cumulative
        alarms.append(alarm)
    budgets = [
        {"id": f"b{i}", "allowance_min": draw(st.sampled_from([1.0, 5.0, 30.0])), **draw(limited())}
        for i in range(draw(st.integers(0 if alarms else 1, 2)))
    ]
    return Profile.model_validate(
        {
            "id": name,
            "name": name,
            "max_gap_min": draw(st.sampled_from([0.5, 1.0, 2.0, 3.0, 5.0])),
            "mkt": draw(st.booleans()),
            "activation_energy_kj_mol": draw(st.sampled_from([83.144, 60.0])),
            "alarms": alarms,
            "budget": budgets,
            "sha256": name * 4,
        }
    )
