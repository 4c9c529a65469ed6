"""Alert routing (docs/ALERTS.md): which channels hear of an alert, and whom it escalates to. Pure.

``configs/alerts.toml`` names **channels** (where a notification goes: the
MQTT alert topic, a webhook, an e-mail list, the log) and **routes** (which
alerts go to which channels). An alert goes to the channels of *every* route
that matches it; a channel named by several routes gets it once. A route
matches when each of its ``match`` fields that is set lists the alert's
value (severity, alert type, product, origin country, destination country,
consignee); a route without ``match`` takes every alert.

Escalation: a route with ``escalate_to = "other"`` and ``escalate_after_min``
hands an alert that is still unacknowledged that long after it was raised to
the route ``other``, whose own ``escalate_to`` continues the chain (each step
counted from the previous one). Only alerts of ``escalate_severities``
(default: critical) escalate. Routes marked ``escalation_only`` are reached
only that way.

The file is validated at start; every error names the file, the field and the
reason (:class:`~coldchain.errors.ConfigError`). Secrets are best read from
the environment (``secret_env``, ``password_env``), never committed.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from coldchain.alerts import Alert, AlertType
from coldchain.errors import ConfigError
from coldchain.models import MS_PER_MIN, Shipment
from coldchain.notify import EVENTS, Event
from coldchain.profiles import Severity, _field_path
from coldchain.shipped import SHIPPED_CONFIGS

SHIPPED_ALERT_ROUTES = SHIPPED_CONFIGS / "alerts.toml"
"""The routing shipped with coldchain: every alert to the log and the MQTT alert topic."""

DEFAULT_MQTT_TOPIC = "{prefix}/shipments/{shipment_id}/alerts"
DEFAULT_RETRY_INITIAL_S = 1.0
DEFAULT_RETRY_MAX_S = 300.0
DEFAULT_RETRY_JITTER = 0.2
DEFAULT_GIVE_UP_AFTER = 5
DEFAULT_WEBHOOK_TIMEOUT_S = 5.0
DEFAULT_SMTP_TIMEOUT_S = 10.0
DEFAULT_SMTP_PORT = 25
DEFAULT_SUBJECT_PREFIX = "[coldchain]"

NOTIFY_EVENTS: tuple[Event, ...] = ("raised", "escalated", "digest")
"""Events a channel receives unless it lists its own (MQTT: all of them)."""

_ID = r"^[A-Za-z0-9._-]{1,64}$"
_ENV = r"^[A-Za-z_][A-Za-z0-9_]*$"
_CHANNEL_TYPES = ("log", "mqtt", "webhook", "email")


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class RetryPolicy(_Frozen):
    """Exponential back-off with jitter between delivery attempts of one channel."""

    initial_s: float = Field(default=DEFAULT_RETRY_INITIAL_S, gt=0)
    max_s: float = Field(default=DEFAULT_RETRY_MAX_S, gt=0)
    jitter: float = Field(default=DEFAULT_RETRY_JITTER, ge=0, le=1)
    give_up_after: int = Field(
        default=DEFAULT_GIVE_UP_AFTER,
        ge=1,
        description="attempts refused by the receiver (HTTP 4xx, SMTP 5xx) before 'failed'",
    )

    @model_validator(mode="after")
    def _ordered(self) -> RetryPolicy:
        if self.max_s < self.initial_s:
            msg = "max_s must be at least initial_s"
            raise ValueError(msg)
        return self


class RateLimit(_Frozen):
    """At most ``max`` notifications per shipment per ``window_min`` on one channel.

    The rest are held and sent as one digest when the window ends. Critical
    alerts are never held unless ``include_critical`` is set.
    """

    max: int = Field(ge=1)
    window_min: float = Field(gt=0)
    include_critical: bool = False


class _Channel(_Frozen):
    events: tuple[Event, ...] = NOTIFY_EVENTS
    retry: RetryPolicy = RetryPolicy()
    rate_limit: RateLimit | None = None


class LogChannel(_Channel):
    type: Literal["log"]
    level: Literal["info", "warning", "error"] = "warning"


class MqttChannel(_Channel):
    """The alert topic of docs/PROTOCOL.md, topics, through coldchain's own broker connection (QoS
    1)."""

    type: Literal["mqtt"]
    topic: str = DEFAULT_MQTT_TOPIC
    events: tuple[Event, ...] = EVENTS

    @model_validator(mode="after")
    def _topic(self) -> MqttChannel:
        if "{shipment_id}" not in self.topic or any(c in self.topic for c in "+#"):
            msg = "topic must contain {shipment_id} and no wildcards (+, #)"
            raise ValueError(msg)
        return self


class WebhookChannel(_Channel):
    """JSON POST, signed: ``X-Coldchain-Signature: sha256=HMAC(secret, "{timestamp}.{body}")``."""

    type: Literal["webhook"]
    url: str
    secret: str | None = Field(default=None, repr=False)
    secret_env: str | None = Field(default=None, pattern=_ENV)
    timeout_s: float = Field(default=DEFAULT_WEBHOOK_TIMEOUT_S, gt=0)
    headers: dict[str, str] = Field(default_factory=dict)
    ca_file: Path | None = None

    @model_validator(mode="after")
    def _valid(self) -> WebhookChannel:
        parts = urlsplit(self.url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            msg = f"url {self.url!r} must be http:// or https:// with a host"
            raise ValueError(msg)
        if (self.secret is None) == (self.secret_env is None):
            msg = "set exactly one of secret_env (preferred) or secret"
            raise ValueError(msg)
        return self


class EmailChannel(_Channel):
    """Plain text and HTML over SMTP; STARTTLS and login when configured."""

    type: Literal["email"]
    host: str
    port: int = Field(default=DEFAULT_SMTP_PORT, ge=1, le=65535)
    starttls: bool = False
    username: str | None = None
    password_env: str | None = Field(default=None, pattern=_ENV)
    sender: str = Field(pattern=r"^[^@\s]+@[^@\s]+$")
    to: tuple[Annotated[str, Field(pattern=r"^[^@\s]+@[^@\s]+$")], ...] = Field(min_length=1)
    subject_prefix: str = DEFAULT_SUBJECT_PREFIX
    timeout_s: float = Field(default=DEFAULT_SMTP_TIMEOUT_S, gt=0)
    ca_file: Path | None = None

    @model_validator(mode="after")
    def _login(self) -> EmailChannel:
        if (self.username is None) != (self.password_env is None):
            msg = "set both username and password_env to log in, or neither"
            raise ValueError(msg)
        return self


ChannelConfig = Annotated[
    LogChannel | MqttChannel | WebhookChannel | EmailChannel, Field(discriminator="type")
]


class Match(_Frozen):
    """Each field that is set must list the alert's value; unset fields match anything."""

    severity: tuple[Severity, ...] | None = None
    type: tuple[AlertType, ...] | None = None
    product: tuple[str, ...] | None = None
    origin: tuple[Annotated[str, Field(pattern=r"^[A-Z]{2}$")], ...] | None = None
    destination: tuple[Annotated[str, Field(pattern=r"^[A-Z]{2}$")], ...] | None = None
    consignee: tuple[str, ...] | None = None


class Route(_Frozen):
    id: str = Field(pattern=_ID)
    match: Match = Match()
    channels: tuple[str, ...] = Field(min_length=1)
    escalate_after_min: float | None = Field(default=None, gt=0)
    escalate_to: str | None = None
    escalation_only: bool = False
    action: str | None = Field(default=None, description="what to do, overriding the default")

    @model_validator(mode="after")
    def _escalation(self) -> Route:
        if (self.escalate_to is None) != (self.escalate_after_min is None):
            msg = "set both escalate_to and escalate_after_min, or neither"
            raise ValueError(msg)
        if self.escalation_only and self.match != Match():
            msg = "an escalation_only route is reached by escalation only; remove its match"
            raise ValueError(msg)
        return self


class AlertRouting(_Frozen):
    """The validated ``alerts.toml``; ``secrets`` holds what ``*_env`` named, by channel."""

    escalate_severities: tuple[Severity, ...] = ("critical",)
    channels: dict[str, ChannelConfig] = Field(min_length=1)
    routes: tuple[Route, ...] = Field(min_length=1)
    source: str = "defaults"
    secrets: dict[str, str] = Field(default_factory=dict, repr=False)

    def route(self, route_id: str) -> Route:
        for route in self.routes:
            if route.id == route_id:
                return route
        raise KeyError(route_id)


# -- loading ---------------------------------------------------------------------------


def load_routing(
    path: Path,
    *,
    environ: Mapping[str, str] | None = None,
    products: Collection[str] | None = None,
) -> AlertRouting:
    """Read and validate a routing file; errors name the file, the field and the reason.

    ``environ`` supplies the secrets named by ``secret_env``/``password_env``
    (default: the process environment). ``products``, when given, are the
    known product profile ids that ``match.product`` may name.
    """
    source = str(path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError("alert routing file does not exist", file=source) from None
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"not valid TOML: {exc}", file=source) from exc
    return parse_routing(data, source=source, environ=environ, products=products)


def parse_routing(
    data: Mapping[str, Any],
    *,
    source: str,
    environ: Mapping[str, str] | None = None,
    products: Collection[str] | None = None,
) -> AlertRouting:
    """Validate routing already parsed from TOML (see :func:`load_routing`)."""
    env = os.environ if environ is None else environ
    try:
        routing = AlertRouting.model_validate({**data, "source": source})
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = list(err["loc"])
        if len(loc) > 2 and loc[0] == "channels" and loc[2] in _CHANNEL_TYPES:
            del loc[2]  # pydantic's union tag, not a field of the file
        reason = err["msg"].removeprefix("Value error, ")
        if err["type"] not in ("missing", "union_tag_invalid"):
            reason += f" (got {err.get('input')!r})"
        raise ConfigError(reason, file=source, field=_field_path(loc)) from exc

    def fail(field: str, reason: str) -> ConfigError:
        return ConfigError(reason, file=source, field=field)

    ids = [r.id for r in routing.routes]
    known_channels = ", ".join(sorted(routing.channels))
    for i, route in enumerate(routing.routes):
        if ids.index(route.id) != i:
            raise fail(f"routes[{i}].id", f"duplicate route id {route.id!r}")
        for j, name in enumerate(route.channels):
            if name not in routing.channels:
                reason = f"unknown channel {name!r} (defined: {known_channels})"
                raise fail(f"routes[{i}].channels[{j}]", reason)
        if route.escalate_to is not None and route.escalate_to not in ids:
            raise fail(f"routes[{i}].escalate_to", f"unknown route {route.escalate_to!r}")
        if products is not None:
            for j, product in enumerate(route.match.product or ()):
                if product not in products:
                    known = ", ".join(sorted(products))
                    reason = f"unknown product profile {product!r} (known: {known})"
                    raise fail(f"routes[{i}].match.product[{j}]", reason)
    targets = {r.escalate_to for r in routing.routes}
    for i, route in enumerate(routing.routes):
        if route.escalation_only and route.id not in targets:
            reason = f"route {route.id!r} is escalation_only but no route escalates to it"
            raise fail(f"routes[{i}].escalation_only", reason)
        seen = [route.id]
        step: Route | None = route
        while step is not None and step.escalate_to is not None:
            if step.escalate_to in seen:
                chain = " → ".join([*seen, step.escalate_to])
                raise fail(f"routes[{i}].escalate_to", f"escalation loops: {chain}")
            seen.append(step.escalate_to)
            step = routing.route(step.escalate_to)
    if not any(not r.escalation_only for r in routing.routes):
        raise fail("routes", "every route is escalation_only; no alert would go anywhere")
    secrets: dict[str, str] = {}
    for name, channel in routing.channels.items():
        var = None
        if isinstance(channel, WebhookChannel):
            var = channel.secret_env
            if channel.secret is not None:
                secrets[name] = channel.secret
        elif isinstance(channel, EmailChannel):
            var = channel.password_env
        if var is not None:
            if not env.get(var):
                field = "secret_env" if isinstance(channel, WebhookChannel) else "password_env"
                reason = f"environment variable {var} is not set"
                raise fail(f"channels.{name}.{field}", reason)
            secrets[name] = env[var]
    return routing.model_copy(update={"secrets": secrets})


# -- matching and escalation ---------------------------------------------------------------


def matches(match: Match, alert: Alert, shipment: Shipment | None) -> bool:
    """True when every field set in ``match`` lists the alert's (or its shipment's) value."""
    consignee = shipment.extra.get("consignee") if shipment is not None else None
    checks: tuple[tuple[tuple[str, ...] | None, str | None], ...] = (
        (match.severity, alert.severity),
        (match.type, alert.type),
        (match.product, shipment.product if shipment else None),
        (match.origin, shipment.origin if shipment else None),
        (match.destination, shipment.destination if shipment else None),
        (match.consignee, consignee),
    )
    return all(allowed is None or value in allowed for allowed, value in checks)


def routes_for(routing: AlertRouting, alert: Alert, shipment: Shipment | None) -> list[Route]:
    """The routes an alert goes to when raised, in file order."""
    return [
        r for r in routing.routes if not r.escalation_only and matches(r.match, alert, shipment)
    ]


@dataclass(frozen=True, slots=True)
class Target:
    """One channel an event goes to, and the route that sent it there."""

    channel: str
    route: str


def targets(routing: AlertRouting, routes: Collection[Route], event: Event) -> list[Target]:
    """Each channel of ``routes`` that takes ``event``, once, credited to its first route."""
    seen: dict[str, Target] = {}
    for route in routes:
        for name in route.channels:
            if name not in seen and event in routing.channels[name].events:
                seen[name] = Target(name, route.id)
    return list(seen.values())


@dataclass(frozen=True, slots=True)
class EscalationStep:
    """An escalation that is due: hand the alert to ``route`` (chain ``level``)."""

    route: Route
    level: int
    due_ms: int


def due_escalations(
    routing: AlertRouting,
    alert: Alert,
    shipment: Shipment | None,
    *,
    state: str,
    escalated: Mapping[str, int],
    now_ms: int,
) -> list[EscalationStep]:
    """Escalations due at ``now_ms`` for an alert (docs/ALERTS.md).

    ``escalated`` maps the routes already escalated to onto when that happened
    (wall clock, epoch ms). The first step of each chain is due
    ``escalate_after_min`` after the alert was detected, each later step that
    long after the step before it. One step per chain per call: a late check
    never skips a level's own delay.
    """
    if state != "open" or alert.severity not in routing.escalate_severities:
        return []
    due: dict[str, EscalationStep] = {}
    for root in routes_for(routing, alert, shipment):
        since, route, level = alert.detected_ms, root, 0
        while route.escalate_to is not None and route.escalate_after_min is not None:
            nxt, level = routing.route(route.escalate_to), level + 1
            at = since + round(route.escalate_after_min * MS_PER_MIN)
            if nxt.id in escalated:
                since, route = escalated[nxt.id], nxt
                continue
            if now_ms >= at and nxt.id not in due:
                due[nxt.id] = EscalationStep(nxt, level, at)
            break
    return sorted(due.values(), key=lambda s: (s.level, s.route.id))


def action_for(routes: Collection[Route]) -> str | None:
    """The first route's own ``action`` text, if any route sets one."""
    return next((r.action for r in routes if r.action), None)
