"""``coldchain import``: an offline logger file into a shipment (docs/PROTOCOL.md, device files).

The file is parsed (pure: :mod:`coldchain.importers`, :mod:`coldchain.berlinger`),
a device file is kept verbatim with the shipment (its own configuration and
summary are the record QA compares against), and the readings go through the
same :class:`~coldchain.pipeline.Pipeline` as MQTT readings.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Literal

from coldchain import berlinger
from coldchain.alerts import Alert
from coldchain.importers import FileReading, parse_csv, to_messages
from coldchain.models import ShipmentStatus, iso
from coldchain.pipeline import Pipeline
from coldchain.service import FROM_DEVICE, Context

FileFormat = Literal["csv", "berlinger"]


@dataclass(frozen=True)
class ImportReport:
    format: FileFormat
    readings_in_file: int
    new: int
    duplicates: int
    rejected: int
    alerts: tuple[Alert, ...]
    device: berlinger.DeviceFile | None


def detect_format(text: str) -> FileFormat:
    """Berlinger exports start with ``Device: Q-tag``; anything else is read as CSV."""
    return "berlinger" if berlinger.detect(text) else "csv"


def import_file(
    ctx: Context,
    path: Path,
    *,
    shipment_id: str,
    fmt: str | None = None,
    profile: str = "product",
) -> ImportReport:
    """Import ``path`` into ``shipment_id``; a file that cannot be parsed changes nothing."""
    shipment = ctx.store.get_shipment(shipment_id)
    text = path.read_text(encoding="utf-8-sig")
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
        readings = parse_csv(text, source=str(path))
    now = ctx.clock.now_ms()
    if device is not None:
        ctx.store.add_device_file(
            shipment.id, shipment.loggers[0], source=path.name, text=text, imported_ms=now
        )
        changed = shipment
        if shipment.end_ms is None and device.summary.end_ms is not None:
            # the device was read out at the destination: its stop time ends the shipment
            changed = replace(
                changed, end_ms=device.summary.end_ms, status=ShipmentStatus.DELIVERED
            )
        if profile == FROM_DEVICE:
            changed = replace(changed, extra={**changed.extra, "profile": FROM_DEVICE})
        if changed != shipment:
            ctx.store.update_shipment(changed)
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
                "readings": len(readings),
                "profile": profile,
                "end": iso(changed.end_ms) if changed.end_ms is not None else None,
            },
        )
    # alerts found in the file are queued in the outbox; `coldchain serve` sends them
    pipeline = Pipeline(
        ctx.store, ctx.profiles, ctx.settings, clock=ctx.clock, alerting=ctx.alerting
    )
    raised: list[Alert] = []
    for message in to_messages(
        readings,
        logger_id=shipment.loggers[0],
        received_ms=now,
        prefix=ctx.settings.broker.topic_prefix,
    ):
        raised += pipeline.handle([message])
    c = pipeline.counters
    return ImportReport(
        kind, len(readings), c.readings, c.duplicates, c.rejected, tuple(raised), device
    )
