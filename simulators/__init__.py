"""Simulated cold-chain loggers for coldchain (``python -m simulators --help``).

- :mod:`simulators.fleet`: a fleet of APAC shipments with every scenario the
  pipeline must handle, as plans and MQTT messages (pure, no I/O);
- :mod:`simulators.loadgen`: bulk native-JSON telemetry for benchmarks (pure);
- :mod:`simulators.publish`: sends messages through paho with a bounded
  window of unacknowledged messages, paced by device time.

Only the pure generators are re-exported here, so importing them never loads
paho.
"""

from simulators.fleet import (
    DEFAULT_PREFIX,
    LANES,
    PRODUCTS,
    Fleet,
    Message,
    PayloadFormat,
    Scenario,
    ShipmentPlan,
    build_fleet,
    fleet_start,
)
from simulators.loadgen import make_load

__all__ = [
    "DEFAULT_PREFIX",
    "LANES",
    "PRODUCTS",
    "Fleet",
    "Message",
    "PayloadFormat",
    "Scenario",
    "ShipmentPlan",
    "build_fleet",
    "fleet_start",
    "make_load",
]
