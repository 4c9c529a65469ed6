"""The ``coldchain`` command line (README.md). Thin shells over :mod:`coldchain.service`.

Every command reads its settings from ``--config FILE`` or ``COLDCHAIN_CONFIG``;
``COLDCHAIN_STORE``, ``COLDCHAIN_BROKER`` and ``COLDCHAIN_PRODUCTS`` override.
Errors print one line naming what is wrong and exit 2; ``--json`` prints
machine output only.
"""

from __future__ import annotations

import sys
from dataclasses import replace
from datetime import datetime
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, NoReturn

import orjson
import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Column, Table

from coldchain.errors import ColdchainError, ConfigError, ImportInterruptedError, NotFoundError
from coldchain.models import Shipment, ShipmentStatus, dt_to_ms, iso, valid_id
from coldchain.service import Context, evaluate_shipments

app = typer.Typer(
    name="coldchain",
    help=(
        "Cold-chain shipment monitoring: loggers publish over MQTT, coldchain stores and "
        "evaluates the readings against the product's stability limits and raises alerts.\n\n"
        "Start with `coldchain demo` (needs nothing installed), then `coldchain serve`."
    ),
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
shipment_app = typer.Typer(help="Register, list, show and close shipments.", no_args_is_help=True)
alerts_app = typer.Typer(help="List, show, acknowledge and resolve alerts.", no_args_is_help=True)
dead_app = typer.Typer(help="Inspect rejected messages (dead letters).", no_args_is_help=True)
app.add_typer(shipment_app, name="shipment")
app.add_typer(alerts_app, name="alerts")
app.add_typer(dead_app, name="dead-letters")

PIPE_WIDTH = 240
"""Columns of human output when stdout is not a terminal."""
# Piped or redirected output is read by scripts and copied from: as wide as a line
# needs, so no id or time is ever cut to "…" (a terminal keeps its own width).
out = Console(width=None if sys.stdout.isatty() else PIPE_WIDTH)
err = Console(stderr=True, soft_wrap=True)  # an error message is one line, never wrapped

ConfigOpt = Annotated[
    Path | None,
    typer.Option(
        "--config",
        help="Settings file (default: $COLDCHAIN_CONFIG or ./coldchain.toml).",
        envvar="COLDCHAIN_CONFIG",
        show_envvar=False,
    ),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON only (for scripts).")]
ShipmentArg = Annotated[str, typer.Argument(metavar="ID", help="Shipment id, e.g. S-2026-0042.")]


def _ctx(config: Path | None, *, create: bool = False) -> Context:
    """Settings, validated now: a bad setting fails every command here, in one line.

    ``create``: the command creates data, so it may create the store file (in
    an existing folder); read-only commands refuse a store file that does not exist.
    """
    ctx = Context(config_file=config, create_store=create)
    try:
        ctx.settings  # noqa: B018 - loads and validates
    except ColdchainError as exc:
        _fail(exc)
    return ctx


def _key(header: str) -> Column:
    """A column people copy from (an id, a time): never wrapped or cut, others give way."""
    return Column(header, no_wrap=True, min_width=len(header))


def _fail(exc: Exception) -> NoReturn:
    err.print(f"[bold red]error:[/] {escape(str(exc))}", highlight=False)
    raise typer.Exit(2)


def _print_json(doc: Any) -> None:
    sys.stdout.write(orjson.dumps(doc, option=orjson.OPT_INDENT_2).decode() + "\n")


def _when(text: str | None, name: str) -> int | None:
    if text is None:
        return None
    try:
        dt = datetime.fromisoformat(text)
    except ValueError:
        _fail(ValueError(f"{name}: {text!r} is not an ISO 8601 time"))
    if dt.tzinfo is None:
        _fail(ValueError(f"{name}: {text!r} has no time zone; add Z or an offset"))
    return dt_to_ms(dt)


NONE = "—"
"""How human output shows a value that is not there (JSON keeps null)."""


def _shown(value: object) -> str:
    """A value for people: "—" for None or an empty list, lists comma-joined, never a repr."""
    if value is None:
        return NONE
    if isinstance(value, list | tuple):
        return ", ".join(str(v) for v in value) or NONE
    if isinstance(value, bool):
        return "yes" if value else "no"
    return str(value)


def _celsius(value: float | None, *, absent: str = NONE) -> str:
    return absent if value is None else f"{value:g} °C"


def shipment_json(s: Shipment) -> dict[str, Any]:
    return {
        "id": s.id,
        "product": s.product,
        "loggers": list(s.loggers),
        "lot": s.lot,
        "origin": s.origin,
        "destination": s.destination,
        "status": s.status.value,
        "start": iso(s.start_ms) if s.start_ms is not None else None,
        "end": iso(s.end_ms) if s.end_ms is not None else None,
        "created_at": iso(s.created_ms),
    }


class ImportFormat(StrEnum):
    CSV = "csv"
    BERLINGER = "berlinger"


class AlertState(StrEnum):
    OPEN = "open"
    ACKNOWLEDGED = "acknowledged"
    RESOLVED = "resolved"


class ProfileChoice(StrEnum):
    PRODUCT = "product"
    FROM_DEVICE = "from-device"


# -- shipments -------------------------------------------------------------------


@shipment_app.command("create")
def shipment_create(
    shipment_id: Annotated[
        str, typer.Argument(metavar="ID", help="Shipment id, e.g. S-2026-0042.")
    ],
    product: Annotated[str, typer.Option(help="Product profile id, e.g. cart-ln2 or vaccine-2-8.")],
    logger: Annotated[
        list[str], typer.Option(help="Logger id; repeat for a backup (the first is the primary).")
    ],
    lot: Annotated[str | None, typer.Option(help="Product lot (budgets are per lot).")] = None,
    origin: Annotated[str | None, typer.Option(help="Origin country, ISO 3166 (e.g. SG).")] = None,
    destination: Annotated[str | None, typer.Option(help="Destination country (e.g. ID).")] = None,
    start: Annotated[
        str | None,
        typer.Option(
            help="Monitoring start, device time (RFC 3339); earlier readings are not counted."
        ),
    ] = None,
    config: ConfigOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Register a shipment so its loggers' readings are evaluated against PRODUCT.

    Example:

      coldchain shipment create S-1 --product cart-ln2 --logger LG-42 --origin SG --destination ID
    """
    ctx = _ctx(config, create=True)
    try:
        for ident, what in [(shipment_id, "shipment id"), *[(lg, "logger id") for lg in logger]]:
            if not valid_id(ident):
                raise ValueError(f"{what} {ident!r} must match ^[A-Za-z0-9._-]{{1,64}}$")
        for cc, what in ((origin, "--origin"), (destination, "--destination")):
            if cc is not None and not (len(cc) == 2 and cc.isalpha() and cc.isupper()):
                raise ValueError(f"{what} {cc!r} must be an ISO 3166 alpha-2 code such as SG")
        ctx.profiles.get(product)
        shipment = Shipment(
            id=shipment_id,
            product=product,
            loggers=tuple(logger),
            lot=lot,
            origin=origin,
            destination=destination,
            status=ShipmentStatus.IN_TRANSIT,
            start_ms=_when(start, "--start"),
            created_ms=ctx.clock.now_ms(),
        )
        ctx.store.create_shipment(shipment)
        ctx.store.audit(
            actor="cli",
            action="created",
            entity="shipment",
            entity_id=shipment_id,
            ts_ms=shipment.created_ms,
            detail=shipment_json(shipment),
        )
    except (ColdchainError, ValueError) as exc:
        _fail(exc)
    finally:
        ctx.close()
    if as_json:
        _print_json(shipment_json(shipment))
    else:
        out.print(
            f"created shipment [bold]{shipment_id}[/] ({product}, logger {', '.join(logger)})"
        )


@shipment_app.command("show")
def shipment_show(
    shipment_id: ShipmentArg,
    config: ConfigOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Show one shipment.

    Examples:

      coldchain shipment show S-1
      coldchain shipment show S-1 --json
    """
    ctx = _ctx(config)
    try:
        s = ctx.store.get_shipment(shipment_id)
    except ColdchainError as exc:
        _fail(exc)
    finally:
        ctx.close()
    if as_json:
        _print_json(shipment_json(s))
        return
    for key, value in shipment_json(s).items():
        out.print(f"[bold]{key:12}[/] {_shown(value)}", highlight=False)


@shipment_app.command("list")
def shipment_list(
    status: Annotated[ShipmentStatus | None, typer.Option(help="Only this status.")] = None,
    config: ConfigOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """List shipments, oldest first.

    Example:

      coldchain shipment list --status in_transit
    """
    ctx = _ctx(config)
    try:
        shipments = ctx.store.list_shipments(status=status)
    except ColdchainError as exc:
        _fail(exc)
    finally:
        ctx.close()
    if as_json:
        _print_json([shipment_json(s) for s in shipments])
        return
    if not shipments:
        out.print("no shipments" + (f" with status {status.value}" if status else ""))
        return
    table = Table(_key("id"), "product", "lane", "loggers", "status", "start")
    for s in shipments:
        table.add_row(
            s.id,
            s.product,
            s.lane,
            ", ".join(s.loggers),
            s.status.value,
            iso(s.start_ms) if s.start_ms is not None else "",
        )
    out.print(table)


@shipment_app.command("close")
def shipment_close(
    shipment_id: ShipmentArg,
    end: Annotated[
        str | None, typer.Option(help="Delivery time, device time (RFC 3339); default: now.")
    ] = None,
    config: ConfigOpt = None,
) -> None:
    """Mark a shipment delivered and closed: its last reading holds until END at most.

    Example:

      coldchain shipment close S-1 --end 2026-11-28T09:00:00Z
    """
    ctx = _ctx(config)
    try:
        s = ctx.store.get_shipment(shipment_id)
        end_ms = _when(end, "--end") or ctx.clock.now_ms()
        ctx.store.update_shipment(replace(s, status=ShipmentStatus.CLOSED, end_ms=end_ms))
        ctx.store.audit(
            actor="cli",
            action="closed",
            entity="shipment",
            entity_id=shipment_id,
            ts_ms=ctx.clock.now_ms(),
            detail={"end": iso(end_ms)},
        )
    except ColdchainError as exc:
        _fail(exc)
    finally:
        ctx.close()
    out.print(f"closed shipment [bold]{shipment_id}[/] at {iso(end_ms)}")


# -- import, evaluate, alerts ----------------------------------------------------------


@app.command("import")
def import_file(
    file: Annotated[
        Path,
        typer.Argument(
            exists=True, dir_okay=False, readable=True, help="The logger file to import."
        ),
    ],
    shipment: Annotated[str, typer.Option(help="Shipment the readings belong to.")],
    fmt: Annotated[
        ImportFormat | None,
        typer.Option("--format", help="File format; default: detected from the content."),
    ] = None,
    profile: Annotated[
        ProfileChoice,
        typer.Option(
            help="product: the shipment's product profile (unchanged); from-device: evaluate "
            "the shipment with the device's own alarm settings (Berlinger files). On a shipment "
            "that already has readings, from-device also needs --replace-profile."
        ),
    ] = ProfileChoice.PRODUCT,
    logger: Annotated[
        str | None,
        typer.Option(
            help="The logger the file's readings belong to. Default: the device's serial, "
            "which must be one of the shipment's loggers (a CSV: the primary). A logger that "
            "is not one of them is added to the shipment as a backup."
        ),
    ] = None,
    replace_profile: Annotated[
        bool,
        typer.Option(
            "--replace-profile",
            help="Confirm --profile from-device on a shipment that already has readings: "
            "they are re-evaluated against the device's alarm settings.",
        ),
    ] = False,
    delivered: Annotated[
        bool,
        typer.Option(
            "--delivered",
            help="Also mark the shipment delivered at the device's stop time (Q-tag TS Stop, "
            "Fridge-tag report time). Refused when the shipment already ended or has later "
            "readings.",
        ),
    ] = False,
    config: ConfigOpt = None,
) -> None:
    """Import an offline logger file through the same pipeline as MQTT readings.

    Berlinger Q-tag CLm doc, Fridge-tag 2, 2L, UL: the .txt export, not the PDF.
    The device's configuration and summary are kept; `coldchain evaluate` shows
    them beside coldchain's figures (the "reconciliation" block).

    CSV: a header 'ts,temp_c', then one reading a line; ts is RFC 3339 with a
    zone (2026-11-26T03:00:00Z) or Unix seconds.

    A file that cannot be parsed is refused whole, naming the line and the reason.
    A row the pipeline refuses goes to dead letters as import:FILE, line N.

    An import adds readings and changes nothing else on the shipment unless asked
    (--profile from-device, --delivered, --logger; docs/BERLINGER.md, importing).
    A second value at a reading's time is a conflict: the first value stays;
    list the others with: coldchain audit list --action reading_conflict

    Example:

      coldchain import RCPJ00010_02.txt --shipment S-1 --delivered
    """
    from coldchain.importing import import_file as run_import  # noqa: PLC0415 - heavy import

    ctx = _ctx(config)  # the shipment must exist already, so must its store
    try:
        report = run_import(
            ctx,
            file,
            shipment_id=shipment,
            fmt=None if fmt is None else fmt.value,
            profile=profile.value,
            logger=logger,
            replace_profile=replace_profile,
            delivered=delivered,
        )
    except ImportInterruptedError as exc:  # Ctrl-C: say what stayed stored
        err.print(f"[bold red]error:[/] {escape(str(exc))}", highlight=False)
        raise typer.Exit(130) from None
    except (ColdchainError, ValueError, OSError) as exc:
        _fail(exc)
    finally:
        ctx.close()
    if report.device is not None:
        d = report.device
        out.print(
            f"{d.device} serial {d.serial}: {report.readings_in_file} readings, device "
            f"min {_celsius(d.summary.min_c)}, max {_celsius(d.summary.max_c)}, "
            f"MKT {_celsius(d.summary.mkt_c)}"
        )
    for change in report.changes:
        out.print(f"shipment {shipment}: {change}", highlight=False, soft_wrap=True)
    conflicts = f"{report.conflicts} conflict{'' if report.conflicts == 1 else 's'}"
    out.print(
        f"imported {report.new} new readings into {shipment} ({report.format}, logger "
        f"{report.logger_id}; {report.duplicates} duplicates, {conflicts}, {report.rejected} "
        f"rejected to dead letters, {len(report.alerts)} alerts)",
        highlight=False,
        soft_wrap=True,
    )
    if report.conflicts:
        out.print(
            f"  {conflicts}: a reading at a time that already had another value was refused "
            "(the first stays); see coldchain audit list --action reading_conflict",
            highlight=False,
            soft_wrap=True,
        )


@app.command("evaluate")
def evaluate(
    shipment_id: ShipmentArg,
    now: Annotated[
        str | None,
        typer.Option(
            help="Evaluate as of this time (RFC 3339); default: now. Only matters while open."
        ),
    ] = None,
    config: ConfigOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Evaluate a shipment's stored readings against its product profile.

    The rules are in docs/EVALUATION.md; --json prints the evaluation document
    that the dossier's evaluation.json holds (docs/DOSSIER.md).

    Examples:

      coldchain evaluate S-1
      coldchain evaluate S-1 --json --now 2026-11-28T09:00:00Z
    """
    ctx = _ctx(config)
    try:
        s = ctx.store.get_shipment(shipment_id)
        now_ms = _when(now, "--now") or ctx.clock.now_ms()
        ev = evaluate_shipments(ctx.store, ctx.profiles, [s], now_ms=now_ms)[s.id]
    except ColdchainError as exc:
        _fail(exc)
    finally:
        ctx.close()
    doc = ev.to_json()
    if as_json:
        _print_json(doc)
        return
    colour = {"PASS": "green", "REVIEW": "yellow", "FAIL": "red"}[ev.verdict]
    out.print(f"[bold]{s.id}[/] {s.product} {s.lane}: [bold {colour}]{ev.verdict}[/]")
    if ev.profile.id != s.product:  # e.g. --profile from-device: say what the limits are
        out.print(
            f"  evaluated against profile {ev.profile.id} ({ev.profile.name})", highlight=False
        )
    mkt_absent = NONE if ev.profile.mkt else "n/a (disabled by profile)"
    out.print(
        f"readings {doc['readings']}, min {_celsius(doc['min_c'])}, "
        f"max {_celsius(doc['max_c'])}, mean {_celsius(doc['mean_c'])}, "
        f"MKT {_celsius(doc['mkt_c'], absent=mkt_absent)}",
        highlight=False,
    )
    for alarm in doc["alarms"]:
        if alarm["fired"]:
            out.print(
                f"  alarm {alarm['id']} ({alarm['severity']}) fired at {alarm['triggered_at']}"
            )
    for gap in doc["gaps"]:
        out.print(f"  data gap {gap['start']} → {gap['end']} ({gap['minutes']} min)")
    if doc.get("conflicts"):
        n = doc["conflicts"]
        out.print(
            f"  {n} conflicting reading{'' if n == 1 else 's'}: another value at a time already "
            "held was refused (coldchain audit list --shipment "
            f"{s.id} --action reading_conflict)",
            highlight=False,
            soft_wrap=True,
        )
    if doc.get("reconciliation"):
        _print_reconciliation(doc["reconciliation"])


def _agrees(value: bool | None) -> str:
    return {True: "agrees", False: "DIFFERS", None: "n/a"}[value]


def _print_reconciliation(rec: dict[str, Any]) -> None:
    """The device's own figures beside coldchain's (`import` of a Berlinger file)."""
    device = rec["device"]
    out.print(
        f"device {device['model']} serial {device['serial']} ({device['file']}): "
        f"[bold]{_agrees(rec['agrees'])}[/] with coldchain",
        highlight=False,
    )
    for key, label in (("min", "min"), ("max", "max"), ("mean", "mean"), ("mkt", "MKT")):
        row = rec[key]
        out.print(
            f"  {label:4} device {_celsius(row['device_c'])}, coldchain "
            f"{_celsius(row['coldchain_c'])}: {_agrees(row['agrees'])}",
            highlight=False,
        )
    for a in rec["alarms"]:
        ours = a["coldchain_alarm"] or "no counterpart"
        fired = "fired" if a["device_fired"] else "did not fire"
        mine = {True: "fired", False: "did not fire", None: "n/a"}[a["coldchain_fired"]]
        out.print(
            f"  alarm {a['id']} ({ours}): device {fired}, coldchain {mine}: {_agrees(a['agrees'])}",
            highlight=False,
        )


@alerts_app.command("list")
def alerts_list(
    shipment: Annotated[str | None, typer.Option(help="Only this shipment.")] = None,
    state: Annotated[AlertState | None, typer.Option(help="Only alerts in this state.")] = None,
    config: ConfigOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """List alerts (docs/ALERTS.md), oldest first, with acknowledgement and delivery per channel.

    --json gives each alert's fields (docs/ALERTS.md) plus `acknowledgement`, `resolution`,
    `escalations` and `deliveries` (status, attempts and history per channel).

    Example:

      coldchain alerts list --shipment S-1 --state open
    """
    ctx = _ctx(config)
    try:
        if shipment is not None:
            ctx.store.get_shipment(shipment)  # a mistyped id is an error, not "no alerts"
        records = ctx.alerting.records(
            shipment_id=shipment, state=None if state is None else state.value
        )
    except ColdchainError as exc:
        _fail(exc)
    finally:
        ctx.close()
    if as_json:
        _print_json(records)
        return
    if not records:
        where = " ".join(
            part
            for part in (
                f"in state {state.value}" if state else "",
                f"for shipment {shipment}" if shipment else "",
            )
            if part
        )
        out.print(f"no alerts {where}".rstrip(), highlight=False)
        return
    table = Table(
        _key("id"), _key("shipment"), "type", "severity", _key("triggered"), "state", "deliveries"
    )
    for r in records:
        state_text = r["state"]
        if r["resolution"]:
            state_text += f" by {r['resolution']['by']}"
            if r["acknowledgement"]:
                state_text += f" (acknowledged by {r['acknowledgement']['by']})"
        elif r["acknowledgement"]:
            state_text += f" by {r['acknowledgement']['by']}"
        if r["escalations"]:
            state_text += f", escalated ×{len(r['escalations'])}"
        table.add_row(
            r["id"],
            r["shipment_id"],
            r["type"],
            r["severity"],
            r["triggered_at"],
            state_text,
            _deliveries_text(r["deliveries"]),
        )
    out.print(table)


_DELIVERY_MARK = {"delivered": "✓", "pending": "…", "failed": "✗", "held": "⏸", "digested": "Σ"}


def _deliveries_text(deliveries: list[dict[str, Any]]) -> str:
    parts = []
    for d in deliveries:
        mark = _DELIVERY_MARK.get(d["status"], "?")
        retries = f" ({d['attempts']} tries)" if d["attempts"] > 1 else ""
        event = "" if d["event"] == "raised" else f" {d['event']}"
        parts.append(f"{d['channel']}{event} {mark}{retries}")
    return ", ".join(parts)


@alerts_app.command("show")
def alerts_show(
    alert_id: Annotated[str, typer.Argument(metavar="ID", help="Alert id, e.g. AL-3f2a….")],
    config: ConfigOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Show one alert: message, lifecycle, escalations and every delivery attempt.

    Example:

      coldchain alerts show AL-3f2a9c0d1e2b4a5f
    """
    ctx = _ctx(config)
    try:
        alert = ctx.store.get_alert(alert_id)
        (record,) = ctx.alerting.records(shipment_id=alert.shipment_id, alert_ids={alert_id})
    except ColdchainError as exc:
        _fail(exc)
    finally:
        ctx.close()
    if as_json:
        _print_json(record)
        return
    out.print(f"[bold]{record['id']}[/] {record['severity']} {record['type']}: {record['state']}")
    out.print(record["message"], highlight=False)
    for key in ("acknowledgement", "resolution"):
        if record[key]:
            item = record[key]
            comment = f": {item['comment']}" if item.get("comment") else ""
            out.print(f"{key}: {item['by']} at {item['at']}{comment}", highlight=False)
    for e in record["escalations"]:
        out.print(f"escalated to {e['route']} (level {e['level']}) at {e['at']}")
    for d in record["deliveries"]:
        out.print(f"{d['event']} → {d['channel']} (route {d['route']}): {d['status']}")
        for h in d["history"]:
            result = "ok" if h["ok"] else h["error"]
            out.print(
                f"    #{h['attempt']} {h['at']} {h['elapsed_ms']} ms: {result}", highlight=False
            )


ByOpt = Annotated[str, typer.Option("--by", help="Who you are (name or user id), for the audit.")]


@alerts_app.command("ack")
def alerts_ack(
    alert_id: Annotated[str, typer.Argument(metavar="ID", help="Alert id, e.g. AL-3f2a….")],
    by: ByOpt,
    comment: Annotated[str, typer.Option(help="What you are doing about it.")] = "",
    config: ConfigOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Acknowledge an alert: "I have it". Stops its escalation (docs/ALERTS.md).

    Example:

      coldchain alerts ack AL-3f2a9c0d1e2b4a5f --by "J. Tan" --comment "courier re-icing at SIN"
    """
    ctx = _ctx(config)
    try:
        status = ctx.alerting.acknowledge(
            alert_id, by=by, comment=comment, now_ms=ctx.clock.now_ms()
        )
    except ColdchainError as exc:
        _fail(exc)
    finally:
        ctx.close()
    if as_json:
        _print_json({"id": alert_id, **status.to_json()})
    else:
        out.print(f"acknowledged [bold]{alert_id}[/] by {by}: now {status.state}")


@alerts_app.command("resolve")
def alerts_resolve(
    alert_id: Annotated[str, typer.Argument(metavar="ID", help="Alert id, e.g. AL-3f2a….")],
    by: ByOpt,
    comment: Annotated[str, typer.Option(help="Why it is closed (required).")],
    config: ConfigOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Close an alert, with a comment saying why (docs/ALERTS.md); it is audited.

    Alerts whose condition clears (temperature back in range, battery replaced)
    are resolved by coldchain itself.

    Example:

      coldchain alerts resolve AL-3f2a9c0d1e2b4a5f --by "QA" --comment "product released"
    """
    ctx = _ctx(config)
    try:
        status = ctx.alerting.resolve(alert_id, by=by, comment=comment, now_ms=ctx.clock.now_ms())
    except ColdchainError as exc:
        _fail(exc)
    finally:
        ctx.close()
    if as_json:
        _print_json({"id": alert_id, **status.to_json()})
    else:
        out.print(f"resolved [bold]{alert_id}[/] by {by}")


@dead_app.command("list")
def dead_letters_list(
    limit: Annotated[int, typer.Option(help="How many, newest first.")] = 20,
    config: ConfigOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Show rejected messages with the reason each was refused.

    Example:

      coldchain dead-letters list --limit 50
    """
    ctx = _ctx(config)
    try:
        letters = ctx.store.list_dead_letters(limit=limit)
    except ColdchainError as exc:
        _fail(exc)
    finally:
        ctx.close()
    if as_json:
        _print_json(
            [
                {
                    "id": d.id,
                    "received_at": iso(d.received_ms),
                    "topic": d.topic,
                    "logger_id": d.logger_id,
                    "reason": d.reason,
                    "payload": d.payload.decode("utf-8", "replace"),
                }
                for d in letters
            ]
        )
        return
    if not letters:
        out.print("no dead letters: every message received was accepted")
        return
    for d in letters:
        out.print(f"[bold]#{d.id}[/] {iso(d.received_ms)} {d.topic}\n  {d.reason}", highlight=False)


# -- loggers and budgets --------------------------------------------------------------

logger_app = typer.Typer(help="Logger settings (calibration).", no_args_is_help=True)
budget_app = typer.Typer(help="A lot's stability budget ledger.", no_args_is_help=True)
app.add_typer(logger_app, name="logger")
app.add_typer(budget_app, name="budget")


@logger_app.command("calibrate")
def logger_calibrate(
    logger_id: Annotated[str, typer.Argument(metavar="LOGGER", help="Logger id, e.g. LG-00042.")],
    offset: Annotated[float, typer.Option(help="°C added to every raw value (certificate).")],
    certificate: Annotated[str, typer.Option(help="Calibration certificate reference.")],
    config: ConfigOpt = None,
) -> None:
    """Set a logger's calibration offset from its certificate (docs/EVALUATION.md, coverage).

    Applies to readings received from now on; raw and corrected values are both kept.

    Example:

      coldchain logger calibrate LG-00042 --offset 0.2 --certificate CAL-2026-17
    """
    ctx = _ctx(config, create=True)
    try:
        if not valid_id(logger_id):
            raise ValueError(f"logger id {logger_id!r} must match ^[A-Za-z0-9._-]{{1,64}}$")
        ctx.store.set_logger_calibration(logger_id, offset)
        ctx.store.audit(
            actor="cli",
            action="calibrated",
            entity="logger",
            entity_id=logger_id,
            ts_ms=ctx.clock.now_ms(),
            detail={"offset_c": offset, "certificate": certificate},
        )
    except (ColdchainError, ValueError) as exc:
        _fail(exc)
    finally:
        ctx.close()
    out.print(f"logger {logger_id}: calibration offset {offset:+g} °C ({certificate})")


@budget_app.command("ledger")
def budget_ledger_cmd(
    lot: Annotated[
        str, typer.Argument(metavar="LOT", help="Product lot, as given to shipment create --lot.")
    ],
    config: ConfigOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Each consumption of the lot's budgets, by leg and episode, and each add-back.

    Example:

      coldchain budget ledger LOT-7
    """
    from coldchain.service import budget_ledger  # noqa: PLC0415

    ctx = _ctx(config)
    try:
        known = any(s.lot == lot for s in ctx.store.list_shipments())
        if not known and not ctx.store.budget_add_backs(lot):
            raise NotFoundError("lot", lot)  # no shipment carries it: a mistyped lot
        entries = budget_ledger(ctx.store, ctx.profiles, lot, now_ms=ctx.clock.now_ms())
    except ColdchainError as exc:
        _fail(exc)
    finally:
        ctx.close()
    if as_json:
        _print_json(entries)
        return
    if not entries:
        out.print(f"lot {lot} has consumed no stability budget and has no add-back")
        return
    table = Table("at", "budget", "kind", "minutes", "shipment / by", "reason")
    for e in entries:
        table.add_row(
            str(e["at"]),
            str(e["budget_id"]),
            str(e["kind"]),
            f"{e['minutes']:g}",
            _shown(e.get("shipment_id") or e.get("by")),
            str(e.get("reason") or ""),
        )
    out.print(table)


# -- demo and serve ----------------------------------------------------------------------


@app.command("demo")
def demo(
    shipments: Annotated[int, typer.Option(help="Simulated shipments.")] = 10,
    duration: Annotated[float, typer.Option(help="Seconds to replay the fleet's days in.")] = 45.0,
    workdir: Annotated[
        Path,
        typer.Option(
            help="Where everything the demo writes goes: database, signing key, evaluations, "
            "dossiers."
        ),
    ] = Path("var/demo"),
    seed: Annotated[int, typer.Option(help="Simulation seed.")] = 7,
) -> None:
    """Run everything on this machine: embedded MQTT broker, pipeline, a simulated APAC fleet.

    Shows live progress and alerts, then a verdict per shipment, and ends by itself.
    The same seed gives the same alerts: the replay runs days of device time in seconds,
    so the wall-clock checks (logger silence, hold ticks) are left to `coldchain serve`.
    Set COLDCHAIN_BROKER to use your own broker instead of the embedded one.

    Examples:

      coldchain demo
      coldchain demo --shipments 20 --seed 7 --duration 90 --workdir /tmp/demo
    """
    from coldchain.demo import run_demo  # noqa: PLC0415 - keeps `--help` fast

    try:
        run_demo(shipments=shipments, duration_s=duration, workdir=workdir, seed=seed, console=out)
    except ColdchainError as exc:
        _fail(exc)


@app.command("serve")
def serve(
    config: ConfigOpt = None,
    worker: Annotated[
        bool,
        typer.Option("--worker", help="Join the shared subscription as one of several workers."),
    ] = False,
    listen: Annotated[
        str | None,
        typer.Option(
            "--listen",
            metavar="HOST:PORT",
            help=r"Where the embedded broker listens (default: \[broker] listen, 127.0.0.1:1883).",
        ),
    ] = None,
) -> None:
    """Ingest telemetry from the broker until interrupted (Ctrl-C).

    With COLDCHAIN_BROKER (or \\[broker] url) unset, an embedded broker listens on
    127.0.0.1:1883, or where --listen or \\[broker] listen say.

    Examples:

      coldchain serve
      coldchain serve --listen 127.0.0.1:11883
      COLDCHAIN_BROKER=mqtt://coldchain:secret@127.0.0.1:1883 coldchain serve --worker
    """
    from coldchain.config import parse_listen  # noqa: PLC0415
    from coldchain.serve import run_serve  # noqa: PLC0415

    ctx = _ctx(config, create=True)
    try:
        address = ctx.settings.broker.listen_address
        if listen is not None:
            try:
                address = parse_listen(listen)
            except ValueError as exc:
                raise ConfigError(str(exc), field="--listen") from None
            if ctx.settings.broker.url is not None:
                where = ctx.settings.describe("broker", "url")
                msg = f"{where} is set, so no embedded broker runs; drop --listen or unset it"
                raise ConfigError(msg, field="--listen")
        run_serve(ctx, worker=worker, console=out, listen=address)
    except ColdchainError as exc:
        _fail(exc)
    finally:
        ctx.close()


# Dossier, verify, disposition, custody, customs, signer, audit and `shipment set` live in
# their own module; importing it registers them on `app` (it imports from this one).
from coldchain import cli_qa  # noqa: E402

__all__ = ["app", "cli_qa", "main"]


def main() -> None:
    app()
