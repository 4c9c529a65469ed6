"""Offline logger files (docs/PROTOCOL.md, device files), pure parsing: a file's text in, readings
out.

Imported readings then go through the same :class:`~coldchain.pipeline.Pipeline`
as MQTT readings: :func:`to_line_messages` makes one native-JSON message per
reading, with the file and line its rejects are dead-lettered under
(:func:`to_messages` packs them instead, as a logger's buffered upload would).
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Iterator
from dataclasses import dataclass

import orjson

from coldchain.decoding import parse_ts_ms
from coldchain.errors import DecodeError, ImportFileError
from coldchain.models import iso
from coldchain.topics import DEFAULT_PREFIX, telemetry_topic

PACK_SIZE = 500
"""Readings per message when an import is replayed through the pipeline."""


@dataclass(frozen=True, slots=True)
class FileReading:
    ts_ms: int
    temp_c: float
    line: int


def parse_csv(text: str, *, source: str) -> list[FileReading]:
    """``ts,temp_c`` with a header line; ``ts`` RFC 3339 with a zone, or epoch seconds.

    The whole file is refused at the first bad line, naming the line and the
    reason, so that a half-imported shipment never exists.
    """
    rows = csv.reader(io.StringIO(text))
    try:
        header = next(rows, None)
    except csv.Error as exc:
        raise ImportFileError(f"not a CSV header: {exc}", file=source, line=1) from None
    if header is None:
        raise ImportFileError("the file is empty; expected a header 'ts,temp_c'", file=source)
    names = [h.strip().lower() for h in header]
    if "ts" not in names or "temp_c" not in names:
        raise ImportFileError(
            f"header {header!r} lacks 'ts' and 'temp_c' columns", file=source, line=1
        )
    its, itemp = names.index("ts"), names.index("temp_c")
    out: list[FileReading] = []
    line = 1
    try:
        for line, row in enumerate(rows, start=2):
            reading = _row(row, names, its, itemp, source=source, line=line)
            if reading is not None:
                out.append(reading)
    except csv.Error as exc:  # e.g. a field over the csv module's size limit
        raise ImportFileError(f"not a CSV row: {exc}", file=source, line=line + 1) from None
    if not out:
        raise ImportFileError("the file has a header but no readings", file=source)
    return out


def _row(
    row: list[str], names: list[str], its: int, itemp: int, *, source: str, line: int
) -> FileReading | None:
    """One data row; None for a blank one."""
    if not row or all(not cell.strip() for cell in row):
        return None
    if len(row) <= max(its, itemp):
        raise ImportFileError(
            f"expected {len(names)} columns, found {len(row)}", file=source, line=line
        )
    raw_ts, raw_temp = row[its].strip(), row[itemp].strip()
    try:
        ts: str | float = float(raw_ts) if _is_number(raw_ts) else raw_ts
        ts_ms = parse_ts_ms(ts)
        iso(ts_ms)  # representable as RFC 3339 (years 1-9999), as the store and dossier need
    except DecodeError as exc:
        raise ImportFileError(exc.reason, file=source, line=line) from None
    except (OverflowError, ValueError, OSError):
        raise ImportFileError(
            f"ts: {raw_ts[:40]!r} is outside the years 1 to 9999", file=source, line=line
        ) from None
    try:
        temp = float(raw_temp)
    except ValueError:
        raise ImportFileError(
            f"temp_c: {raw_temp[:40]!r} is not a number", file=source, line=line
        ) from None
    return FileReading(ts_ms, temp, line)


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def to_messages(
    readings: list[FileReading], *, logger_id: str, received_ms: int, prefix: str = DEFAULT_PREFIX
) -> Iterator[tuple[str, bytes, int]]:
    """Native-JSON telemetry packs for the pipeline (no ``seq``: identity is device time)."""
    topic = telemetry_topic(logger_id, prefix=prefix)
    for i in range(0, len(readings), PACK_SIZE):
        pack = [{"ts": iso(r.ts_ms), "temp_c": r.temp_c} for r in readings[i : i + PACK_SIZE]]
        yield topic, orjson.dumps({"logger_id": logger_id, "readings": pack}), received_ms


def to_line_messages(
    readings: list[FileReading],
    *,
    logger_id: str,
    received_ms: int,
    source: str,
    prefix: str = DEFAULT_PREFIX,
) -> Iterator[tuple[tuple[str, bytes, int], tuple[str, str]]]:
    """One native-JSON message per reading, each with where it came from.

    The origin ``("import:<file name>", "line <n>")`` goes with the message to
    :meth:`coldchain.pipeline.Pipeline.handle`, so a row the pipeline refuses is
    dead-lettered naming the file and line to fix, not a telemetry topic.
    """
    topic = telemetry_topic(logger_id, prefix=prefix)
    where = f"import:{source}"
    for r in readings:
        # JSON has no NaN or infinity: such a value travels as its text, so the
        # dead letter says "got 'nan'" rather than "got None"
        temp: float | str = r.temp_c if math.isfinite(r.temp_c) else str(r.temp_c)
        body = orjson.dumps({"logger_id": logger_id, "ts": iso(r.ts_ms), "temp_c": temp})
        yield (topic, body, received_ms), (where, f"line {r.line}")
