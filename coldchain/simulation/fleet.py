"""A simulated fleet of APAC cold-chain shipments: pure generation, no I/O.

:func:`build_fleet` turns a start time and a seed into shipment plans and the
MQTT messages their loggers would publish (docs/PROTOCOL.md), in publish
order. There is no clock and no network here: the caller passes ``start`` (the
device time of the earliest reading) and hands the messages to
:mod:`coldchain.simulation.publish`.

Each shipment plays one scenario, and its plan says what the pipeline should
find (``expected``, ``verdict``), so a demo or an end-to-end test can compare:

=====================  =========================================================
scenario               what the loggers do
=====================  =========================================================
ln2-warming-failure    LN2 dry shipper warms from about -190 °C past -160 and
                       -150 °C to about -100 °C on day 2: FAIL
vaccine-door-spikes    +2...+8 °C product at 4-6 °C with door-opening spikes to
                       9-12 °C of 10-20 min each; no single-event alarm, but
                       over 60 min above +8 °C in total: FAIL (cumulative)
offline-bulk-upload    logger silent for one hour, then uploads that hour's
                       buffer, shuffled, in several packs, after the live
                       readings that follow: PASS once the buffer is in
qos1-duplicates        some messages published twice, byte for byte: PASS
malformed              one extra message with a timestamp without a zone,
                       the only malformed message of the fleet: PASS
nominal                in range with noise: PASS
=====================  =========================================================
"""

from __future__ import annotations

import dataclasses
import itertools
import math
import random
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any

import orjson

from coldchain.models import dt_to_ms, iso, ms_to_dt

DEFAULT_PREFIX = "coldchain/v1"
FLEET_SPAN_MS = 4 * 24 * 3_600_000
"""Every device time lies in [start, start + 4 days]."""

MIN_INTERVAL_S = 30
MAX_INTERVAL_S = 15 * 60
"""The tightest product profile (cart-ln2) lets a reading stand for 15 min."""

MAX_SHIPMENTS = 1000
PACK_READINGS = 3
STATUS_EVERY_MS = 6 * 3_600_000
OFFLINE_MS = 3_600_000
BURST_AFTER_LIVE_MESSAGES = 2
DAY_MS = 24 * 3_600_000
MIN_MS = 60_000

PRODUCTS = ("cart-ln2", "dry-ice", "frozen", "vaccine-2-8", "crt-15-25")

LANES: tuple[tuple[str, str], ...] = (
    ("SG", "ID"),
    ("SG", "VN"),
    ("SG", "PH"),
    ("JP", "KR"),
    ("AU", "SG"),
    ("SG", "IN"),
    ("KR", "CN"),
    ("SG", "MY"),
    ("TH", "SG"),
    ("HK", "TW"),
)

# Hub cities (lat, lon) for the GPS track of loggers that report position.
_HUBS: dict[str, tuple[float, float]] = {
    "SG": (1.3521, 103.8198),
    "ID": (-6.2088, 106.8456),
    "VN": (10.8231, 106.6297),
    "PH": (14.5995, 120.9842),
    "JP": (35.6762, 139.6503),
    "KR": (37.5665, 126.9780),
    "AU": (-33.8688, 151.2093),
    "IN": (19.0760, 72.8777),
    "CN": (31.2304, 121.4737),
    "MY": (3.1390, 101.6869),
    "TH": (13.7563, 100.5018),
    "HK": (22.3193, 114.1694),
    "TW": (25.0330, 121.5654),
}

_LOT_PREFIX = {
    "cart-ln2": "CART",
    "dry-ice": "DI",
    "frozen": "FZ",
    "vaccine-2-8": "VAX",
    "crt-15-25": "CRT",
}


class Scenario(StrEnum):
    LN2_WARMING_FAILURE = "ln2-warming-failure"
    VACCINE_DOOR_SPIKES = "vaccine-door-spikes"
    OFFLINE_BULK_UPLOAD = "offline-bulk-upload"
    QOS1_DUPLICATES = "qos1-duplicates"
    MALFORMED = "malformed"
    NOMINAL = "nominal"


class PayloadFormat(StrEnum):
    NATIVE_SINGLE = "native-single"
    """docs/PROTOCOL.md, native JSON, one reading object per message."""
    NATIVE_PACK = "native-pack"
    """docs/PROTOCOL.md, native JSON, ``{"logger_id", "readings", "battery_pct"}``."""
    SENML = "senml"
    """docs/PROTOCOL.md, SenML, a SenML JSON pack."""


@dataclass(frozen=True, slots=True)
class ShipmentPlan:
    """What one simulated shipment is and what the pipeline should find.

    ``start``/``end`` are aware UTC datetimes on device time: the first
    reading and the end of the last reading's interval (delivery).
    ``verdict`` is the docs/EVALUATION.md, verdict verdict the scenario should produce.
    """

    shipment_id: str
    product: str
    logger_id: str
    lot: str
    origin: str
    destination: str
    start: datetime
    end: datetime
    scenario: str
    expected: str
    verdict: str
    payload_format: str

    def as_dict(self) -> dict[str, str]:
        """JSON-ready form, times RFC 3339 UTC."""
        return {
            "shipment_id": self.shipment_id,
            "product": self.product,
            "logger_id": self.logger_id,
            "lot": self.lot,
            "origin": self.origin,
            "destination": self.destination,
            "start": iso(dt_to_ms(self.start)),
            "end": iso(dt_to_ms(self.end)),
            "scenario": self.scenario,
            "expected": self.expected,
            "verdict": self.verdict,
            "payload_format": self.payload_format,
        }


@dataclass(frozen=True, slots=True)
class Message:
    """One MQTT publish. ``device_time_ms`` is the latest reading time in it
    (epoch ms UTC), the clock that publishing is paced by; ``note`` is "",
    "duplicate", "malformed" or "late-burst"."""

    topic: str
    payload: bytes
    qos: int
    shipment_id: str
    device_time_ms: int
    note: str = ""
    retain: bool = False


@dataclass(frozen=True, slots=True)
class Fleet:
    plans: list[ShipmentPlan]
    messages: list[Message]

    def plans_json(self) -> bytes:
        """The plans as an indented JSON array (for ``--plan-json``)."""
        return orjson.dumps([p.as_dict() for p in self.plans], option=orjson.OPT_INDENT_2)


@dataclass(frozen=True, slots=True)
class _Slot:
    scenario: Scenario
    product: str
    fmt: PayloadFormat
    min_h: int
    max_h: int
    epoch_ts: bool = False
    humidity: bool = False
    gps: bool = False


# Ten slots cover every scenario; shipments cycle over them. Durations are
# chosen so each scenario's story fits (the LN2 failure needs day 2).
_SLOTS: tuple[_Slot, ...] = (
    _Slot(Scenario.LN2_WARMING_FAILURE, "cart-ln2", PayloadFormat.SENML, 60, 84),
    _Slot(Scenario.VACCINE_DOOR_SPIKES, "vaccine-2-8", PayloadFormat.NATIVE_SINGLE, 36, 72),
    _Slot(Scenario.NOMINAL, "crt-15-25", PayloadFormat.SENML, 24, 96, humidity=True),
    _Slot(Scenario.OFFLINE_BULK_UPLOAD, "frozen", PayloadFormat.NATIVE_PACK, 24, 72, gps=True),
    _Slot(Scenario.NOMINAL, "dry-ice", PayloadFormat.NATIVE_SINGLE, 24, 96, epoch_ts=True),
    _Slot(Scenario.QOS1_DUPLICATES, "vaccine-2-8", PayloadFormat.SENML, 24, 72, humidity=True),
    _Slot(Scenario.NOMINAL, "frozen", PayloadFormat.NATIVE_PACK, 24, 96, gps=True),
    _Slot(Scenario.MALFORMED, "crt-15-25", PayloadFormat.NATIVE_SINGLE, 24, 72),
    _Slot(Scenario.NOMINAL, "cart-ln2", PayloadFormat.NATIVE_PACK, 24, 96, gps=True),
    _Slot(Scenario.NOMINAL, "vaccine-2-8", PayloadFormat.NATIVE_PACK, 24, 96, humidity=True),
)

# product -> (baseline °C, drift over the trip °C, lowest, highest): nominal
# values stay well inside every alarm limit of configs/products/*.toml.
_NOMINAL: dict[str, tuple[float, float, float, float]] = {
    "cart-ln2": (-189.0, 4.0, -194.0, -180.0),
    "dry-ice": (-77.0, 3.0, -79.5, -72.0),
    "frozen": (-20.0, 0.0, -22.5, -17.5),
    "vaccine-2-8": (5.0, 0.0, 4.0, 6.0),
    "crt-15-25": (20.0, 0.0, 17.0, 23.0),
}


@dataclass(frozen=True, slots=True)
class _Reading:
    seq: int
    t_ms: int
    temp_c: float
    rh_pct: float | None
    lat: float | None
    lon: float | None


def build_fleet(
    *,
    shipments: int = 10,
    start: datetime,
    seed: int = 7,
    interval_min: float = 5.0,
    prefix: str = DEFAULT_PREFIX,
) -> Fleet:
    """Plans and messages of ``shipments`` simulated shipments.

    ``start`` (aware) is the device time of the earliest reading, rounded up
    to the whole second; every device time lies in [start, start + 4 days].
    Readings are ``interval_min`` apart (30 s … 15 min). The same arguments
    always give the same bytes. Messages are interleaved across loggers by
    the device time at which a real logger would publish them.
    """
    if not 1 <= shipments <= MAX_SHIPMENTS:
        msg = f"shipments must be between 1 and {MAX_SHIPMENTS}, got {shipments}"
        raise ValueError(msg)
    interval_s = round(interval_min * 60)
    if not MIN_INTERVAL_S <= interval_s <= MAX_INTERVAL_S:
        msg = f"interval_min must be between 0.5 and 15, got {interval_min}"
        raise ValueError(msg)
    if start.tzinfo is None:
        msg = "start must be timezone-aware"
        raise ValueError(msg)
    start_ms = -(-dt_to_ms(start) // 1000) * 1000
    rng = random.Random(seed)
    logger_numbers = rng.sample(range(10_000, 100_000), shipments)
    day = ms_to_dt(start_ms).strftime("%y%m%d")
    malformed_done = False
    plans: list[ShipmentPlan] = []
    keyed: list[tuple[int, int, int, Message]] = []
    for index in range(shipments):
        slot = _SLOTS[index % len(_SLOTS)]
        scenario = slot.scenario
        if scenario is Scenario.MALFORMED:
            if malformed_done:
                scenario = Scenario.NOMINAL  # the fleet carries exactly one malformed message
            malformed_done = True
        origin, destination = LANES[index % len(LANES)]
        duration_ms = rng.randint(slot.min_h * 60, slot.max_h * 60) * MIN_MS
        duration_ms -= duration_ms % (interval_s * 1000)  # the last reading holds to the end
        # The first shipment starts at `start`; the others anywhere that ends in time.
        offset_ms = rng.randint(0, (FLEET_SPAN_MS - duration_ms) // MIN_MS) * MIN_MS
        if index == 0:
            offset_ms = 0
        shipment = _Shipment(
            rng=random.Random(rng.getrandbits(64)),
            index=index,
            slot=slot,
            scenario=scenario,
            shipment_id=f"SHP-{day}-{index + 1:03d}",
            logger_id=f"LG-{logger_numbers[index]}",
            lot=f"{_LOT_PREFIX[slot.product]}-{day[:2]}-{rng.randint(1000, 9999)}",
            origin=origin,
            destination=destination,
            start_ms=start_ms + offset_ms,
            end_ms=start_ms + offset_ms + duration_ms,
            interval_ms=interval_s * 1000,
            prefix=prefix,
        )
        plan, messages = shipment.build()
        plans.append(plan)
        keyed.extend((key, index, n, m) for n, (key, m) in enumerate(messages))
    keyed.sort(key=lambda item: item[:3])
    return Fleet(plans=plans, messages=[m for *_, m in keyed])


class _Shipment:
    """One shipment's readings and messages; a helper of :func:`build_fleet`."""

    def __init__(
        self,
        *,
        rng: random.Random,
        index: int,
        slot: _Slot,
        scenario: Scenario,
        shipment_id: str,
        logger_id: str,
        lot: str,
        origin: str,
        destination: str,
        start_ms: int,
        end_ms: int,
        interval_ms: int,
        prefix: str,
    ) -> None:
        self.rng = rng
        self.index = index
        self.slot = slot
        self.scenario = scenario
        self.shipment_id = shipment_id
        self.logger_id = logger_id
        self.lot = lot
        self.origin = origin
        self.destination = destination
        self.start_ms = start_ms
        self.end_ms = end_ms
        self.interval_ms = interval_ms
        self.telemetry_topic = f"{prefix}/loggers/{logger_id}/telemetry"
        self.status_topic = f"{prefix}/loggers/{logger_id}/status"
        self.battery0 = rng.uniform(70.0, 99.0)
        self.fw = rng.choice(("2.4.1", "2.5.0", "3.0.2"))
        self.spikes = 0
        self.duplicates = 0

    # -- readings ---------------------------------------------------------

    def _times(self) -> list[int]:
        return list(range(self.start_ms, self.end_ms, self.interval_ms))

    def _nominal(self, times: Sequence[int]) -> list[float]:
        base, drift, low, high = _NOMINAL[self.slot.product]
        span = max(1, self.end_ms - self.start_ms)
        noise, values = 0.0, []
        for t in times:
            noise = 0.85 * noise + self.rng.gauss(0.0, 0.18)
            value = base + drift * (t - self.start_ms) / span + noise
            if self.slot.product == "crt-15-25":  # day/night swing in a warehouse
                value += 1.5 * math.sin(2 * math.pi * (t % DAY_MS) / DAY_MS)
            values.append(min(high, max(low, value)))
        return values

    def _ln2_failure(self, times: Sequence[int]) -> list[float]:
        # LN2 evaporates: a slow rise, then the shipper runs dry within ~12 h
        # and the load settles near -100 °C, well before delivery.
        t1 = self.start_ms + 0.35 * (self.end_ms - self.start_ms)
        t2 = t1 + 12 * 3_600_000
        noise, values = 0.0, []
        for t in times:
            noise = 0.8 * noise + self.rng.gauss(0.0, 0.1)
            if t < t1:
                value = -190.0 + 8.0 * (t - self.start_ms) / (t1 - self.start_ms)
            elif t < t2:
                value = -182.0 + 82.0 * ((t - t1) / (t2 - t1)) ** 2
            else:
                value = -100.0 + 5.0 * (t - t2) / max(1.0, self.end_ms - t2)
            values.append(value + noise)
        return values

    def _door_spikes(self, times: Sequence[int], values: list[float]) -> int:
        """Overwrite readings with door-opening spikes; returns minutes above +8 °C."""
        interval_min = self.interval_ms / MIN_MS
        shortest = max(1, math.ceil(10 / interval_min))
        longest = max(shortest, math.floor(20 / interval_min))
        spacing = math.ceil(90 / interval_min)
        margin = math.ceil(120 / interval_min)
        free = list(range(margin, len(times) - margin - longest - 1))
        total_min, chosen = 0.0, 0
        while total_min < 90 and free:
            first = self.rng.choice(free)
            length = self.rng.randint(shortest, longest)
            for k in range(first, first + length):
                values[k] = self.rng.uniform(9.0, 12.0)
            values[first + length] = self.rng.uniform(6.5, 7.6)  # cooling down again
            total_min += length * interval_min
            chosen += 1
            free = [k for k in free if abs(k - first) > spacing]
        return chosen

    def _readings(self) -> list[_Reading]:
        times = self._times()
        if self.scenario is Scenario.LN2_WARMING_FAILURE:
            temps = self._ln2_failure(times)
        else:
            temps = self._nominal(times)
        if self.scenario is Scenario.VACCINE_DOOR_SPIKES:
            self.spikes = self._door_spikes(times, temps)
        seq0 = self.rng.randint(0, 50_000)
        rh = self.rng.uniform(35.0, 55.0)
        (lat0, lon0), (lat1, lon1) = _HUBS[self.origin], _HUBS[self.destination]
        span = max(1, self.end_ms - self.start_ms)
        readings = []
        for k, (t, temp) in enumerate(zip(times, temps, strict=True)):
            rh = min(90.0, max(10.0, rh + self.rng.gauss(0.0, 0.4)))
            f = (t - self.start_ms) / span
            readings.append(
                _Reading(
                    seq=seq0 + k,
                    t_ms=t,
                    temp_c=round(temp, 1),
                    rh_pct=round(rh, 1) if self.slot.humidity else None,
                    lat=round(lat0 + f * (lat1 - lat0), 4) if self.slot.gps else None,
                    lon=round(lon0 + f * (lon1 - lon0), 4) if self.slot.gps else None,
                )
            )
        return readings

    # -- payloads ---------------------------------------------------------

    def _battery(self, t_ms: int) -> float:
        return round(self.battery0 - 1.5 * (t_ms - self.start_ms) / DAY_MS, 1)

    def _native_reading(self, r: _Reading) -> dict[str, Any]:
        obj: dict[str, Any] = {
            "seq": r.seq,
            "ts": r.t_ms // 1000 if self.slot.epoch_ts else iso(r.t_ms),
            "temp_c": r.temp_c,
        }
        for key, value in (("rh_pct", r.rh_pct), ("lat", r.lat), ("lon", r.lon)):
            if value is not None:
                obj[key] = value
        return obj

    def _encode(self, readings: Sequence[_Reading]) -> bytes:
        fmt = self.slot.fmt
        if fmt is PayloadFormat.NATIVE_SINGLE:
            (reading,) = readings
            return orjson.dumps(self._native_reading(reading))
        if fmt is PayloadFormat.NATIVE_PACK:
            return orjson.dumps(
                {
                    "logger_id": self.logger_id,
                    "readings": [self._native_reading(r) for r in readings],
                    "battery_pct": self._battery(max(r.t_ms for r in readings)),
                }
            )
        base_s = min(r.t_ms for r in readings) // 1000
        records: list[dict[str, Any]] = []
        for r in readings:
            t_s = r.t_ms // 1000 - base_s
            offset: dict[str, Any] = {"t": t_s} if t_s else {}
            records.append({"n": "temp", "u": "Cel", **offset, "v": r.temp_c})
            if r.rh_pct is not None and r.seq % 3 == 0:  # humidity is sampled less often
                records.append({"n": "humidity", "u": "%RH", **offset, "v": r.rh_pct})
        records[0] = {"bn": f"urn:dev:logger:{self.logger_id}:", "bt": base_s, **records[0]}
        return orjson.dumps(records)

    def _telemetry(self, readings: Sequence[_Reading], note: str = "") -> Message:
        return Message(
            topic=self.telemetry_topic,
            payload=self._encode(readings),
            qos=1,
            shipment_id=self.shipment_id,
            device_time_ms=max(r.t_ms for r in readings),
            note=note,
        )

    def _status(self, t_ms: int) -> Message:
        payload = {
            "online": True,
            "battery_pct": self._battery(t_ms),
            "rssi_dbm": self.rng.randint(-97, -55),
            "fw": self.fw,
        }
        return Message(
            topic=self.status_topic,
            payload=orjson.dumps(payload),
            qos=1,
            shipment_id=self.shipment_id,
            device_time_ms=t_ms,
            retain=True,
        )

    # -- messages ---------------------------------------------------------

    def _groups(self, readings: Sequence[_Reading], hole: range) -> list[list[_Reading]]:
        """Live readings as a real logger sends them: one per message, or packs
        of :data:`PACK_READINGS`, a pack never spanning the offline hole."""
        size = 1 if self.slot.fmt is PayloadFormat.NATIVE_SINGLE else PACK_READINGS
        groups: list[list[_Reading]] = []
        current: list[_Reading] = []
        for k, r in enumerate(readings):
            if k in hole:
                if current:
                    groups.append(current)
                current = []
                continue
            current.append(r)
            if len(current) == size:
                groups.append(current)
                current = []
        if current:
            groups.append(current)
        return groups

    def build(self) -> tuple[ShipmentPlan, list[tuple[int, Message]]]:
        readings = self._readings()
        n_off = round(OFFLINE_MS / self.interval_ms)
        hole = range(0)
        if self.scenario is Scenario.OFFLINE_BULK_UPLOAD:
            first = self.rng.randint(len(readings) // 3, len(readings) // 2)
            hole = range(first, first + n_off)
        out: list[tuple[int, Message]] = []
        next_status = self.start_ms
        live = self._groups(readings, hole)
        after_hole = 0
        for group in live:
            key = max(r.t_ms for r in group)
            if hole and group[0].seq > readings[hole.start].seq:
                after_hole += 1
                if after_hole == 1:  # back online
                    out.append((key, self._status(key)))
            if key >= next_status:
                out.append((key, self._status(key)))
                next_status = key + STATUS_EVERY_MS
            out.append((key, self._telemetry(group)))
            if hole and after_hole == BURST_AFTER_LIVE_MESSAGES:
                out.extend((key, m) for m in self._burst([readings[k] for k in hole]))
        out = self._inject(out, readings)
        return self._plan(readings, hole), out

    def _burst(self, buffered: list[_Reading]) -> list[Message]:
        """The offline buffer, shuffled and cut into a few packs."""
        shuffled = buffered[:]
        self.rng.shuffle(shuffled)
        if shuffled == buffered:
            shuffled.reverse()
        cuts = sorted(self.rng.sample(range(1, len(shuffled)), min(2, len(shuffled) - 1)))
        bounds = [0, *cuts, len(shuffled)]
        packs = [shuffled[a:b] for a, b in itertools.pairwise(bounds)]
        if self.slot.fmt is PayloadFormat.NATIVE_SINGLE:
            packs = [[r] for r in shuffled]
        return [self._telemetry(pack, note="late-burst") for pack in packs]

    def _inject(
        self, out: list[tuple[int, Message]], readings: list[_Reading]
    ) -> list[tuple[int, Message]]:
        if self.scenario is Scenario.QOS1_DUPLICATES:
            telemetry = [i for i, (_, m) in enumerate(out) if m.topic == self.telemetry_topic]
            count = max(3, len(telemetry) // 25)
            picked = set(self.rng.sample(telemetry[1:], count))
            self.duplicates = count
            doubled: list[tuple[int, Message]] = []
            for i, (key, m) in enumerate(out):
                doubled.append((key, m))
                if i in picked:
                    doubled.append((key, dataclasses.replace(m, note="duplicate")))
            return doubled
        if self.scenario is Scenario.MALFORMED:
            # A re-send of one reading whose clock lost its zone (docs/PROTOCOL.md, native JSON
            # rejects it).
            r = readings[len(readings) // 2]
            bad = {"seq": r.seq, "ts": iso(r.t_ms).removesuffix("Z"), "temp_c": r.temp_c}
            message = Message(
                topic=self.telemetry_topic,
                payload=orjson.dumps(bad),
                qos=1,
                shipment_id=self.shipment_id,
                device_time_ms=r.t_ms,
                note="malformed",
            )
            at = next(i for i, (key, _) in enumerate(out) if key > r.t_ms)
            return [*out[:at], (r.t_ms, message), *out[at:]]
        return out

    def _plan(self, readings: Sequence[_Reading], hole: range) -> ShipmentPlan:
        failing = (Scenario.LN2_WARMING_FAILURE, Scenario.VACCINE_DOOR_SPIKES)
        return ShipmentPlan(
            shipment_id=self.shipment_id,
            product=self.slot.product,
            logger_id=self.logger_id,
            lot=self.lot,
            origin=self.origin,
            destination=self.destination,
            start=ms_to_dt(self.start_ms),
            end=ms_to_dt(self.end_ms),
            scenario=str(self.scenario),
            expected=self._expectation(readings, hole),
            verdict="FAIL" if self.scenario in failing else "PASS",
            payload_format=str(self.slot.fmt),
        )

    def _day(self, t_ms: int) -> int:
        return (t_ms - self.start_ms) // DAY_MS + 1

    def _expectation(self, readings: Sequence[_Reading], hole: range) -> str:
        """One line of what the pipeline should find, from the generated data."""
        temps = [r.temp_c for r in readings]
        if self.scenario is Scenario.LN2_WARMING_FAILURE:
            first = next(r for r in readings if r.temp_c > -150.0)
            return (
                f"FAIL: warms past -150 °C on day {self._day(first.t_ms)} "
                f"({iso(first.t_ms)}), up to {max(temps):.1f} °C"
            )
        if self.scenario is Scenario.VACCINE_DOOR_SPIKES:
            above_min = sum(1 for t in temps if t > 8.0) * self.interval_ms // MIN_MS
            return (
                f"FAIL: {self.spikes} door openings to 9-12 °C, each under 30 min, "
                f"{above_min} min above +8 °C in total: cumulative alarm (> 60 min)"
            )
        if self.scenario is Scenario.OFFLINE_BULK_UPLOAD:
            return (
                f"PASS: silent 1 h on day {self._day(readings[hole.start].t_ms)}, then its "
                f"{len(hole)} buffered readings arrive late and out of order; no gap once in"
            )
        if self.scenario is Scenario.QOS1_DUPLICATES:
            return f"PASS: {self.duplicates} messages delivered twice (QoS 1); copies ignored"
        if self.scenario is Scenario.MALFORMED:
            return "PASS: one malformed message (timestamp without zone) goes to dead letters"
        return f"PASS: in range throughout, {min(temps):.1f} to {max(temps):.1f} °C"


def fleet_start(now: datetime) -> datetime:
    """The ``start`` that puts a whole fleet in the past of ``now`` (aware):
    now - 4 days, whole seconds, UTC."""
    if now.tzinfo is None:
        msg = "now must be timezone-aware"
        raise ValueError(msg)
    return (now.astimezone(UTC) - timedelta(milliseconds=FLEET_SPAN_MS)).replace(microsecond=0)
