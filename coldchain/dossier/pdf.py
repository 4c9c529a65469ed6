"""``dossier.pdf`` (docs/DOSSIER.md): the one module that draws, with reportlab and matplotlib.

It lays out a :class:`~coldchain.dossier.content.DossierView` and decides
nothing: page 1 answers "can this be released?" (system verdict, QA
disposition, a release checklist, the shipment's key facts and figures, a
compact chart and the device reconciliation), the following pages hold the
full temperature chart and every table. Every page carries "Page x of y"
and the SHA-256 of the data the PDF was rendered from (the manifest's
``content_sha256``). Text is DejaVu Sans (shipped with matplotlib) so that
°, −, → and ✔ print as themselves; PDFs are compressed and their creation
date is the dossier's, so one input gives one PDF.
"""

from __future__ import annotations

import io
import math
from collections.abc import Callable, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import matplotlib as mpl
import matplotlib.dates as mdates
import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from PIL import Image as PILImage
from reportlab import rl_config
from reportlab.lib import colors
from reportlab.lib.enums import TA_LEFT
from reportlab.lib.pagesizes import A4
from reportlab.lib.styles import ParagraphStyle
from reportlab.lib.units import mm
from reportlab.lib.utils import ImageReader
from reportlab.pdfbase import pdfmetrics
from reportlab.pdfbase.ttfonts import TTFont
from reportlab.pdfgen import canvas
from reportlab.platypus import (
    Flowable,
    KeepTogether,
    PageBreak,
    Paragraph,
    SimpleDocTemplate,
    Spacer,
    TableStyle,
)
from reportlab.platypus import Table as RLTable

from coldchain.dossier.content import ChartData, DossierView, Table

FONT = "DejaVuSans"
FONT_BOLD = "DejaVuSans-Bold"
FONT_ITALIC = "DejaVuSans-Oblique"
MARGIN = 14 * mm
PAGE_W, PAGE_H = A4
FRAME_W = PAGE_W - 2 * MARGIN
CHART_DPI = 160
MIN_SPAN = 0.003
"""Narrowest shaded span in the chart, as a fraction of its time axis."""

INK = colors.HexColor("#1d2433")
MUTED = colors.HexColor("#5b6475")
RULE = colors.HexColor("#c9ced8")
ZEBRA = colors.HexColor("#f3f5f8")
HEAD = colors.HexColor("#e4e8ef")
STATUS_COLOUR = {
    "ok": colors.HexColor("#1b7f3b"),
    "warn": colors.HexColor("#b26a00"),
    "fail": colors.HexColor("#b3261e"),
    "na": colors.HexColor("#7a8190"),
}
STATUS_MARK = {"ok": "✔", "warn": "!", "fail": "✘", "na": "–"}
VERDICT_COLOUR = {
    "PASS": colors.HexColor("#1b7f3b"),
    "REVIEW": colors.HexColor("#b26a00"),
    "FAIL": colors.HexColor("#b3261e"),
}
DISPOSITION_COLOUR = {
    "released": colors.HexColor("#1b7f3b"),
    "rejected": colors.HexColor("#b3261e"),
    "quarantined": colors.HexColor("#b26a00"),
    "pending": colors.HexColor("#5b6475"),
}
MPL_SEVERITY = {"critical": "#b3261e", "warning": "#d48800", "info": "#3b6fb6"}


# -- shared with coldchain.customs.pdf ----------------------------------------------------------


def register_fonts() -> None:
    """DejaVu Sans from matplotlib's data, registered once with reportlab."""
    if FONT in pdfmetrics.getRegisteredFontNames():
        return
    # Binary streams, not ASCII85: a third smaller, and without reportlab's C
    # accelerator its pure-Python ASCII85 encoder is the slowest step of a chart.
    rl_config.useA85 = 0
    folder = Path(mpl.get_data_path()) / "fonts" / "ttf"
    for name, file in (
        (FONT, "DejaVuSans.ttf"),
        (FONT_BOLD, "DejaVuSans-Bold.ttf"),
        (FONT_ITALIC, "DejaVuSans-Oblique.ttf"),
    ):
        pdfmetrics.registerFont(TTFont(name, str(folder / file)))
    pdfmetrics.registerFontFamily(FONT, normal=FONT, bold=FONT_BOLD, italic=FONT_ITALIC)


def style(size: float = 8.5, *, bold: bool = False, colour: Any = INK, **kw: Any) -> Any:
    return ParagraphStyle(
        f"s{size}{bold}",
        fontName=FONT_BOLD if bold else FONT,
        fontSize=size,
        leading=size * 1.28,
        textColor=colour,
        alignment=TA_LEFT,
        **kw,
    )


def esc(text: str) -> str:
    """Text for a reportlab Paragraph: markup escaped, line breaks kept."""
    return (
        text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace("\n", "<br/>")
    )


def para(text: str, st: Any) -> Any:
    return Paragraph(esc(text), st)


def numbered_canvas(
    *, header: str, footer: str, content_sha256: str, created: datetime
) -> Callable[..., Any]:
    """A canvas class that prints the header, "Page x of y" and the content hash on every page."""

    class _Numbered(canvas.Canvas):  # type: ignore[misc]  # reportlab has no type stubs
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self._pages: list[dict[str, Any]] = []
            self.setCreator(footer)
            self.setAuthor("coldchain")
            self.setTitle(header)

        def showPage(self) -> None:  # noqa: N802 - reportlab's name
            self._pages.append(dict(self.__dict__))
            self._startPage()

        def save(self) -> None:
            total = len(self._pages)
            for state in self._pages:
                self.__dict__.update(state)
                self._decorate(total)
                super().showPage()
            super().save()

        def _decorate(self, total: int) -> None:
            number = self.getPageNumber()
            self.saveState()
            self.setStrokeColor(RULE)
            self.setLineWidth(0.5)
            self.line(MARGIN, PAGE_H - MARGIN + 3 * mm, PAGE_W - MARGIN, PAGE_H - MARGIN + 3 * mm)
            self.line(MARGIN, MARGIN - 3 * mm, PAGE_W - MARGIN, MARGIN - 3 * mm)
            self.setFillColor(MUTED)
            self.setFont(FONT, 7.5)
            self.drawString(MARGIN, PAGE_H - MARGIN + 5 * mm, header)
            self.drawRightString(PAGE_W - MARGIN, PAGE_H - MARGIN + 5 * mm, footer)
            self.setFont(FONT, 7)
            self.drawString(MARGIN, MARGIN - 7 * mm, f"Dossier content SHA-256: {content_sha256}")
            self.setFont(FONT_BOLD, 8)
            self.drawRightString(PAGE_W - MARGIN, MARGIN - 7 * mm, f"Page {number} of {total}")
            self.restoreState()

    def make(*args: Any, **kwargs: Any) -> Any:
        kwargs.setdefault("invariant", 1)
        c = _Numbered(*args, **kwargs)
        c.setDateFormatter(lambda *_: created.strftime("D:%Y%m%d%H%M%S+00'00'"))
        return c

    return make


def grid(
    rows: Sequence[Sequence[Any]],
    widths: Sequence[float],
    *,
    header: bool = True,
    font_size: float = 7.5,
) -> Any:
    """A table of Paragraph cells, header row shaded, zebra rows, repeated header on page breaks."""
    total = sum(widths)
    col_w = [FRAME_W * w / total for w in widths]
    head = style(font_size, bold=True)
    body = style(font_size)
    cells = [
        [
            c if isinstance(c, Flowable) else para(str(c), head if header and i == 0 else body)
            for c in row
        ]
        for i, row in enumerate(rows)
    ]
    table = RLTable(cells, colWidths=col_w, repeatRows=1 if header else 0, hAlign="LEFT")
    commands: list[tuple[Any, ...]] = [
        ("VALIGN", (0, 0), (-1, -1), "TOP"),
        ("TOPPADDING", (0, 0), (-1, -1), 2),
        ("BOTTOMPADDING", (0, 0), (-1, -1), 2),
        ("LEFTPADDING", (0, 0), (-1, -1), 3),
        ("RIGHTPADDING", (0, 0), (-1, -1), 3),
        ("LINEBELOW", (0, 0), (-1, -1), 0.25, RULE),
    ]
    if header:
        commands.append(("BACKGROUND", (0, 0), (-1, 0), HEAD))
    start = 1 if header else 0
    commands += [("BACKGROUND", (0, r), (-1, r), ZEBRA) for r in range(start + 1, len(rows), 2)]
    table.setStyle(TableStyle(commands))
    return table


# -- the chart --------------------------------------------------------------------------------


def chart_image(
    chart: ChartData, *, width_mm: float, height_mm: float, compact: bool
) -> PILImage.Image:
    """The temperature record: readings (sample and hold), limits, excursions, gaps, custody."""
    day_ms = 86_400_000.0

    def x(ms: float) -> float:
        return ms / day_ms  # matplotlib date numbers: days since 1970-01-01 UTC

    # Figure + Agg canvas, not pyplot: no global figure registry, safe in any thread.
    fig = Figure(figsize=(width_mm / 25.4, height_mm / 25.4), dpi=CHART_DPI)
    agg = FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    fs = 6.5 if compact else 7
    # A 40-minute excursion in 30 days is narrower than a pixel: spans are drawn at
    # least MIN_SPAN of the axis wide, so that every one of them can be seen.
    least = (chart.end_ms - chart.start_ms) * MIN_SPAN
    for start, end in chart.gaps:
        ax.axvspan(
            x(start), x(max(end, start + least)), facecolor="#9aa3b2", alpha=0.3,
            hatch="///", lw=0,
        )  # fmt: skip
    for start, end, severity in chart.episodes:
        ax.axvspan(
            x(start), x(max(end, start + least)),
            facecolor=MPL_SEVERITY.get(severity, "#d48800"), alpha=0.22, lw=0,
        )  # fmt: skip
    values: list[float] = []
    for s in chart.series:
        xs = [x(t) for t in s.ts_ms]
        values += [v for v in s.temp_c if not math.isnan(v)]
        ax.plot(
            xs,
            s.temp_c,
            drawstyle="steps-post",
            lw=0.9 if s.primary else 0.6,
            color="#1d3f8a" if s.primary else "#8a94a6",
            label=s.label,
            zorder=3 if s.primary else 2,
        )
    lows = [lim for lim, _, _ in chart.limits]
    span_lo = min([*values, *lows]) if values or lows else 0.0
    span_hi = max([*values, *lows]) if values or lows else 1.0
    pad = max(2.0, (span_hi - span_lo) * 0.08)
    ax.set_ylim(span_lo - pad, span_hi + pad)
    ax.set_xlim(x(chart.start_ms), x(max(chart.end_ms, chart.start_ms + 60_000)))
    for lim, label, severity in chart.limits:
        colour = MPL_SEVERITY.get(severity, "#d48800")
        ax.axhline(lim, color=colour, lw=0.8, ls="--", zorder=2)
        ax.annotate(
            label,
            xy=(1.0, lim),
            xycoords=("axes fraction", "data"),
            xytext=(-2, 2),
            textcoords="offset points",
            ha="right",
            va="bottom",
            fontsize=fs - 0.5,
            color=colour,
        )
    if not compact:
        top = ax.get_ylim()[1]
        for ms, label in _clustered(chart.marks, (chart.end_ms - chart.start_ms) / 70):
            ax.axvline(x(ms), color="#5b6475", lw=0.5, ls=":", zorder=1)
            ax.text(
                x(ms), top, f" {label}", rotation=90, va="top", ha="right",
                fontsize=fs - 1, color="#5b6475",
            )  # fmt: skip
    else:
        for ms, _ in chart.marks:
            ax.plot(
                [x(ms)], [ax.get_ylim()[1]], marker="v", ms=3, color="#5b6475", zorder=4,
                clip_on=False,
            )  # fmt: skip
    tz = ZoneInfo(chart.zone)
    # matplotlib's date helpers are not annotated
    locator = mdates.AutoDateLocator(tz=tz, minticks=4, maxticks=9 if compact else 12)  # type: ignore[no-untyped-call]
    ax.xaxis.set_major_locator(locator)
    ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator, tz=tz))  # type: ignore[no-untyped-call]
    ax.tick_params(labelsize=fs)
    ax.xaxis.get_offset_text().set_fontsize(fs)
    ax.set_ylabel("°C", fontsize=fs)
    ax.set_xlabel(f"device time ({chart.zone})", fontsize=fs)
    ax.grid(visible=True, color="#e1e5ec", lw=0.5)
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)
    if not compact and len(chart.series) > 1:
        ax.legend(
            fontsize=fs - 0.5, loc="upper left", bbox_to_anchor=(0.0, -0.13), ncol=3,
            frameon=False,
        )  # fmt: skip
    fig.tight_layout(pad=0.4)
    # The raw pixels, not a PNG: reportlab would only decode it again.
    agg.draw()  # type: ignore[no-untyped-call]  # the Agg backend is not annotated
    rgba = np.asarray(agg.buffer_rgba())  # type: ignore[no-untyped-call]
    return PILImage.fromarray(np.ascontiguousarray(rgba[:, :, :3]))


def _clustered(marks: Sequence[tuple[int, str]], within_ms: float) -> list[tuple[int, str]]:
    """Custody marks closer than ``within_ms`` share one line and one label."""
    out: list[tuple[int, str]] = []
    for ms, label in marks:
        if out and ms - out[-1][0] < within_ms:
            first, text = out[-1]
            out[-1] = (first, text if label in text.split(", ") else f"{text}, {label}")
        else:
            out.append((ms, label))
    return out


class FitChart(Flowable):  # type: ignore[misc]  # reportlab has no type stubs
    """A chart as tall as ``max_mm`` or what is left of the page, at least ``min_mm``.

    Rendered when drawn, at the height it got, so page 1 keeps its compact chart
    however long the checklist above it grows.
    """

    def __init__(
        self, chart: ChartData, *, min_mm: float, max_mm: float, compact: bool = True
    ) -> None:
        super().__init__()
        self.chart = chart
        self.compact = compact
        self.min_h = min_mm * mm
        self.max_h = max_mm * mm
        self.w = FRAME_W
        self.h = self.max_h

    def wrap(self, avail_w: float, avail_h: float) -> tuple[float, float]:
        self.w = avail_w
        self.h = self.max_h if avail_h < self.min_h else min(self.max_h, avail_h)
        return self.w, self.h

    def draw(self) -> None:
        image = chart_image(
            self.chart, width_mm=self.w / mm, height_mm=self.h / mm, compact=self.compact
        )
        self.canv.drawImage(ImageReader(image), 0, 0, width=self.w, height=self.h)


# -- page 1 --------------------------------------------------------------------------------------


def _banner(view: DossierView) -> Any:
    verdict_c = VERDICT_COLOUR.get(view.verdict, MUTED)
    disp_c = DISPOSITION_COLOUR.get(view.disposition_status, MUTED)
    white = colors.white
    left = [
        para("SYSTEM VERDICT", style(7.5, bold=True, colour=white)),
        para(view.verdict, style(24, bold=True, colour=white)),
        para("; ".join(view.reasons), style(7.5, colour=white)),
    ]
    right = [
        para("QA DISPOSITION", style(7.5, bold=True, colour=white)),
        para(view.disposition_status.upper(), style(18, bold=True, colour=white)),
        para(view.disposition_line, style(7.5, colour=white)),
    ]
    table = RLTable([[left, right]], colWidths=[FRAME_W * 0.42, FRAME_W * 0.58])
    table.setStyle(
        TableStyle(
            [
                ("BACKGROUND", (0, 0), (0, 0), verdict_c),
                ("BACKGROUND", (1, 0), (1, 0), disp_c),
                ("VALIGN", (0, 0), (-1, -1), "TOP"),
                ("TOPPADDING", (0, 0), (-1, -1), 5),
                ("BOTTOMPADDING", (0, 0), (-1, -1), 6),
                ("LEFTPADDING", (0, 0), (-1, -1), 7),
                ("LINEAFTER", (0, 0), (0, 0), 2, colors.white),
            ]
        )
    )
    return table


def _checklist(view: DossierView) -> Any:
    rows: list[list[Any]] = []
    for c in view.checks:
        colour = STATUS_COLOUR[c.status]
        rows.append(
            [
                para(STATUS_MARK[c.status], style(10, bold=True, colour=colour)),
                para(c.title, style(8, bold=True)),
                para(c.detail, style(7.5)),
            ]
        )
    table = RLTable(rows, colWidths=[7 * mm, 44 * mm, FRAME_W - 51 * mm], hAlign="LEFT")
    table.setStyle(
        TableStyle(
            [
                ("VALIGN", (0, 0), (-1, -1), "MIDDLE"),
                ("LINEBELOW", (0, 0), (-1, -1), 0.25, RULE),
                ("TOPPADDING", (0, 0), (-1, -1), 1.5),
                ("BOTTOMPADDING", (0, 0), (-1, -1), 2),
                ("LEFTPADDING", (0, 0), (-1, -1), 3),
            ]
        )
    )
    return table


def _pairs(rows: Sequence[tuple[str, str]], label_w: float = 0.3) -> Any:
    label = style(7.5, bold=True, colour=MUTED)
    value = style(7.8)
    table = RLTable(
        [[para(k, label), para(v, value)] for k, v in rows],
        colWidths=[FRAME_W * label_w, FRAME_W * (1 - label_w)],
        hAlign="LEFT",
    )
    table.setStyle(
        TableStyle(
            [
                ("VALIGN", (0, 0), (-1, -1), "TOP"),
                ("TOPPADDING", (0, 0), (-1, -1), 1),
                ("BOTTOMPADDING", (0, 0), (-1, -1), 1.5),
                ("LEFTPADDING", (0, 0), (-1, -1), 3),
                ("LINEBELOW", (0, 0), (-1, -1), 0.25, ZEBRA),
            ]
        )
    )
    return table


def _heading(text: str, size: float = 10.5) -> Any:
    return para(text, style(size, bold=True, spaceBefore=6, spaceAfter=3, keepWithNext=1))


def _section(t: Table) -> list[Any]:
    out: list[Any] = [_heading(t.title)]
    if t.rows:
        out.append(grid([t.columns, *t.rows], t.widths))
    else:
        out.append(para(t.empty, style(8, colour=MUTED)))
    if t.note:
        out.append(para(t.note, style(6.8, colour=MUTED, spaceBefore=2)))
    return out


def story(view: DossierView) -> list[Any]:
    """Every flowable of the dossier, page 1 first."""
    title = style(15, bold=True, spaceAfter=1)
    sub = style(8.5, colour=MUTED, spaceAfter=5)
    out: list[Any] = [
        para(f"{view.title} — can it be released?", title),
        para(
            f"Chain-of-identity code {view.coi_code} · {view.facts[0][1]} · "
            f"generated {view.generated_at} by {view.generator}",
            sub,
        ),
        _banner(view),
        Spacer(1, 3 * mm),
        _heading("Release checklist", 9.5),
        _checklist(view),
        _heading("Shipment", 9.5),
        _pairs(view.facts[1:]),
        _heading("Temperature", 9.5),
        _pairs(view.temperature),
        Spacer(1, 2 * mm),
        FitChart(view.chart, min_mm=38, max_mm=58),
    ]
    if view.reconciliation is not None:
        out += [KeepTogether(_section(view.reconciliation))]
    out += [
        PageBreak(),
        _heading("Temperature record"),
        para(
            "Sample-and-hold readings of the evaluated timeline (primary logger, backups filling "
            "its gaps); dashed lines are the profile's limits, shaded spans excursion episodes "
            "(red critical, amber warning), hatched spans data gaps, dotted lines custody events.",
            style(7, colour=MUTED, spaceAfter=2),
        ),
        FitChart(view.chart, min_mm=105, max_mm=105, compact=False),
    ]
    for table in view.sections:
        out += _section(table)
    out += [_heading("QA disposition and electronic signatures (21 CFR Part 11 §11.50)")]
    out += [para(line, style(8, spaceAfter=3)) for line in view.disposition_text]
    out += [_heading("Integrity"), _pairs(view.integrity, 0.25)]
    out.append(
        para(
            "The SHA-256 in every page footer is the manifest's content_sha256: the hash of the "
            "data files this PDF was rendered from. manifest.json lists the hash of every file in "
            "the dossier, including this PDF, and is signed with Ed25519.",
            style(6.8, colour=MUTED, spaceBefore=3),
        )
    )
    return out


def render_dossier_pdf(view: DossierView, *, created: datetime) -> bytes:
    """The dossier PDF, A4 portrait."""
    register_fonts()
    buf = io.BytesIO()
    doc = SimpleDocTemplate(
        buf,
        pagesize=A4,
        leftMargin=MARGIN,
        rightMargin=MARGIN,
        topMargin=MARGIN,
        bottomMargin=MARGIN,
        title=f"Shipment dossier {view.shipment_id}",
        author="coldchain",
        invariant=1,
    )
    doc.build(
        story(view),
        canvasmaker=numbered_canvas(
            header=f"coldchain shipment dossier · {view.shipment_id} · CoI {view.coi_code}",
            footer=view.generator,
            content_sha256=view.content_sha256,
            created=created,
        ),
    )
    return buf.getvalue()
