"""Building a dossier: the shell that reads the store, renders, signs and zips (docs/DOSSIER.md).

:func:`gather` reads one shipment's everything into a
:class:`~coldchain.dossier.content.DossierInput`; :func:`assemble` turns it
into the signed ZIP: data members (pure, :mod:`~coldchain.dossier.content`),
then the PDFs rendered with the data's hash, then the manifest over all of
them, signed with the Ed25519 key of ``[dossier] signing_key``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import orjson

from coldchain import __version__
from coldchain.audit import verify_chain
from coldchain.customs.pdf import render_customs_pdf
from coldchain.customs.rules import RulePacks, load_rule_packs
from coldchain.disposition import dispositions_from_audit
from coldchain.dossier.content import DossierInput, data_files, dossier_view
from coldchain.dossier.manifest import (
    content_digest,
    manifest_doc,
    sha256,
    signed_bytes,
    with_signature,
    zip_bytes,
)
from coldchain.dossier.pdf import render_dossier_pdf
from coldchain.evaluation import prepare
from coldchain.models import MS_PER_MIN, ms_to_dt
from coldchain.profiles import ProfileSet
from coldchain.service import evaluate_shipments, profile_for
from coldchain.signing import SigningKey
from coldchain.store import Store
from coldchain.timeline import merge


@dataclass
class Timings:
    """Seconds per stage (for ``make bench-dossier``)."""

    stages: dict[str, float] = field(default_factory=dict)

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            self.stages[name] = self.stages.get(name, 0.0) + time.perf_counter() - start


@dataclass(frozen=True)
class Dossier:
    """A built dossier: the ZIP's bytes and its (signed) manifest."""

    shipment_id: str
    data: bytes
    manifest: dict[str, Any]
    timings: Timings


def gather(
    store: Store,
    profiles: ProfileSet,
    shipment_id: str,
    *,
    now_ms: int,
    zone: str,
    rule_packs: RulePacks | None = None,
    timings: Timings | None = None,
) -> DossierInput:
    """Everything about one shipment, read from the store and evaluated now."""
    t = timings or Timings()
    shipment = store.get_shipment(shipment_id)
    profile = profile_for(store, profiles, shipment)
    with t.stage("read"):
        readings = store.readings_for_loggers(
            list(shipment.loggers), start_ms=shipment.start_ms, end_ms=shipment.end_ms
        )
        series: dict[str, list[tuple[int, float]]] = {lg: [] for lg in shipment.loggers}
        for r in readings:
            series[r.logger_id].append((r.ts_ms, r.temp_c))
        # the evaluated timeline, as coldchain.service.shipment_timeline builds it
        points = merge(
            [prepare(series[lg]) for lg in shipment.loggers],
            gap_ms=round(profile.max_gap_min * MS_PER_MIN),
        )
        alerts = store.list_alerts(shipment_id=shipment.id)
        custody = store.list_custody_events(shipment.id)
        trail = store.list_audit()
        related = {shipment.id, *shipment.loggers, *(a.id for a in alerts)}
        if shipment.lot:
            related.add(shipment.lot)
        audit = [e for e in trail if e.entity_id in related]
    with t.stage("evaluate"):  # the timeline just read: the same evaluation as `evaluate`
        evaluation = evaluate_shipments(
            store, profiles, [shipment], now_ms=now_ms, timelines={shipment.id: points}
        )[shipment.id]
    with t.stage("audit chain"):
        chain = verify_chain(trail)
    return DossierInput(
        shipment=shipment,
        profile=profile,
        evaluation=evaluation.to_json(),
        readings=readings,
        timeline=points,
        alerts=alerts,
        custody=custody,
        audit=audit,
        audit_chain=chain,
        dispositions=dispositions_from_audit(audit, shipment.id),
        add_backs=store.budget_add_backs(shipment.lot) if shipment.lot else [],
        calibration_offsets=store.logger_calibrations(),
        rule_packs=rule_packs or load_rule_packs(),
        generated_ms=now_ms,
        generator_version=__version__,
        zone=zone,
    )


def assemble(inp: DossierInput, key: SigningKey, *, timings: Timings | None = None) -> Dossier:
    """The signed dossier ZIP of docs/DOSSIER.md from its input."""
    t = timings or Timings()
    created = ms_to_dt(inp.generated_ms)
    with t.stage("data files"):
        files = data_files(inp)
    content = content_digest({p: sha256(d) for p, d in files.items()})
    with t.stage("dossier.pdf"):
        view = dossier_view(inp, content_sha256=content, key_fingerprint=key.fingerprint)
        files["dossier.pdf"] = render_dossier_pdf(view, created=created)
    with t.stage("customs pdfs"):
        for path in [p for p in files if p.startswith("customs/") and p.endswith(".json")]:
            doc = orjson.loads(files[path])
            if "document" in doc:
                files[path.removesuffix(".json") + ".pdf"] = render_customs_pdf(
                    doc, content_sha256=content, created=created
                )
    with t.stage("manifest and zip"):
        head = inp.audit_chain
        manifest = manifest_doc(
            files,
            shipment_id=inp.shipment.id,
            created_ms=inp.generated_ms,
            generator_version=inp.generator_version,
            content_sha256=content,
            audit_head={"id": head.head_id, "hash": head.head_hash} if head.head_id else None,
        )
        signed = with_signature(
            manifest, public_b64=key.public_b64, signature_b64=key.sign(signed_bytes(manifest))
        )
        data = zip_bytes(files, signed, created_ms=inp.generated_ms)
    return Dossier(inp.shipment.id, data, signed, t)


def build_dossier(
    store: Store,
    profiles: ProfileSet,
    shipment_id: str,
    *,
    key: SigningKey,
    now_ms: int,
    zone: str = "UTC",
    rule_packs: RulePacks | None = None,
    actor: str = "cli",
    on_stage: Callable[[str], None] | None = None,
) -> Dossier:
    """Gather, assemble and record in the audit log that a dossier was issued."""
    timings = Timings()
    inp = gather(
        store,
        profiles,
        shipment_id,
        now_ms=now_ms,
        zone=zone,
        rule_packs=rule_packs,
        timings=timings,
    )
    if on_stage:
        on_stage("gathered")
    dossier = assemble(inp, key, timings=timings)
    store.audit(
        actor=actor,
        action="dossier_issued",
        entity="shipment",
        entity_id=shipment_id,
        ts_ms=now_ms,
        detail={
            "content_sha256": dossier.manifest["content_sha256"],
            "zip_sha256": sha256(dossier.data),
            "key_fingerprint": key.fingerprint,
            "files": len(dossier.manifest["files"]),
            "verdict": inp.evaluation.get("verdict"),
        },
    )
    return dossier
