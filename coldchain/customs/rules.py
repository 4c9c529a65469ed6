"""Customs rule packs (docs/DOSSIER.md, customs): what a destination expects, as data, and the
check against it.

One TOML file per destination in ``configs/customs/{CC}.toml`` plus
``default.toml`` for any other country. A pack names its regulators, the
shipment details it needs (``required_fields``, added to the default pack's),
the permits and licence numbers (``[[permits]]``), the statements printed on
the invoice, language notes, its sources and the date it was ``reviewed``.
A pack that does not validate is refused with the file, the field and the
reason, like a product profile.

:func:`check` is pure: a shipment, its profile and a pack in, every missing
item out (``coldchain customs check``).
"""

from __future__ import annotations

import hashlib
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any, Self

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from coldchain.details import PERMIT_PREFIX, Details, field_for
from coldchain.errors import ConfigError, ShipmentError
from coldchain.models import Shipment
from coldchain.profiles import Profile
from coldchain.shipped import SHIPPED_CONFIGS

SHIPPED_CUSTOMS_DIR = SHIPPED_CONFIGS / "customs"
DEFAULT_PACK = "default"


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Source(_Frozen):
    title: str = Field(min_length=3)
    url: str = Field(pattern=r"^https?://")


class Permit(_Frozen):
    """A permit or licence number the destination requires (``permit:<id>`` on the shipment)."""

    id: str = Field(pattern=r"^[a-z0-9][a-z0-9-]{0,40}$")
    title: str
    issuer: str
    required: bool = True
    note: str = ""


class RulePack(_Frozen):
    """One destination's customs and health-regulator expectations (docs/DOSSIER.md, customs)."""

    country: str = Field(pattern=r"^([A-Z]{2}|default)$")
    name: str
    reviewed: date
    reviewed_by: str = "coldchain maintainers"
    sources: tuple[Source, ...] = Field(min_length=1)
    customs_authority: str
    regulators: tuple[str, ...] = ()
    language: str
    invoice_title: str = "Commercial invoice"
    proforma_when_no_commercial_value: bool = True
    required_fields: tuple[str, ...] = ()
    permits: tuple[Permit, ...] = ()
    statements: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()
    sha256: str = ""

    @field_validator("required_fields")
    @classmethod
    def _known_fields(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for key in value:
            try:
                field_for(key)
            except ShipmentError as exc:
                raise ValueError(str(exc)) from None
        return value

    @model_validator(mode="after")
    def _unique_permits(self) -> Self:
        ids = [p.id for p in self.permits]
        if len(ids) != len(set(ids)):
            msg = "duplicate permit id"
            raise ValueError(msg)
        return self

    def summary(self) -> dict[str, Any]:
        """Provenance for documents: which pack, reviewed when, from which sources."""
        return {
            "country": self.country,
            "name": self.name,
            "reviewed": self.reviewed.isoformat(),
            "reviewed_by": self.reviewed_by,
            "sha256": self.sha256,
            "customs_authority": self.customs_authority,
            "regulators": list(self.regulators),
            "language": self.language,
            "sources": [{"title": s.title, "url": s.url} for s in self.sources],
            "notes": list(self.notes),
        }


def parse_pack(data: bytes, *, source: str) -> RulePack:
    """Parse and validate one rule pack; errors name the file, the field and the reason."""
    try:
        raw = tomllib.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"not valid TOML: {exc}", file=source) from exc
    raw["sha256"] = hashlib.sha256(data).hexdigest()
    try:
        return RulePack.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "(file)"
        raise ConfigError(first["msg"], file=source, field=where) from exc


@dataclass(frozen=True)
class RulePacks:
    """Every pack by country code, plus ``default``."""

    packs: Mapping[str, RulePack]

    def for_country(self, country: str | None) -> RulePack:
        """The destination's pack, or the default pack when there is none."""
        if country and country.upper() in self.packs:
            return self.packs[country.upper()]
        return self.packs[DEFAULT_PACK]

    def required_fields(self, pack: RulePack) -> tuple[str, ...]:
        """The default pack's fields, then the pack's own, each once."""
        keys = dict.fromkeys((*self.packs[DEFAULT_PACK].required_fields, *pack.required_fields))
        return tuple(keys)


def load_rule_packs(folder: Path = SHIPPED_CUSTOMS_DIR) -> RulePacks:
    """Load ``{CC}.toml`` and ``default.toml``; the file name must match ``country``."""
    if not folder.is_dir():
        raise ConfigError("customs rule pack folder does not exist", file=str(folder))
    packs: dict[str, RulePack] = {}
    for path in sorted(folder.glob("*.toml")):
        pack = parse_pack(path.read_bytes(), source=str(path))
        if path.stem != pack.country:
            msg = f"file is named {path.name} but its country is {pack.country!r}"
            raise ConfigError(msg, file=str(path), field="country")
        packs[pack.country] = pack
    if DEFAULT_PACK not in packs:
        raise ConfigError("there is no default.toml rule pack", file=str(folder))
    return RulePacks(packs)


# -- the check ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Missing:
    """One item a customs broker will ask for, and how to supply it."""

    key: str
    what: str
    how: str

    def to_json(self) -> dict[str, str]:
        return {"key": self.key, "what": self.what, "how": self.how}


@dataclass(frozen=True, slots=True)
class CustomsCheck:
    shipment_id: str
    country: str
    pack: RulePack
    missing: tuple[Missing, ...]

    @property
    def ready(self) -> bool:
        return not self.missing

    def to_json(self) -> dict[str, Any]:
        return {
            "shipment_id": self.shipment_id,
            "destination": self.country,
            "ready": self.ready,
            "missing": [m.to_json() for m in self.missing],
            "rule_pack": self.pack.summary(),
        }


def _set(sid: str, key: str, example: str) -> str:
    return f"coldchain shipment set {sid} {key}={example}"


_EXAMPLES = {
    "coi_code": "COI-SG-2026-000123",
    "awb": "618-12345675",
    "packaging": "ln2-dry-shipper",
    "currency": "USD",
    "incoterm": "DAP",
    "declared_value": "1500",
    "quantity": "'1 bag'",
    "description_of_use": "named-patient",
    "planned_departure": "2026-12-01T08:00:00Z",
    "planned_arrival": "2026-12-02T08:00:00Z",
}


def check(shipment: Shipment, profile: Profile, packs: RulePacks) -> CustomsCheck:
    """Every item the destination's pack requires that the shipment lacks (docs/DOSSIER.md,
    customs)."""
    pack = packs.for_country(shipment.destination)
    details = Details.of(shipment.extra)
    sid = shipment.id
    missing: list[Missing] = []
    if not shipment.origin:
        missing.append(Missing("origin", "origin country", "register with --origin CC"))
    if not shipment.destination:
        missing.append(
            Missing("destination", "destination country", "register with --destination CC")
        )
    if not profile.hs_code:
        missing.append(
            Missing(
                "hs_code",
                f"HS code of product {profile.id}",
                f"add hs_code to the product profile {profile.id}.toml",
            )
        )
    for key in packs.required_fields(pack):
        if details.get(key) is None:
            spec = field_for(key)
            missing.append(Missing(key, spec.label, _set(sid, key, _EXAMPLES.get(key, "..."))))
    if details.packaging == "dry-ice" and details.get("dry_ice_kg") is None:
        missing.append(
            Missing(
                "dry_ice_kg",
                "dry ice net kg per package (UN1845)",
                _set(sid, "dry_ice_kg", "5.5"),
            )
        )
    for permit in pack.permits:
        key = PERMIT_PREFIX + permit.id
        if permit.required and details.get(key) is None:
            missing.append(
                Missing(
                    key,
                    f"{permit.title} ({permit.issuer})",
                    _set(sid, key, "NUMBER"),
                )
            )
    return CustomsCheck(sid, shipment.destination or "?", pack, tuple(missing))
