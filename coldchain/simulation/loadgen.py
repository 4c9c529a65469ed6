"""Synthetic telemetry for benchmarks: pure, deterministic, no I/O.

:func:`make_load` gives ``(topic, payload)`` pairs of native JSON telemetry
(docs/PROTOCOL.md, native JSON) from many loggers, interleaved the way a busy fleet publishes.
"""

from __future__ import annotations

import random
from typing import Any

import orjson

from coldchain.models import iso

DEFAULT_PREFIX = "coldchain/v1"
READING_INTERVAL_MS = 60_000


def make_load(
    *,
    loggers: int,
    messages: int,
    pack_size: int,
    start_ms: int,
    seed: int = 1,
    prefix: str = DEFAULT_PREFIX,
) -> list[tuple[str, bytes]]:
    """``messages`` telemetry messages from ``loggers`` loggers, round-robin.

    Each message is a single reading object when ``pack_size`` is 1, else a
    ``readings`` pack of ``pack_size`` readings. A logger's readings are one
    minute apart from ``start_ms`` (epoch ms UTC) with ``seq`` counting up
    from 0, and stay between +3 and +7 °C (in range for a +2...+8 °C
    profile). The same arguments always give the same bytes.
    """
    if loggers < 1 or messages < 0 or pack_size < 1:
        msg = (
            f"need loggers >= 1, messages >= 0 and pack_size >= 1; "
            f"got {loggers}, {messages}, {pack_size}"
        )
        raise ValueError(msg)
    rng = random.Random(seed)
    width = max(5, len(str(loggers - 1)))
    ids = [f"LOAD-{n:0{width}d}" for n in range(loggers)]
    topics = [f"{prefix}/loggers/{logger_id}/telemetry" for logger_id in ids]
    next_seq = [0] * loggers
    stamps: list[str] = []  # every logger reads at the same instants: format each once
    out: list[tuple[str, bytes]] = []
    for n in range(messages):
        k = n % loggers
        readings: list[dict[str, Any]] = []
        for _ in range(pack_size):
            seq = next_seq[k]
            next_seq[k] = seq + 1
            if seq == len(stamps):
                stamps.append(iso(start_ms + seq * READING_INTERVAL_MS))
            readings.append(
                {
                    "seq": seq,
                    "ts": stamps[seq],
                    "temp_c": round(rng.uniform(3.0, 7.0), 1),
                }
            )
        if pack_size == 1:
            payload = orjson.dumps(readings[0])
        else:
            payload = orjson.dumps({"logger_id": ids[k], "readings": readings})
        out.append((topics[k], payload))
    return out
