"""Settings: ``coldchain.toml`` plus ``COLDCHAIN_*`` environment overrides (README.md,
docs/BROKER.md).

Loaded once at start, validated, frozen, and passed in. Precedence, lowest
first: defaults, the TOML file (``--config FILE`` or ``COLDCHAIN_CONFIG``, else
``./coldchain.toml`` when present), then ``COLDCHAIN_STORE``,
``COLDCHAIN_BROKER`` and ``COLDCHAIN_PRODUCTS``.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Collection, Mapping
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

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


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class StoreSettings(_Frozen):
    url: str = DEFAULT_STORE_URL


class BrokerSettings(_Frozen):
    url: str | None = Field(default=None, description="unset: start the embedded broker")
    client_id: str = DEFAULT_CLIENT_ID
    shared_group: str | None = None
    topic_prefix: str = DEFAULT_PREFIX


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

    def load_profiles(self) -> ProfileSet:
        return load_profiles(SHIPPED_PRODUCTS_DIR, *self.products.dirs)

    def load_routing(
        self, *, products: Collection[str] | None = None, environ: Mapping[str, str] | None = None
    ) -> AlertRouting:
        """The validated ``[alerts] routes`` file (secrets from ``environ``)."""
        return load_routing(self.alerts.routes, environ=environ, products=products)


def _set(data: dict[str, Any], section: str, key: str, value: Any) -> None:
    data.setdefault(section, {})[key] = value


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
    if env.get("COLDCHAIN_STORE"):
        _set(data, "store", "url", env["COLDCHAIN_STORE"])
    if env.get("COLDCHAIN_BROKER"):
        _set(data, "broker", "url", env["COLDCHAIN_BROKER"])
    if env.get("COLDCHAIN_PRODUCTS"):
        _set(data, "products", "dirs", [env["COLDCHAIN_PRODUCTS"]])
    data["source"] = source
    try:
        return Settings.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        field = ".".join(str(p) for p in err["loc"])
        raise ConfigError(
            f"{err['msg']} (got {err.get('input')!r})", file=source, field=field
        ) from exc
