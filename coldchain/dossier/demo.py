"""Dossiers for ``coldchain demo``: shipment details, custody and a QA signature, then the ZIPs.

The simulated fleet knows products, lanes and times only; this fills in what
a real shipment would carry (docs/DOSSIER.md, custody and shipment details) — fictitious parties,
the courier,
packaging for the product, the hub route, permits for the destination —
records a plausible custody trail, lets a demo QA signer sign each delivered
shipment (released on PASS, rejected on FAIL, quarantined on REVIEW) and
writes ``{workdir}/dossiers/{id}.zip``.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

from coldchain.custody import custody_event, record_custody_event
from coldchain.customs.rules import RulePacks, load_rule_packs
from coldchain.details import PERMIT_PREFIX, apply_changes
from coldchain.disposition import hash_password, sign_disposition
from coldchain.dossier.build import build_dossier
from coldchain.models import MS_PER_MIN
from coldchain.profiles import ProfileSet
from coldchain.service import evaluate_shipments
from coldchain.signing import SigningKey
from coldchain.store import Signer, Store

HUBS = {
    "SG": "SIN", "ID": "CGK", "VN": "SGN", "PH": "MNL", "JP": "NRT", "KR": "ICN", "AU": "SYD",
    "IN": "BOM", "CN": "PVG", "MY": "KUL", "TH": "BKK", "HK": "HKG", "TW": "TPE",
}  # fmt: skip
PACKAGING = {
    "cart-ln2": "ln2-dry-shipper",
    "dry-ice": "dry-ice",
    "frozen": "active",
    "vaccine-2-8": "passive-2-8",
    "crt-15-25": "active",
}
DEMO_SIGNER = "demo.qa"
H = 60 * MS_PER_MIN


def demo_details(
    packs: RulePacks, *, logger: str, product: str, origin: str, destination: str, n: int
) -> dict[str, str]:
    """Fictitious but complete details for one demo shipment."""
    values = {
        "coi_code": f"COI-{origin}-2026-{n + 1:06d}",
        "consignor": f"Helix Cell Manufacturing ({origin})",
        "consignor_address": f"1 Demo Science Park, {origin}",
        "consignee": f"Demo Treatment Centre {destination}",
        "consignee_address": f"2 Demo Hospital Road, {destination}",
        "origin_site": f"Helix {origin} fill-finish",
        "destination_site": f"Cell lab {destination}",
        "importer_of_record": f"Demo Medical Imports ({destination})",
        "importer_address": f"3 Demo Trade Centre, {destination}",
        "importer_tax_id": f"DEMO-{destination}-{n + 1:04d}",
        "courier": "SkyCold Demo Logistics",
        "awb": _awb(n),
        "packaging": PACKAGING.get(product, "active"),
        "gross_kg": "28.5",
        "net_kg": "0.3",
        "declared_value": "1500",
        "currency": "USD",
        "no_commercial_value": "true",
        "incoterm": "DAP",
        "quantity": "1 bag",
        "description_of_use": "named-patient" if product == "cart-ln2" else "clinical-trial",
        "route": f"{HUBS.get(origin, 'HUB')}>{HUBS.get(destination, 'HUB')}",
        f"calibration:{logger}": "DEMO-CAL-2026-0001, valid to 2027-06-30",
    }
    if values["packaging"] == "dry-ice":
        values["dry_ice_kg"] = "5.5"
    for permit in packs.for_country(destination).permits:
        values[PERMIT_PREFIX + permit.id] = f"DEMO-{permit.id.upper()}-{n + 1:04d}"
    return values


def _awb(n: int) -> str:
    """A valid-looking IATA air waybill: 7 serial digits and their mod-7 check digit."""
    serial = 1_000_000 + 37 * n
    return f"618-{serial:07d}{serial % 7}"


def _custody(
    store: Store, shipment_id: str, *, start: int, end: int, origin: str, dest: str
) -> None:
    o, d = HUBS.get(origin, origin), HUBS.get(dest, dest)
    fly = start + 3 * H + min(6 * H, (end - start) // 4)
    plan = [
        ("dispatched", start + 5 * MS_PER_MIN, "Helix QA desk", f"Helix {origin} fill-finish"),
        ("handover", start + 45 * MS_PER_MIN, f"SkyCold {o}", f"{o} airfreight centre"),
        ("departed", start + 3 * H, f"SkyCold {o}", o),
        ("arrived", fly, f"SkyCold {d}", d),
        ("customs_hold", fly + H, f"{dest} customs", f"{d} cargo terminal"),
        ("customs_cleared", fly + 3 * H, f"{dest} customs", f"{d} cargo terminal"),
        ("delivered", end - H, f"SkyCold {d}", f"Demo Treatment Centre {dest}"),
        ("received", end - 30 * MS_PER_MIN, f"Cell lab {dest}", f"Demo Treatment Centre {dest}"),
    ]  # fmt: skip
    for kind, at, actor, location in plan:
        event = custody_event(
            shipment_id=shipment_id,
            kind=kind,
            ts=at / 1000,
            actor=actor,
            location=location,
            received_ms=at,
            source="demo",
        )
        record_custody_event(store, event, now_ms=at)


def write_demo_dossiers(
    store: Store,
    profiles: ProfileSet,
    shipment_ids: Sequence[str],
    out_dir: Path,
    *,
    key: SigningKey,
    now_ms: int,
    zone: str = "UTC",
) -> list[Path]:
    """Details, custody and a signed disposition for each shipment; then its dossier ZIP."""
    out_dir.mkdir(parents=True, exist_ok=True)
    password = secrets.token_urlsafe(18)  # lives for this run only: the demo signer is a stand-in
    store.add_signer(
        Signer(
            DEMO_SIGNER,
            "Demo QA Reviewer",
            hash_password(password, salt=secrets.token_bytes(16)),
            now_ms,
        )
    )
    written: list[Path] = []
    decisions = {"PASS": "released", "FAIL": "rejected", "REVIEW": "quarantined"}
    rule_packs = load_rule_packs()
    for n, sid in enumerate(shipment_ids):
        s = store.get_shipment(sid)
        details = demo_details(
            rule_packs,
            logger=s.loggers[0],
            product=s.product,
            origin=s.origin or "SG",
            destination=s.destination or "ID",
            n=n,
        )
        store.update_shipment(replace(s, extra=apply_changes(s.extra, details)))
        if s.start_ms is not None and s.end_ms is not None:
            _custody(
                store,
                s.id,
                start=s.start_ms,
                end=s.end_ms,
                origin=s.origin or "SG",
                dest=s.destination or "ID",
            )
        s = store.get_shipment(sid)
        ev = evaluate_shipments(store, profiles, [s], now_ms=now_ms)[s.id].to_json()
        decision = decisions[str(ev["verdict"])]
        sign_disposition(
            store,
            shipment_id=s.id,
            decision=decision,
            meaning=f"Demo: {decision} after review of the temperature record "
            f"(verdict {ev['verdict']})",
            signer=DEMO_SIGNER,
            password=password,
            evaluation_json=ev,
            now_ms=now_ms,
            zone=zone,
        )
        built = build_dossier(
            store, profiles, s.id, key=key, now_ms=now_ms, zone=zone, rule_packs=rule_packs,
            actor="demo",
        )  # fmt: skip
        path = out_dir / f"{s.id}.zip"
        path.write_bytes(built.data)
        written.append(path)
    return written
