"""The customs documents as PDFs (docs/DOSSIER.md, customs): the one module that lays them out.

Each document dict of :mod:`coldchain.customs.documents` becomes an A4 page
(or more) with the same header, "Page x of y" and dossier content hash as
``dossier.pdf``; a value the rule pack needs but the shipment lacks prints
as a red **MISSING**, so a broker sees at once what to ask for.
"""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from reportlab.lib import colors
from reportlab.lib.pagesizes import A4
from reportlab.lib.units import mm
from reportlab.platypus import Paragraph, SimpleDocTemplate, Spacer, TableStyle
from reportlab.platypus import Table as RLTable

from coldchain.customs.documents import MISSING
from coldchain.dossier.pdf import (
    FRAME_W,
    MARGIN,
    MUTED,
    RULE,
    esc,
    grid,
    numbered_canvas,
    para,
    register_fonts,
    style,
)

RED = colors.HexColor("#b3261e")


def _value(value: Any) -> Any:
    """A cell: MISSING in red bold, everything else as text."""
    if value is None:
        return para("—", style(8, colour=MUTED))
    text = str(value)
    if text == MISSING:
        return Paragraph("<b>MISSING</b>", style(8, colour=RED))
    return para(text, style(8))


def _pairs(rows: Sequence[tuple[str, Any]]) -> Any:
    label = style(7.5, bold=True, colour=MUTED)
    table = RLTable(
        [[para(k, label), _value(v)] for k, v in rows],
        colWidths=[FRAME_W * 0.3, FRAME_W * 0.7],
        hAlign="LEFT",
    )
    table.setStyle(
        TableStyle(
            [
                ("VALIGN", (0, 0), (-1, -1), "TOP"),
                ("LINEBELOW", (0, 0), (-1, -1), 0.25, RULE),
                ("TOPPADDING", (0, 0), (-1, -1), 1.5),
                ("BOTTOMPADDING", (0, 0), (-1, -1), 2),
            ]
        )
    )
    return table


def _party_block(parties: Sequence[tuple[str, Mapping[str, Any]]]) -> Any:
    cells = []
    for title, p in parties:
        lines = [para(title.upper(), style(7, bold=True, colour=MUTED))]
        for key in ("name", "address", "country", "tax_id"):
            if key in p:
                prefix = "Tax / customs id: " if key == "tax_id" else ""
                value = p[key]
                lines.append(
                    Paragraph(f"{prefix}<b>MISSING</b> ({key})", style(8, colour=RED))
                    if value == MISSING
                    else para(f"{prefix}{value}", style(8, bold=key == "name"))
                )
        cells.append(lines)
    table = RLTable([cells], colWidths=[FRAME_W / len(cells)] * len(cells), hAlign="LEFT")
    table.setStyle(
        TableStyle(
            [
                ("VALIGN", (0, 0), (-1, -1), "TOP"),
                ("BOX", (0, 0), (-1, -1), 0.5, RULE),
                ("INNERGRID", (0, 0), (-1, -1), 0.5, RULE),
                ("TOPPADDING", (0, 0), (-1, -1), 4),
                ("BOTTOMPADDING", (0, 0), (-1, -1), 5),
            ]
        )
    )
    return table


def _signature_block(block: Mapping[str, Any]) -> list[Any]:
    out: list[Any] = [
        Spacer(1, 5 * mm),
        para(f"For and on behalf of {block.get('for', MISSING)}:", style(8, bold=True)),
    ]
    rows = [[para(f, style(8, colour=MUTED)), ""] for f in block.get("fields", ())]
    table = RLTable(rows, colWidths=[30 * mm, 90 * mm], rowHeights=[8 * mm] * len(rows))
    table.setStyle(
        TableStyle(
            [
                ("LINEBELOW", (1, 0), (1, -1), 0.5, colors.black),
                ("VALIGN", (0, 0), (-1, -1), "BOTTOM"),
            ]
        )
    )
    return [*out, table]


def _statements(lines: Sequence[str]) -> list[Any]:
    return [para(f"• {line}", style(8, spaceAfter=2)) for line in lines]


def _heading(text: str) -> Any:
    return para(text, style(9.5, bold=True, spaceBefore=6, spaceAfter=3))


def _missing(doc: Mapping[str, Any]) -> list[Any]:
    missing = doc.get("missing") or []
    if not missing:
        return [para("All items the rule pack requires are present.", style(7.5, colour=MUTED))]
    text = "; ".join(f"{m['what']} ({m['key']})" for m in missing)
    return [
        _heading("Not yet customs-ready"),
        Paragraph(f"<b>Missing:</b> {esc(text)}", style(8, colour=RED)),
    ]


def _header(doc: Mapping[str, Any]) -> list[Any]:
    pack = doc.get("rule_pack", {})
    return [
        para(doc["title"], style(16, bold=True, spaceAfter=2)),
        para(
            f"Shipment {doc['shipment_id']} · invoice no. {doc['invoice_number']} · air waybill "
            f"{doc['air_waybill']} · chain-of-identity code {doc['chain_of_identity_code']} · "
            f"{doc.get('origin') or '?'} → {doc.get('destination') or '?'} · prepared "
            f"{doc['prepared_at']} · rule pack {pack.get('country')} "
            f"reviewed {pack.get('reviewed')}",
            style(7.5, colour=MUTED, spaceAfter=5),
        ),
    ]


def _invoice(doc: Mapping[str, Any]) -> list[Any]:
    out = [
        _party_block(
            [
                ("Shipper / exporter", doc["shipper"]),
                ("Consignee", doc["consignee"]),
                ("Importer of record", doc["importer_of_record"]),
            ]
        ),
        Spacer(1, 3 * mm),
        _pairs(
            [
                ("Incoterm", doc["incoterm"]),
                ("Country of origin of the goods", doc["country_of_origin"]),
                ("Courier", doc["courier"]),
            ]
        ),
        _heading("Goods"),
    ]
    rows: list[list[Any]] = [
        ["Description and use", "HS code", "Lot / CoI", "Quantity", "Unit value", "Total"]
    ]
    for item in doc["items"]:
        rows.append(
            [
                f"{item['description']}\n{item['storage']}\nUse: {item['use']}",
                _value(item["hs_code"]),
                f"{item['lot']}\n{item['chain_of_identity_code']}",
                _value(item["quantity"]),
                _value(f"{item['unit_value']} {item['currency']}"),
                _value(f"{item['total_value']} {item['currency']}"),
            ]
        )
    rows.append(["", "", "", "", "Total", _value(f"{doc['total_value']} {doc['currency']}")])
    out.append(grid(rows, (3.4, 0.9, 1.5, 0.9, 1.0, 1.0)))
    out += [_heading("Statements"), *_statements(doc["statements"])]
    if doc.get("permits"):
        out += [_heading("Permits and licences"), _permit_table(doc["permits"])]
    return [*out, *_signature_block(doc["signature_block"])]


def _packing_list(doc: Mapping[str, Any]) -> list[Any]:
    out = [
        _party_block([("Shipper", doc["shipper"]), ("Consignee", doc["consignee"])]),
        Spacer(1, 3 * mm),
        _pairs(
            [
                ("Packages", doc["packages"]),
                ("Packaging", doc["packaging"]),
                ("Dimensions (cm)", doc.get("dimensions_cm")),
                ("Gross weight", doc["gross_weight"]),
                ("Net weight", doc["net_weight"]),
                ("Dry ice, net kg per package", doc.get("dry_ice_net_kg_per_package")),
                ("Dry ice, net kg in total", doc.get("dry_ice_net_kg_total")),
                ("Data loggers", ", ".join(doc.get("data_loggers", ()))),
                ("SSCC", doc.get("sscc")),
            ]
        ),
        _heading("Contents"),
    ]
    rows: list[list[Any]] = [
        ["Description", "Lot", "Chain-of-identity code", "Quantity", "HS code"]
    ]
    for c in doc["contents"]:
        rows.append(
            [
                c["description"],
                _value(c["lot"]),
                _value(c["chain_of_identity_code"]),
                _value(c["quantity"]),
                _value(c["hs_code"]),
            ]
        )
    out.append(grid(rows, (3.0, 1.2, 1.8, 1.0, 0.9)))
    return [*out, _heading("Marks and labels"), *_statements(doc.get("marks", ()))]


_DG_FACTS = (
    ("un_number", "UN number"),
    ("proper_shipping_name", "Proper shipping name"),
    ("class", "Class"),
    ("packing_instruction", "IATA packing instruction"),
    ("net_kg_per_package", "Net kg per package"),
    ("packages", "Packages"),
    ("net_kg_total", "Net kg in total"),
    ("status", "Status"),
)


def _dangerous_goods(doc: Mapping[str, Any]) -> list[Any]:
    out: list[Any] = [
        _pairs([("Packaging", doc["packaging"]), ("Packages", doc["packages"])]),
        _heading("Declarations"),
    ]
    for d in doc["declarations"]:
        out.append(para(d["text"], style(10, bold=True, spaceAfter=2)))
        facts = [(label, d[key]) for key, label in _DG_FACTS if d.get(key) is not None]
        out.append(_pairs(facts))
        out.append(Spacer(1, 2 * mm))
    return [*out, *_signature_block(doc["signature_block"])]


def _temperature_record(doc: Mapping[str, Any]) -> list[Any]:
    out: list[Any] = [
        _pairs(
            [
                ("Product", doc["product"]),
                ("Monitored range", doc["monitored_range"]),
                ("Verdict", doc.get("verdict", "—")),
            ]
        ),
        _heading("Statement"),
        para(doc["statement"], style(9, spaceAfter=4)),
    ]
    if "period" in doc:
        out.append(
            _pairs(
                [
                    (
                        "First / last reading",
                        f"{doc['period']['first_reading']} / {doc['period']['last_reading']}",
                    ),
                    ("Readings", doc["period"]["readings"]),
                    ("Minimum / maximum °C", f"{doc['min_c']} / {doc['max_c']}"),
                    (
                        "Mean kinetic temperature °C",
                        doc.get("mkt_c") if doc.get("mkt_c") is not None else "not applicable",
                    ),
                ]
            )
        )
        rows: list[list[Any]] = [["Limit", "Minutes out of range", "Episodes"]]
        rows += [
            [e["limit"], str(e["minutes_out_of_range"]), str(e["episodes"])]
            for e in doc["excursions"]
        ]
        out += [_heading("Excursions"), grid(rows, (2, 1.5, 1))]
    rows = [["Data logger", "Calibration offset °C"]]
    rows += [[lg["logger_id"], f"{lg['calibration_offset_c']:+.2f}"] for lg in doc["loggers"]]
    return [*out, _heading("Data loggers"), grid(rows, (2, 1.5))]


def _permit_table(permits: Sequence[Mapping[str, Any]]) -> Any:
    rows: list[list[Any]] = [["Permit / licence", "Issuer", "Number"]]
    rows += [[p["title"], p["issuer"], _value(p["number"])] for p in permits]
    return grid(rows, (3.2, 1.6, 1.6))


def _permits(doc: Mapping[str, Any]) -> list[Any]:
    out: list[Any] = [
        _pairs(
            [
                ("Customs authority", doc["customs_authority"]),
                ("Regulators", "; ".join(doc["regulators"])),
                ("Language", doc["language"]),
            ]
        ),
        _heading("Required permits and licences"),
        _permit_table(doc["permits"])
        if doc["permits"]
        else para("None required by the rule pack.", style(8)),
        _heading("Notes"),
        *_statements(doc["notes"]),
        _heading("Sources of the rule pack"),
    ]
    out += [para(f"{s['title']}: {s['url']}", style(7.5, spaceAfter=1)) for s in doc["sources"]]
    return out


_LAYOUT = {
    "invoice": _invoice,
    "packing-list": _packing_list,
    "dangerous-goods": _dangerous_goods,
    "temperature-record": _temperature_record,
    "permits": _permits,
}


def render_customs_pdf(doc: Mapping[str, Any], *, content_sha256: str, created: datetime) -> bytes:
    """One customs document as a PDF."""
    register_fonts()
    flow = [*_header(doc), *_LAYOUT[doc["document"]](doc), Spacer(1, 4 * mm), *_missing(doc)]
    buf = io.BytesIO()
    SimpleDocTemplate(
        buf,
        pagesize=A4,
        leftMargin=MARGIN,
        rightMargin=MARGIN,
        topMargin=MARGIN,
        bottomMargin=MARGIN,
        title=f"{doc['title']} {doc['shipment_id']}",
        author="coldchain",
        invariant=1,
    ).build(
        flow,
        canvasmaker=numbered_canvas(
            header=f"{doc['title']} · shipment {doc['shipment_id']} · "
            f"CoI {doc['chain_of_identity_code']}",
            footer="customs documents · coldchain",
            content_sha256=content_sha256,
            created=created,
        ),
    )
    return buf.getvalue()
