"""Mean kinetic temperature, time-weighted, in log-sum-exp form (docs/EVALUATION.md).

``MKT = (ΔH/R) / −ln( Σ wᵢ·exp(−ΔH/(R·Tᵢ)) / Σ wᵢ )`` with Tᵢ in kelvin and
wᵢ the time reading *i* stands for. exp(−ΔH/(R·T)) underflows double
precision below about −150 °C, so the sum is taken as
``max(a) + ln Σ wᵢ·exp(aᵢ − max(a))`` with ``aᵢ = −ΔH/(R·Tᵢ)``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

GAS_CONSTANT_J_MOL_K = 8.3144
"""R as docs/EVALUATION.md writes it (J/(mol·K))."""

KELVIN = 273.15


def arrhenius_exponent(temp_c: float, activation_energy_kj_mol: float) -> float:
    """aᵢ = −ΔH/(R·Tᵢ), dimensionless; ``temp_c`` in °C, ΔH in kJ/mol."""
    return -(activation_energy_kj_mol * 1000.0) / (GAS_CONSTANT_J_MOL_K * (temp_c + KELVIN))


def mkt_from_lse(
    max_exponent: float, scaled_sum: float, weight_sum: float, activation_energy_kj_mol: float
) -> float:
    """MKT in °C from the log-sum-exp pieces.

    ``max_exponent`` = max(aᵢ), ``scaled_sum`` = Σ wᵢ·exp(aᵢ − max(aᵢ)),
    ``weight_sum`` = Σ wᵢ. The polars evaluation computes the same three
    aggregates per shipment and finishes here, so both paths share one formula.
    """
    log_mean = max_exponent + math.log(scaled_sum) - math.log(weight_sum)
    return (activation_energy_kj_mol * 1000.0 / GAS_CONSTANT_J_MOL_K) / -log_mean - KELVIN


def mkt_c(
    temps_c: Sequence[float],
    weights: Sequence[float] | None = None,
    *,
    activation_energy_kj_mol: float = 83.144,
) -> float:
    """Time-weighted MKT in °C. Equal weights when ``weights`` is None or sums to zero."""
    if not temps_c:
        msg = "MKT of no readings"
        raise ValueError(msg)
    if weights is None or not math.fsum(weights) > 0:
        weights = [1.0] * len(temps_c)
    if len(weights) != len(temps_c):
        msg = "temps_c and weights differ in length"
        raise ValueError(msg)
    exponents = [arrhenius_exponent(t, activation_energy_kj_mol) for t in temps_c]
    top = max(exponents)
    scaled = math.fsum(w * math.exp(a - top) for a, w in zip(exponents, weights, strict=True))
    return mkt_from_lse(top, scaled, math.fsum(weights), activation_energy_kj_mol)
