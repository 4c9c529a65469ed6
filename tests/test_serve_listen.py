"""Where the embedded broker listens (README.md, Configuration; docs/BROKER.md): ``[broker]
listen`` and ``coldchain serve --listen``; a busy port is one line, not an amqtt traceback.

Real sockets hold the ports; the real CLI runs through CliRunner or a subprocess.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from coldchain.broker import EmbeddedBroker
from coldchain.cli import app
from coldchain.errors import ListenError

SERVE_START_S = 60.0


@pytest.fixture
def busy_port() -> Iterator[int]:
    """A loopback port another process-like listener already holds."""
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        yield holder.getsockname()[1]


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for variable in (
        "COLDCHAIN_CONFIG",
        "COLDCHAIN_STORE",
        "COLDCHAIN_BROKER",
        "COLDCHAIN_PRODUCTS",
    ):
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.setenv("COLDCHAIN_STORE", f"sqlite:///{tmp_path}/serve.db")
    monkeypatch.chdir(tmp_path)
    return tmp_path


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _one_line_error(args: list[str]) -> str:
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1, result.output
    return lines[0]


def test_serve_on_a_busy_listen_port_says_so_in_one_line(workdir: Path, busy_port: int):
    line = _one_line_error(["serve", "--listen", f"127.0.0.1:{busy_port}"])
    assert line == (
        f"error: cannot listen on 127.0.0.1:{busy_port}: address already in use; "
        "is another broker running? use --listen or [broker] listen"
    )
    assert not (workdir / "serve.db").exists()  # nothing half-started


def test_serve_uses_broker_listen_from_the_config_file(workdir: Path, busy_port: int):
    (workdir / "coldchain.toml").write_text(f'[broker]\nlisten = "127.0.0.1:{busy_port}"\n')
    line = _one_line_error(["serve"])
    assert f"cannot listen on 127.0.0.1:{busy_port}: address already in use" in line


@pytest.mark.parametrize(
    ("value", "reason"),
    [("1883", "'1883' is not HOST:PORT"), ("127.0.0.1:65536", "from 0 to 65535")],
)
def test_serve_refuses_a_malformed_listen_option(workdir: Path, value: str, reason: str):
    line = _one_line_error(["serve", "--listen", value])
    assert line.startswith("error: --listen: ")
    assert reason in line


def test_serve_refuses_listen_when_a_broker_url_is_set(
    workdir: Path, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setenv("COLDCHAIN_BROKER", "mqtt://127.0.0.1:1")
    line = _one_line_error(["serve", "--listen", "127.0.0.1:0"])
    assert line == (
        "error: --listen: COLDCHAIN_BROKER is set, so no embedded broker runs; "
        "drop --listen or unset it"
    )


def test_embedded_broker_on_a_busy_port_raises_listen_error_without_amqtt_traceback(
    busy_port: int, caplog: pytest.LogCaptureFixture
):
    caplog.set_level(logging.DEBUG)
    with pytest.raises(ListenError) as raised:
        EmbeddedBroker(port=busy_port).start()
    assert raised.value.in_use
    assert str(raised.value) == (
        f"cannot listen on 127.0.0.1:{busy_port}: address already in use; "
        "is another broker running?"
    )
    assert not [r for r in caplog.records if r.exc_info], caplog.text


def test_serve_listens_where_broker_listen_says(tmp_path: Path):
    port = _free_port()
    (tmp_path / "coldchain.toml").write_text(
        f'[store]\nurl = "sqlite:///{tmp_path}/s.db"\n'
        f'[broker]\nlisten = "127.0.0.1:{port}"\n[ingest]\nmode = "thread"\n'
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("COLDCHAIN_")}
    proc = subprocess.Popen(
        [str(Path(sys.executable).with_name("coldchain")), "serve"],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert proc.stdout is not None
        deadline = time.monotonic() + SERVE_START_S
        seen = []
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            seen.append(line)
            if "coldchain serving" in line:
                break
        assert any(f"embedded broker mqtt://127.0.0.1:{port}" in s for s in seen), seen
        with socket.create_connection(("127.0.0.1", port), timeout=5):
            pass
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        assert proc.stdout is not None
        rest = proc.stdout.read()
        proc.stdout.close()
    assert proc.returncode == 0, "".join(seen) + rest
