"""``coldchain demo``: the whole pipeline on one machine, with a simulated APAC fleet.

Embedded broker (or ``COLDCHAIN_BROKER``) → MQTT subscriber → writer →
pipeline → SQLite, with alerts on the screen and, through the outbox, to the
channels of ``[alerts] routes`` (shipped: the log and the MQTT alert topic; a
webhook or e-mail if you configure one); the fleet replays days of shipments
in under a minute; then every shipment is delivered, evaluated in batch and
summarised, with what each alert channel delivered.

The same seed gives the same alerts, run after run: the replay compresses five
days of device time into seconds, so the checks that compare device time with
the machine's clock (hold ticks, logger silence) are not run — they would
measure the replay's pacing and the machine's load, not the loggers
(``coldchain serve`` runs them). Everything the demo writes — store, signing
key, evaluations, dossiers — stays under its ``workdir``.
"""

from __future__ import annotations

import logging
import threading
from collections import Counter
from datetime import timedelta
from pathlib import Path
from types import TracebackType

import orjson
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from coldchain.alerts import Alert
from coldchain.clock import SystemClock
from coldchain.config import Settings, load_settings
from coldchain.errors import ColdchainError
from coldchain.models import Shipment, ShipmentStatus, dt_to_ms, iso, ms_to_dt
from coldchain.mqtt import MqttVersion, Subscriber
from coldchain.profiles import ProfileSet
from coldchain.runtime import Runtime
from coldchain.service import evaluate_shipments
from coldchain.simulation.fleet import Fleet, build_fleet
from coldchain.simulation.publish import publish
from coldchain.store import Store, open_store
from coldchain.topics import alerts_topic


class DemoMismatchError(ColdchainError):
    """A simulated shipment's verdict is not the one its scenario was built to produce."""


ALERT_DRAIN_S = 10.0
"""How long the demo waits at the end for alert notifications still being sent."""

FLEET_DAYS_BACK = 5
"""The fleet's device time starts this many days ago, so no reading is in the future."""

VERDICT_STYLE = {"PASS": "green", "REVIEW": "yellow", "FAIL": "bold red"}
SEVERITY_STYLE = {"info": "cyan", "warning": "yellow", "critical": "bold red"}


def run_demo(
    *, shipments: int, duration_s: float, workdir: Path, seed: int, console: Console
) -> None:
    """Run the demo end to end; returns when every shipment is evaluated."""
    logging.basicConfig(level=logging.ERROR)
    if not console.is_terminal:
        console.width = max(console.width, 150)  # logs and CI: keep the summary table readable
    clock = SystemClock()
    workdir.mkdir(parents=True, exist_ok=True)
    db = workdir / "coldchain-demo.db"
    for stale in (db, db.with_suffix(".db-wal"), db.with_suffix(".db-shm")):
        stale.unlink(missing_ok=True)
    settings = demo_settings(load_settings(), workdir)
    profiles = settings.load_profiles()
    store = open_store(settings.store.url)
    start = ms_to_dt(clock.now_ms()) - timedelta(days=FLEET_DAYS_BACK)
    fleet = build_fleet(
        shipments=shipments, start=start, seed=seed, prefix=settings.broker.topic_prefix
    )
    register_fleet(store, fleet, created_ms=clock.now_ms())

    def show(alert: Alert) -> None:
        style = SEVERITY_STYLE[alert.severity]
        console.print(f"[{style}]ALERT {alert.severity:8}[/] {alert.message}", highlight=False)

    console.rule("coldchain demo")
    with (
        Runtime(
            settings, store, profiles, clock=clock, extra_sinks=(show,), wall_clock_checks=False
        ) as rt,
        _AlertTopicWatch(rt) as heard,
    ):
        where = "embedded broker" if rt.embedded is not None else "broker"
        console.print(
            f"{where} {rt.broker_url} · store {db} · {len(fleet.plans)} shipments, "
            f"{len(fleet.messages)} messages, replaying {FLEET_DAYS_BACK} days "
            f"in about {duration_s:.0f} s"
        )
        with Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[stats]}"),
            TimeElapsedColumn(),
            console=console,
        ) as progress:
            task = progress.add_task("publishing", total=len(fleet.messages), stats="")

            def on_progress(done: int, total: int) -> None:
                c = rt.writer.counters
                progress.update(
                    task,
                    completed=done,
                    stats=(
                        f"readings {c.readings} · dup {c.duplicates} · rejected {c.rejected} · "
                        f"alerts {c.alerts}"
                    ),
                )

            publish(
                fleet.messages,
                url=rt.broker_url,
                client_id="coldchain-demo-fleet",
                duration_s=duration_s,
                on_progress=on_progress,
            )
            # the subscriber may still be draining the broker's queue
            _wait_for(rt, len(fleet.messages))
            on_progress(len(fleet.messages), len(fleet.messages))
        for plan in fleet.plans:
            rt.writer.deliver(plan.shipment_id, end_ms=dt_to_ms(plan.end))
        counters = rt.writer.counters
        if rt.dispatcher is not None:
            rt.dispatcher.drain(ALERT_DRAIN_S)
        heard.wait_for(len(store.list_deliveries(status="delivered")), ALERT_DRAIN_S)

    now = clock.now_ms()
    shipped = [store.get_shipment(p.shipment_id) for p in fleet.plans]
    evaluations = evaluate_shipments(store, profiles, shipped, now_ms=now)
    out_dir = workdir / "evaluations"
    out_dir.mkdir(exist_ok=True)
    table = Table(
        "shipment",
        "product",
        "lane",
        "scenario",
        "verdict",
        "min °C",
        "max °C",
        "MKT °C",
        "alerts",
        "expected",
        title="Shipments (batch re-evaluation of stored readings)",
    )
    mismatches = []
    for plan in fleet.plans:
        ev = evaluations[plan.shipment_id]
        doc = ev.to_json()
        (out_dir / f"{plan.shipment_id}.json").write_bytes(
            orjson.dumps(doc, option=orjson.OPT_INDENT_2)
        )
        alerts = store.list_alerts(shipment_id=plan.shipment_id)
        table.add_row(
            plan.shipment_id,
            plan.product,
            f"{plan.origin}→{plan.destination}",
            plan.scenario,
            f"[{VERDICT_STYLE[ev.verdict]}]{ev.verdict}[/]",
            _fmt(doc["min_c"]),
            _fmt(doc["max_c"]),
            _fmt(doc["mkt_c"]),
            str(len(alerts)),
            plan.verdict,
        )
        if ev.verdict != plan.verdict:
            mismatches.append(
                f"{plan.shipment_id} ({plan.scenario}): {ev.verdict}, expected {plan.verdict}"
            )
    console.print(table)
    console.print(
        f"{counters.messages} messages · {counters.readings} readings stored · "
        f"{counters.duplicates} duplicates ignored · {counters.rejected} rejected "
        f"(kept in dead letters: `coldchain dead-letters list`) · {counters.alerts} alerts"
    )
    console.print(_deliveries_line(store, heard), highlight=False)
    console.print(f"evaluations written to {out_dir}/ · database {db} · at {iso(now)}")
    _write_dossiers(
        store,
        profiles,
        settings=settings,
        shipment_ids=[p.shipment_id for p in fleet.plans],
        workdir=workdir,
        now=now,
        console=console,
    )
    console.print(
        f"try: COLDCHAIN_STORE=sqlite:///{db} coldchain evaluate {fleet.plans[0].shipment_id}"
    )
    store.close()
    if mismatches:
        raise DemoMismatchError("verdicts differ from the scenarios': " + "; ".join(mismatches))


def demo_settings(base: Settings, workdir: Path) -> Settings:
    """The demo's settings: its store and its dossier signing key inside ``workdir``."""
    db = workdir / "coldchain-demo.db"
    return base.model_copy(
        update={
            "store": base.store.model_copy(update={"url": f"sqlite:///{db}"}),
            "broker": base.broker.model_copy(update={"client_id": "coldchain-demo"}),
            "dossier": base.dossier.model_copy(
                update={"signing_key": workdir / "keys" / "dossier-ed25519.pem"}
            ),
        }
    )


def register_fleet(store: Store, fleet: Fleet, *, created_ms: int) -> None:
    """Register every simulated shipment, in transit, with its logger, lot and lane."""
    for plan in fleet.plans:
        store.create_shipment(
            Shipment(
                id=plan.shipment_id,
                product=plan.product,
                loggers=(plan.logger_id,),
                lot=plan.lot,
                origin=plan.origin,
                destination=plan.destination,
                status=ShipmentStatus.IN_TRANSIT,
                start_ms=dt_to_ms(plan.start),
                created_ms=created_ms,
            )
        )


def _write_dossiers(
    store: Store,
    profiles: ProfileSet,
    *,
    settings: Settings,
    shipment_ids: list[str],
    workdir: Path,
    now: int,
    console: Console,
) -> None:
    """A signed dossier ZIP per delivered shipment (docs/DOSSIER.md), and where they are."""
    from coldchain.dossier.demo import write_demo_dossiers  # noqa: PLC0415 - reportlab loads slowly
    from coldchain.signing import created_message, load_or_create_key  # noqa: PLC0415

    key = load_or_create_key(settings.dossier.signing_key)
    if key.created:
        console.print(created_message(key), highlight=False, markup=False)
    paths = write_demo_dossiers(
        store,
        profiles,
        shipment_ids,
        workdir / "dossiers",
        key=key,
        now_ms=now,
        zone=settings.dossier.display_timezone,
    )
    console.print(
        f"dossiers written to {workdir / 'dossiers'}/ ({len(paths)} signed ZIPs: PDF, readings, "
        f"EPCIS, customs) · check one: coldchain verify {paths[0]}",
        highlight=False,
    )


class _AlertTopicWatch:
    """An independent subscriber on the alert topic: shows that the MQTT channel delivers."""

    def __init__(self, rt: Runtime) -> None:
        self.topic = alerts_topic("+", prefix=rt.settings.broker.topic_prefix)
        self.count = 0
        self._cond = threading.Condition()
        self._sub = Subscriber(
            url=rt.broker_url,
            client_id="coldchain-demo-alert-watch",
            topics=[self.topic],
            on_message=self._on_message,
            session_expiry_s=60,
            protocol=MqttVersion.V311 if rt.embedded is not None else MqttVersion.V5,
        )

    def _on_message(self, topic: str, payload: bytes, received_ms: int) -> None:
        with self._cond:
            self.count += 1
            self._cond.notify_all()

    def wait_for(self, at_least: int, timeout_s: float) -> None:
        with self._cond:
            self._cond.wait_for(lambda: self.count >= at_least, timeout_s)

    def __enter__(self) -> _AlertTopicWatch:
        self._sub.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._sub.stop()


def _deliveries_line(store: Store, heard: _AlertTopicWatch) -> str:
    """What each alert channel did, from the outbox (``coldchain alerts list`` for each)."""
    by_channel: dict[str, Counter[str]] = {}
    for d in store.list_deliveries():
        by_channel.setdefault(d.channel, Counter())[d.status] += 1
    parts = []
    for channel, counts in sorted(by_channel.items()):
        text = f"{channel} " + ", ".join(f"{n} {status}" for status, n in sorted(counts.items()))
        if channel == "mqtt":
            text += f" ({heard.count} heard on {heard.topic})"
        parts.append(text)
    return "alert notifications: " + (" · ".join(parts) or "none") + " · `coldchain alerts list`"


def _wait_for(rt: Runtime, expected: int, timeout_s: float = 60.0) -> None:
    """Wait until the subscriber has received ``expected`` messages and the writer is idle."""
    import time  # noqa: PLC0415

    deadline = time.monotonic() + timeout_s
    sub = rt.subscriber
    while sub is not None and sub.messages_received < expected and time.monotonic() < deadline:
        time.sleep(0.05)
    rt.writer.drain(timeout_s)


def _fmt(value: float | None) -> str:
    return "—" if value is None else f"{value:.1f}"
