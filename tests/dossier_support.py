"""Helpers for the dossier, customs and audit tests: a world with one delivered shipment,
poppler for the PDFs, the GS1 EPCIS schema and ZIP surgery. Not collected (no test_ prefix)."""

from __future__ import annotations

import io
import json
import re
import shutil
import subprocess
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson
import pytest
from jsonschema import Draft7Validator, FormatChecker
from typer.testing import CliRunner, Result

from coldchain.cli import app
from coldchain.config import Settings, load_settings
from coldchain.custody import custody_event, record_custody_event
from coldchain.details import apply_changes
from coldchain.models import Shipment, ShipmentStatus
from coldchain.pipeline import Pipeline
from coldchain.profiles import ProfileSet
from coldchain.store import Store, open_store
from coldchain.testing import FakeClock

DATA = Path(__file__).resolve().parent / "data"  # where each file came from: data/SOURCES.md
EPCIS_SCHEMA = DATA / "epcis" / "EPCIS-JSON-Schema.json"
EPCIS_EXAMPLES = sorted((DATA / "epcis").glob("*.jsonld"))
QTAG_RUN3 = DATA / "berlinger" / "QTag-CLm-doc-LR" / "RCPJ00010_03_202304201359.txt"

T0 = 1_795_000_000_000  # 2026-11-18T11:06:40Z
M = 60_000
H = 60 * M
PREFIX = "coldchain/v1"
PATIENT = "Maria Dolores Santos"
"""A patient's name that must never reach a customs document."""

FULL_ID = {
    "coi_code": "COI-SG-2026-000123",
    "consignor": "Helix Cell Manufacturing Pte Ltd",
    "consignor_address": "10 Biopolis Way, Singapore 138670",
    "consignee": "Jakarta Cell Therapy Centre",
    "consignee_address": "Jl. Letjen S. Parman 84, Jakarta 11420",
    "origin_site": "Helix Biopolis",
    "destination_site": "JCTC cell lab",
    "importer_of_record": "PT Medika Impor",
    "importer_address": "Jl. Sudirman 1, Jakarta",
    "importer_tax_id": "01.234.567.8-901.000",
    "courier": "SkyCold Logistics",
    "awb": "618-12345675",
    "packaging": "ln2-dry-shipper",
    "gross_kg": "32.5",
    "net_kg": "0.1",
    "declared_value": "1500",
    "currency": "USD",
    "no_commercial_value": "true",
    "incoterm": "DAP",
    "quantity": "1 bag",
    "description_of_use": "named-patient",
    "route": "SIN>CGK",
    "permit:bpom-ski": "SKI-2026-000123",
    "permit:nib": "9120001234567",
    "calibration:LG-P": "DAkkS D-K-15001 2025-1102, valid to 2027-11-01",
}


def require(tool: str) -> str:
    found = shutil.which(tool)
    if found is None:
        pytest.fail(
            f"{tool} is not installed (poppler-utils); run scripts/install-system-deps.sh "
            "(or `make test`, which runs it)",
            pytrace=False,
        )
    return found


def pdf_pages(pdf: bytes, workdir: Path, name: str = "doc") -> list[tuple[Path, str]]:
    """Every page rendered to PNG (pdftoppm) with its text (pdftotext, in reading order)."""
    workdir.mkdir(parents=True, exist_ok=True)
    path = workdir / f"{name}.pdf"
    path.write_bytes(pdf)
    subprocess.run(
        [require("pdftoppm"), "-r", "40", "-png", str(path), str(workdir / name)],
        check=True,
        capture_output=True,
    )
    pngs = sorted(workdir.glob(f"{name}-*.png"), key=lambda p: int(p.stem.rsplit("-", 1)[1]))
    pages = []
    for i, png in enumerate(pngs, start=1):
        text = subprocess.run(
            [require("pdftotext"), "-f", str(i), "-l", str(i), str(path), "-"],
            check=True,
            capture_output=True,
            text=True,
        ).stdout
        pages.append((png, text))
    return pages


def pdf_text(pdf: bytes, workdir: Path, name: str = "doc") -> str:
    return "\n".join(text for _, text in pdf_pages(pdf, workdir, name))


_URI = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:\S*$")


def epcis_validator() -> Draft7Validator:
    """The GS1 EPCIS 2.0 JSON schema, with the ``uri`` and ``date-time`` formats checked."""
    checker = FormatChecker()

    @checker.checks("uri")
    def _uri(value: object) -> bool:
        return not isinstance(value, str) or bool(_URI.match(value))

    @checker.checks("date-time", raises=ValueError)
    def _date_time(value: object) -> bool:
        if isinstance(value, str):
            parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
            if parsed.tzinfo is None:
                raise ValueError("no time zone")
        return True

    return Draft7Validator(json.loads(EPCIS_SCHEMA.read_text()), format_checker=checker)


def members(data: bytes) -> dict[str, bytes]:
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        return {i.filename: zf.read(i) for i in zf.infolist()}


def rewrite_zip(data: bytes, change: Callable[[str, bytes], bytes | None]) -> bytes:
    """A copy of the ZIP with ``change(name, bytes)`` applied (None drops the member)."""
    src = zipfile.ZipFile(io.BytesIO(data))
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as out:
        for info in src.infolist():
            new = change(info.filename, src.read(info))
            if new is not None:
                out.writestr(info, new)
    return buf.getvalue()


def flip_byte(data: bytes, at: int | None = None) -> bytes:
    i = len(data) // 2 if at is None else at
    return data[:i] + bytes([data[i] ^ 0x01]) + data[i + 1 :]


@dataclass
class World:
    """A config file, its store and settings, a fake clock and a pipeline."""

    root: Path
    config: Path
    settings: Settings
    profiles: ProfileSet
    store: Store
    clock: FakeClock

    def pipeline(self) -> Pipeline:
        return Pipeline(self.store, self.profiles, self.settings, clock=self.clock)

    def cli(self, *args: str, code: int | None = 0, stdin: str | None = None) -> Result:
        result = CliRunner().invoke(
            app,
            list(args),
            input=stdin,
            env={
                "COLDCHAIN_CONFIG": str(self.config),
                "COLDCHAIN_STORE": None,
                "COLDCHAIN_PRODUCTS": None,
            },
        )
        if code is not None:
            assert result.exit_code == code, result.output
        return result

    def json(self, *args: str, code: int | None = 0, stdin: str | None = None) -> Any:
        return orjson.loads(self.cli(*args, "--json", code=code, stdin=stdin).stdout)


def make_world(root: Path) -> World:
    root.mkdir(parents=True, exist_ok=True)
    config = root / "coldchain.toml"
    config.write_text(
        f'[store]\nurl = "sqlite:///{root}/coldchain.db"\n\n'
        f'[dossier]\nsigning_key = "{root}/keys/dossier-ed25519.pem"\n'
        'display_timezone = "Asia/Singapore"\n',
        encoding="utf-8",
    )
    settings = load_settings(config, environ={})
    store = open_store(settings.store.url)
    return World(root, config, settings, settings.load_profiles(), store, FakeClock(T0 + 80 * H))


def telemetry(
    logger: str, points: list[tuple[int, float]], received: int
) -> tuple[str, bytes, int]:
    body = {
        "readings": [{"seq": i, "ts": t / 1000, "temp_c": v} for i, (t, v) in enumerate(points)]
    }
    return (f"{PREFIX}/loggers/{logger}/telemetry", orjson.dumps(body), received)


def custody_message(sid: str, doc: dict[str, Any], received: int) -> tuple[str, bytes, int]:
    return (f"{PREFIX}/shipments/{sid}/events", orjson.dumps(doc), received)


def add_shipment(
    world: World,
    sid: str = "S-QA-1",
    *,
    details: dict[str, str] | None = None,
    destination: str = "ID",
) -> Shipment:
    """A cart-ln2 shipment, SG → destination over 60 h, through the pipeline:

    5-minute readings from the primary LG-P with a 40-minute warm excursion to
    -140 °C and a 2-hour hole that the backup LG-B (every 10 min) fills; custody
    events over MQTT; delivered at T0 + 60 h.
    """
    end = T0 + 60 * H
    shipment = Shipment(
        id=sid,
        product="cart-ln2",
        loggers=("LG-P", "LG-B"),
        lot=f"LOT-{sid}",
        origin="SG",
        destination=destination,
        status=ShipmentStatus.IN_TRANSIT,
        start_ms=T0,
        created_ms=T0,
        extra=apply_changes({}, FULL_ID if details is None else details),
    )
    world.store.create_shipment(shipment)
    pipeline = world.pipeline()
    primary = [
        (T0 + i * 5 * M, -140.0 if 300 <= i < 308 else -185.0 + (i % 7) * 0.3)
        for i in range(720)
        if not 500 <= i < 524
    ]
    backup = [(T0 + i * 10 * M, -184.0) for i in range(360)]
    pipeline.handle(
        [telemetry("LG-P", primary, T0 + 61 * H), telemetry("LG-B", backup, T0 + 61 * H)]
    )
    trail = [
        ("dispatched", 0, "Helix QA", "Helix Biopolis, Singapore"),
        ("handover", 1, "SkyCold SIN", "SIN Changi Airfreight Centre"),
        ("departed", 4, "SkyCold SIN", "SIN"),
        ("arrived", 8, "SkyCold CGK", "CGK"),
        ("customs_hold", 9, "DJBC", "CGK cargo terminal"),
        ("customs_cleared", 12, "DJBC", "CGK cargo terminal"),
        ("delivered", 59, "SkyCold CGK", "Jakarta Cell Therapy Centre"),
        ("received", 60, "JCTC cell lab", "Jakarta Cell Therapy Centre"),
    ]
    pipeline.handle(
        [
            custody_message(
                sid,
                {"type": kind, "ts": (T0 + hour * H) / 1000, "actor": actor, "location": where},
                T0 + hour * H,
            )
            for kind, hour, actor, where in trail
        ]
    )
    pipeline.deliver(sid, end_ms=end)
    return world.store.get_shipment(sid)


def add_note(world: World, sid: str, note: str) -> None:
    event = custody_event(
        shipment_id=sid,
        kind="handover",
        ts=(T0 + 2 * H) / 1000,
        actor="Ground handler",
        location="SIN ramp",
        note=note,
        received_ms=T0 + 2 * H,
    )
    record_custody_event(world.store, event, now_ms=T0 + 2 * H)


def register_signer(world: World, name: str = "a.tan", password: str = "correct horse 42") -> None:
    world.cli(
        "signer", "add", name, "--full-name", "Alicia Tan", "--password-stdin",
        stdin=f"{password}\n{password}\n",
    )  # fmt: skip
