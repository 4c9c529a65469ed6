"""``coldchain serve``: run the pipeline until interrupted."""

from __future__ import annotations

import ipaddress
import logging
import signal
import threading
from types import FrameType

from rich.console import Console

from coldchain.broker import check_listen
from coldchain.errors import ListenError
from coldchain.runtime import Runtime
from coldchain.service import Context

LISTEN_HINT = "use --listen or [broker] listen"

log = logging.getLogger("coldchain.serve")


def run_serve(
    ctx: Context, *, worker: bool, console: Console, listen: tuple[str, int] | None = None
) -> None:
    """Serve until SIGINT/SIGTERM. ``listen``: the embedded broker's ``(host, port)``
    (default: ``[broker] listen``); unused when a broker URL is set."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    logging.getLogger("apscheduler").setLevel(logging.WARNING)  # one line per job run is noise
    host, port = listen or ctx.settings.broker.listen_address
    if ctx.settings.broker.url is None and not _loopback(host):
        log.warning(
            "the embedded broker listens on %s, beyond this machine, and accepts any client "
            "without a password; use it on a trusted network only",
            host,
        )
    try:
        if ctx.settings.broker.url is None:
            check_listen(host, port)  # before the store file or the ingest process exist
        _serve(ctx, worker=worker, console=console, host=host, port=port)
    except ListenError as exc:
        sep = " " if str(exc).endswith("?") else "; "
        raise ListenError(f"{exc}{sep}{LISTEN_HINT}", in_use=exc.in_use) from exc


def _loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


def _serve(ctx: Context, *, worker: bool, console: Console, host: str, port: int) -> None:
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
        embedded_host=host,
        embedded_port=port,
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
