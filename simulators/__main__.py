"""``python -m simulators``: play a simulated fleet, or load-test the pipeline.

Examples::

    python -m simulators fleet --duration 60 --plan-json plans.json
    python -m simulators fleet --dry-run | head
    python -m simulators load --messages 100000 --pack-size 10
"""

from __future__ import annotations

import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import orjson
import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
)

from coldchain.models import iso
from coldchain.simulation.fleet import DEFAULT_PREFIX, Message, build_fleet, fleet_start
from coldchain.simulation.loadgen import make_load
from coldchain.simulation.publish import (
    DEFAULT_MAX_INFLIGHT,
    DEFAULT_URL,
    MqttVersion,
    Outgoing,
    Publishable,
    PublishError,
    PublishStats,
    publish,
)

app = typer.Typer(
    help=(
        "Simulated cold-chain loggers for coldchain. `fleet` publishes a few days of "
        "APAC shipments (every scenario the pipeline must handle); `load` measures "
        "how fast the broker and pipeline take telemetry."
    ),
    no_args_is_help=True,
    add_completion=False,
)
stderr = Console(stderr=True)

BrokerOption = Annotated[
    str,
    typer.Option(
        "--broker",
        envvar="COLDCHAIN_BROKER",
        help="Broker URL: mqtt://\\[user:pass@]host\\[:port], or mqtts:// for TLS.",
    ),
]
PrefixOption = Annotated[str, typer.Option(help="Topic prefix (docs/PROTOCOL.md, topics).")]
MqttOption = Annotated[str, typer.Option("--mqtt", help="MQTT protocol version: 3.1.1 or 5.")]


def _mqtt_version(value: str) -> MqttVersion:
    if value == "3.1.1":
        return "3.1.1"
    if value == "5":
        return "5"
    msg = f"--mqtt must be 3.1.1 or 5, got {value!r}"
    raise typer.BadParameter(msg)


def _publish_with_progress(
    messages: list[Message] | list[Outgoing],
    *,
    label: str,
    broker: str,
    client_id: str,
    duration_s: float | None = None,
    max_inflight: int = DEFAULT_MAX_INFLIGHT,
    mqtt_version: MqttVersion = "3.1.1",
) -> PublishStats:
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TaskProgressColumn(),
        TimeElapsedColumn(),
    )
    outgoing: list[Publishable] = list(messages)
    with Progress(*columns, console=stderr, transient=False) as progress:
        task = progress.add_task(label, total=len(outgoing))

        def on_progress(done: int, total: int) -> None:
            progress.update(task, completed=done, total=total)

        try:
            return publish(
                outgoing,
                url=broker,
                client_id=client_id,
                duration_s=duration_s,
                max_inflight=max_inflight,
                on_progress=on_progress,
                mqtt_version=mqtt_version,
            )
        except (PublishError, ValueError) as exc:
            stderr.print(f"[red]error:[/red] {exc}")
            raise typer.Exit(code=1) from exc


@app.command()
def fleet(
    *,
    broker: BrokerOption = DEFAULT_URL,
    shipments: Annotated[int, typer.Option(min=1, max=1000, help="Number of shipments.")] = 10,
    seed: Annotated[int, typer.Option(help="Random seed; the same seed gives the same bytes.")] = 7,
    interval: Annotated[
        float, typer.Option(min=0.5, max=15.0, help="Minutes between readings.")
    ] = 5.0,
    start: Annotated[
        str | None,
        typer.Option(
            help="Device time of the earliest reading (RFC 3339). Default: now - 4 days, "
            "so that all data lies in the past."
        ),
    ] = None,
    duration: Annotated[
        float | None,
        typer.Option(
            min=0.1,
            help="Spread publishing over this many seconds, paced by device time. "
            "Default: as fast as possible.",
        ),
    ] = None,
    plan_json: Annotated[
        Path | None,
        typer.Option(help="Write the shipment plans (ids, loggers, expected verdicts) here."),
    ] = None,
    dry_run: Annotated[
        bool, typer.Option(help="Print the messages as JSON lines instead of publishing.")
    ] = False,
    prefix: PrefixOption = DEFAULT_PREFIX,
    client_id: Annotated[str, typer.Option(help="MQTT client id.")] = "coldchain-sim-fleet",
    mqtt: MqttOption = "3.1.1",
) -> None:
    """Publish a simulated fleet of APAC shipments.

    Ten shipments cover every scenario: an LN2 shipper that warms past -150 °C,
    vaccine door openings, an offline logger's late out-of-order bulk upload,
    QoS 1 duplicates, exactly one malformed message, and nominal trips, in
    native JSON and SenML. --plan-json writes what each should yield.
    """
    try:
        first = datetime.fromisoformat(start) if start else fleet_start(datetime.now(UTC))
        built = build_fleet(
            shipments=shipments, start=first, seed=seed, interval_min=interval, prefix=prefix
        )
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from exc
    if plan_json is not None:
        plan_json.write_bytes(built.plans_json() + b"\n")
        stderr.print(f"wrote {len(built.plans)} shipment plans to {plan_json}")
    if dry_run:
        for m in built.messages:
            line = {
                "device_time": iso(m.device_time_ms),
                "topic": m.topic,
                "qos": m.qos,
                "retain": m.retain,
                "shipment_id": m.shipment_id,
                "note": m.note,
                "payload": m.payload.decode(),
            }
            sys.stdout.buffer.write(orjson.dumps(line) + b"\n")
        return
    for p in built.plans:
        stderr.print(
            f"{p.shipment_id} {p.product:<11} {p.logger_id} {p.origin}→{p.destination} "
            f"{p.scenario:<20} {p.expected}",
            soft_wrap=True,
            markup=False,
            highlight=False,
        )
    stats = _publish_with_progress(
        built.messages,
        label=f"{len(built.plans)} shipments",
        broker=broker,
        client_id=client_id,
        duration_s=duration,
        mqtt_version=_mqtt_version(mqtt),
    )
    typer.echo(
        f"published {stats.messages} messages ({stats.acked} acknowledged) "
        f"in {stats.elapsed_s:.1f} s"
    )


@app.command()
def load(
    *,
    broker: BrokerOption = DEFAULT_URL,
    loggers: Annotated[int, typer.Option(min=1, help="Number of simulated loggers.")] = 100,
    messages: Annotated[int, typer.Option(min=1, help="Number of messages.")] = 100_000,
    pack_size: Annotated[
        int, typer.Option(min=1, help="Readings per message (1: single reading objects).")
    ] = 1,
    qos: Annotated[int, typer.Option(min=0, max=2, help="MQTT QoS.")] = 1,
    max_inflight: Annotated[
        int,
        typer.Option(
            min=1,
            max=65_535,
            help="Unacknowledged messages allowed at once (paho slows down past ~100).",
        ),
    ] = DEFAULT_MAX_INFLIGHT,
    seed: Annotated[int, typer.Option(help="Random seed.")] = 1,
    prefix: PrefixOption = DEFAULT_PREFIX,
    client_id: Annotated[str, typer.Option(help="MQTT client id.")] = "coldchain-sim-load",
    mqtt: MqttOption = "3.1.1",
    json_out: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
) -> None:
    """Publish synthetic telemetry as fast as possible and print msgs/s.

    Native JSON from many loggers, single readings or packs of --pack-size.
    """
    start_ms = int(time.time() * 1000) - 86_400_000
    pairs = make_load(
        loggers=loggers,
        messages=messages,
        pack_size=pack_size,
        start_ms=start_ms,
        seed=seed,
        prefix=prefix,
    )
    outgoing = [Outgoing(topic, payload, qos=qos) for topic, payload in pairs]
    stats = _publish_with_progress(
        outgoing,
        label="load",
        broker=broker,
        client_id=client_id,
        max_inflight=max_inflight,
        mqtt_version=_mqtt_version(mqtt),
    )
    readings_per_s = stats.msgs_per_s * pack_size
    if json_out:
        result = {
            "messages": stats.messages,
            "acked": stats.acked,
            "readings": stats.messages * pack_size,
            "elapsed_s": round(stats.elapsed_s, 3),
            "msgs_per_s": round(stats.msgs_per_s, 1),
            "readings_per_s": round(readings_per_s, 1),
            "qos": qos,
            "max_inflight": max_inflight,
        }
        typer.echo(orjson.dumps(result).decode())
    else:
        typer.echo(
            f"{stats.messages} messages ({stats.messages * pack_size} readings, QoS {qos}) "
            f"in {stats.elapsed_s:.2f} s: {stats.msgs_per_s:,.0f} msgs/s, "
            f"{readings_per_s:,.0f} readings/s"
        )


def main() -> None:
    app(prog_name="python -m simulators")


if __name__ == "__main__":
    main()
