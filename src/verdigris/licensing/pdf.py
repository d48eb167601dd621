"""The invoice (offer) as a PDF, with the operator's requisites (T-27), drawn with reportlab.

Text is set in DejaVu Sans when the system has it (wide Unicode coverage, e.g. Cyrillic
requisites), else in Bitstream Vera, which reportlab ships.
"""

from __future__ import annotations

import io
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape

from reportlab.lib import colors
from reportlab.lib.pagesizes import A4
from reportlab.lib.styles import ParagraphStyle
from reportlab.lib.units import mm
from reportlab.pdfbase import pdfmetrics
from reportlab.pdfbase.ttfonts import TTFont
from reportlab.platypus import Paragraph, SimpleDocTemplate, Spacer, Table, TableStyle

_FONT: tuple[str, str] | None = None
_CANDIDATES = [
    (
        Path("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"),
        Path("/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf"),
    ),
]


def _fonts() -> tuple[str, str]:
    global _FONT
    if _FONT is not None:
        return _FONT
    import reportlab

    shipped = Path(reportlab.__file__).parent / "fonts"
    for regular, bold in [*_CANDIDATES, (shipped / "Vera.ttf", shipped / "VeraBd.ttf")]:
        if regular.exists() and bold.exists():
            pdfmetrics.registerFont(TTFont("InvoiceSans", str(regular)))
            pdfmetrics.registerFont(TTFont("InvoiceSans-Bold", str(bold)))
            _FONT = ("InvoiceSans", "InvoiceSans-Bold")
            return _FONT
    _FONT = ("Helvetica", "Helvetica-Bold")  # pragma: no cover - reportlab always ships Vera
    return _FONT


def _p(text: str, style: ParagraphStyle) -> Paragraph:
    return Paragraph(escape(text).replace("\n", "<br/>"), style)


def render_invoice(invoice: dict[str, Any], time_zone: str = "UTC") -> bytes:
    from zoneinfo import ZoneInfo

    regular, bold = _fonts()
    body = ParagraphStyle("body", fontName=regular, fontSize=9, leading=12)
    small = ParagraphStyle(
        "small", fontName=regular, fontSize=7.5, leading=10, textColor=colors.HexColor("#444444")
    )
    head = ParagraphStyle("head", fontName=bold, fontSize=15, leading=19, spaceAfter=4)
    label = ParagraphStyle("label", fontName=bold, fontSize=9, leading=12)
    indented = ParagraphStyle("indented", parent=small, leftIndent=10)
    req = invoice["requisites"]
    buyer = invoice["buyer"]
    cur = invoice["currency"]
    issued = datetime.fromtimestamp(invoice["createdMs"] / 1000, UTC).astimezone(ZoneInfo(time_zone))
    out = io.BytesIO()
    doc = SimpleDocTemplate(
        out,
        pagesize=A4,
        leftMargin=18 * mm,
        rightMargin=18 * mm,
        topMargin=16 * mm,
        bottomMargin=16 * mm,
        title=f"Invoice {invoice['number']}",
        author=req.get("legalName", ""),
    )
    story: list[Any] = []
    title = "Invoice (offer)" if invoice["kind"] == "purchase" else "Invoice (offer): change of license type"
    story.append(_p(f"{title} {invoice['number']}", head))
    story.append(_p(f"Issued {issued:%Y-%m-%d %H:%M} ({time_zone}). Status: {invoice['status']}.", body))
    story.append(Spacer(1, 5 * mm))
    operator_lines = [
        req.get("legalName", ""),
        f"Registration number: {req['registrationNumber']}" if req.get("registrationNumber") else "",
        f"Tax id: {req['taxId']}" if req.get("taxId") else "",
        req.get("address", ""),
        f"Bank details: {req['bankDetails']}" if req.get("bankDetails") else "",
        f"E-mail: {req['email']}" if req.get("email") else "",
    ]
    buyer_lines = [
        buyer.get("name") or buyer.get("username", ""),
        f"Account: {buyer.get('username', '')}",
        buyer.get("email", ""),
    ]
    parties = Table(
        [
            [_p("Licensor (operator)", label), _p("Licensee (buyer)", label)],
            [
                _p("\n".join(x for x in operator_lines if x), body),
                _p("\n".join(x for x in buyer_lines if x), body),
            ],
        ],
        colWidths=[87 * mm, 87 * mm],
    )
    parties.setStyle(
        TableStyle([("VALIGN", (0, 0), (-1, -1), "TOP"), ("BOTTOMPADDING", (0, 0), (-1, -1), 4)])
    )
    story += [parties, Spacer(1, 6 * mm)]
    rows: list[list[Any]] = [[_p(h, label) for h in ("#", "Item", "Unit price", "Qty", "Amount")]]
    for line in invoice["lines"]:
        rows.append(
            [
                _p(str(line["position"]), body),
                _p(line["description"], body),
                _p(f"{line['unitPrice']} {cur}", body),
                _p(str(line["quantity"]), body),
                _p(f"{line['base']} {cur}", body),
            ]
        )
        for adj in line["adjustments"]:
            what = f'{adj["kind"].replace("_", " ")}: rule "{adj["rule"]}" (#{adj["ruleId"]})'
            if adj.get("bonusDays"):
                what += f", +{adj['bonusDays']} bonus day(s)"
            rows.append(["", _p(what, indented), "", "", _p(f"{adj['amount']} {cur}", small)])
        if line["adjustments"]:
            rows.append(["", _p("line total", indented), "", "", _p(f"{line['amount']} {cur}", body)])
    subtotal_row = len(rows)
    rows.append(["", _p("Subtotal", label), "", "", _p(f"{invoice['subtotal']} {cur}", body)])
    if invoice["subtotal"] != invoice["total"]:
        change = Decimal(invoice["total"]) - Decimal(invoice["subtotal"])
        rows.append(
            ["", _p("Loyalty program (rules listed above)", body), "", "", _p(f"{change} {cur}", body)]
        )
    rows.append(["", _p("Total to pay", label), "", "", _p(f"{invoice['total']} {cur}", label)])
    table = Table(rows, colWidths=[8 * mm, 96 * mm, 28 * mm, 12 * mm, 30 * mm], repeatRows=1)
    table.setStyle(
        TableStyle(
            [
                ("LINEBELOW", (0, 0), (-1, 0), 0.8, colors.black),
                ("LINEABOVE", (0, subtotal_row), (-1, subtotal_row), 0.5, colors.grey),
                ("VALIGN", (0, 0), (-1, -1), "TOP"),
                ("BACKGROUND", (0, 0), (-1, 0), colors.HexColor("#e8f0ec")),
            ]
        )
    )
    story += [table, Spacer(1, 6 * mm)]
    terms = (
        "This invoice is an offer to conclude a license agreement for the listed instances on the listed "
        "tariffs. Paying the total in full accepts the offer and concludes the agreement. Each license starts "
        f"on the calendar day after payment ({time_zone}) and runs for the tariff's period. When the license "
        "type is changed, the unused paid part of the current license extends the new one, converted at the "
        "new tariff's price; no refunds are made."
    )
    story.append(_p(terms, small))
    if invoice.get("payments"):
        story.append(Spacer(1, 3 * mm))
        for pay in invoice["payments"]:
            paid = datetime.fromtimestamp(pay["receivedMs"] / 1000, UTC).astimezone(ZoneInfo(time_zone))
            story.append(
                _p(
                    f"Paid {pay['amount']} {pay['currency']} on {paid:%Y-%m-%d %H:%M} ({pay['method']}, ref {pay['reference']}).",
                    body,
                )
            )
    doc.build(story)
    return out.getvalue()
