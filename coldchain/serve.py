"""``coldchain serve``: run the pipeline until interrupted."""

from __future__ import annotations

import logging
import signal
import threading
from types import FrameType

from rich.console import Console

from coldchain.runtime import Runtime
from coldchain.service import Context

EMBEDDED_PORT = 1883


def run_serve(ctx: Context, *, worker: bool, console: Console) -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    logging.getLogger("apscheduler").setLevel(logging.WARNING)  # one line per job run is noise
    stop = threading.Event()

    def _stop(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGINT, _stop)
    signal.signal(signal.SIGTERM, _stop)
    with Runtime(
        ctx.settings,
        ctx.store,
        ctx.profiles,
        clock=ctx.clock,
        worker=worker,
        embedded_port=EMBEDDED_PORT,
        # The ingest process died: stop, and let Runtime.stop raise what happened.
        on_ingest_failure=lambda _exc: stop.set(),
    ) as rt:
        where = "embedded broker" if rt.embedded is not None else "broker"
        console.print(
            f"coldchain serving: {where} {rt.broker_url}, store "
            f"{ctx.settings.store.url}. Ctrl-C to stop."
        )
        while not stop.wait(60):
            c = rt.writer.counters
            logging.getLogger("coldchain").info(
                "messages %d, readings %d, duplicates %d, rejected %d, alerts %d",
                c.messages,
                c.readings,
                c.duplicates,
                c.rejected,
                c.alerts,
            )
    console.print("stopped")
