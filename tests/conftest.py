"""Fixtures shared by the whole test suite.

One section per service or concern, each under its own banner; add new
sections at the end.
"""

from __future__ import annotations

import datetime as dt
import getpass
import hashlib
import hmac
import ipaddress
import json
import shutil
import socket
import ssl
import subprocess
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from email import message_from_bytes, policy
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

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
            "mosquitto is not installed; run scripts/install-system-deps.sh "
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
    it "a tested broker configuration" (docs/BROKER.md).
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

    No trailing slash, like the configurable `coldchain/v1` prefix (docs/PROTOCOL.md, topics),
    so it can be passed where that prefix is expected.
    """
    return f"coldchain-test/{uuid.uuid4().hex}"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # Whatever uses the broker is marked, so `-m "not mosquitto"` deselects it.
    for item in items:
        if "mosquitto_url" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.mosquitto)


# ---------------------------------------------------------------------------
# Alert receivers: a webhook endpoint and an SMTP server, real, on loopback
# ---------------------------------------------------------------------------

RECEIVER_WAIT_S = 10.0
WEBHOOK_SECRET = "test-webhook-secret"
WEBHOOK_TOLERANCE_S = 300


class WebhookReceiver:
    """An HTTP endpoint that checks coldchain's webhook signature as a receiver should.

    It recomputes ``sha256=HMAC(secret, "{timestamp}.{body}")`` itself (not
    with coldchain's code, so a bug shared by signer and verifier cannot hide),
    refuses a timestamp more than ``tolerance_s`` from ``now_s()`` (a replay)
    with 401, drops repeats by ``X-Coldchain-Delivery-Id`` and keeps each
    accepted body. ``status`` forces an answer (e.g. 503) instead; ``down()``
    and ``up()`` stop and restart it on the same port.
    """

    def __init__(self, secret: str, *, now_s: Callable[[], float] = time.time) -> None:
        self.secret = secret
        self.now_s = now_s
        self.tolerance_s = WEBHOOK_TOLERANCE_S
        self.port = _free_loopback_port()
        self.accepted: list[dict[str, Any]] = []
        self.raw: list[tuple[dict[str, str], bytes]] = []
        self.refused: list[str] = []
        self.duplicates = 0
        self.requests = 0
        self.status: int | None = None
        self._seen: set[str] = set()
        self._cond = threading.Condition()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hooks/coldchain"

    def up(self) -> None:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                code, reason = receiver._receive(dict(self.headers.items()), body, self.path)
                self.send_response(code)
                self.send_header("Content-Type", "text/plain")
                self.end_headers()
                self.wfile.write(reason.encode())

            def log_message(self, format: str, *args: Any) -> None:
                pass  # keep pytest's output clean

        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def down(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join()

    def _receive(self, headers: dict[str, str], body: bytes, path: str) -> tuple[int, str]:
        with self._cond:
            self.requests += 1
            self.raw.append((headers, body))
            if self.status is not None:
                return self.status, "forced"
            reason = self._check(headers, body, path)
            if reason is not None:
                self.refused.append(reason)
                self._cond.notify_all()
                return 401, reason
            delivery = headers.get("X-Coldchain-Delivery-Id", "")
            if delivery in self._seen:
                self.duplicates += 1
                return 200, "duplicate ignored"
            self._seen.add(delivery)
            self.accepted.append(json.loads(body))
            self._cond.notify_all()
            return 200, "ok"

    def _check(self, headers: dict[str, str], body: bytes, path: str) -> str | None:
        if path != "/hooks/coldchain":
            return f"unexpected path {path}"
        if headers.get("Content-Type") != "application/json":
            return "not JSON"
        ts, signature = headers.get("X-Coldchain-Timestamp"), headers.get("X-Coldchain-Signature")
        if not ts or not signature:
            return "unsigned"
        mac = hmac.new(self.secret.encode(), ts.encode() + b"." + body, hashlib.sha256)
        if not hmac.compare_digest(f"sha256={mac.hexdigest()}", signature):
            return "bad signature"
        if abs(self.now_s() - int(ts)) > self.tolerance_s:
            return "stale timestamp (replay?)"
        return None

    def wait_for(self, n: int, timeout_s: float = RECEIVER_WAIT_S) -> list[dict[str, Any]]:
        """The first ``n`` accepted bodies; fails the test if they do not come in time."""
        with self._cond:
            if not self._cond.wait_for(lambda: len(self.accepted) >= n, timeout_s):
                pytest.fail(
                    f"webhook receiver got {len(self.accepted)} of {n} notifications "
                    f"(refused: {self.refused})"
                )
            return list(self.accepted[:n])


@pytest.fixture
def webhook_receiver() -> Iterator[WebhookReceiver]:
    """A running :class:`WebhookReceiver` with secret ``WEBHOOK_SECRET``."""
    receiver = WebhookReceiver(WEBHOOK_SECRET)
    receiver.up()
    try:
        yield receiver
    finally:
        receiver.down()


class SmtpInbox:
    """The aiosmtpd handler: keeps every mail received, parsed."""

    def __init__(self) -> None:
        self.mails: list[tuple[list[str], EmailMessage]] = []
        self._cond = threading.Condition()

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802 - aiosmtpd's hook name
        mail = message_from_bytes(envelope.content, policy=policy.default)
        assert isinstance(mail, EmailMessage)
        with self._cond:
            self.mails.append((list(envelope.rcpt_tos), mail))
            self._cond.notify_all()
        return "250 Message accepted for delivery"

    def wait_for(self, n: int, timeout_s: float = RECEIVER_WAIT_S) -> list[EmailMessage]:
        with self._cond:
            if not self._cond.wait_for(lambda: len(self.mails) >= n, timeout_s):
                pytest.fail(f"SMTP server received {len(self.mails)} of {n} mails")
            return [m for _, m in self.mails[:n]]


SMTP_USER = "coldchain"
SMTP_PASSWORD = "smtp-test-password"


def _self_signed(work_dir: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 (and its key), so STARTTLS can be verified for real."""
    from cryptography import x509  # noqa: PLC0415 - only the TLS fixture needs it
    from cryptography.hazmat.primitives import hashes, serialization  # noqa: PLC0415
    from cryptography.hazmat.primitives.asymmetric import ec  # noqa: PLC0415
    from cryptography.x509.oid import NameOID  # noqa: PLC0415

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "coldchain test SMTP")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = work_dir / "smtp-cert.pem", work_dir / "smtp-key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


def _smtp_controller(inbox: SmtpInbox, **options: Any) -> Any:
    from aiosmtpd.controller import Controller  # noqa: PLC0415 - test-only dependency

    controller = Controller(inbox, hostname="127.0.0.1", port=_free_loopback_port(), **options)
    controller.start()
    return controller


@pytest.fixture
def smtp_server() -> Iterator[tuple[int, SmtpInbox]]:
    """A plain SMTP server (aiosmtpd) on loopback: ``(port, inbox)``."""
    inbox = SmtpInbox()
    controller = _smtp_controller(inbox)
    try:
        yield controller.port, inbox
    finally:
        controller.stop()


@pytest.fixture
def smtp_tls_server(tmp_path: Path) -> Iterator[tuple[int, Path, SmtpInbox]]:
    """SMTP that requires STARTTLS and then login (``SMTP_USER``/``SMTP_PASSWORD``):
    ``(port, CA file to trust, inbox)``."""
    from aiosmtpd.smtp import AuthResult, LoginPassword  # noqa: PLC0415

    cert, key = _self_signed(tmp_path)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)

    def authenticate(server: Any, session: Any, envelope: Any, mechanism: str, data: Any) -> Any:
        ok = (
            isinstance(data, LoginPassword)
            and data.login == SMTP_USER.encode()
            and data.password == SMTP_PASSWORD.encode()
        )
        return AuthResult(success=ok, handled=False)  # False: aiosmtpd answers 535

    inbox = SmtpInbox()
    controller = _smtp_controller(
        inbox,
        tls_context=context,
        require_starttls=True,
        authenticator=authenticate,
        auth_require_tls=True,
    )
    try:
        yield controller.port, cert, inbox
    finally:
        controller.stop()
