"""``coldchain import``: an offline logger file into a shipment (docs/PROTOCOL.md, device files).

The file is parsed (pure: :mod:`coldchain.importers`, :mod:`coldchain.berlinger`),
a device file is kept verbatim with the shipment (its own configuration and
summary are the record QA compares against), and the readings go through the
same :class:`~coldchain.pipeline.Pipeline` as MQTT readings.

An import adds readings, and changes the shipment only as the user asks
(docs/BERLINGER.md, importing): ``--profile from-device`` on a shipment that
already has readings needs ``--replace-profile``; ``--delivered`` ends it at
the device's stop time; a device whose serial is not one of the shipment's
loggers is refused unless ``--logger`` names the logger the file belongs to
(added to the shipment as a backup when it is not one of its loggers yet).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Literal

from coldchain import berlinger
from coldchain.alerts import Alert
from coldchain.errors import ImportFileError, ImportInterruptedError, ShipmentError
from coldchain.importers import PACK_SIZE, FileReading, parse_csv, to_line_messages
from coldchain.models import Shipment, ShipmentStatus, iso, valid_id
from coldchain.pipeline import Pipeline
from coldchain.service import FROM_DEVICE, Context

FileFormat = Literal["csv", "berlinger"]

_BOM = b"\xef\xbb\xbf"


@dataclass(frozen=True)
class ImportReport:
    format: FileFormat
    readings_in_file: int
    new: int
    duplicates: int
    conflicts: int
    rejected: int
    alerts: tuple[Alert, ...]
    device: berlinger.DeviceFile | None
    logger_id: str
    logger_added: bool = False
    changes: tuple[str, ...] = ()
    """What the import changed on the shipment besides its readings, as the user asked."""


def detect_format(text: str) -> FileFormat:
    """Berlinger exports start with ``Device: Q-tag``; anything else is read as CSV."""
    return "berlinger" if berlinger.detect(text) else "csv"


def read_text(path: Path) -> str:
    """The file's text (UTF-8, with or without a BOM); a PDF or binary file is refused in one
    line naming the file."""
    data = path.read_bytes()
    if data.startswith(b"%PDF-"):
        txt = path.with_suffix(".txt")
        hint = f" ({txt.name} beside it)" if txt.is_file() else ""
        raise ImportFileError(
            f"a PDF read-out; import the device's .txt export instead{hint}", file=str(path)
        )
    skip = len(_BOM) if data.startswith(_BOM) else 0
    try:
        return data[skip:].decode("utf-8")
    except UnicodeDecodeError as exc:
        offset = exc.start + skip
        raise ImportFileError(
            f"not UTF-8 text: byte 0x{data[offset]:02x} at offset {offset}; expected a CSV "
            "(ts,temp_c) or a Berlinger .txt export, saved as UTF-8",
            file=str(path),
        ) from None


def import_file(
    ctx: Context,
    path: Path,
    *,
    shipment_id: str,
    fmt: str | None = None,
    profile: str = "product",
    logger: str | None = None,
    replace_profile: bool = False,
    delivered: bool = False,
) -> ImportReport:
    """Import ``path`` into ``shipment_id``.

    Everything is checked before anything is written: a file that cannot be
    parsed, or an import that would change the shipment in a way not asked for,
    changes nothing.
    """
    shipment = ctx.store.get_shipment(shipment_id)
    if shipment.status == ShipmentStatus.CLOSED:
        # as for custody events: a closed record may already be signed; it stays as it was
        closed = f" at {iso(shipment.end_ms)}" if shipment.end_ms is not None else ""
        msg = (
            f"shipment {shipment.id} is closed{closed}; an import would change its record "
            "(readings, loggers, profile), which is refused after close"
        )
        raise ShipmentError(msg)
    text = read_text(path)
    kind: FileFormat = (
        detect_format(text) if fmt is None else ("berlinger" if fmt == "berlinger" else "csv")
    )
    device: berlinger.DeviceFile | None = None
    if kind == "berlinger":
        device = berlinger.parse(text, source=str(path))
        readings: list[FileReading] = list(device.readings)
    else:
        if profile == FROM_DEVICE:
            msg = "--profile from-device needs a device file (Berlinger export), not a CSV"
            raise ValueError(msg)
        if delivered:
            msg = "--delivered needs a device file (Berlinger export), whose stop time ends it"
            raise ValueError(msg)
        readings = parse_csv(text, source=str(path))
    target = _target_logger(shipment, path, device, logger)
    added = target not in shipment.loggers
    changed = replace(shipment, loggers=(*shipment.loggers, target)) if added else shipment
    changes: list[str] = [f"logger {target} added as a backup"] if added else []
    if replace_profile and profile != FROM_DEVICE:
        msg = "--replace-profile only goes with --profile from-device"
        raise ValueError(msg)
    if profile == FROM_DEVICE and shipment.extra.get("profile") != FROM_DEVICE:
        held = _readings_of(ctx, shipment)
        if held and not replace_profile:
            msg = (
                f"shipment {shipment.id} already has {held} readings evaluated against product "
                f"{shipment.product}; --profile from-device would re-evaluate them against the "
                "device's alarm settings: add --replace-profile to confirm"
            )
            raise ShipmentError(msg)
        changed = replace(changed, extra={**changed.extra, "profile": FROM_DEVICE})
        changes.append("profile: the device's alarm settings (from-device)")
    if delivered and device is not None:  # a CSV was refused above
        end_ms = device.summary.end_ms
        if end_ms is None:
            raise ImportFileError(
                "the device file has no stop time for --delivered", file=str(path)
            )
        if shipment.end_ms is not None and shipment.end_ms != end_ms:
            msg = f"shipment {shipment.id} already ended at {iso(shipment.end_ms)}; --delivered"
            raise ShipmentError(msg + " would move its end")
        later = _readings_of(ctx, changed, after_ms=end_ms)
        if later:
            msg = (
                f"{later} readings of {shipment.id} are after the device's stop time "
                f"{iso(end_ms)}; --delivered would leave them out of the evaluation"
            )
            raise ShipmentError(msg)
        if shipment.end_ms != end_ms:  # the same end again (a re-run) changes nothing
            changed = replace(changed, end_ms=end_ms, status=ShipmentStatus.DELIVERED)
            changes.append(f"delivered at the device's stop time {iso(end_ms)}")
    now = ctx.clock.now_ms()
    with ctx.store.transaction():
        if changed != shipment:
            ctx.store.update_shipment(changed)
        if added:
            ctx.store.audit(
                actor="cli",
                action="logger_added",
                entity="shipment",
                entity_id=shipment.id,
                ts_ms=now,
                detail={
                    "logger": target,
                    "role": "backup",
                    "source": path.name,
                    "serial": device.serial if device is not None else None,
                },
            )
        if device is not None:
            ctx.store.add_device_file(
                shipment.id, target, source=path.name, text=text, imported_ms=now
            )
            ctx.store.audit(
                actor="cli",
                action="device_file_imported",
                entity="shipment",
                entity_id=shipment.id,
                ts_ms=now,
                detail={
                    "source": path.name,
                    "device": device.device,
                    "serial": device.serial,
                    "logger": target,
                    "readings": len(readings),
                    "profile": profile,
                    "changes": changes,
                    "end": iso(changed.end_ms) if changed.end_ms is not None else None,
                },
            )
    # alerts found in the file are queued in the outbox; `coldchain serve` sends them
    pipeline = Pipeline(
        ctx.store, ctx.profiles, ctx.settings, clock=ctx.clock, alerting=ctx.alerting
    )
    raised: list[Alert] = []
    try:
        batch = list(
            to_line_messages(
                readings,
                logger_id=target,
                received_ms=now,
                source=path.name,
                prefix=ctx.settings.broker.topic_prefix,
            )
        )
        for i in range(0, len(batch), PACK_SIZE):
            part = batch[i : i + PACK_SIZE]
            raised += pipeline.handle([m for m, _ in part], origins=[o for _, o in part])
    except KeyboardInterrupt:
        # Each pack is its own transaction: what was committed stays, and a second
        # import of the same file stores the rest. The count comes from the store, not
        # the pipeline's counters, which a signal can cut off between commit and count.
        stored = _file_readings_stored(ctx, target, readings)
        msg = (
            f"interrupted: {stored} of the file's {len(readings)} readings are stored; "
            "import the file again to store the rest"
        )
        raise ImportInterruptedError(msg, file=str(path)) from None
    c = pipeline.counters
    return ImportReport(
        kind,
        len(readings),
        c.readings,
        c.duplicates,
        c.conflicts,
        c.rejected,
        tuple(raised),
        device,
        target,
        added,
        tuple(changes),
    )


def _target_logger(
    shipment: Shipment, path: Path, device: berlinger.DeviceFile | None, logger: str | None
) -> str:
    """The logger the file's readings belong to: named by the user, else the device's serial
    when it is one of the shipment's loggers, else (CSV) the shipment's primary."""
    if logger is not None:
        if not valid_id(logger):
            msg = f"--logger {logger!r} must match ^[A-Za-z0-9._-]{{1,64}}$"
            raise ValueError(msg)
        return logger
    if device is None:
        return shipment.loggers[0]
    if device.serial in shipment.loggers:
        return device.serial
    registered = ", ".join(shipment.loggers)
    msg = (
        f"device serial {device.serial} is not a logger of shipment {shipment.id} "
        f"({registered}); if the file belongs to it, say so: --logger {device.serial} adds "
        f"the device to the shipment, --logger {shipment.loggers[0]} files its readings "
        f"under {shipment.loggers[0]}"
    )
    raise ImportFileError(msg, file=str(path))


def _file_readings_stored(ctx: Context, logger_id: str, readings: list[FileReading]) -> int:
    """How many of a file's readings (by device time) the logger has in the store."""
    if not readings:
        return 0
    times = {r.ts_ms for r in readings}
    held = ctx.store.readings_for_loggers([logger_id], start_ms=min(times), end_ms=max(times) + 1)
    return len(times & {r.ts_ms for r in held})


def _readings_of(ctx: Context, shipment: Shipment, *, after_ms: int | None = None) -> int:
    """How many stored readings the shipment's loggers have in its window (after ``after_ms``)."""
    readings = ctx.store.readings_for_loggers(
        list(shipment.loggers), start_ms=shipment.start_ms, end_ms=shipment.end_ms
    )
    return sum(1 for r in readings if after_ms is None or r.ts_ms > after_ms)
