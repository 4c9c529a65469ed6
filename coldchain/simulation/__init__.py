"""Simulated cold-chain loggers: what ``coldchain demo`` replays and the benchmarks load.

- :mod:`coldchain.simulation.fleet`: a fleet of APAC shipments with every scenario
  the pipeline must handle, as plans and MQTT messages (pure, no I/O);
- :mod:`coldchain.simulation.loadgen`: bulk native-JSON telemetry for benchmarks (pure);
- :mod:`coldchain.simulation.publish`: sends messages through paho with a bounded
  window of unacknowledged messages, paced by device time.

The command line over them is ``python -m simulators`` in a clone of the repository.
Importing this package never loads paho.
"""
