"""Product profiles: the stability limits a shipment is evaluated against (docs/EVALUATION.md,
profiles).

One TOML file per product. The shipped profiles live in ``configs/products``;
``COLDCHAIN_PRODUCTS`` (or ``[products] dirs``) names a folder of the user's
own, loaded beside them. A user profile may replace a shipped one of the same
id only when it says so (``overrides = "<id>"``); otherwise, and for two
user profiles of one id, loading is refused. A file that does not validate, or
whose limits leave no temperature in range, is refused with the file, the field
and the reason.
"""

from __future__ import annotations

import hashlib
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Self

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from coldchain.errors import ConfigError
from coldchain.shipped import SHIPPED_CONFIGS

DEFAULT_ACTIVATION_ENERGY_KJ_MOL = 83.144
"""docs/EVALUATION.md: ΔH for MKT unless the profile sets its own."""

Severity = Literal["info", "warning", "critical"]
Direction = Literal["above", "below"]


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class _Limited(_Frozen):
    above_c: float | None = None
    below_c: float | None = None

    @model_validator(mode="after")
    def _one_side(self) -> Self:
        if (self.above_c is None) == (self.below_c is None):
            msg = "set exactly one of above_c or below_c"
            raise ValueError(msg)
        return self

    @property
    def direction(self) -> Direction:
        return "above" if self.above_c is not None else "below"

    @property
    def limit_c(self) -> float:
        value = self.above_c if self.above_c is not None else self.below_c
        assert value is not None  # guaranteed by _one_side
        return value

    @property
    def limit_key(self) -> tuple[Direction, float]:
        return (self.direction, self.limit_c)


class Alarm(_Limited):
    """A single-event alarm (``delay_min``) and/or a cumulative one (``cumulative_min``)."""

    id: str = Field(pattern=r"^[A-Za-z0-9._-]{1,64}$")
    delay_min: float | None = Field(default=None, ge=0)
    cumulative_min: float | None = Field(default=None, ge=0)
    severity: Severity = "critical"

    @model_validator(mode="after")
    def _has_condition(self) -> Self:
        if self.delay_min is None and self.cumulative_min is None:
            msg = "set delay_min and/or cumulative_min"
            raise ValueError(msg)
        return self


class Budget(_Limited):
    """A stability budget band, consumed over every shipment of one lot (docs/EVALUATION.md)."""

    id: str = Field(pattern=r"^[A-Za-z0-9._-]{1,64}$")
    allowance_min: float = Field(gt=0)


class Predict(_Frozen):
    horizon_min: float = Field(default=120, gt=0)
    window_min: float = Field(default=60, gt=0)


class Profile(_Frozen):
    """A validated product profile. ``sha256`` is the hash of the file's bytes."""

    id: str = Field(pattern=r"^[A-Za-z0-9._-]{1,64}$")
    name: str
    storage: str = ""
    hs_code: str | None = None
    max_gap_min: float = Field(gt=0)
    mkt: bool = True
    activation_energy_kj_mol: float = Field(default=DEFAULT_ACTIVATION_ENERGY_KJ_MOL, gt=0)
    alarms: tuple[Alarm, ...] = ()
    budget: tuple[Budget, ...] = ()
    predict: Predict | None = None
    overrides: str | None = Field(
        default=None, description="the shipped profile id this user profile replaces (its own id)"
    )
    sha256: str = ""

    @model_validator(mode="after")
    def _unique_ids(self) -> Self:
        seen: set[str] = set()
        items: tuple[Alarm | Budget, ...] = (*self.alarms, *self.budget)
        for item in items:
            if item.id in seen:
                msg = f"duplicate alarm/budget id {item.id!r}"
                raise ValueError(msg)
            seen.add(item.id)
        if not self.alarms and not self.budget:
            msg = "a profile needs at least one alarm or budget"
            raise ValueError(msg)
        return self

    def limit_keys(self) -> tuple[tuple[Direction, float], ...]:
        """Distinct (direction, limit) pairs in profile order (docs/DOSSIER.md ``limits``)."""
        keys: dict[tuple[Direction, float], None] = {}
        for item in (*self.alarms, *self.budget):
            keys.setdefault(item.limit_key, None)
        return tuple(keys)


def _field_path(loc: Iterable[int | str]) -> str:
    path = ""
    for part in loc:
        path += f"[{part}]" if isinstance(part, int) else (f".{part}" if path else str(part))
    return path or "(file)"


def parse_profile(data: bytes, *, source: str) -> Profile:
    """Parse and validate one profile TOML document; errors name source, field and reason."""
    try:
        raw = tomllib.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"not valid TOML: {exc}", file=source) from exc
    raw["sha256"] = hashlib.sha256(data).hexdigest()
    try:
        profile = Profile.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        raise ConfigError(
            first["msg"] + (f" (got {first['input']!r})" if first["type"] != "missing" else ""),
            file=source,
            field=_field_path(first["loc"]),
        ) from exc
    problem = contradiction(profile)
    if problem is not None:
        raise ConfigError(problem[1], file=source, field=problem[0])
    if profile.overrides is not None and profile.overrides != profile.id:
        msg = f"{profile.overrides!r} must be the profile's own id {profile.id!r}"
        raise ConfigError(msg, file=source, field="overrides")
    return profile


def contradiction(profile: Profile) -> tuple[str, str] | None:
    """``(field, reason)`` when a ``below_c`` limit is at or above an ``above_c`` limit.

    An alarm (or budget) above 2 °C and one below 8 °C leave no temperature in
    range: every reading would be an excursion. Pure; :func:`parse_profile` refuses it.
    """
    items: list[tuple[str, _Limited]] = [
        *((f"alarms[{i}]", a) for i, a in enumerate(profile.alarms)),
        *((f"budget[{i}]", b) for i, b in enumerate(profile.budget)),
    ]
    highs = [(name, item.above_c) for name, item in items if item.above_c is not None]
    for name, item in items:
        if item.below_c is None:
            continue
        for high_name, above_c in highs:
            if item.below_c > above_c:
                return (
                    f"{name}.below_c",
                    f"{item.below_c} is above {high_name}.above_c {above_c}: "
                    "every temperature would be out of range",
                )
            if item.below_c == above_c:
                return (
                    f"{name}.below_c",
                    f"{item.below_c} equals {high_name}.above_c {above_c}: "
                    f"every temperature but exactly {above_c} would be out of range",
                )
    return None


@dataclass(frozen=True)
class ProfileSet:
    """Profiles by id, loaded once at start-up and passed in."""

    profiles: Mapping[str, Profile]

    def get(self, profile_id: str) -> Profile:
        try:
            return self.profiles[profile_id]
        except KeyError:
            known = ", ".join(sorted(self.profiles)) or "none"
            msg = f"unknown product profile {profile_id!r} (known: {known})"
            raise ConfigError(msg) from None

    def __contains__(self, profile_id: object) -> bool:
        return profile_id in self.profiles


SHIPPED_PRODUCTS_DIR = SHIPPED_CONFIGS / "products"


def load_profiles(*folders: Path) -> ProfileSet:
    """Load every ``*.toml`` in the folders: the first is the shipped one, the rest the user's.

    A user profile reusing a shipped id replaces it only with ``overrides = "<id>"``;
    ``overrides`` naming no shipped profile, and one id defined twice, are refused.
    """
    profiles: dict[str, Profile] = {}
    origin: dict[str, Path] = {}
    shipped: frozenset[str] = frozenset()
    for index, folder in enumerate(folders):
        if not folder.is_dir():
            raise ConfigError("profile folder does not exist", file=str(folder))
        for path in sorted(folder.glob("*.toml")):
            profile = parse_profile(path.read_bytes(), source=str(path))
            source = str(path)
            earlier = origin.get(profile.id)
            if earlier is not None and (index == 0 or earlier.parent != folders[0]):
                msg = f"profile id {profile.id!r} is also defined in {earlier}"
                raise ConfigError(msg, file=source, field="id")
            if index > 0 and profile.id in shipped and profile.overrides != profile.id:
                msg = (
                    f"{profile.id!r} is the id of a shipped profile; to replace it, add "
                    f'overrides = "{profile.id}" to this file, or choose another id'
                )
                raise ConfigError(msg, file=source, field="id")
            if profile.overrides is not None and profile.id not in shipped:
                known = ", ".join(sorted(shipped)) or "none"
                msg = f"there is no shipped profile {profile.overrides!r} to override ({known})"
                raise ConfigError(msg, file=source, field="overrides")
            profiles[profile.id] = profile
            origin[profile.id] = path
        if index == 0:
            shipped = frozenset(profiles)
    return ProfileSet(profiles)
