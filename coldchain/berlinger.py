"""Berlinger Q-tag CLm doc and Fridge-tag TXT exports (docs/PROTOCOL.md, device files), pure: text
in, objects out.

A read-out is an indented ``Name: value`` tree (``Conf``, ``Res`` or ``Hist``),
a tab-separated ``Data`` table and a ``Cert``/``Sig`` trailer::

    Device: Q-tag CLm doc LR        Device: Q-tag Fridge-tag 2 L
    Conf:  (serial, zone, alarms)   Conf:  (serial, zone, alarms)
    Res:   (min, max, MKT, alarms)  Hist:  (one record per day)
    Data:  (one row per reading)    Data:  (absent on the Fridge-tag 2)
    Cert: … Sig: …                  Cert: … Sig: …

:func:`parse` keeps the device's own configuration and summary beside its
readings; :func:`device_profile` turns the alarm configuration into a
:class:`~coldchain.profiles.Profile`; :func:`reconcile` sets the device's
figures beside coldchain's. docs/BERLINGER.md records how each field was
decoded and which device figures coldchain can reproduce.
"""

from __future__ import annotations

import calendar
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any, Literal

from coldchain.errors import ImportFileError
from coldchain.importers import FileReading
from coldchain.models import MS_PER_MIN
from coldchain.profiles import DEFAULT_ACTIVATION_ENERGY_KJ_MOL, Direction, Profile

Family = Literal["q-tag", "fridge-tag"]

FRIDGE_TAG_MEASUREMENT_MIN = 1
"""Fridge-tags sample every minute (their PDFs: "Measurement interval 1min (fixed)")."""

MAX_GAP_INTERVALS = 1.5
"""``max_gap_min`` of :func:`device_profile`, in logging intervals (see docs/BERLINGER.md)."""

QTAG_ALARM_TYPES: Mapping[int, tuple[Direction, Literal["single", "cumulative"]] | None] = {
    0: None,  # alarm switched off
    1: ("below", "single"),
    2: ("above", "single"),
    3: ("below", "cumulative"),
    4: ("above", "cumulative"),
}
"""Q-tag ``Type`` codes, confirmed against the devices' PDF read-outs."""

FRIDGE_TAG_ALARMS: Mapping[str, Direction] = {"0": "below", "1": "above"}
"""Fridge-tag alarm 0 is the lower limit, 1 the upper; both single-event."""

_DAY_TIME = re.compile(r"^\d{2}:\d{2}$")
_STAMP = re.compile(r"^\d{4}-\d{2}-\d{2} \d{2}:\d{2}$")
_NUMBER = re.compile(r"^[+-]?\d+(\.\d+)?$")
_KEY = re.compile(r"^[A-Za-z0-9][A-Za-z0-9 ]*$")
_SPLIT = re.compile(r", (?=[A-Za-z][A-Za-z ]*:)")


# -- the model ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class DeviceAlarm:
    """One configured alarm, normalised. ``number`` is the device's ("1"…"5", "0"/"1")."""

    number: str
    direction: Direction
    limit_c: float
    delay_min: float | None  # single event: fires once an excursion lasts longer than this
    cumulative_min: float | None  # fires once the summed excursions last longer than this
    type_code: int | None = None  # Q-tag ``Type``; None on Fridge-tags

    @property
    def id(self) -> str:
        """The alarm id in the device profile and the reconciliation."""
        return f"device-{self.number}"

    @property
    def kind(self) -> Literal["single", "cumulative"]:
        return "single" if self.delay_min is not None else "cumulative"


@dataclass(frozen=True, slots=True)
class AlarmEvent:
    """A Q-tag ``Res`` alarm line. Times UTC ms; ``end_ms`` None while still out at stop."""

    number: str
    start_ms: int | None  # TS S: first out-of-range measurement
    minutes: float | None  # t A: out-of-range time (episode; total for cumulative alarms)
    triggered_ms: int | None  # TS A
    end_ms: int | None  # TS E
    extreme_c: float | None  # T M
    extreme_ms: int | None  # TS M


@dataclass(frozen=True, slots=True)
class DayAlarm:
    """One alarm's line in a Fridge-tag day record."""

    number: str
    accumulated_min: float  # t Acc: out-of-range minutes that day
    triggered_ms: int | None  # TS A: first time that day the alarm was active (00:00: carried over)
    ambient_c: float | None  # T Amb (Ultra Low)
    c_a: int | None  # C A, kept raw: its meaning is not documented


@dataclass(frozen=True, slots=True)
class SensorTimeout:
    sensor: Literal["ext", "int"]
    accumulated_min: float  # t AccST
    at_ms: int | None  # TS ST


@dataclass(frozen=True, slots=True)
class DayRecord:
    """One Fridge-tag history day (device-local date), from its 1-minute measurements."""

    line: int
    day: date
    min_c: float
    min_ms: int
    max_c: float
    max_ms: int
    avg_c: float
    alarms: tuple[DayAlarm, ...]
    sensor_timeouts: tuple[SensorTimeout, ...]
    events: int | None
    checked_ms: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class Summary:
    """What the device itself reports.

    ``start_ms``/``end_ms``: Q-tag TS Start/TS Stop; Fridge-tag TS Actv/TS Report Creation.
    On Fridge-tags min/max are the extremes of the daily history and MKT/average are None.
    """

    start_ms: int
    end_ms: int
    min_c: float | None
    min_ms: int | None
    max_c: float | None
    max_ms: int | None
    mkt_c: float | None
    avg_c: float | None
    alarm_events: tuple[AlarmEvent, ...] = ()
    history: tuple[DayRecord, ...] = ()


@dataclass(frozen=True, slots=True)
class UnvaluedRow:
    """A Data row logged as ``--.-``: no temperature (display HI/LO, or sensor disconnected)."""

    ts_ms: int
    line: int


@dataclass(frozen=True, slots=True)
class DeviceFile:
    """A parsed read-out. Times are UTC epoch ms; temperatures °C."""

    source: str
    device: str  # e.g. "Q-tag CLm doc LR", "Q-tag Fridge-tag 2 L"
    family: Family
    serial: str
    firmware: str
    logging_interval_min: int | None  # None when the device logs no readings (Fridge-tag 2)
    zone_offset_min: int  # device local time = UTC + this
    activation_energy_kj_mol: float | None  # MKT Energy
    temp_offset_c: float | None  # calibration offset the device applied before logging
    alarms: tuple[DeviceAlarm, ...]
    summary: Summary
    readings: tuple[FileReading, ...]
    out_of_limits_ms: frozenset[int] = frozenset()  # rows the device marked "x"
    unvalued: tuple[UnvaluedRow, ...] = ()  # "--.-" rows
    settings: tuple[tuple[str, str], ...] = ()  # every top-level Conf value, raw, in file order

    def setting(self, key: str) -> str | None:
        """A raw ``Conf`` value, e.g. ``setting("Start Delay")`` → ``"30"``."""
        return next((v for k, v in self.settings if k == key), None)

    @property
    def interval_min(self) -> int:
        """The logging interval, or the Fridge-tag's 1-minute measurement interval."""
        return self.logging_interval_min or FRIDGE_TAG_MEASUREMENT_MIN


# -- the line tree ------------------------------------------------------------------------


class _Node:
    """One ``Name: value`` line (with any further ``, Name: value`` pairs) and its children."""

    __slots__ = ("children", "key", "line", "pairs", "rows")

    def __init__(self, line: int, pairs: list[tuple[str, str]]) -> None:
        self.line = line
        self.key = pairs[0][0] if pairs else ""
        self.pairs = dict(pairs)
        self.children: list[_Node] = []
        self.rows: list[tuple[int, list[str]]] = []

    @property
    def value(self) -> str:
        return self.pairs.get(self.key, "")

    def find(self, key: str) -> _Node | None:
        return next((c for c in self.children if c.key == key), None)

    def lookup(self, key: str) -> tuple[str, int] | None:
        """``key``'s value and line among the children's pairs."""
        for c in self.children:
            if key in c.pairs:
                return c.pairs[key], c.line
        return None


class _Reader:
    """Typed access to the tree; every failure names the file, the line and the reason."""

    def __init__(self, source: str, zone_min: int = 0) -> None:
        self.source = source
        self.zone_min = zone_min

    def fail(self, reason: str, line: int | None) -> ImportFileError:
        return ImportFileError(reason, file=self.source, line=line)

    def section(self, node: _Node, key: str) -> _Node:
        found = node.find(key)
        if found is None:
            raise self.fail(f"'{_name(node)}' has no '{key}:' section", node.line)
        return found

    def text(self, node: _Node, key: str) -> tuple[str, int]:
        hit = (node.pairs[key], node.line) if key in node.pairs else node.lookup(key)
        if hit is None:
            raise self.fail(f"'{_name(node)}' has no '{key}:' field", node.line)
        return hit

    def opt_text(self, node: _Node, key: str) -> tuple[str, int] | None:
        """``key``'s value and line, or None when absent or empty (``TS E:,``)."""
        hit = (node.pairs[key], node.line) if key in node.pairs else node.lookup(key)
        return hit if hit is not None and hit[0] != "" else None

    def number(self, node: _Node, key: str) -> float:
        return self.to_float(*self.text(node, key), key)

    def opt_number(self, node: _Node, key: str) -> float | None:
        hit = self.opt_text(node, key)
        return None if hit is None else self.to_float(*hit, key)

    def to_float(self, value: str, line: int, key: str) -> float:
        if not _NUMBER.match(value):
            raise self.fail(f"{key}: {value!r} is not a number", line)
        return float(value)

    def when(self, value: str, line: int, key: str, day: date | None = None) -> int:
        """Device-local ``yyyy-MM-dd hh:mm`` (or ``hh:mm`` on ``day``) to UTC ms."""
        full = f"{day.isoformat()} {value}" if day is not None and _DAY_TIME.match(value) else value
        try:
            if not _STAMP.match(full):
                raise ValueError(full)
            local = datetime.strptime(full, "%Y-%m-%d %H:%M")  # noqa: DTZ007 (device-local)
        except ValueError:
            raise self.fail(f"{key}: {value!r} is not a 'yyyy-MM-dd hh:mm' time", line) from None
        return calendar.timegm(local.timetuple()) * 1000 - self.zone_min * MS_PER_MIN

    def opt_when(self, node: _Node, key: str, day: date | None = None) -> int | None:
        hit = self.opt_text(node, key)
        return None if hit is None else self.when(*hit, key, day)


def _name(node: _Node) -> str:
    return node.key or "(file)"


def _tree(lines: Sequence[str], reader: _Reader) -> _Node:
    root = _Node(0, [])
    stack: list[tuple[int, _Node]] = []
    section: _Node | None = None
    for number, raw in enumerate(lines, start=1):
        if not raw.strip():
            continue
        if raw.startswith("\t"):
            if section is None or section.key not in {"Data", "Marker"}:
                raise reader.fail("a table row outside the 'Data:' or 'Marker:' section", number)
            section.rows.append((number, raw.split("\t")[1:]))
            continue
        body = raw.lstrip(" ")
        indent = len(raw) - len(body)
        pairs: list[tuple[str, str]] = []
        for part in _SPLIT.split(body):
            key, colon, value = part.partition(":")
            if not colon or not _KEY.match(key.strip()):
                raise reader.fail(f"expected 'Name: value', found {raw.strip()!r}", number)
            pairs.append((key.strip(), value.strip()))
        node = _Node(number, pairs)
        while stack and stack[-1][0] >= indent:
            stack.pop()
        (stack[-1][1] if stack else root).children.append(node)
        stack.append((indent, node))
        if indent == 0:
            section = node
    return root


# -- parsing ------------------------------------------------------------------------------


def detect(text: str) -> bool:
    """True when ``text`` is a Berlinger read-out (first line ``Device: Q-tag …``)."""
    first = text.lstrip("\ufeff").split("\n", 1)[0].strip()
    return first.startswith("Device: Q-tag")


def parse(text: str, *, source: str) -> DeviceFile:
    """Parse a Q-tag CLm doc or Fridge-tag TXT export (docs/PROTOCOL.md, device files).

    Device-local times are converted to UTC with the file's ``Zone`` offset.
    A file that cannot be read whole raises :class:`ImportFileError` with the
    1-based line and the reason, so that a half-imported shipment never exists.
    """
    lines = text.lstrip("\ufeff").splitlines()
    if not lines or not detect(lines[0]):
        raise ImportFileError(
            "not a Berlinger export: the first line must be 'Device: Q-tag …'", file=source, line=1
        )
    last = max((i for i, s in enumerate(lines, start=1) if s.strip()), default=1)
    if not lines[last - 1].startswith("Sig:"):
        raise ImportFileError(
            "the file ends without its 'Sig:' signature line: it is truncated",
            file=source,
            line=last,
        )
    probe = _Reader(source)
    root = _tree(lines, probe)
    device, _ = probe.text(root, "Device")
    family: Family = "fridge-tag" if "Fridge-tag" in device else "q-tag"
    conf = probe.section(root, "Conf")
    reader = _Reader(source, _zone_min(*probe.text(conf, "Zone"), probe))
    unit = reader.opt_text(conf, "Temp unit")
    if unit is not None and unit[0] != "C":
        raise reader.fail(f"Temp unit {unit[0]!r}: only °C exports are supported", unit[1])
    interval = _interval_min(reader, conf)
    if family == "q-tag":
        alarms = _qtag_alarms(reader, reader.section(conf, "Alarm"))
        summary = _qtag_summary(reader, reader.section(root, "Res"))
        if interval is None:
            raise reader.fail("'Conf' has no 'Logging Interval:' field", conf.line)
        offset = reader.opt_number(conf, "Temp Offset")
    else:
        alarms = _fridge_alarms(reader, reader.section(conf, "Alarm"))
        summary = _fridge_summary(reader, reader.section(root, "Hist"))
        use_ext = reader.opt_text(conf, "Use ext devices")
        sensor = conf.find("Ext Sensor" if use_ext and use_ext[0] == "1" else "Int Sensor")
        offset = None if sensor is None else reader.opt_number(sensor, "Offset")
    data = root.find("Data")
    readings, unvalued, flagged = ((), (), frozenset()) if data is None else _data(reader, data)
    if data is None and interval is not None:
        raise reader.fail("the file has a 'Logging Interval' but no 'Data:' section", conf.line)
    if data is not None and not readings:
        raise reader.fail("the 'Data:' section holds no reading with a value", data.line)
    energy = reader.opt_number(conf, "MKT Energy")
    return DeviceFile(
        source=source,
        device=device,
        family=family,
        serial=reader.text(conf, "Serial")[0],
        firmware=reader.text(root, "Fw Vers")[0],
        logging_interval_min=interval,
        zone_offset_min=reader.zone_min,
        activation_energy_kj_mol=energy,
        temp_offset_c=offset,
        alarms=alarms,
        summary=summary,
        readings=readings,
        out_of_limits_ms=flagged,
        unvalued=unvalued,
        settings=tuple((k, v) for c in conf.children for k, v in c.pairs.items() if v),
    )


def _interval_min(reader: _Reader, conf: _Node) -> int | None:
    hit = reader.opt_text(conf, "Logging Interval")
    if hit is None:
        return None
    if not hit[0].isdigit() or int(hit[0]) < 1:
        raise reader.fail(f"Logging Interval: {hit[0]!r} is not a whole number of minutes", hit[1])
    return int(hit[0])


def _zone_min(value: str, line: int, reader: _Reader) -> int:
    """``Zone`` to minutes east of UTC.

    Only ``0.00`` appears in the samples. A fraction is read as decimal hours
    (5.50 → +5:30) or as minutes (5.30 → +5:30), whichever gives a real
    offset (a multiple of 15 minutes); no fraction is a real offset both ways.
    """
    try:
        hours = Decimal(value)
    except InvalidOperation:
        raise reader.fail(f"Zone: {value!r} is not a number of hours", line) from None
    whole = int(hours)
    frac = abs(hours - whole)
    sign = -1 if hours < 0 else 1
    for minutes in (frac * 60, frac * 100):
        if minutes == int(minutes) and int(minutes) % 15 == 0 and minutes < 60:
            return whole * 60 + sign * int(minutes)
    raise reader.fail(f"Zone: {value!r} is not a time-zone offset", line)


def _qtag_alarms(reader: _Reader, section: _Node) -> tuple[DeviceAlarm, ...]:
    out: list[DeviceAlarm] = []
    for slot in section.children:
        code_text, line = reader.text(slot, "Type")
        code = int(reader.to_float(code_text, line, "Type"))
        if code not in QTAG_ALARM_TYPES:
            raise reader.fail(f"alarm {slot.key}: unknown Type {code_text!r}", line)
        decoded = QTAG_ALARM_TYPES[code]
        if decoded is None:
            continue
        direction, kind = decoded
        minutes = reader.number(slot, "t AL")
        out.append(
            DeviceAlarm(
                number=slot.key,
                direction=direction,
                limit_c=reader.number(slot, "T AL"),
                delay_min=minutes if kind == "single" else None,
                cumulative_min=minutes if kind == "cumulative" else None,
                type_code=code,
            )
        )
    return tuple(out)


def _fridge_alarms(reader: _Reader, section: _Node) -> tuple[DeviceAlarm, ...]:
    out: list[DeviceAlarm] = []
    for slot in section.children:
        if slot.key not in FRIDGE_TAG_ALARMS:
            raise reader.fail(f"unknown Fridge-tag alarm {slot.key!r} (expected 0 or 1)", slot.line)
        out.append(
            DeviceAlarm(
                number=slot.key,
                direction=FRIDGE_TAG_ALARMS[slot.key],
                limit_c=reader.number(slot, "T AL"),
                delay_min=reader.number(slot, "t AL"),
                cumulative_min=None,
            )
        )
    return tuple(out)


def _qtag_summary(reader: _Reader, res: _Node) -> Summary:
    events: list[AlarmEvent] = []
    alarm = res.find("Alarm")
    for slot in alarm.children if alarm is not None else ():
        for line in slot.children:
            events.append(
                AlarmEvent(
                    number=slot.key,
                    start_ms=reader.opt_when(line, "TS S"),
                    minutes=reader.opt_number(line, "t A"),
                    triggered_ms=reader.opt_when(line, "TS A"),
                    end_ms=reader.opt_when(line, "TS E"),
                    extreme_c=reader.opt_number(line, "T M"),
                    extreme_ms=reader.opt_when(line, "TS M"),
                )
            )
    return Summary(
        start_ms=reader.when(*reader.text(res, "TS Start"), "TS Start"),
        end_ms=reader.when(*reader.text(res, "TS Stop"), "TS Stop"),
        min_c=reader.number(res, "Min T"),
        min_ms=reader.opt_when(res, "TS Min T"),
        max_c=reader.number(res, "Max T"),
        max_ms=reader.opt_when(res, "TS Max T"),
        mkt_c=reader.opt_number(res, "MKT"),
        avg_c=reader.opt_number(res, "Avrg T"),
        alarm_events=tuple(events),
    )


def _fridge_summary(reader: _Reader, hist: _Node) -> Summary:
    days: list[DayRecord] = []
    for rec in hist.children:
        if not rec.key.isdigit():
            continue
        date_text, line = reader.text(rec, "Date")
        try:
            day = date.fromisoformat(date_text)
        except ValueError:
            raise reader.fail(f"Date: {date_text!r} is not a 'yyyy-MM-dd' date", line) from None
        alarms = reader.section(rec, "Alarm")
        timeouts = [
            SensorTimeout(
                sensor=sensor,
                accumulated_min=reader.number(node, "t AccST"),
                at_ms=reader.opt_when(node, "TS ST", day),
            )
            for sensor, node in _sensor_timeouts(rec)
            if node is not None
        ]
        checked = rec.find("Checked")
        c_a = [reader.opt_number(a, "C A") for a in alarms.children]
        days.append(
            DayRecord(
                line=rec.line,
                day=day,
                min_c=reader.number(rec, "Min T"),
                min_ms=reader.when(*reader.text(rec, "TS Min T"), "TS Min T", day),
                max_c=reader.number(rec, "Max T"),
                max_ms=reader.when(*reader.text(rec, "TS Max T"), "TS Max T", day),
                avg_c=reader.number(rec, "Avrg T"),
                alarms=tuple(
                    DayAlarm(
                        number=a.key,
                        accumulated_min=reader.number(a, "t Acc"),
                        triggered_ms=reader.opt_when(a, "TS A", day),
                        ambient_c=reader.opt_number(a, "T Amb"),
                        c_a=None if ca is None else int(ca),
                    )
                    for a, ca in zip(alarms.children, c_a, strict=True)
                ),
                sensor_timeouts=tuple(timeouts),
                events=_opt_int(reader.opt_number(rec, "Events")),
                checked_ms=tuple(
                    reader.when(v, c.line, k, day)
                    for c in (checked.children if checked else [])
                    for k, v in c.pairs.items()
                ),
            )
        )
    if not days:
        raise reader.fail("the 'Hist:' section holds no day records", hist.line)
    days.sort(key=lambda d: d.day)
    low = min(days, key=lambda d: (d.min_c, d.min_ms))
    high = max(days, key=lambda d: (d.max_c, -d.max_ms))
    return Summary(
        start_ms=reader.when(*reader.text(hist, "TS Actv"), "TS Actv"),
        end_ms=reader.when(*reader.text(hist, "TS Report Creation"), "TS Report Creation"),
        min_c=low.min_c,
        min_ms=low.min_ms,
        max_c=high.max_c,
        max_ms=high.max_ms,
        mkt_c=None,
        avg_c=None,
        history=tuple(days),
    )


def _sensor_timeouts(rec: _Node) -> Iterator[tuple[Literal["ext", "int"], _Node]]:
    ext, internal = rec.find("Ext Sensor timeout"), rec.find("Int Sensor timeout")
    if ext is not None:
        yield "ext", ext
    if internal is not None:
        yield "int", internal


def _opt_int(value: float | None) -> int | None:
    return None if value is None else int(value)


def _data(
    reader: _Reader, data: _Node
) -> tuple[tuple[FileReading, ...], tuple[UnvaluedRow, ...], frozenset[int]]:
    if not data.rows or data.rows[0][1][:2] != ["yyyy-MM-dd hh:mm", "T"]:
        line = data.rows[0][0] if data.rows else data.line + 1
        raise reader.fail("the 'Data:' section lacks its header 'yyyy-MM-dd hh:mm<TAB>T'", line)
    readings: list[FileReading] = []
    unvalued: list[UnvaluedRow] = []
    flagged: set[int] = set()
    for line, cells in data.rows[1:]:
        if len(cells) < 2:
            raise reader.fail("a Data row needs a time and a temperature", line)
        ts = reader.when(cells[0], line, "time")
        flag = cells[2].strip() if len(cells) > 2 else ""
        if flag not in {"", "x"}:
            raise reader.fail(f"Out of limits: {flag!r} is neither empty nor 'x'", line)
        if flag:
            flagged.add(ts)
        if cells[1].strip() == "--.-":  # no value: HI/LO display or sensor disconnected
            unvalued.append(UnvaluedRow(ts, line))
            continue
        readings.append(FileReading(ts, reader.to_float(cells[1].strip(), line, "T"), line))
    return tuple(readings), tuple(unvalued), frozenset(flagged)


# -- the device's alarm configuration as a profile ------------------------------------------


def device_profile(df: DeviceFile) -> Profile:
    """A profile with the device's own alarms (``--profile from-device``), docs/PROTOCOL.md, device
    files.

    ``max_gap_min`` is 1.5 logging intervals: each reading stands for the one
    interval until the next is due; the half interval absorbs the device's
    minute-truncated timestamps, while one missing reading still shows as a gap.
    """
    if not df.alarms:
        msg = "the device has no active alarm to evaluate against"
        raise ImportFileError(msg, file=df.source)
    doc: dict[str, Any] = {
        "id": f"from-device-{df.serial}"[:64],
        "name": f"{df.device} {df.serial}: the device's own alarm configuration",
        "storage": "; ".join(_describe(a) for a in df.alarms),
        "max_gap_min": MAX_GAP_INTERVALS * df.interval_min,
        "mkt": True,
        "activation_energy_kj_mol": df.activation_energy_kj_mol or DEFAULT_ACTIVATION_ENERGY_KJ_MOL,
        "alarms": [
            {
                "id": a.id,
                f"{a.direction}_c": a.limit_c,
                "delay_min": a.delay_min,
                "cumulative_min": a.cumulative_min,
                "severity": "critical",
            }
            for a in df.alarms
        ],
    }
    return Profile.model_validate(doc)


def _describe(a: DeviceAlarm) -> str:
    minutes = a.delay_min if a.delay_min is not None else a.cumulative_min
    return f"alarm {a.number}: {a.direction} {a.limit_c:+.1f} °C for {minutes:g} min ({a.kind})"
