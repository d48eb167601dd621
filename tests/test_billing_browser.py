"""Licensing end to end in a real browser (issue 6): trial instance → quota hit → buy a tariff →
invoice PDF → the operator marks it paid → the license is active from the next day → plan change
with the computed extension.

The operator publishes the tariffs on the billing desk; the licensee works in the billing section;
the wire API is driven by the official SDK. The server runs with the sandbox clock on, so "the next
day" is reached by moving its clock forward. The invoice PDF is rendered to PNG with pdftoppm and
kept in docs/licensing/ (docs/licensing.md shows it).
"""

from __future__ import annotations

import calendar
import json
import re
import shutil
import subprocess
from datetime import date, timedelta
from decimal import ROUND_FLOOR, ROUND_HALF_UP, Decimal
from typing import Any

import pytest

from harness import CHROMIUM, Server, drain, screenshots

DOCS = screenshots("licensing")
ZONE = "Asia/Tokyo"  # far from UTC, so "the next day" is the operator's, not the machine's

pytestmark = pytest.mark.skipif(shutil.which(CHROMIUM) is None, reason="chromium is not installed")


def add_months(start: date, months: int) -> date:
    """Calendar months as docs/licensing.md defines them (a missing day rolls to the next 1st)."""
    index = start.year * 12 + start.month - 1 + months
    year, month = divmod(index, 12)
    last = calendar.monthrange(year, month + 1)[1]
    if start.day <= last:
        return date(year, month + 1, start.day)
    return date(year, month + 1, last) + timedelta(days=1)


def expected_extension(
    price: Decimal, starts: date, ends: date, switch: date, new_price: Decimal, months: int
) -> tuple[int, date]:
    """The documented plan-change arithmetic, restated: unused value → days of the new tariff."""
    total = (ends - starts).days
    unused = (ends - max(switch, starts)).days
    unused_value = (price * unused / total).quantize(Decimal("0.01"), ROUND_HALF_UP)
    period_end = add_months(switch, months)
    period_days = (period_end - switch).days
    days = int((unused_value * period_days / new_price).to_integral_value(ROUND_FLOOR))
    return days, period_end + timedelta(days=days)


def field_date(text: str, label: str) -> date:
    found = re.search(label + r"\s*(\d{4}-\d{2}-\d{2})", text)
    assert found, f"no {label!r} date in {text!r}"
    return date.fromisoformat(found.group(1))


def login(browser: Any, srv: Server, who: str) -> Any:
    from playwright.sync_api import expect

    context = browser.new_context(viewport={"width": 1100, "height": 900})
    context.set_default_timeout(30_000)
    page = context.new_page()
    creds = srv.demo[who]
    page.goto(srv.url + "/console/login")
    page.fill("input[name=username]", creds["username"])
    page.fill("input[name=password]", creds["password"])
    page.click("button[type=submit]")
    expect(page.locator("#logout")).to_be_visible()
    return page


def shot(page: Any, name: str) -> None:
    DOCS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(DOCS / f"{name}.png"), full_page=True)


def next_day(srv: Server) -> None:
    r = srv.sandbox("POST", "/clock", json={"advanceSeconds": 86_400})
    assert r.status_code == 200, r.text


def publish(page: Any, **values: str) -> None:
    from playwright.sync_api import expect

    page.goto(page.url.split("/console")[0] + "/console/operator/billing")
    form = page.locator("#op-tariffs details")
    form.locator("summary").click()
    for name, value in values.items():
        if name in ("kind", "period_unit"):
            form.locator(f"select[name={name}]").select_option(value)
        else:
            form.locator(f"input[name={name}]").fill(value)
    form.locator("button[type=submit]").click()
    expect(page.locator(".flash")).to_contain_text(f"Tariff {values['code']} version 1 published")


def mark_paid(page: Any, number: str, reference: str) -> None:
    from playwright.sync_api import expect

    page.goto(page.url.split("/console")[0] + "/console/operator/billing")
    row = page.locator(f"#op-invoices tr[data-invoice='{number}']")
    row.locator("input[name=reference]").fill(reference)
    row.locator("button.mark-paid").click()
    expect(page.locator("#confirm-reference")).to_have_text(reference)
    page.click("#confirm-mark-paid")
    expect(page.locator(".flash")).to_contain_text(f"{number} marked paid")
    expect(page.locator(f"#op-invoices tr[data-invoice='{number}'] .status")).to_have_text("paid")


def test_trial_quota_purchase_payment_next_day_and_plan_change(make_server: Any, browser: Any) -> None:
    from playwright.sync_api import expect

    srv: Server = make_server(
        env={
            "VERDIGRIS_SANDBOX_CLOCK": "true",
            "VERDIGRIS_OPERATOR_TIMEZONE": ZONE,
            "VERDIGRIS_OPERATOR_LEGAL_NAME": "Verdigris Demo Operator Ltd",
            "VERDIGRIS_OPERATOR_REGISTRATION_NUMBER": "12345678",
            "VERDIGRIS_OPERATOR_TAX_ID": "GB123456789",
            "VERDIGRIS_OPERATOR_ADDRESS": "1 Copper Lane, London",
            "VERDIGRIS_OPERATOR_BANK_DETAILS": "IBAN GB33 BUKB 2020 1555 5555 55, BIC BUKBGB22",
            "VERDIGRIS_OPERATOR_EMAIL": "billing@verdigris.example",
            "VERDIGRIS_LICENSING_FLUSH_SECONDS": "0.2",
        }
    )
    inst = srv.instance(0)  # the demo licensee's instance, linked to sandbox phone 79990000001
    instance_id = inst["idInstance"]
    customers = ["79995550002", "79995550003", "79995550004"]
    for number in customers:
        srv.new_phone(number)
    api = srv.api(inst)
    drain(api)

    # The operator publishes a trial with a small correspondents quota and two paid tariffs.
    operator = login(browser, srv, "operator")
    publish(
        operator,
        code="starter",
        name="Starter trial",
        kind="trial",
        trial_days="7",
        limits='{"correspondents": 2}',
    )
    publish(operator, code="team", name="Team", kind="paid", price="20.00", currency="USD")
    publish(
        operator,
        code="team-quarter",
        name="Team, quarterly",
        kind="paid",
        price="54.00",
        currency="USD",
        period_count="3",
    )

    # The public tariff page lists them, with the operator's requisites.
    public = browser.new_page()
    public.goto(srv.url + "/console/tariffs")
    expect(public.locator("#tariffs tr[data-code='team']")).to_contain_text("20.00 USD / 1 month")
    expect(public.locator("#requisites")).to_contain_text("Verdigris Demo Operator Ltd")
    shot(public, "tariffs")

    # The licensee starts the trial on the instance.
    lee = login(browser, srv, "console")
    lee.click("nav >> text=Billing")
    card = lee.locator(f"#license-{instance_id}")
    card.locator("select[name=tariff]").first.select_option("starter")
    card.locator("button.start-free").click()
    expect(lee.locator(".flash")).to_contain_text("Starter trial started")
    expect(card.locator(".license-state")).to_have_text("active")

    # Two correspondents are allowed; the third gets 466 with the documented body.
    for number in customers[:2]:
        assert api.sending.sendMessage(f"{number}@c.us", "hello").code == 200
    refused = api.sending.sendMessage(f"{customers[2]}@c.us", "one too many")
    assert refused.code == 466
    assert json.loads(refused.error)["correspondentsStatus"]["status"] == "CORRESPONDENTS_QUOTE_EXCEEDED"
    lee.reload()
    quota = card.locator("tr[data-quota='correspondents']")
    expect(quota.locator(".used")).to_have_text("2")
    expect(quota.locator(".left")).to_contain_text("exhausted")
    shot(lee, "billing-quota")

    # Buy "Team": the invoice (offer) carries the operator's requisites and opens as a PDF.
    buy = card.locator("form.buy")
    buy.locator("select[name=tariff]").select_option("team")
    buy.locator("button[type=submit]").click()
    expect(lee.locator(".flash")).to_contain_text("issued")
    expect(lee.locator("#invoice-status")).to_have_text("issued")
    expect(lee.locator("#invoice-total")).to_contain_text("20.00 USD")
    expect(lee.locator("#how-to-pay")).to_contain_text("IBAN GB33 BUKB")
    number = lee.locator("h1").inner_text().split()[1]
    shot(lee, "invoice")
    pdf = lee.request.get(srv.url + str(lee.locator("#invoice-pdf").get_attribute("href")))
    assert pdf.status == 200 and pdf.headers["content-type"] == "application/pdf"
    render_pdf(pdf.body(), number)

    # The operator records the bank transfer.
    mark_paid(operator, number, "BANK-0001")

    # Today the trial still runs (and still refuses the third correspondent); the paid license waits.
    lee.goto(srv.url + "/console/billing")
    expect(card.locator(".current")).to_contain_text("Starter trial")
    expect(card.locator(".upcoming")).to_contain_text("Team")
    first_day = field_date(card.locator(".upcoming").inner_text(), "from")
    assert api.sending.sendMessage(f"{customers[2]}@c.us", "still the trial").code == 466

    # The next day (in the operator's zone) the Team license is active and unlimited.
    next_day(srv)
    lee.reload()
    expect(card.locator(".current")).to_contain_text("Team")
    current = card.locator(".current").inner_text()
    assert field_date(current, "from") == first_day
    ends = field_date(current, "to")
    assert ends == add_months(first_day, 1)
    assert api.sending.sendMessage(f"{customers[2]}@c.us", "now licensed").code == 200
    shot(lee, "billing-active")

    # Plan change to the quarterly tariff: the preview shows the extension, computed as documented.
    change = card.locator("form.change")
    change.locator("select[name=tariff]").select_option("team-quarter")
    change.locator("button[type=submit]").click()
    switch = field_date(lee.locator("#switch-on").inner_text(), "")
    days, new_end = expected_extension(Decimal("20.00"), first_day, ends, switch, Decimal("54.00"), 3)
    assert days > 0
    expect(lee.locator("#extension-days")).to_contain_text(f"{days} days")
    expect(lee.locator("#new-ends-on")).to_have_text(new_end.isoformat())
    expect(lee.locator("#to-pay")).to_contain_text("54.00 USD")
    shot(lee, "plan-change")
    lee.click("#confirm-change")
    expect(lee.locator("#invoice-total")).to_contain_text("54.00 USD")
    change_number = lee.locator("h1").inner_text().split()[1]

    mark_paid(operator, change_number, "BANK-0002")
    next_day(srv)
    lee.goto(srv.url + "/console/billing")
    current = card.locator(".current")
    expect(current).to_contain_text("Team, quarterly")
    expect(current).to_contain_text(f"+{days} days carried over")
    assert field_date(current.inner_text(), "from") == switch
    assert field_date(current.inner_text(), "to") == new_end

    # The revenue of the period counts both payments.
    operator.goto(srv.url + "/console/operator/billing")
    expect(operator.locator("#revenue-total")).to_contain_text("74.00 USD")
    shot(operator, "billing-desk")


def render_pdf(pdf: bytes, number: str) -> None:
    """Render the invoice's first page to PNG (docs/licensing/invoice.png) and check its text."""
    pdftoppm, pdftotext = shutil.which("pdftoppm"), shutil.which("pdftotext")
    if pdftoppm is None or pdftotext is None:
        pytest.skip("poppler-utils (pdftoppm, pdftotext) are not installed")
    DOCS.mkdir(parents=True, exist_ok=True)
    source = DOCS / "invoice.pdf.tmp"
    source.write_bytes(pdf)
    try:
        text = subprocess.run(
            [pdftotext, "-layout", str(source), "-"], check=True, capture_output=True
        ).stdout
        for needle in (number, "Verdigris Demo Operator Ltd", "GB123456789", "IBAN GB33", "20.00", "Team"):
            assert needle.encode() in text, needle
        subprocess.run(
            [pdftoppm, "-png", "-r", "60", "-singlefile", str(source), str(DOCS / "invoice")], check=True
        )
    finally:
        source.unlink()
    assert (DOCS / "invoice.png").stat().st_size > 10_000
