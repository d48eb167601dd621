"""Issue 13 items 8 and 9: refusals read as written for people, and forms keep what was typed
with each error next to its field."""

from __future__ import annotations

import html
import re
import uuid

from console_client import Console, mail_text, new_user, outbox_mail
from harness import Server
from verdigris.words import cleaned, duration, plural


def unique(prefix: str) -> str:
    return f"{prefix}{uuid.uuid4().hex[:8]}"


def error_box(page: str) -> str:
    found = re.search(r'class="error"[^>]*>(.*?)</p>', page, re.S)
    return html.unescape(re.sub(r"<[^>]+>", "", found.group(1))) if found else ""


def test_counts_and_durations_read_naturally() -> None:
    assert plural(1, "session") == "1 session"
    assert plural(0, "payment") == "0 payments"
    assert plural(2, "entry", "entries") == "2 entries"
    assert duration(30 * 86400) == "30 days"
    assert duration(86400) == "1 day"
    assert duration(5400) == "1.5 hours"
    assert duration(90) == "1.5 minutes"
    assert duration(1) == "1 second"
    assert cleaned("Value error, must be a URL") == "must be a URL"
    assert cleaned("b'missing ): (abc'") == "missing ): (abc"


def test_refusals_carry_no_library_internals(server: Server) -> None:
    console, _ = new_user(server, unique("txt"))
    console.get("/")
    r = console.post("/instances", {"name": "bot"})
    instance_id = int(r.headers["location"].rsplit("/", 1)[1])
    page = f"/instances/{instance_id}"
    console.get(page)
    console.post(f"{page}/settings", {"delaySendMessagesMilliseconds": "soon"})
    error = error_box(console.get(page).text)
    assert error.startswith("Settings not saved: Pause between two sent messages"), error
    assert "Value error" not in error and "None" not in error

    op = Console(server)
    op.login(server.demo["operator"]["username"], server.demo["operator"]["password"])
    op.get("/operator/screening")
    r = op.post("/operator/screening/rules", {"kind": "pattern", "value": "(abc", "action": "block"})
    error = field_error(r.text, "rule-value")
    assert r.status_code == 400 and error.endswith("missing ): (abc"), error
    assert "b'" not in error and "(?i)" not in error


def field_error(page: str, field_id: str) -> str:
    found = re.search(rf'id="{field_id}-error"[^>]*>([^<]*)<', page)
    return html.unescape(found.group(1)) if found else ""


def input_value(page: str, field_id: str) -> str | None:
    found = re.search(rf'<input id="{field_id}"[^>]*?value="([^"]*)"', page)
    return html.unescape(found.group(1)) if found else None


def test_the_sign_up_form_shows_every_error_at_its_field_and_keeps_the_input(server: Server) -> None:
    console = Console(server)
    page = console.get("/register").text
    # Required fields are marked before anything is sent.
    for name in ("name", "email", "username"):
        assert re.search(
            rf'<label for="f-{name}"[^>]*>\s*<span class="label-text">[^<]*<span class="req"', page
        ), name
    assert not re.search(
        r'<label for="f-phone"[^>]*>\s*<span class="label-text">[^<]*<span class="req"', page
    )
    taken = server.demo["console"]["username"]
    r = console.post(
        "/register",
        {
            "name": "Lee Example",
            "email": "not-an-address",
            "phone": "12",
            "username": taken,
            "organisation": "Lee & Co",
        },
    )
    assert r.status_code == 400
    assert error_box(r.text) == "Not done yet: please correct the 5 marked fields."
    assert field_error(r.text, "f-email") == "Not a valid address"
    assert "7 to 15 digits" in field_error(r.text, "f-phone")
    assert "is taken" in field_error(r.text, "f-username")
    assert "user agreement" in field_error(r.text, "f-accept_agreement")
    assert "personal data" in field_error(r.text, "f-accept_privacy")
    assert field_error(r.text, "f-name") == ""
    # What was typed is still there.
    assert input_value(r.text, "f-name") == "Lee Example"
    assert input_value(r.text, "f-email") == "not-an-address"
    assert input_value(r.text, "f-organisation") == "Lee & Co"
    assert input_value(r.text, "f-username") == taken
    assert "username: " not in error_box(r.text)


def test_the_password_rules_are_stated_up_front_and_errors_stay_at_their_form(server: Server) -> None:
    console, password = new_user(server, unique("pw"))
    page = console.get("/account").text
    rules = re.search(r'id="password-new_password-hint">([^<]*)<', page)
    assert rules and "At least 10 characters" in rules.group(1)
    r = console.post(
        "/account/password",
        {"password": "not-my-password", "new_password": "short", "repeat_password": "short"},
    )
    assert r.status_code == 400
    assert field_error(r.text, "password-password") == "Wrong"
    assert field_error(r.text, "username-password") == ""  # the other form on the page is untouched
    r = console.post(
        "/account/password",
        {
            "password": password,
            "new_password": "Tulip-Anchor-Violin-42",
            "repeat_password": "Tulip-Anchor-Violin-4",
        },
    )
    assert (
        r.status_code == 400 and field_error(r.text, "password-repeat_password") == "The two entries differ"
    )
    r = console.post("/account/username", {"username": "root", "password": password})
    assert r.status_code == 400 and "reserved" in field_error(r.text, "username-username")
    assert input_value(r.text, "username-username") == "root"


def test_the_join_form_keeps_what_was_typed_and_shows_each_error(server: Server) -> None:
    owner, _ = new_user(server, unique("own"))
    address = f"{unique('m')}@example.test"
    owner.get("/team")
    assert "selected>viewer<" in owner.get("/team").text  # the least powerful role first
    assert owner.post("/team/invite", {"email": address, "role": "viewer"}).status_code == 303
    link = re.search(r"(http\S+/console/invite/\S+)", mail_text(outbox_mail(server.data_dir, address)))
    assert link
    path = link.group(1).split("/console", 1)[1]
    member = Console(server)
    page = member.get(path).text
    assert "At least 10 characters" in page  # the password rules before the first try
    wanted = unique("joiner")
    r = member.post(path, {"username": wanted, "password": "short"})
    assert r.status_code == 400
    assert error_box(r.text) == "Not done yet: please correct the 2 marked fields."
    assert "At least 10 characters" in field_error(r.text, "f-password")
    assert "user agreement" in field_error(r.text, "f-accept_agreement")
    assert input_value(r.text, "f-username") == wanted
    assert 'value="short"' not in r.text  # a password is never sent back
    r = member.post(
        path,
        {
            "username": wanted,
            "password": "Member-Pass-9999",
            "accept_agreement": "on",
            "accept_privacy": "on",
        },
    )
    assert r.status_code == 303


def textarea_value(page: str, field_id: str) -> str | None:
    found = re.search(rf'<textarea id="{field_id}"[^>]*>([^<]*)</textarea>', page)
    return html.unescape(found.group(1)) if found else None


def is_required(page: str, field_id: str) -> bool:
    return bool(
        re.search(rf'<label for="{field_id}"[^>]*>\s*<span class="label-text">[^<]*<span class="req"', page)
    )


def test_the_contact_forms_show_every_error_at_its_field_and_keep_the_input(server: Server) -> None:
    owner, _ = new_user(server, unique("crm"))
    page = owner.get("/customers").text
    assert is_required(page, "add-phone") and not is_required(page, "add-name")
    assert "7 to 15 digits" in page and "at most 20" in page  # the rules before the first try
    r = owner.post(
        "/customers",
        {
            "phone": "12",
            "name": "Ann",
            "tags": "vip bad!tag",
            "note": "x" * 2001,
            "consent": "on",
            "consent_source": "",
        },
    )
    assert r.status_code == 400
    assert error_box(r.text) == "Not done yet: please correct the 4 marked fields."
    assert "7 to 15 digits" in field_error(r.text, "add-phone")
    assert "'bad!tag'" in field_error(r.text, "add-tags")
    assert field_error(r.text, "add-note") == "At most 2000 characters"
    assert "Say how the consent was given" in field_error(r.text, "add-consent_source")
    assert field_error(r.text, "add-name") == ""
    assert input_value(r.text, "add-phone") == "12"
    assert input_value(r.text, "add-name") == "Ann"
    assert input_value(r.text, "add-tags") == "vip bad!tag"
    assert re.search(r'id="add-consent"[^>]*checked', r.text)
    assert "<tbody>" not in owner.get("/customers").text  # nothing added

    # A duplicate is named at the phone field, with its own status.
    assert owner.post("/customers", {"phone": "+79993030001"}).status_code == 303
    r = owner.post("/customers", {"phone": "79993030001", "name": "Again"})
    assert r.status_code == 409 and "already contact" in field_error(r.text, "add-phone")
    assert input_value(r.text, "add-name") == "Again"

    # The import: the file's problems at the file's field.
    owner.get("/customers")
    r = owner.http.post(
        "/console/customers/import",
        data={"csrf": owner.csrf},
        files={"file": ("c.csv", b"phone,consent\n12,maybe\n", "text/csv")},
    )
    assert r.status_code == 400
    error = field_error(r.text, "import-file")
    assert "line 2:" in error and "consent must be yes or no" in error, error
    assert is_required(r.text, "import-file") and "at most 10 MB" in r.text

    # Editing: every error at once, what was typed kept (not the stored values).
    contact = re.search(r'href="/console/customers/(\d+)"', owner.get("/customers").text)
    assert contact
    path = f"/customers/{contact.group(1)}"
    owner.get(path)
    r = owner.post(path, {"name": "N" * 201, "tags": "ok!?", "note": "kept note"})
    assert r.status_code == 400
    assert field_error(r.text, "edit-name") == "At most 200 characters"
    assert "'ok!?'" in field_error(r.text, "edit-tags")
    assert input_value(r.text, "edit-note") == "kept note"
    assert field_error(r.text, "consent-source") == ""  # the other form on the page is untouched
    r = owner.post(f"{path}/consent", {"granted": "yes", "source": " "})
    assert r.status_code == 400 and "Say how" in field_error(r.text, "consent-source")


def test_the_campaign_form_shows_every_error_at_its_field_and_keeps_the_input(server: Server) -> None:
    owner, _ = new_user(server, unique("cmp"))
    owner.get("/")
    created = owner.post("/instances", {"name": "Shop bot"})
    instance_id = created.headers["location"].rsplit("/", 1)[1]
    page = owner.get("/campaigns").text
    for name in ("campaign-name", "campaign-instance", "campaign-text"):
        assert is_required(page, name), name
    assert "At most 4000 characters" in page and "to 86400" in page
    r = owner.post(
        "/campaigns",
        {"instance": instance_id, "name": "", "tag": "spring", "text": "Hello {name}", "interval": "0"},
    )
    assert r.status_code == 400
    assert error_box(r.text) == "Not done yet: please correct the 2 marked fields."
    assert field_error(r.text, "campaign-name") == "The campaign needs a name"
    assert "A whole number of seconds from" in field_error(r.text, "campaign-interval")
    assert field_error(r.text, "campaign-text") == ""
    assert textarea_value(r.text, "campaign-text") == "Hello {name}"
    assert input_value(r.text, "campaign-tag") == "spring"
    assert input_value(r.text, "campaign-interval") == "0"
    assert re.search(rf'<option value="{instance_id}" selected', r.text)
    r = owner.post("/campaigns", {"instance": "7700000001", "name": "x", "text": "", "interval": "60"})
    assert r.status_code == 404
    assert "No instance 7700000001 in this team" in field_error(r.text, "campaign-instance")
    assert "The campaign needs a text" in field_error(r.text, "campaign-text")
    assert "<tbody>" not in owner.get("/campaigns").text  # nothing saved


def operator_console(server: Server) -> Console:
    op = Console(server)
    op.login(server.demo["operator"]["username"], server.demo["operator"]["password"])
    return op


def test_the_billing_forms_show_every_error_at_its_field_and_keep_the_input(server: Server) -> None:
    op = operator_console(server)
    code = unique("t")
    op.get("/operator/billing")
    r = op.post(
        "/operator/billing/tariffs",
        {
            "code": code,
            "name": "Business",
            "kind": "paid",
            "price": "10.00",
            "currency": "EUR",
            "public": "on",
        },
    )
    assert r.status_code == 303
    lee, _ = new_user(server, unique("bil"))
    lee.get("/")
    instance_id = lee.post("/instances", {"name": "Shop"}).headers["location"].rsplit("/", 1)[1]
    form = f"buy-{instance_id}"
    page = lee.get("/billing").text
    assert "1 to 120" in page and is_required(page, f"{form}-tariff")
    r = lee.post(
        "/billing/buy", {"instance": instance_id, "tariff": code, "periods": "500", "promo": "NO-SUCH"}
    )
    assert r.status_code == 400
    assert error_box(r.text) == "Not done yet: please correct the 2 marked fields."
    assert field_error(r.text, f"{form}-periods") == "A whole number from 1 to 120"
    assert "Unknown promo code 'NO-SUCH'" in field_error(r.text, f"{form}-promo")
    assert input_value(r.text, f"{form}-periods") == "500"
    assert input_value(r.text, f"{form}-promo") == "NO-SUCH"
    assert re.search(rf'<option value="{code}" selected', r.text)
    assert 'data-invoice="' not in lee.get("/billing").text  # no invoice issued

    # The transfer form: both errors at once, and the receiver's name kept.
    op.get("/operator/billing")
    r = op.post("/operator/billing/licenses", {"instance": instance_id, "tariff": code, "days": "30"})
    assert r.status_code == 303
    lee.get("/billing")
    r = lee.post("/billing/transfers", {"to": ""})
    assert r.status_code == 400
    assert "Choose at least one license" in field_error(r.text, "transfer-license")
    assert "username of the receiving account" in field_error(r.text, "transfer-to")
    r = lee.post("/billing/transfers", {"to": "nobody-here"})
    assert r.status_code == 400 and input_value(r.text, "transfer-to") == "nobody-here"
    offered = re.search(r'name="license" value="(\d+)"', r.text)
    assert offered
    r = lee.post("/billing/transfers", {"license": offered.group(1), "to": "nobody-here"})
    assert r.status_code == 404 and "No licensee 'nobody-here'" in field_error(r.text, "transfer-to")
    assert re.search(rf'name="license" value="{offered.group(1)}" checked', r.text)


def test_the_screening_forms_show_every_error_at_its_field_and_keep_the_input(server: Server) -> None:
    op = operator_console(server)
    page = op.get("/operator/screening").text
    assert is_required(page, "rule-value") and is_required(page, "remove-reason")
    assert "RE2 regular expression" in page and "1 to 500 characters" in page
    r = op.post(
        "/operator/screening/rules",
        {"kind": "pattern", "value": "a*", "action": "ban", "note": "n" * 401},
    )
    assert r.status_code == 400
    assert error_box(r.text) == "Not done yet: please correct the 3 marked fields."
    assert "matches an empty text" in field_error(r.text, "rule-value")
    assert "'block' or 'review'" in field_error(r.text, "rule-action")
    assert "at most 400 characters" in field_error(r.text, "rule-note")
    assert input_value(r.text, "rule-value") == "a*"
    assert re.search(r"<option selected>pattern</option>", r.text)
    assert "a*" not in html.unescape(op.get("/operator/screening").text)  # no rule added
    r = op.post("/operator/screening/remove", {"instance": "abc", "id_message": "", "reason": ""})
    assert r.status_code == 400
    assert error_box(r.text) == "Not done yet: please correct the 3 marked fields."
    assert "idInstance" in field_error(r.text, "remove-instance")
    assert "idMessage" in field_error(r.text, "remove-id_message")
    assert "reason" in field_error(r.text, "remove-reason")
    assert input_value(r.text, "remove-instance") == "abc"
    assert field_error(r.text, "rule-value") == ""  # the other form is untouched


def test_the_moderation_forms_show_every_error_at_its_field_and_keep_the_input(server: Server) -> None:
    name = unique("mod")
    new_user(server, name)
    op = operator_console(server)
    found = re.search(
        rf'/console/operator/accounts/(\d+)">{name}<', op.get(f"/operator/accounts?q={name}").text
    )
    assert found
    path = f"/operator/accounts/{found.group(1)}"
    page = op.get(path).text
    for field in ("block-reason", "suspend-until", "suspend-reason", "delete-reason", "delete-confirm"):
        assert is_required(page, field), field
    assert "At least 3 characters, at most 400" in page and f"Exactly {name}." in page

    r = op.post(f"{path}/suspend", {"until": "2000-01-01T10:00", "reason": "x"})
    assert r.status_code == 400
    assert error_box(r.text) == "Not done yet: please correct the 2 marked fields."
    assert field_error(r.text, "suspend-until") == "A moment in the future"
    assert "at least 3 characters" in field_error(r.text, "suspend-reason")
    assert input_value(r.text, "suspend-until") == "2000-01-01T10:00"
    assert input_value(r.text, "suspend-reason") == "x"
    assert field_error(r.text, "block-reason") == ""  # only the sent form shows errors
    assert input_value(r.text, "block-reason") == ""
    r = op.post(f"{path}/suspend", {"until": "soon", "reason": "unpaid invoices"})
    assert r.status_code == 400 and "YYYY-MM-DD" in field_error(r.text, "suspend-until")
    assert input_value(r.text, "suspend-reason") == "unpaid invoices"

    r = op.post(f"{path}/block", {"reason": " "})
    assert r.status_code == 400 and "say why" in field_error(r.text, "block-reason").lower()

    r = op.post(f"{path}/delete", {"reason": "no", "confirm": "someone-else"})
    assert r.status_code == 400
    assert error_box(r.text) == "Not done yet: please correct the 2 marked fields."
    assert "at least 3 characters" in field_error(r.text, "delete-reason")
    assert f"(exactly: {name})" in field_error(r.text, "delete-confirm")
    assert input_value(r.text, "delete-confirm") == "someone-else"
    assert f"/console/operator/accounts/{found.group(1)}" in op.get(f"/operator/accounts?q={name}").text
    assert "none (full access)" in op.get(path).text  # no measure was applied


def test_the_announcement_form_shows_every_error_at_its_field_and_keeps_the_input(server: Server) -> None:
    op = operator_console(server)
    page = op.get("/operator/announcements").text
    assert is_required(page, "announce-subject") and is_required(page, "announce-text")
    assert "One line of 1 to 200 characters" in page and "At most 20000 characters" in page
    r = op.post(
        "/operator/announcements",
        {"kind": "service", "subject": "S" * 201, "text": "", "test_to": "not-an-address", "action": "test"},
    )
    assert r.status_code == 400
    assert error_box(r.text) == "Not done yet: please correct the 3 marked fields."
    assert "One line of 1 to 200" in field_error(r.text, "announce-subject")
    assert "Required" in field_error(r.text, "announce-text")
    assert "needs an e-mail address" in field_error(r.text, "test-to")
    assert input_value(r.text, "announce-subject") == "S" * 201
    assert input_value(r.text, "test-to") == "not-an-address"
    # A preview keeps the draft in its fields, to be corrected or tested.
    r = op.post(
        "/operator/announcements",
        {"kind": "marketing", "subject": "Spring news", "text": "Hello & welcome", "action": "preview"},
    )
    assert r.status_code == 200 and 'id="announcement-preview"' in r.text
    assert input_value(r.text, "announce-subject") == "Spring news"
    assert textarea_value(r.text, "announce-text") == "Hello & welcome"
    assert re.search(r'<option value="marketing" selected>', r.text)
