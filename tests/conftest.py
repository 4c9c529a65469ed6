"""Fixtures shared by the whole test suite.

One section per service or concern, each under its own banner; add new
sections at the end.
"""

from __future__ import annotations

import getpass
import shutil
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

# ---------------------------------------------------------------------------
# Mosquitto: a real broker for tests marked `mosquitto`
# ---------------------------------------------------------------------------

MOSQUITTO_CONF = Path(__file__).resolve().parents[1] / "configs" / "mosquitto" / "mosquitto.conf"
MOSQUITTO_START_TIMEOUT_S = 10.0
MOSQUITTO_STOP_TIMEOUT_S = 5.0
# Another process can take the free port between our probe and the broker's bind.
MOSQUITTO_START_ATTEMPTS = 3


def _mosquitto_binary() -> str:
    # Debian installs it in /usr/sbin, which a normal user's PATH lacks.
    binary = shutil.which("mosquitto") or shutil.which("mosquitto", path="/usr/sbin")
    if binary is None:
        pytest.fail(
            "mosquitto is not installed; run scripts/install-mosquitto.sh "
            "(or `make test`, which runs it)",
            pytrace=False,
        )
    return binary


def _free_loopback_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _mosquitto_config(port: int, data_dir: Path) -> str:
    """The shipped config, moved onto `port` and into `data_dir`.

    Testing the shipped file itself (not a copy of its settings) is what makes
    it "a tested broker configuration" (SPEC §10).
    """
    replaced = {
        "listener": f"listener {port} 127.0.0.1",
        "persistence_location": f"persistence_location {data_dir}/",
        "log_dest": "log_dest stderr",
        # As root, mosquitto drops to the `mosquitto` user, which cannot write
        # to our temp dir; naming the current user keeps it as it is.
        "user": f"user {getpass.getuser()}",
    }
    lines = MOSQUITTO_CONF.read_text(encoding="utf-8").splitlines()
    keys = [line.split(maxsplit=1)[0] if line.strip() else "" for line in lines]
    if keys.count("listener") != 1:
        pytest.fail(f"{MOSQUITTO_CONF}: the fixture supports exactly one listener", pytrace=False)
    # Ours go first, so options that followed the shipped listener still follow one.
    kept = [line for line, key in zip(lines, keys, strict=True) if key not in replaced]
    return "\n".join([*replaced.values(), *kept]) + "\n"


def _accepts_connections(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return True
    except OSError:
        return False


def _start_mosquitto(binary: str, work_dir: Path) -> tuple[subprocess.Popen[bytes], int]:
    log_path = work_dir / "mosquitto.log"
    for _ in range(MOSQUITTO_START_ATTEMPTS):
        port = _free_loopback_port()
        conf_path = work_dir / "mosquitto.conf"
        conf_path.write_text(_mosquitto_config(port, work_dir), encoding="utf-8")
        with log_path.open("wb") as log:
            process = subprocess.Popen(
                [binary, "-c", str(conf_path)],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + MOSQUITTO_START_TIMEOUT_S
        while process.poll() is None and time.monotonic() < deadline:
            # Checking poll() again after connecting rules out another
            # process that happens to listen on the same port.
            if _accepts_connections(port) and process.poll() is None:
                return process, port
            time.sleep(0.05)
        if process.poll() is None:
            process.kill()
            process.wait()
            break  # a hang, not a lost port race: retrying would not help
    log_text = log_path.read_text(encoding="utf-8", errors="replace")
    pytest.fail(f"mosquitto did not start; its log ({log_path}):\n{log_text}", pytrace=False)


@pytest.fixture(scope="session")
def mosquitto_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """`mqtt://127.0.0.1:PORT` of a Mosquitto broker run from the shipped config.

    One broker per test session, on its own free port with persistence in a
    temp dir: a system broker on 1883 is never used. Fails (does not skip)
    when mosquitto is missing, so CI cannot go green without these tests.
    """
    process, port = _start_mosquitto(_mosquitto_binary(), tmp_path_factory.mktemp("mosquitto"))
    try:
        yield f"mqtt://127.0.0.1:{port}"
    finally:
        process.terminate()
        try:
            process.wait(timeout=MOSQUITTO_STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture
def mqtt_topic_prefix() -> str:
    """A topic prefix no other test uses, so tests sharing a broker never see
    each other's messages (retained ones included).

    No trailing slash, like the configurable `coldchain/v1` prefix (SPEC §2),
    so it can be passed where that prefix is expected.
    """
    return f"coldchain-test/{uuid.uuid4().hex}"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # Whatever uses the broker is marked, so `-m "not mosquitto"` deselects it.
    for item in items:
        if "mosquitto_url" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.mosquitto)
