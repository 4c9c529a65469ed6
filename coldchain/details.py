"""Shipment details beyond the core fields (docs/DOSSIER.md, custody and shipment details), pure:
which exist, how each is checked.

Parties, sites, courier and air waybill, packaging, route, value, incoterm,
planned dates, permits and the chain-of-identity code are stored as strings
in :attr:`Shipment.extra <coldchain.models.Shipment.extra>`; this module is
the one place that knows their keys, validates and normalises their values,
and says which of them may appear in customs documents (``customs=True``).

Privacy by construction (docs/DOSSIER.md): there is no key for a patient's name
and unknown keys are refused, so a name has no field to travel in. The
chain-of-identity code must look like a code (letters, digits, ``-`` and
``.``, with at least four digits): a name cannot pass. Free text that is not
an organisation or an address (custody notes, signature meanings,
calibration references) has ``customs=False`` and never reaches
:mod:`coldchain.customs`.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Literal

from coldchain.errors import ShipmentError
from coldchain.models import dt_to_ms, iso

FieldKind = Literal[
    "org",
    "address",
    "text",
    "code",
    "coi",
    "country",
    "currency",
    "decimal",
    "int",
    "datetime",
    "bool",
    "packaging",
    "incoterm",
    "route",
    "digits",
    "awb",
    "use",
]

Packaging = Literal["ln2-dry-shipper", "dry-ice", "passive-2-8", "active"]
PACKAGING: tuple[Packaging, ...] = ("ln2-dry-shipper", "dry-ice", "passive-2-8", "active")
"""docs/DOSSIER.md, custody and shipment details packaging types."""

INCOTERMS = ("EXW", "FCA", "CPT", "CIP", "DAP", "DPU", "DDP", "FAS", "FOB", "CFR", "CIF")
"""Incoterms® 2020."""

USES: Mapping[str, str] = {
    "clinical-trial": "Investigational medicinal product for a clinical trial; not for sale",
    "named-patient": "Patient-specific therapy for named-patient treatment, identified by its "
    "chain-of-identity code only; not for sale",
    "commercial": "Commercial supply of an authorised medicinal product",
    "compassionate-use": "Compassionate-use supply; not for sale",
    "return": "Return to the manufacturer; not for sale",
}
"""``description_of_use``: a fixed choice and its customs wording, never free text."""

ORG_MAX = 120
ADDRESS_MAX = 300
TEXT_MAX = 200
COI_MIN_DIGITS = 4

_COI = re.compile(r"^[A-Z0-9][A-Z0-9.-]{5,47}$")
_CODE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9 ./:-]{0,63}$")
_HUB = re.compile(r"^[A-Z0-9]{3,5}$")
_PREFIX_ID = re.compile(r"^[a-z0-9][a-z0-9-]{0,40}$")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_PERSONAL_TITLE = re.compile(r"^(mr|mrs|ms|miss|mx)\.?\s", re.IGNORECASE)
_TRUE = frozenset({"true", "yes", "1", "y"})
_FALSE = frozenset({"false", "no", "0", "n"})


@dataclass(frozen=True, slots=True)
class DetailField:
    """One settable detail: ``coldchain shipment set ID key=value``."""

    key: str
    label: str
    kind: FieldKind
    help: str
    customs: bool


FIELDS: tuple[DetailField, ...] = (
    DetailField(
        "coi_code",
        "Chain-of-identity code",
        "coi",
        "pseudonymous code linking to the patient only inside the treatment centre; never a name",
        customs=True,
    ),
    DetailField("consignor", "Consignor (shipper)", "org", "organisation sending", customs=True),
    DetailField("consignor_address", "Consignor address", "address", "", customs=True),
    DetailField("consignee", "Consignee", "org", "receiving organisation (site)", customs=True),
    DetailField("consignee_address", "Consignee address", "address", "", customs=True),
    DetailField("origin_site", "Origin site", "org", "site the shipment leaves", customs=True),
    DetailField("destination_site", "Destination site", "org", "site it goes to", customs=True),
    DetailField(
        "importer_of_record", "Importer of record", "org", "licensed importer", customs=True
    ),
    DetailField("importer_address", "Importer address", "address", "", customs=True),
    DetailField(
        "importer_tax_id",
        "Importer tax / customs id",
        "code",
        "e.g. NPWP (ID), TIN (PH), EIN (US), UEN (SG)",
        customs=True,
    ),
    DetailField("courier", "Courier", "org", "specialist courier", customs=True),
    DetailField(
        "awb",
        "Air waybill",
        "awb",
        "IATA: 3-digit prefix, 8-digit serial, e.g. 618-12345675",
        customs=True,
    ),
    DetailField("packaging", "Packaging", "packaging", " | ".join(PACKAGING), customs=True),
    DetailField("dry_ice_kg", "Dry ice, net kg per package", "decimal", "", customs=True),
    DetailField("packages", "Number of packages", "int", "default 1", customs=True),
    DetailField("gross_kg", "Gross weight, kg (all packages)", "decimal", "", customs=True),
    DetailField("net_kg", "Net weight of the goods, kg", "decimal", "", customs=True),
    DetailField("dimensions_cm", "Package dimensions, cm", "code", "e.g. 40x40x65", customs=True),
    DetailField(
        "route", "Route via hubs", "route", "hub codes in order, e.g. SIN>CGK", customs=True
    ),
    DetailField("declared_value", "Declared value", "decimal", "per shipment", customs=True),
    DetailField("currency", "Currency", "currency", "ISO 4217, e.g. USD", customs=True),
    DetailField(
        "no_commercial_value",
        "No commercial value",
        "bool",
        "true: value for customs purposes only",
        customs=True,
    ),
    DetailField("incoterm", "Incoterm", "incoterm", " ".join(INCOTERMS), customs=True),
    DetailField("quantity", "Quantity and unit", "code", "e.g. 1 bag", customs=True),
    DetailField(
        "country_of_origin",
        "Country of origin of the goods",
        "country",
        "default: the shipment's origin",
        customs=True,
    ),
    DetailField(
        "description_of_use",
        "Description of use",
        "use",
        " | ".join(USES),
        customs=True,
    ),
    DetailField("planned_departure", "Planned departure", "datetime", "RFC 3339", customs=True),
    DetailField("planned_arrival", "Planned arrival", "datetime", "RFC 3339", customs=True),
    DetailField("un3373", "UN3373 Biological Substance, Category B", "bool", "", customs=True),
    DetailField(
        "invoice_number", "Invoice number", "code", "default: the shipment id", customs=True
    ),
    DetailField("sscc", "SSCC of the package", "digits", "18 digits (GS1)", customs=True),
    DetailField("gtin", "GTIN of the product", "digits", "14 digits (GS1)", customs=True),
)
"""Every detail a shipment may carry (docs/DOSSIER.md, custody and shipment details), in the order
they are shown."""

PERMIT_PREFIX = "permit:"
CALIBRATION_PREFIX = "calibration:"

_PERMIT = DetailField(
    "permit:<id>",
    "Permit or licence number",
    "code",
    "the id a rule pack names, e.g. permit:bpom-ski=SKI-2026-001",
    customs=True,
)
_CALIBRATION = DetailField(
    "calibration:<logger>",
    "Calibration certificate of a logger",
    "text",
    "certificate number and validity, e.g. 'DAkkS 2026-0117, valid to 2027-02-01'",
    customs=False,
)

_BY_KEY = {f.key: f for f in FIELDS}
_Check = Callable[[str, str], str]
"""A kind's checker: ``(key, text) -> stored value``; raises ValueError with the rule."""
_DIGITS = {"sscc": 18, "gtin": 14}


def field_for(key: str) -> DetailField:
    """The field a key names; an unknown key is refused with the list of known ones."""
    if key in _BY_KEY:
        return _BY_KEY[key]
    for prefix, spec in ((PERMIT_PREFIX, _PERMIT), (CALIBRATION_PREFIX, _CALIBRATION)):
        if key.startswith(prefix):
            ident = key.removeprefix(prefix)
            ok = _PREFIX_ID.match(ident) if prefix == PERMIT_PREFIX else _CODE.match(ident)
            if not ok:
                msg = f"{key!r}: the part after {prefix!r} must be an id such as 'bpom-ski'"
                raise ShipmentError(msg)
            return spec
    known = ", ".join([*_BY_KEY, "permit:<id>", "calibration:<logger>"])
    msg = f"unknown shipment detail {key!r}; known: {known}"
    raise ShipmentError(msg)


def normalise(key: str, value: str) -> str:
    """Validate one value and return its stored form; errors name the key and the rule."""
    spec = field_for(key)
    text = value.strip()
    if not text:
        msg = f"{key}: empty value; to remove it use `coldchain shipment set ID --unset {key}`"
        raise ShipmentError(msg)
    if _CONTROL.search(text):
        msg = f"{key}: control characters or line breaks are not allowed"
        raise ShipmentError(msg)
    try:
        return _KINDS[spec.kind](key, text)
    except ValueError as exc:
        raise ShipmentError(f"{key}: {exc}") from None


def _bounded(limit: int) -> _Check:
    def check(key: str, text: str) -> str:
        if len(text) > limit:
            msg = f"at most {limit} characters (got {len(text)})"
            raise ValueError(msg)
        return text

    return check


def _org(key: str, text: str) -> str:
    if _PERSONAL_TITLE.match(text):
        msg = (
            f"{text!r} looks like a person; {key} names an organisation or site "
            "(patients are identified by coi_code only)"
        )
        raise ValueError(msg)
    return _bounded(ORG_MAX)(key, text)


def _coi(key: str, text: str) -> str:
    code = text.upper()
    if not _COI.match(code) or sum(c.isdigit() for c in code) < COI_MIN_DIGITS:
        msg = (
            "a chain-of-identity code is 6-48 characters of A-Z, 0-9, '-' and '.', with at "
            f"least {COI_MIN_DIGITS} digits (e.g. COI-SG-2026-000123); never a patient's name"
        )
        raise ValueError(msg)
    return code


def _code(key: str, text: str) -> str:
    # A code has a digit: permit and licence numbers, tax ids, quantities, sizes do;
    # a person's name does not, so it cannot pass for one by mistake.
    if not _CODE.match(text) or not any(c.isdigit() for c in text):
        msg = (
            f"{text!r} is not a code: letters, digits, space and . / : - only, up to 64, "
            "with at least one digit"
        )
        raise ValueError(msg)
    return text


def _awb(key: str, text: str) -> str:
    digits = text.replace("-", "").replace(" ", "")
    if not (len(digits) == 11 and digits.isdigit()):
        msg = f"{text!r} is not an air waybill number: 3-digit prefix and 8-digit serial"
        raise ValueError(msg)
    serial = digits[3:]
    if int(serial[:7]) % 7 != int(serial[7]):
        msg = f"{text!r}: the air waybill's check digit (serial mod 7) does not match"
        raise ValueError(msg)
    return f"{digits[:3]}-{serial}"


def _use(key: str, text: str) -> str:
    if text not in USES:
        msg = f"{text!r} is not one of {', '.join(USES)}"
        raise ValueError(msg)
    return text


def _country(key: str, text: str) -> str:
    if not (len(text) == 2 and text.isascii() and text.isalpha()):
        msg = f"{text!r} is not an ISO 3166 alpha-2 country code such as SG"
        raise ValueError(msg)
    return text.upper()


def _currency(key: str, text: str) -> str:
    if not (len(text) == 3 and text.isascii() and text.isalpha()):
        msg = f"{text!r} is not an ISO 4217 currency code such as USD"
        raise ValueError(msg)
    return text.upper()


def _decimal(key: str, text: str) -> str:
    try:
        number = Decimal(text)
    except InvalidOperation:
        msg = f"{text!r} is not a number"
        raise ValueError(msg) from None
    if not number.is_finite() or number < 0:
        msg = f"{text!r} must be a finite number >= 0"
        raise ValueError(msg)
    return format(number.normalize(), "f")  # 250, not 2.5E+2


def _int(key: str, text: str) -> str:
    if not text.isdigit() or int(text) < 1:
        msg = f"{text!r} must be a whole number >= 1"
        raise ValueError(msg)
    return str(int(text))


def _datetime(key: str, text: str) -> str:
    try:
        dt = datetime.fromisoformat(text)
    except ValueError:
        msg = f"{text!r} is not an RFC 3339 time"
        raise ValueError(msg) from None
    if dt.tzinfo is None:
        msg = f"{text!r} has no time zone; add Z or an offset"
        raise ValueError(msg)
    return iso(dt_to_ms(dt))


def _bool(key: str, text: str) -> str:
    low = text.lower()
    if low in _TRUE:
        return "true"
    if low in _FALSE:
        return "false"
    msg = f"{text!r} is not true or false"
    raise ValueError(msg)


def _packaging(key: str, text: str) -> str:
    if text not in PACKAGING:
        msg = f"{text!r} is not one of {', '.join(PACKAGING)}"
        raise ValueError(msg)
    return text


def _incoterm(key: str, text: str) -> str:
    if text.upper() not in INCOTERMS:
        msg = f"{text!r} is not an Incoterm 2020 ({' '.join(INCOTERMS)})"
        raise ValueError(msg)
    return text.upper()


def _route(key: str, text: str) -> str:
    hubs = [h.strip().upper() for h in re.split(r"[>,]", text)]
    if not hubs or not all(_HUB.match(h) for h in hubs):
        msg = f"{text!r}: hub codes (IATA or UN/LOCODE) separated by '>', e.g. SIN>CGK"
        raise ValueError(msg)
    return ">".join(hubs)


def _digits(key: str, text: str) -> str:
    want = _DIGITS[key]
    if not (text.isdigit() and len(text) == want):
        msg = f"{text!r} must be {want} digits"
        raise ValueError(msg)
    return text


_KINDS: Mapping[FieldKind, _Check] = {
    "org": _org,
    "address": _bounded(ADDRESS_MAX),
    "text": _bounded(TEXT_MAX),
    "code": _code,
    "coi": _coi,
    "country": _country,
    "currency": _currency,
    "decimal": _decimal,
    "int": _int,
    "datetime": _datetime,
    "bool": _bool,
    "packaging": _packaging,
    "incoterm": _incoterm,
    "route": _route,
    "digits": _digits,
    "awb": _awb,
    "use": _use,
}


def apply_changes(extra: Mapping[str, str], changes: Mapping[str, str | None]) -> dict[str, str]:
    """``extra`` with ``changes`` applied: a value sets (validated), ``None`` removes."""
    out = dict(extra)
    for key, value in changes.items():
        field_for(key)
        if value is None:
            out.pop(key, None)
        else:
            out[key] = normalise(key, value)
    return out


def parse_assignment(text: str) -> tuple[str, str]:
    """``key=value`` from the command line."""
    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        msg = f"{text!r}: expected key=value, e.g. coi_code=COI-SG-2026-000123"
        raise ShipmentError(msg)
    return key.strip(), value


@dataclass(frozen=True, slots=True)
class Details:
    """The typed view of a shipment's details; absent values are ``None``."""

    values: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def of(cls, extra: Mapping[str, str]) -> Details:
        """Keep the known keys only: whatever else ``extra`` holds is never shown."""
        known: dict[str, str] = {}
        for key, value in extra.items():
            try:
                field_for(key)
            except ShipmentError:
                continue
            known[key] = value
        return cls(known)

    def get(self, key: str) -> str | None:
        return self.values.get(key)

    def flag(self, key: str) -> bool:
        return self.values.get(key) == "true"

    def number(self, key: str) -> float | None:
        value = self.values.get(key)
        if value is None:
            return None
        number = float(value)
        return number if math.isfinite(number) else None

    @property
    def packages(self) -> int:
        return int(self.values.get("packages", "1"))

    @property
    def packaging(self) -> Packaging | None:
        value = self.values.get("packaging")
        return value if value in PACKAGING else None

    @property
    def hubs(self) -> tuple[str, ...]:
        route = self.values.get("route")
        return tuple(route.split(">")) if route else ()

    @property
    def permits(self) -> dict[str, str]:
        return {
            k.removeprefix(PERMIT_PREFIX): v
            for k, v in self.values.items()
            if k.startswith(PERMIT_PREFIX)
        }

    @property
    def calibrations(self) -> dict[str, str]:
        return {
            k.removeprefix(CALIBRATION_PREFIX): v
            for k, v in self.values.items()
            if k.startswith(CALIBRATION_PREFIX)
        }

    def customs_values(self) -> dict[str, str]:
        """Only the values that may appear in customs documents (``customs=True``)."""
        return {k: v for k, v in self.values.items() if field_for(k).customs}


__all__ = [
    "CALIBRATION_PREFIX",
    "FIELDS",
    "INCOTERMS",
    "PACKAGING",
    "PERMIT_PREFIX",
    "USES",
    "DetailField",
    "Details",
    "Packaging",
    "apply_changes",
    "field_for",
    "normalise",
    "parse_assignment",
]
