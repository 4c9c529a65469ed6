"""The one exception tree of coldchain.

Every error a user can meet derives from :class:`ColdchainError` and carries
what the user needs to act: the file, field, logger or shipment concerned.
Foreign exceptions (pydantic, sqlite3, paho, tomllib) are mapped at the
boundary with ``raise X from exc``.

::

    ColdchainError
    ├── ConfigError            a configuration or profile file is invalid (file, field, reason)
    ├── DecodeError            a telemetry payload cannot be accepted (reason, for the dead letter)
    ├── ImportFileError        an offline logger file cannot be read (file, line, reason)
    │   └── ImportInterruptedError  an import stopped part-way (Ctrl-C): what is stored stays
    ├── StoreError             the store failed or holds inconsistent data
    │   └── NotFoundError      a shipment, logger or alert id does not exist
    ├── ShipmentError          a shipment cannot be created or changed as asked
    ├── AlertError             an alert cannot change state as asked (e.g. ack a resolved one)
    ├── DeliveryError          an alert channel could not deliver (transient: retried later)
    ├── BrokerError            the MQTT broker cannot be reached or refused us
    │   └── ListenError        the embedded broker cannot listen on its address (port busy)
    ├── IngestError            the ingest process failed to start, or died; messages may need replay
    ├── SigningError           no electronic signature: unknown signer, wrong password, bad key
    └── DossierError           a dossier cannot be built, or a file is not a dossier
"""

from __future__ import annotations


class ColdchainError(Exception):
    """Root of every error coldchain raises on purpose."""


class ConfigError(ColdchainError):
    """A configuration or product profile is invalid.

    The message names the file, the field and the reason, e.g.
    ``configs/products/x.toml: alarms[0].above_c: Input should be a valid number``.
    """

    def __init__(self, message: str, *, file: str | None = None, field: str | None = None) -> None:
        self.file = file
        self.field = field
        prefix = ""
        if file:
            prefix += f"{file}: "
        if field:
            prefix += f"{field}: "
        super().__init__(prefix + message)


class DecodeError(ColdchainError):
    """A telemetry payload is rejected; ``reason`` is what goes to the dead letter."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(reason)


class ImportFileError(ColdchainError):
    """An offline logger file cannot be imported (file, line number, reason)."""

    def __init__(self, reason: str, *, file: str, line: int | None = None) -> None:
        self.file = file
        self.line = line
        self.reason = reason
        where = f"{file}:{line}" if line is not None else file
        super().__init__(f"{where}: {reason}")


class ImportInterruptedError(ImportFileError):
    """An import was interrupted part-way; the packs already committed stay stored."""


class StoreError(ColdchainError):
    """The store failed, or holds data that contradicts what was asked."""


class NotFoundError(StoreError):
    """A shipment, logger or alert id does not exist in the store."""

    def __init__(self, kind: str, ident: str) -> None:
        self.kind = kind
        self.ident = ident
        super().__init__(f"{kind} {ident!r} not found")

    def __reduce__(self) -> tuple[type[NotFoundError], tuple[str, str], dict[str, object]]:
        # Rebuilt from (kind, ident), not from the message: it crosses process boundaries.
        return (type(self), (self.kind, self.ident), self.__dict__)


class ShipmentError(ColdchainError):
    """A shipment cannot be created or changed as asked."""


class AlertError(ColdchainError):
    """An alert cannot be acknowledged, resolved or escalated as asked (docs/ALERTS.md)."""

    def __init__(self, message: str, *, alert_id: str) -> None:
        self.alert_id = alert_id
        super().__init__(f"alert {alert_id}: {message}")


class DeliveryError(ColdchainError):
    """A channel could not deliver a notification.

    ``permanent`` is False for what time may fix (receiver down, timeout, HTTP
    5xx/429, SMTP 4xx): the outbox retries with back-off, without limit. It is
    True when the receiver refused the message itself (HTTP 4xx, SMTP 5xx): the
    delivery is retried a few times, then marked failed and logged.
    """

    def __init__(self, message: str, *, channel: str, permanent: bool = False) -> None:
        self.channel = channel
        self.permanent = permanent
        super().__init__(f"channel {channel}: {message}")


class BrokerError(ColdchainError):
    """The MQTT broker cannot be reached, or refused the connection."""


class ListenError(BrokerError):
    """The embedded broker cannot listen on ``host:port`` (in use, not permitted, no such host).

    ``in_use`` is True when another process holds the port.
    """

    def __init__(self, message: str, *, in_use: bool = False) -> None:
        self.in_use = in_use
        super().__init__(message)


class IngestError(ColdchainError):
    """The process that decodes and stores messages failed to start, or died.

    The message says how many messages were not confirmed as stored and where
    they went (dead letters, when a store was at hand), so they can be replayed.
    """


class SigningError(ColdchainError):
    """An electronic signature cannot be made or a signing key cannot be used.

    Raised for an unknown or disabled signer, a wrong password (21 CFR Part 11
    §11.200 re-authentication) and an unreadable key file; the message says
    which and what to do.
    """


class DossierError(ColdchainError):
    """A dossier cannot be built, or a file given as a dossier is not one."""
