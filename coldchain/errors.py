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
    ├── StoreError             the store failed or holds inconsistent data
    │   └── NotFoundError      a shipment, logger or alert id does not exist
    ├── ShipmentError          a shipment cannot be created or changed as asked
    └── BrokerError            the MQTT broker cannot be reached or refused us
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


class StoreError(ColdchainError):
    """The store failed, or holds data that contradicts what was asked."""


class NotFoundError(StoreError):
    """A shipment, logger or alert id does not exist in the store."""

    def __init__(self, kind: str, ident: str) -> None:
        self.kind = kind
        self.ident = ident
        super().__init__(f"{kind} {ident!r} not found")


class ShipmentError(ColdchainError):
    """A shipment cannot be created or changed as asked."""


class BrokerError(ColdchainError):
    """The MQTT broker cannot be reached, or refused the connection."""
