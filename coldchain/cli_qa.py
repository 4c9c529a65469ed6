"""CLI commands for QA and customs (docs/DOSSIER.md, README.md): thin shells, registered on
``coldchain``.

``coldchain dossier``, ``verify``, ``disposition``, ``custody``, ``customs``,
``budget add-back``, ``signer``, ``audit verify`` and ``shipment set`` /
``shipment fields``. :mod:`coldchain.cli` imports this module at its end,
which adds these commands to its Typer app.

Exit codes: 0 done (``verify``: intact; ``customs check``: ready), 1 the
check failed (``verify``, ``customs check``, ``audit verify``), 2 an error
(the message says what to do).
"""

from __future__ import annotations

import sys
from dataclasses import replace
from pathlib import Path
from typing import Annotated

import orjson
import typer
from rich.table import Table

from coldchain.audit import entry_json, verify_chain
from coldchain.cli import (
    ConfigOpt,
    JsonOpt,
    ShipmentArg,
    _ctx,
    _fail,
    _print_json,
    _when,
    app,
    budget_app,
    err,
    out,
    shipment_app,
)
from coldchain.custody import CUSTODY_TYPES, custody_event, record_custody_event, timeline
from coldchain.customs.rules import check as customs_check
from coldchain.customs.rules import load_rule_packs
from coldchain.details import FIELDS, apply_changes, parse_assignment
from coldchain.disposition import (
    ACTION_SIGNER_ADDED,
    ACTION_SIGNER_UNLOCKED,
    DECISIONS,
    check_meaning,
    check_new_password,
    check_override,
    check_signer_name,
    hash_password,
    sign_add_back,
    sign_disposition,
)
from coldchain.errors import ColdchainError, DecodeError, DossierError, SigningError
from coldchain.models import iso
from coldchain.service import evaluate_shipments
from coldchain.signing import (
    created_message,
    load_or_create_key,
    load_public_key,
    public_path_for,
)
from coldchain.store import Signer

custody_app = typer.Typer(
    help="Record and list custody events (docs/DOSSIER.md, custody and shipment details).",
    no_args_is_help=True,
)
customs_app = typer.Typer(
    help="Customs readiness per destination rule pack (docs/DOSSIER.md, customs).",
    no_args_is_help=True,
)
signer_app = typer.Typer(
    help="Electronic signers for QA dispositions (21 CFR Part 11).", no_args_is_help=True
)
audit_app = typer.Typer(help="The tamper-evident audit trail.", no_args_is_help=True)
app.add_typer(custody_app, name="custody")
app.add_typer(customs_app, name="customs")
app.add_typer(signer_app, name="signer")
app.add_typer(audit_app, name="audit")

PasswordStdin = Annotated[
    bool,
    typer.Option(
        "--password-stdin", help="Read the password from the first line of stdin (scripts)."
    ),
]


def _password(from_stdin: bool, *, confirm: bool = False) -> str:
    """The signer's password: stdin's first line, or a hidden prompt (never an option)."""
    if from_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    if not sys.stdin.isatty():
        # a hidden prompt needs a terminal; without one getpass would echo or warn
        raise SigningError("no terminal to ask the password on: pipe it with --password-stdin")
    return str(typer.prompt("Password", hide_input=True, confirmation_prompt=confirm))


# -- shipment details ---------------------------------------------------------------------


@shipment_app.command("set")
def shipment_set(
    shipment_id: ShipmentArg,
    assignments: Annotated[
        list[str] | None,
        typer.Argument(
            metavar="KEY=VALUE...",
            help="Details to set, e.g. coi_code=COI-SG-2026-000123 awb=618-12345675 "
            "permit:bpom-ski=SKI-2026-00042 (see `coldchain shipment fields`).",
        ),
    ] = None,
    unset: Annotated[list[str] | None, typer.Option(help="Remove a detail; repeat.")] = None,
    config: ConfigOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Set the shipment details customs and the dossier need (docs/DOSSIER.md, custody and shipment
    details).

    Values are validated (countries, currencies, Incoterms, packaging, times with a
    zone); unknown keys are refused. There is no field for a patient's name: the patient
    is identified by coi_code, a pseudonymous code, only.

    Examples:

      coldchain shipment set S-1 coi_code=COI-SG-2026-000123 awb=618-12345675
      coldchain shipment set S-1 --unset awb
    """
    ctx = _ctx(config)
    try:
        changes: dict[str, str | None] = dict(parse_assignment(a) for a in assignments or [])
        changes.update(dict.fromkeys(unset or []))
        if not changes:
            raise ValueError("nothing to set: give KEY=VALUE or --unset KEY")
        s = ctx.store.get_shipment(shipment_id)
        extra = apply_changes(s.extra, changes)
        with ctx.store.transaction():
            ctx.store.update_shipment(replace(s, extra=extra))
            ctx.store.audit(
                actor="cli",
                action="details_changed",
                entity="shipment",
                entity_id=shipment_id,
                ts_ms=ctx.clock.now_ms(),
                detail={"set": {k: extra[k] for k, v in changes.items() if v is not None},
                        "unset": [k for k, v in changes.items() if v is None]},
            )  # fmt: skip
    except (ColdchainError, ValueError) as exc:
        _fail(exc)
    finally:
        ctx.close()
    if as_json:
        _print_json(extra)
        return
    for key, value in sorted(extra.items()):
        out.print(f"[bold]{key:22}[/] {value}", highlight=False)


@shipment_app.command("fields")
def shipment_fields(as_json: JsonOpt = False) -> None:
    """List the details `shipment set` accepts, and which reach customs documents.

    Example:

      coldchain shipment fields
    """
    rows = [
        {"key": f.key, "label": f.label, "kind": f.kind, "customs": f.customs, "help": f.help}
        for f in FIELDS
    ]
    rows += [
        {"key": "permit:<id>", "label": "Permit or licence number", "kind": "code",
         "customs": True, "help": "ids from `coldchain customs check`"},
        {"key": "calibration:<logger>", "label": "Logger calibration certificate",
         "kind": "text", "customs": False, "help": "shown in the dossier"},
    ]  # fmt: skip
    if as_json:
        _print_json(rows)
        return
    table = Table("key", "label", "kind", "customs", "help")
    for r in rows:
        table.add_row(
            str(r["key"]), str(r["label"]), str(r["kind"]), "yes" if r["customs"] else "",
            str(r["help"]),
        )  # fmt: skip
    out.print(table)


# -- custody ---------------------------------------------------------------------------------


@custody_app.command("add")
def custody_add(
    shipment_id: ShipmentArg,
    kind: Annotated[str, typer.Option("--type", help=" | ".join(CUSTODY_TYPES))],
    actor: Annotated[str, typer.Option(help="Who (organisation, desk or person on duty).")],
    location: Annotated[str, typer.Option(help="Where, e.g. 'SIN Changi Airfreight Centre'.")],
    at: Annotated[
        str | None, typer.Option("--at", help="When (RFC 3339 with a zone); default: now.")
    ] = None,
    note: Annotated[str | None, typer.Option(help="Optional note (seal number, …).")] = None,
    config: ConfigOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Record a custody event (handover, departure, customs hold, receipt, …).

    Examples:

      coldchain custody add S-1 --type handover --actor "SkyCold SIN" --location "SIN Changi"
      coldchain custody add S-1 --type received --actor "JCTC cell lab" --location Jakarta \\
        --at 2026-11-28T09:00:00+07:00
    """
    ctx = _ctx(config)
    try:
        now = ctx.clock.now_ms()
        event = custody_event(
            shipment_id=shipment_id,
            kind=kind,
            ts=at if at is not None else now / 1000,
            actor=actor,
            location=location,
            note=note,
            received_ms=now,
            source="cli",
        )
        new = record_custody_event(ctx.store, event, now_ms=now)
    except DecodeError as exc:
        _fail(ValueError(exc.reason.removeprefix("custody event: ")))
    except ColdchainError as exc:
        _fail(exc)
    finally:
        ctx.close()
    if as_json:
        _print_json(event.to_json() | {"new": new})
        return
    what = "recorded" if new else "already recorded (same type, time, actor and location)"
    out.print(f"{event.type} of {shipment_id} at {iso(event.ts_ms)} {what}", highlight=False)


@custody_app.command("list")
def custody_list(
    shipment_id: ShipmentArg,
    config: ConfigOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """A shipment's custody timeline, oldest first.

    Example:

      coldchain custody list S-1
    """
    ctx = _ctx(config)
    try:
        ctx.store.get_shipment(shipment_id)
        events = timeline(ctx.store.list_custody_events(shipment_id))
    except ColdchainError as exc:
        _fail(exc)
    finally:
        ctx.close()
    if as_json:
        _print_json([e.to_json() for e in events])
        return
    if not events:
        out.print(f"no custody events for {shipment_id}", highlight=False)
        return
    table = Table("time", "event", "actor", "location", "EPCIS", "note")
    for e in events:
        doc = e.to_json()
        table.add_row(doc["at"], e.type, e.actor, e.location, doc["epcis_biz_step"], e.note or "")
    out.print(table)


# -- dossier and verify -----------------------------------------------------------------------


@app.command("dossier")
def dossier(
    shipment_id: ShipmentArg,
    output: Annotated[Path, typer.Option("-o", "--output", help="The ZIP to write.")],
    now: Annotated[
        str | None, typer.Option(help="Evaluate as of this time (RFC 3339); default: now.")
    ] = None,
    config: ConfigOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Write the shipment's signed dossier ZIP: PDF, readings, evaluation, EPCIS, customs.

    What each member holds is in docs/DOSSIER.md.

    The manifest is signed with the Ed25519 key of \\[dossier] signing_key, created on
    first use. Check a dossier with `coldchain verify FILE.zip`.

    Example:

      coldchain dossier S-1 -o S-1.zip
    """
    from coldchain.dossier.build import build_dossier  # noqa: PLC0415 - reportlab is slow to load

    ctx = _ctx(config)
    try:
        key = load_or_create_key(ctx.settings.dossier.signing_key)
        if key.created:
            err.print(created_message(key), highlight=False, markup=False)
        now_ms = _when(now, "--now") or ctx.clock.now_ms()
        built = build_dossier(
            ctx.store,
            ctx.profiles,
            shipment_id,
            key=key,
            now_ms=now_ms,
            zone=ctx.settings.dossier.display_timezone,
        )
        output.parent.mkdir(parents=True, exist_ok=True)
        output.write_bytes(built.data)
    except (ColdchainError, OSError) as exc:
        _fail(exc)
    finally:
        ctx.close()
    manifest = built.manifest
    if as_json:
        _print_json(
            {
                "path": str(output),
                "bytes": len(built.data),
                "content_sha256": manifest["content_sha256"],
                "key_fingerprint": manifest["signature"]["key_fingerprint"],
                "files": [f["path"] for f in manifest["files"]],
            }
        )
        return
    out.print(
        f"wrote {output} ({len(built.data) / 1024:.0f} KiB, {len(manifest['files'])} files, "
        f"signed by key {manifest['signature']['key_fingerprint']})\n"
        f"content SHA-256 {manifest['content_sha256']}",
        highlight=False,
    )


@app.command("verify")
def verify(
    file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="A dossier ZIP.")],
    key: Annotated[
        list[Path] | None,
        typer.Option(help="A trusted public key (PEM); repeat. Adds to \\[dossier] trusted_keys."),
    ] = None,
    config: ConfigOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Check every file's SHA-256 and the manifest's Ed25519 signature; exit 0 only when intact.

    Origin is proven only by a key obtained separately: \\[dossier] trusted_keys, --key, or
    this machine's own signing key. The key inside the manifest proves integrity only.

    Examples:

      coldchain verify S-1.zip
      coldchain verify S-1.zip --key partner-dossier.pub.pem
    """
    from coldchain.dossier.manifest import verify_dossier  # noqa: PLC0415

    ctx = _ctx(config)
    try:
        settings = ctx.settings.dossier
        paths = [*settings.trusted_keys, *(key or [])]
        own = public_path_for(settings.signing_key)
        if own.exists():
            paths.append(own)
        trusted = [load_public_key(p) for p in paths]
        report = verify_dossier(file.read_bytes(), trusted_keys=trusted)
    except (ColdchainError, OSError) as exc:
        _fail(exc)
    if as_json:
        _print_json(report.to_json() | {"file": str(file)})
    elif report.ok:
        origin = (
            "signed by a trusted key"
            if report.trusted
            else "origin NOT verified: no trusted key configured (see --key)"
        )
        out.print(
            f"[bold green]OK[/] {file}: {report.files} files, every SHA-256 and the Ed25519 "
            f"signature hold; {origin} (key {report.key_fingerprint}); shipment "
            f"{report.shipment_id}, created {report.created_at}",
            highlight=False,
        )
    else:
        err.print(f"[bold red]FAILED[/] {file}:", highlight=False)
        for finding in report.findings:
            err.print(f"  {finding}", highlight=False)
    raise typer.Exit(0 if report.ok else 1)


# -- customs -----------------------------------------------------------------------------------


@customs_app.command("check")
def customs_check_cmd(
    shipment_id: ShipmentArg,
    config: ConfigOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """List every item the destination's rule pack needs that the shipment lacks.

    Exit 0 when customs-ready, 1 with the missing items listed (and how to set each).

    Example:

      coldchain customs check S-1
    """
    ctx = _ctx(config)
    try:
        from coldchain.service import profile_for  # noqa: PLC0415

        s = ctx.store.get_shipment(shipment_id)
        result = customs_check(s, profile_for(ctx.store, ctx.profiles, s), load_rule_packs())
    except ColdchainError as exc:
        _fail(exc)
    finally:
        ctx.close()
    if as_json:
        _print_json(result.to_json())
    else:
        pack = result.pack
        where = f"{pack.name} (rule pack {pack.country}, reviewed {pack.reviewed.isoformat()})"
        if result.ready:
            out.print(f"[bold green]ready[/] {shipment_id} for {where}", highlight=False)
        else:
            out.print(
                f"[bold red]not ready[/] {shipment_id} for {where}: {len(result.missing)} missing",
                highlight=False,
            )
            for m in result.missing:
                out.print(f"  - {m.what} [{m.key}]: {m.how}", highlight=False, markup=False)
    raise typer.Exit(0 if result.ready else 1)


@customs_app.command("packs")
def customs_packs(as_json: JsonOpt = False) -> None:
    """The shipped rule packs: country, reviewed date, permits.

    Example:

      coldchain customs packs --json
    """
    try:
        packs = load_rule_packs()
    except ColdchainError as exc:
        _fail(exc)
    docs = [p.summary() | {"permits": [x.id for x in p.permits]} for p in packs.packs.values()]
    if as_json:
        _print_json(docs)
        return
    table = Table("country", "name", "reviewed", "permits")
    for d in docs:
        table.add_row(d["country"], d["name"], d["reviewed"], ", ".join(d["permits"]))
    out.print(table)


# -- signatures ----------------------------------------------------------------------------------


@signer_app.command("add")
def signer_add(
    name: Annotated[str, typer.Argument(metavar="ID", help="Signer id, e.g. a.tan.")],
    full_name: Annotated[str, typer.Option(help="Printed name in signatures (§11.50).")],
    password_stdin: PasswordStdin = False,
    config: ConfigOpt = None,
) -> None:
    """Register a QA signer with a password (scrypt-hashed; at least 10 characters).

    A local stand-in: production should authenticate signers with the organisation's
    identity provider.

    Example:

      coldchain signer add a.tan --full-name "Alicia Tan"
    """
    ctx = _ctx(config, create=True)
    try:
        import secrets  # noqa: PLC0415

        check_signer_name(name)
        if len(full_name.strip()) < 3:
            raise SigningError("--full-name is the printed name shown with every signature")
        password = _password(password_stdin, confirm=True)
        check_new_password(password)
        now = ctx.clock.now_ms()
        with ctx.store.transaction():
            ctx.store.add_signer(
                Signer(
                    name,
                    full_name.strip(),
                    hash_password(password, salt=secrets.token_bytes(16)),
                    now,
                )
            )
            ctx.store.audit(
                actor="cli",
                action=ACTION_SIGNER_ADDED,
                entity="signer",
                entity_id=name,
                ts_ms=now,
                detail={"full_name": full_name.strip()},
            )
    except ColdchainError as exc:
        _fail(exc)
    finally:
        ctx.close()
    out.print(f"signer [bold]{name}[/] ({full_name.strip()}) registered", highlight=False)


@signer_app.command("list")
def signer_list(config: ConfigOpt = None, as_json: JsonOpt = False) -> None:
    """Registered signers (never their password hashes).

    Example:

      coldchain signer list
    """
    ctx = _ctx(config)
    try:
        signers = ctx.store.list_signers()
    except ColdchainError as exc:
        _fail(exc)
    finally:
        ctx.close()
    rows = [
        {
            "id": s.name,
            "full_name": s.full_name,
            "active": s.active,
            "created_at": iso(s.created_ms),
        }
        for s in signers
    ]
    if as_json:
        _print_json(rows)
        return
    if not rows:
        out.print("no signers registered (an administrator adds one: coldchain signer add)")
        return
    table = Table("id", "printed name", "active", "registered")
    for r in rows:
        table.add_row(
            str(r["id"]), str(r["full_name"]), "yes" if r["active"] else "no", str(r["created_at"])
        )
    out.print(table)


@signer_app.command("unlock")
def signer_unlock(
    name: Annotated[str, typer.Argument(metavar="ID", help="Signer id, e.g. a.tan.")],
    by: Annotated[str, typer.Option(help="Administrator who unlocks (audited).")],
    config: ConfigOpt = None,
) -> None:
    """Unlock a signer locked after repeated wrong passwords.

    Example:

      coldchain signer unlock a.tan --by admin.lee
    """
    ctx = _ctx(config)
    try:
        ctx.store.get_signer(name)
        ctx.store.audit(
            actor=by,
            action=ACTION_SIGNER_UNLOCKED,
            entity="signer",
            entity_id=name,
            ts_ms=ctx.clock.now_ms(),
            detail={},
        )
    except ColdchainError as exc:
        _fail(exc)
    finally:
        ctx.close()
    out.print(f"signer {name} unlocked by {by}", highlight=False)


@app.command("disposition")
def disposition(
    shipment_id: ShipmentArg,
    decision: Annotated[str, typer.Option(help=" | ".join(DECISIONS))],
    meaning: Annotated[
        str, typer.Option(help="What the signature means, e.g. 'Released for infusion'.")
    ],
    by: Annotated[str, typer.Option(help="Your signer id (re-authenticated by password).")],
    override_verdict: Annotated[
        str | None,
        typer.Option(
            "--override-verdict",
            metavar="REASON",
            help="Required to release a shipment whose system verdict is FAIL or REVIEW: why "
            "QA releases it anyway. Signed with the disposition and printed in the dossier.",
        ),
    ] = None,
    password_stdin: PasswordStdin = False,
    config: ConfigOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Sign QA's disposition of a shipment: released, rejected or quarantined (21 CFR 11.50).

    Asks for the signer's password. The manifestation — printed name, date and time
    with zone, meaning — goes to the audit log and into every later dossier. Releasing
    a shipment whose verdict is FAIL or REVIEW is refused unless --override-verdict
    gives the reason, which becomes part of the signed record.

    Examples:

      coldchain disposition S-1 --decision released --meaning "Released for infusion" --by a.tan
      coldchain disposition S-2 --decision released --meaning "Released for infusion" \\
        --override-verdict "Stability study STB-114 covers the excursion" --by a.tan
    """
    ctx = _ctx(config)
    try:
        check_meaning(meaning)
        s = ctx.store.get_shipment(shipment_id)
        now = ctx.clock.now_ms()
        ev = evaluate_shipments(ctx.store, ctx.profiles, [s], now_ms=now)[s.id].to_json()
        check_override(decision, str(ev.get("verdict")), override_verdict)  # before the password
        signed = sign_disposition(
            ctx.store,
            shipment_id=shipment_id,
            decision=decision,
            meaning=meaning,
            signer=by,
            password=_password(password_stdin),
            evaluation_json=ev,
            now_ms=now,
            zone=ctx.settings.dossier.display_timezone,
            verdict_override=override_verdict,
        )
    except ColdchainError as exc:
        _fail(exc)
    finally:
        ctx.close()
    if as_json:
        _print_json(signed.to_json())
        return
    override = f" {signed.override_text()}." if signed.verdict_override else ""
    out.print(
        f"[bold]{decision.upper()}[/] {shipment_id} (verdict {signed.verdict_at_signing})."
        f"{override} {signed.signature.text()}",
        highlight=False,
    )


@budget_app.command("add-back")
def budget_add_back(
    shipment_id: Annotated[str, typer.Argument(metavar="ID", help="A shipment of the lot.")],
    budget: Annotated[str, typer.Option(help="Budget id of the product profile.")],
    minutes: Annotated[float, typer.Option(help="Minutes of budget to restore.")],
    meaning: Annotated[str, typer.Option(help="Why: the evidence that justifies it.")],
    by: Annotated[str, typer.Option(help="Your signer id (re-authenticated by password).")],
    password_stdin: PasswordStdin = False,
    config: ConfigOpt = None,
) -> None:
    """Restore stability budget to the shipment's lot by a signed QA decision.

    How budgets are counted across a lot's legs: docs/EVALUATION.md.

    Example:

      coldchain budget add-back S-1 --budget warm-exposure --minutes 15 \\
        --meaning "Stability study STB-114 supports 15 min more" --by a.tan
    """
    ctx = _ctx(config)
    try:
        s = ctx.store.get_shipment(shipment_id)
        if not s.lot:
            raise SigningError(f"shipment {shipment_id} has no lot: budgets are per lot")
        now = ctx.clock.now_ms()
        ev = evaluate_shipments(ctx.store, ctx.profiles, [s], now_ms=now)[s.id]
        figure = next((b for b in ev.budgets if b.id == budget), None)
        if figure is None:
            known = ", ".join(b.id for b in ev.budgets) or "none"
            raise SigningError(f"profile {s.product} has no budget {budget!r} (known: {known})")
        sig = sign_add_back(
            ctx.store,
            lot=s.lot,
            shipment_id=shipment_id,
            budget_id=budget,
            minutes=minutes,
            consumed_min=figure.consumed_min,
            meaning=meaning,
            signer=by,
            password=_password(password_stdin),
            now_ms=now,
            zone=ctx.settings.dossier.display_timezone,
        )
    except ColdchainError as exc:
        _fail(exc)
    finally:
        ctx.close()
    out.print(f"restored {minutes:g} min of {budget} to lot {s.lot}. {sig.text()}", highlight=False)


# -- audit ---------------------------------------------------------------------------------------


@audit_app.command("verify")
def audit_verify(
    dossier_file: Annotated[
        list[Path] | None,
        typer.Option(
            "--dossier",
            help="A signed dossier whose audit_head must still be in the trail; repeat.",
        ),
    ] = None,
    config: ConfigOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Check the audit trail's hash chain: exit 0 intact, 1 with every edited or removed entry.

    Removing the newest entries leaves a shorter valid chain; a dossier's signed
    audit_head (--dossier) catches that too.

    Examples:

      coldchain audit verify
      coldchain audit verify --dossier S-1.zip
    """
    from coldchain.dossier.manifest import verify_dossier  # noqa: PLC0415

    ctx = _ctx(config)
    try:
        anchors: list[tuple[int, str]] = []
        for path in dossier_file or []:
            report = verify_dossier(path.read_bytes())
            if not report.ok:
                raise DossierError(f"{path}: not an intact dossier ({report.findings[0]})")
            head = report.manifest.get("audit_head")
            if head:
                anchors.append((int(head["id"]), str(head["hash"])))
        entries = ctx.store.list_audit()
        result = verify_chain(entries, anchors=anchors)
    except (ColdchainError, OSError) as exc:
        _fail(exc)
    finally:
        ctx.close()
    if as_json:
        _print_json(
            {
                "ok": result.ok,
                "entries": result.entries,
                "head_id": result.head_id,
                "head_hash": result.head_hash,
                "problems": [{"entry_id": p.entry_id, "reason": p.reason} for p in result.problems],
                "head": entry_json(entries[-1]) if entries else None,
            }
        )
    elif result.ok:
        out.print(
            f"[bold green]intact[/]: {result.entries} entries, head #{result.head_id} "
            f"{result.head_hash}",
            highlight=False,
        )
    else:
        err.print(
            f"[bold red]BROKEN[/]: {len(result.problems)} problem(s) in {result.entries} entries",
            highlight=False,
        )
        for p in result.problems:
            err.print(f"  {p}", highlight=False)
    raise typer.Exit(0 if result.ok else 1)


@audit_app.command("list")
def audit_list(
    entity: Annotated[
        str | None,
        typer.Option(
            help="Only entries about this: a kind (shipment, logger, alert, lot, signer), an id "
            "(S-1, LG-1, AL-…), or KIND:ID (logger:LG-1).",
        ),
    ] = None,
    action: Annotated[
        str | None,
        typer.Option(help="Only this action, e.g. reading_conflict, device_file_imported."),
    ] = None,
    shipment: Annotated[
        str | None,
        typer.Option(help="Only entries about this shipment, its loggers, lot and alerts."),
    ] = None,
    since: Annotated[
        str | None, typer.Option(help="Recorded at or after this time (RFC 3339).")
    ] = None,
    until: Annotated[
        str | None, typer.Option(help="Recorded at or before this time (RFC 3339).")
    ] = None,
    config: ConfigOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """List audit-trail entries, oldest first, with what each recorded.

    Conflicting readings (a second value at a reading's time, refused) are the
    action reading_conflict: `coldchain audit list --action reading_conflict`.

    Examples:

      coldchain audit list --shipment S-1
      coldchain audit list --action reading_conflict --since 2026-11-26T00:00:00Z --json
    """
    since_ms, until_ms = _when(since, "--since"), _when(until, "--until")
    ctx = _ctx(config)
    try:
        ids: list[str] | None = None
        if shipment is not None:
            s = ctx.store.get_shipment(shipment)
            alerts = ctx.store.list_alerts(shipment_id=s.id)
            ids = [s.id, *s.loggers, *([s.lot] if s.lot else []), *(a.id for a in alerts)]
        kinds: list[tuple[str | None, str | None]] = [(None, None)]
        if entity is not None:
            kind, sep, ident = entity.partition(":")
            kinds = [(kind, ident)] if sep else [(entity, None), (None, entity)]
        found = {
            e.id: e
            for kind, ident in kinds
            for e in ctx.store.list_audit(
                entity=kind,
                entity_id=ident,
                entity_ids=ids,
                action=action,
                since_ms=since_ms,
                until_ms=until_ms,
            )
        }
        entries = [found[i] for i in sorted(found)]
    except ColdchainError as exc:
        _fail(exc)
    finally:
        ctx.close()
    if as_json:
        _print_json([entry_json(e) for e in entries])
        return
    for e in entries:
        out.print(
            f"#{e.id} {iso(e.ts_ms)} {e.action} {e.entity} {e.entity_id} by {e.actor}\n"
            f"  {orjson.dumps(e.detail).decode()}",
            highlight=False,
            markup=False,
            soft_wrap=True,
        )
    if not entries:
        out.print("no audit entries match", highlight=False)
