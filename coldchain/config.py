"""Settings: ``coldchain.toml`` plus ``COLDCHAIN_*`` environment overrides (README.md,
docs/BROKER.md).

Loaded once at start, validated, frozen, and passed in. Precedence, lowest
first: defaults, the TOML file (``--config FILE`` or ``COLDCHAIN_CONFIG``, else
``./coldchain.toml`` when present), then ``COLDCHAIN_STORE``,
``COLDCHAIN_BROKER`` and ``COLDCHAIN_PRODUCTS``.

Validation at start covers what the settings point at, too: the store URL's
form, the broker URL, ``[broker] listen``, the product profile folders (and the
profiles in them) and the alert routing file. An error names where the value
came from: ``coldchain.toml: [store] url: …`` or ``COLDCHAIN_STORE: …``.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Callable, Collection, Mapping
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from pydantic_core import PydanticCustomError

from coldchain.errors import ConfigError
from coldchain.profiles import SHIPPED_PRODUCTS_DIR, ProfileSet, load_profiles
from coldchain.routing import SHIPPED_ALERT_ROUTES, AlertRouting, load_routing
from coldchain.topics import DEFAULT_PREFIX

DEFAULT_STORE_URL = "sqlite:///var/coldchain.db"
DEFAULT_CLIENT_ID = "coldchain-ingest"
DEFAULT_SILENCE_MIN = 30.0
DEFAULT_CLOCK_SKEW_MIN = 5.0
DEFAULT_BATTERY_LOW_PCT = 15.0
DEFAULT_BATCH_MAX = 5000
DEFAULT_BATCH_WAIT_MS = 20
IngestMode = Literal["process", "thread"]
DEFAULT_INGEST_MODE: IngestMode = "process"
DEFAULT_SENSOR_FAULT_REPEAT = 3
DEFAULT_SENSOR_TOLERANCE_C = 2.0
DEFAULT_SIGNING_KEY = Path("var/keys/dossier-ed25519.pem")
DEFAULT_DISPLAY_TIMEZONE = "UTC"
DEFAULT_ESCALATION_CHECK_S = 30.0
DEFAULT_BROKER_LISTEN = "127.0.0.1:1883"

ENVIRONMENT: dict[str, tuple[str, str]] = {
    "COLDCHAIN_STORE": ("store", "url"),
    "COLDCHAIN_BROKER": ("broker", "url"),
    "COLDCHAIN_PRODUCTS": ("products", "dirs"),
}
"""Environment variables that override a setting: variable → (section, key)."""


def parse_listen(text: str) -> tuple[str, int]:
    """``HOST:PORT`` (IPv6 as ``[::1]:1883``; port 0 picks a free one) → ``(host, port)``."""
    expected = "expected HOST:PORT, e.g. 127.0.0.1:1883"
    host, sep, port_text = text.strip().rpartition(":")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    if not sep or not host or any(c.isspace() for c in host):
        msg = f"{text!r} is not HOST:PORT; {expected}"
        raise ValueError(msg)
    if not port_text.isdigit() or not 0 <= int(port_text) <= 65535:
        msg = f"port {port_text!r} in {text!r} must be a number from 0 to 65535; {expected}"
        raise ValueError(msg)
    return host, int(port_text)


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


def _plain(exc: Exception) -> PydanticCustomError:
    """A validation error whose message is ``exc``'s text, without pydantic's prefix."""
    return PydanticCustomError("coldchain", "{reason}", {"reason": str(exc)})


def _checked(value: str, check: Callable[[str], object], *errors: type[Exception]) -> str:
    """``value`` once ``check`` accepts it; its error becomes the field's one-line reason."""
    try:
        check(value)
    except errors as exc:
        raise _plain(exc) from None
    return value


class StoreSettings(_Frozen):
    url: str = DEFAULT_STORE_URL

    @field_validator("url")
    @classmethod
    def _known_form(cls, value: str) -> str:
        from coldchain.store import store_path  # noqa: PLC0415 - the store package is heavier

        return _checked(value, store_path, ConfigError)


class BrokerSettings(_Frozen):
    url: str | None = Field(default=None, description="unset: start the embedded broker")
    client_id: str = DEFAULT_CLIENT_ID
    shared_group: str | None = None
    topic_prefix: str = DEFAULT_PREFIX
    listen: str = Field(
        default=DEFAULT_BROKER_LISTEN,
        description="HOST:PORT the embedded broker listens on (only when url is unset)",
    )

    @field_validator("url")
    @classmethod
    def _parseable_url(cls, value: str | None) -> str | None:
        from coldchain.errors import BrokerError  # noqa: PLC0415
        from coldchain.mqtt import parse_broker_url  # noqa: PLC0415 - paho is heavier

        return None if value is None else _checked(value, parse_broker_url, BrokerError)

    @field_validator("listen")
    @classmethod
    def _host_port(cls, value: str) -> str:
        return _checked(value, parse_listen, ValueError)

    @property
    def listen_address(self) -> tuple[str, int]:
        """``listen`` as ``(host, port)``."""
        return parse_listen(self.listen)


class IngestSettings(_Frozen):
    batch_max: int = Field(default=DEFAULT_BATCH_MAX, ge=1)
    batch_wait_ms: int = Field(default=DEFAULT_BATCH_WAIT_MS, ge=0)
    mode: IngestMode = Field(
        default=DEFAULT_INGEST_MODE,
        description=(
            "process: decode, store and evaluate in a child process, so that paho's "
            "network thread has its interpreter to itself; thread: in a thread beside it"
        ),
    )


class HealthSettings(_Frozen):
    silence_min: float = Field(default=DEFAULT_SILENCE_MIN, gt=0)
    clock_skew_min: float = Field(default=DEFAULT_CLOCK_SKEW_MIN, gt=0)
    battery_low_pct: float = Field(default=DEFAULT_BATTERY_LOW_PCT, ge=0, le=100)
    sensor_fault_repeat: int = Field(default=DEFAULT_SENSOR_FAULT_REPEAT, ge=1)
    sensor_tolerance_c: float = Field(default=DEFAULT_SENSOR_TOLERANCE_C, gt=0)


class ProductSettings(_Frozen):
    dirs: tuple[Path, ...] = ()


class DossierSettings(_Frozen):
    """Dossier signing (docs/DOSSIER.md) and how signed times are shown (21 CFR Part 11 §11.50)."""

    signing_key: Path = Field(
        default=DEFAULT_SIGNING_KEY,
        description="Ed25519 private key (PEM); created on first use",
    )
    trusted_keys: tuple[Path, ...] = Field(
        default=(), description="public keys (PEM) whose dossiers `verify` accepts as ours"
    )
    display_timezone: str = Field(
        default=DEFAULT_DISPLAY_TIMEZONE,
        description="IANA zone for times printed in dossiers and signature manifestations",
    )

    @field_validator("display_timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            msg = f"unknown IANA time zone {value!r} (e.g. UTC, Asia/Singapore)"
            raise ValueError(msg) from None
        return value


class AlertSettings(_Frozen):
    """Alert routing and notification content (docs/ALERTS.md)."""

    routes: Path = Field(
        default=SHIPPED_ALERT_ROUTES,
        description="routing file; relative paths are read from the config file's folder",
    )
    api_base_url: str | None = Field(
        default=None,
        pattern=r"^https?://[^\s/]+",
        description="e.g. https://coldchain.example.com; notifications then carry a link",
    )
    escalation_check_s: float = Field(default=DEFAULT_ESCALATION_CHECK_S, gt=0)


class Settings(_Frozen):
    """The validated configuration of one coldchain process."""

    store: StoreSettings = StoreSettings()
    broker: BrokerSettings = BrokerSettings()
    ingest: IngestSettings = IngestSettings()
    health: HealthSettings = HealthSettings()
    products: ProductSettings = ProductSettings()
    dossier: DossierSettings = DossierSettings()
    alerts: AlertSettings = AlertSettings()
    source: str = "defaults"
    from_env: tuple[str, ...] = Field(
        default=(), description="the COLDCHAIN_* variables that set a value"
    )

    def origin(self, section: str, key: str) -> tuple[str | None, str]:
        """Where ``[section] key`` came from, as ConfigError's ``(file, field)``."""
        return _origin(section, key, self.source, self.from_env)

    def describe(self, section: str, key: str) -> str:
        """Where ``[section] key`` came from, in words: ``COLDCHAIN_STORE``,
        ``[store] url in coldchain.toml`` or ``[store] url (default)``."""
        file, field = self.origin(section, key)
        if file is not None:
            return f"{field} in {file}"
        return field if field.startswith("COLDCHAIN_") else f"{field} (default)"

    def load_profiles(self) -> ProfileSet:
        return load_profiles(SHIPPED_PRODUCTS_DIR, *self.products.dirs)

    def load_routing(
        self, *, products: Collection[str] | None = None, environ: Mapping[str, str] | None = None
    ) -> AlertRouting:
        """The validated ``[alerts] routes`` file (secrets from ``environ``)."""
        return load_routing(self.alerts.routes, environ=environ, products=products)


def _set(data: dict[str, Any], section: str, key: str, value: Any) -> None:
    data.setdefault(section, {})[key] = value


def _origin(
    section: str, key: str, source: str, from_env: Collection[str]
) -> tuple[str | None, str]:
    for variable in from_env:
        if ENVIRONMENT.get(variable) == (section, key):
            return None, variable
    return (source if source != "defaults" else None), f"[{section}] {key}"


def _loc_field(loc: tuple[int | str, ...]) -> tuple[str, str, str]:
    """pydantic's ``("products", "dirs", 0)`` → ``("products", "dirs", "[0]")``."""
    section = str(loc[0]) if loc else ""
    key = str(loc[1]) if len(loc) > 1 else ""
    rest = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in loc[2:])
    return section, key, rest


def _check_targets(settings: Settings, env: Mapping[str, str]) -> None:
    """What the settings point at exists and is valid: profile folders, routing file."""

    def error(section: str, key: str, message: str) -> ConfigError:
        file, field = settings.origin(section, key)
        return ConfigError(message, file=file, field=field)

    for folder in settings.products.dirs:
        if not folder.is_dir():
            raise error("products", "dirs", f"profile folder {folder} does not exist")
    profiles = settings.load_profiles()
    if not settings.alerts.routes.is_file():
        msg = f"alert routing file {settings.alerts.routes} does not exist"
        raise error("alerts", "routes", msg)
    settings.load_routing(products=profiles.profiles.keys(), environ=env)


def load_settings(
    config_file: Path | None = None, *, environ: Mapping[str, str] | None = None
) -> Settings:
    """Read and validate settings; errors name the file, the field and the reason."""
    env = os.environ if environ is None else environ
    path = config_file or (Path(env["COLDCHAIN_CONFIG"]) if env.get("COLDCHAIN_CONFIG") else None)
    data: dict[str, Any] = {}
    source = "defaults"
    if path is None and Path("coldchain.toml").is_file():
        path = Path("coldchain.toml")
    if path is not None:
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ConfigError("configuration file does not exist", file=str(path)) from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"not valid TOML: {exc}", file=str(path)) from exc
        source = str(path)
        alerts = data.get("alerts")
        if isinstance(alerts, dict) and isinstance(alerts.get("routes"), str):
            # like `include`: a relative routing file sits beside the config file
            alerts["routes"] = str(path.parent / alerts["routes"])
    for reserved in ("source", "from_env"):
        if reserved in data:
            raise ConfigError("Extra inputs are not permitted", file=source, field=reserved)
    from_env: list[str] = []
    for variable, (section, key) in ENVIRONMENT.items():
        if env.get(variable):
            value = env[variable]
            _set(data, section, key, [value] if key == "dirs" else value)
            from_env.append(variable)
    data["source"] = source
    data["from_env"] = tuple(from_env)
    try:
        settings = Settings.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        section, key, rest = _loc_field(tuple(err["loc"]))
        file, field = _origin(section, key, source, from_env)
        if not key:
            field = f"[{section}]"
        reason = err["msg"]
        if err["type"] != "coldchain":
            reason += f" (got {err.get('input')!r})"
        raise ConfigError(reason, file=file, field=field + rest) from exc
    _check_targets(settings, env)
    return settings
