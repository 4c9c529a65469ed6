"""Customs-ready documents as data (docs/DOSSIER.md, customs), pure: invoice, packing list,
statements.

:func:`customs_input` is the only door into this module: it copies from a
shipment the details marked ``customs=True`` in :mod:`coldchain.details`
(organisations, addresses, codes, numbers), the product profile's name,
storage text and HS code, and the evaluation's *figures*. Custody notes,
alert messages, audit details, signature meanings and calibration notes
never get in, and there is no patient-name field to copy: whatever a person
types into those free-text fields cannot reach a customs document.

:func:`customs_documents` turns that input and the destination's rule pack
into one JSON-ready dict per document; :mod:`coldchain.customs.pdf` lays
each out as a PDF.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from coldchain.customs.rules import CustomsCheck, RulePack
from coldchain.details import PERMIT_PREFIX, USES, Details
from coldchain.models import Shipment, iso
from coldchain.profiles import Profile

DOCUMENTS = ("invoice", "packing-list", "dangerous-goods", "temperature-record", "permits")
"""File stems under ``customs/`` (each as ``.json`` and ``.pdf``)."""

NO_COMMERCIAL_VALUE = "No commercial value — value for customs purposes only."
A152 = (
    "Not restricted: insulated packaging (dry shipper) containing refrigerated liquid "
    "nitrogen fully absorbed in a porous material, not subject to the IATA Dangerous Goods "
    "Regulations under Special Provision A152."
)
MISSING = "MISSING"


@dataclass(frozen=True, slots=True)
class TemperatureFacts:
    """The evaluation's figures, nothing else (docs/DOSSIER.md, customs temperature-record
    statement)."""

    verdict: str
    readings: int
    first: str | None
    last: str | None
    min_c: float | None
    max_c: float | None
    mean_c: float | None
    mkt_c: float | None
    limits: tuple[tuple[str, float, float, int], ...]  # direction, limit, minutes out, episodes
    alarms_fired: tuple[tuple[str, str], ...]  # alarm id, severity


@dataclass(frozen=True, slots=True)
class CustomsInput:
    """Everything a customs document may show; built only by :func:`customs_input`."""

    shipment_id: str
    origin: str | None
    destination: str | None
    lot: str | None
    values: Mapping[str, str]
    product_id: str
    product_name: str
    storage: str
    hs_code: str | None
    loggers: tuple[tuple[str, float], ...]  # logger id, calibration offset °C
    temperature: TemperatureFacts | None
    prepared_ms: int
    permits: Mapping[str, str] = field(default_factory=dict)


def temperature_facts(evaluation_json: Mapping[str, Any]) -> TemperatureFacts:
    ev = evaluation_json
    return TemperatureFacts(
        verdict=str(ev["verdict"]),
        readings=int(ev["readings"]),
        first=ev.get("first_reading"),
        last=ev.get("last_reading"),
        min_c=ev.get("min_c"),
        max_c=ev.get("max_c"),
        mean_c=ev.get("mean_c"),
        mkt_c=ev.get("mkt_c"),
        limits=tuple(
            (
                str(lim["direction"]),
                float(lim["limit_c"]),
                float(lim["out_of_range_min"]),
                len(lim["episodes"]),
            )
            for lim in ev.get("limits", ())
        ),
        alarms_fired=tuple(
            (str(a["id"]), str(a["severity"])) for a in ev.get("alarms", ()) if a.get("fired")
        ),
    )


def customs_input(
    shipment: Shipment,
    profile: Profile,
    *,
    evaluation_json: Mapping[str, Any] | None,
    calibration_offsets: Mapping[str, float],
    now_ms: int,
) -> CustomsInput:
    """The customs-safe projection of a shipment (see the module docstring)."""
    details = Details.of(shipment.extra)
    values = details.customs_values()
    return CustomsInput(
        shipment_id=shipment.id,
        origin=shipment.origin,
        destination=shipment.destination,
        lot=shipment.lot,
        values={k: v for k, v in values.items() if not k.startswith(PERMIT_PREFIX)},
        permits=details.permits,
        product_id=profile.id,
        product_name=profile.name,
        storage=profile.storage,
        hs_code=profile.hs_code,
        loggers=tuple((lg, calibration_offsets.get(lg, 0.0)) for lg in shipment.loggers),
        temperature=temperature_facts(evaluation_json) if evaluation_json else None,
        prepared_ms=now_ms,
    )


def _party(inp: CustomsInput, name_key: str, address_key: str, country: str | None) -> Any:
    return {
        "name": inp.values.get(name_key, MISSING),
        "address": inp.values.get(address_key, MISSING),
        "country": country or MISSING,
    }


def _kg(value: str | None) -> str:
    return f"{value} kg" if value is not None else MISSING


def _header(inp: CustomsInput, doc: str, title: str, pack: RulePack) -> dict[str, Any]:
    return {
        "document": doc,
        "title": title,
        "shipment_id": inp.shipment_id,
        "invoice_number": inp.values.get("invoice_number", inp.shipment_id),
        "air_waybill": inp.values.get("awb", MISSING),
        "chain_of_identity_code": inp.values.get("coi_code", MISSING),
        "origin": inp.origin,
        "destination": inp.destination,
        "prepared_at": iso(inp.prepared_ms),
        "rule_pack": {
            "country": pack.country,
            "reviewed": pack.reviewed.isoformat(),
            "sha256": pack.sha256,
        },
    }


def invoice(inp: CustomsInput, pack: RulePack) -> dict[str, Any]:
    """Commercial or pro-forma invoice (docs/DOSSIER.md, customs)."""
    v = inp.values
    ncv = v.get("no_commercial_value") == "true"
    title = "Pro-forma invoice" if ncv and pack.proforma_when_no_commercial_value else None
    value = v.get("declared_value")
    currency = v.get("currency", MISSING)
    statements = [NO_COMMERCIAL_VALUE] if ncv else []
    statements += list(pack.statements)
    default_statements = [
        "The goods are a patient-specific medicinal product identified by its "
        "chain-of-identity code only."
    ]
    return _header(inp, "invoice", title or pack.invoice_title, pack) | {
        "shipper": _party(inp, "consignor", "consignor_address", inp.origin),
        "consignee": _party(inp, "consignee", "consignee_address", inp.destination),
        "importer_of_record": _party(inp, "importer_of_record", "importer_address", inp.destination)
        | {"tax_id": v.get("importer_tax_id", MISSING)},
        "incoterm": v.get("incoterm", MISSING),
        "country_of_origin": v.get("country_of_origin", inp.origin or MISSING),
        "courier": v.get("courier", MISSING),
        "items": [
            {
                "description": inp.product_name,
                "storage": inp.storage,
                "use": USES.get(v.get("description_of_use", ""), MISSING),
                "hs_code": inp.hs_code or MISSING,
                "lot": inp.lot or MISSING,
                "chain_of_identity_code": v.get("coi_code", MISSING),
                "quantity": v.get("quantity", MISSING),
                "unit_value": value or MISSING,
                "total_value": value or MISSING,
                "currency": currency,
            }
        ],
        "total_value": value or MISSING,
        "currency": currency,
        "no_commercial_value": ncv,
        "statements": default_statements + statements,
        "permits": permit_rows(inp, pack),
        "signature_block": {
            "for": v.get("consignor", MISSING),
            "fields": ["Name", "Title", "Signature", "Date", "Place"],
        },
    }


def _dry_ice_total(per_package: str, packages: int) -> str:
    return format((Decimal(per_package) * packages).normalize(), "f")


def packing_list(inp: CustomsInput, pack: RulePack) -> dict[str, Any]:
    v = inp.values
    packages = int(v.get("packages", "1"))
    dry = v.get("dry_ice_kg") if v.get("packaging") == "dry-ice" else None
    return _header(inp, "packing-list", "Packing list", pack) | {
        "shipper": _party(inp, "consignor", "consignor_address", inp.origin),
        "consignee": _party(inp, "consignee", "consignee_address", inp.destination),
        "packages": packages,
        "packaging": v.get("packaging", MISSING),
        "dimensions_cm": v.get("dimensions_cm"),
        "gross_weight": _kg(v.get("gross_kg")),
        "net_weight": _kg(v.get("net_kg")),
        "dry_ice_net_kg_per_package": dry,
        "dry_ice_net_kg_total": _dry_ice_total(dry, packages) if dry else None,
        "contents": [
            {
                "description": inp.product_name,
                "lot": inp.lot or MISSING,
                "chain_of_identity_code": v.get("coi_code", MISSING),
                "quantity": v.get("quantity", MISSING),
                "hs_code": inp.hs_code or MISSING,
            }
        ],
        "marks": [d["text"] for d in dangerous_goods(inp, pack)["declarations"]],
        "data_loggers": [lg for lg, _ in inp.loggers],
        "sscc": v.get("sscc"),
    }


def dangerous_goods(inp: CustomsInput, pack: RulePack) -> dict[str, Any]:
    """docs/DOSSIER.md, customs: UN1845 with net kg; the LN2 dry-shipper statement; UN3373 where
    set."""
    v = inp.values
    packaging = v.get("packaging")
    packages = int(v.get("packages", "1"))
    declarations: list[dict[str, Any]] = []
    if packaging == "dry-ice":
        per = v.get("dry_ice_kg")
        total = _dry_ice_total(per, packages) if per else None
        declarations.append(
            {
                "un_number": "UN1845",
                "proper_shipping_name": "Dry ice",
                "class": "9",
                "packing_instruction": "954",
                "net_kg_per_package": per or MISSING,
                "packages": packages,
                "net_kg_total": total or MISSING,
                "text": (
                    f"UN1845, Dry ice, Class 9, {per or MISSING} kg net per package"
                    + (f" ({packages} packages, {total} kg net in total)" if packages > 1 else "")
                ),
            }
        )
    elif packaging == "ln2-dry-shipper":
        declarations.append({"status": "not restricted", "text": A152})
    if v.get("un3373") == "true":
        declarations.append(
            {
                "un_number": "UN3373",
                "proper_shipping_name": "Biological Substance, Category B",
                "packing_instruction": "650",
                "text": "UN3373, Biological Substance, Category B",
            }
        )
    if not declarations:
        text = {
            "passive-2-8": "Not dangerous goods: passive packaging with conditioned "
            "water-based coolants; no substance subject to the IATA DGR.",
            "active": "Active temperature-controlled container: its batteries and refrigerant "
            "are declared in the container provider's own dangerous-goods documentation.",
        }.get(packaging or "", f"Packaging {MISSING}: dangerous-goods status unknown.")
        declarations.append({"status": "not dangerous goods", "text": text})
    return _header(inp, "dangerous-goods", "Dangerous goods statement", pack) | {
        "packaging": packaging or MISSING,
        "packages": packages,
        "declarations": declarations,
        "signature_block": {
            "for": v.get("consignor", MISSING),
            "fields": ["Name", "Title", "Signature", "Date", "Place"],
        },
    }


def _fmt_c(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.1f} °C"


def temperature_record(inp: CustomsInput, pack: RulePack) -> dict[str, Any]:
    """docs/DOSSIER.md, customs: monitored range, min/max, MKT where applicable, excursions,
    verdict, loggers."""
    t = inp.temperature
    doc = _header(inp, "temperature-record", "Temperature record statement", pack) | {
        "product": inp.product_name,
        "monitored_range": inp.storage,
        "loggers": [
            {"logger_id": lg, "calibration_offset_c": offset} for lg, offset in inp.loggers
        ],
    }
    if t is None or t.readings == 0:
        return doc | {
            "status": "monitoring not started or no readings yet",
            "statement": "The consignment is monitored continuously by the data loggers "
            "listed; the record is completed on delivery.",
        }
    excursions: list[dict[str, Any]] = [
        {
            "limit": f"{'above' if d == 'above' else 'below'} {lim:g} °C",
            "minutes_out_of_range": minutes,
            "episodes": episodes,
        }
        for d, lim, minutes, episodes in t.limits
    ]
    total_episodes = sum(episodes for *_, episodes in t.limits)
    statement = (
        f"The temperature of this consignment was recorded by the data logger(s) listed "
        f"from {t.first} to {t.last} ({t.readings} readings): minimum {_fmt_c(t.min_c)}, "
        f"maximum {_fmt_c(t.max_c)}"
        + (f", mean kinetic temperature {_fmt_c(t.mkt_c)}" if t.mkt_c is not None else "")
        + (
            f"; {total_episodes} excursion episode(s) beyond the limits listed"
            if total_episodes
            else "; no excursion beyond the limits listed"
        )
        + f". Monitoring verdict: {t.verdict}."
    )
    return doc | {
        "period": {"first_reading": t.first, "last_reading": t.last, "readings": t.readings},
        "min_c": t.min_c,
        "max_c": t.max_c,
        "mean_c": t.mean_c,
        "mkt_c": t.mkt_c,
        "excursions": excursions,
        "alarms_fired": [{"alarm": a, "severity": s} for a, s in t.alarms_fired],
        "verdict": t.verdict,
        "statement": statement,
    }


def permit_rows(inp: CustomsInput, pack: RulePack) -> list[dict[str, Any]]:
    return [
        {
            "id": p.id,
            "title": p.title,
            "issuer": p.issuer,
            "required": p.required,
            "number": inp.permits.get(p.id, MISSING if p.required else None),
        }
        for p in pack.permits
    ]


def permits(inp: CustomsInput, pack: RulePack) -> dict[str, Any]:
    return _header(inp, "permits", f"Permits and licences — {pack.name}", pack) | {
        "customs_authority": pack.customs_authority,
        "regulators": list(pack.regulators),
        "permits": permit_rows(inp, pack),
        "language": pack.language,
        "notes": list(pack.notes),
        "sources": [{"title": s.title, "url": s.url} for s in pack.sources],
    }


def customs_documents(
    inp: CustomsInput, pack: RulePack, check: CustomsCheck
) -> dict[str, dict[str, Any]]:
    """Every document of ``customs/`` by stem (:data:`DOCUMENTS`), plus the check result."""
    missing = [m.to_json() for m in check.missing]
    docs = {
        "invoice": invoice(inp, pack),
        "packing-list": packing_list(inp, pack),
        "dangerous-goods": dangerous_goods(inp, pack),
        "temperature-record": temperature_record(inp, pack),
        "permits": permits(inp, pack),
    }
    for doc in docs.values():
        doc["customs_ready"] = check.ready
        doc["missing"] = missing
    return docs


def all_text(docs: Mapping[str, Any] | Sequence[Any] | Any) -> list[str]:
    """Every string inside the documents (for privacy checks and tests)."""
    if isinstance(docs, Mapping):
        return [s for k, v in docs.items() for s in (str(k), *all_text(v))]
    if isinstance(docs, list | tuple):
        return [s for item in docs for s in all_text(item)]
    return [str(docs)]
