"""The customer database (T-21): contacts of a licensee with source, consent, tags and consumption;
CSV import and export; opt-out by reply (T-22).

Every function takes the tenant (the licensee account whose team works on the contacts) and refuses
what is not the tenant's with 404, exactly like what does not exist. Refusals raise
:class:`CustomerError` and change nothing.
"""

from __future__ import annotations

import asyncio
import csv
import io
import re
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from sqlalchemy import bindparam, delete, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from verdigris import safetext
from verdigris.accounts.policy import Checks
from verdigris.customers.models import campaign_recipients, campaigns, contact_tags, contacts
from verdigris.errors import ServiceError
from verdigris.instances.models import instances
from verdigris.messaging.content import plain_text
from verdigris.messaging.models import messages
from verdigris.store.clock import now_ms

if TYPE_CHECKING:
    from verdigris.core import Core, Tx
    from verdigris.instances.service import InstanceRecord

_PHONE = re.compile(r"^[0-9]{7,15}$")
_TAG = re.compile(r"^[\w-]{1,60}$")
MAX_TAGS = 20
MAX_IMPORT_ROWS = 100_000
CSV_COLUMNS = ("phone", "name", "tags", "consent", "consent_source", "note")


class CustomerError(ServiceError):
    pass


# --- field rules ---------------------------------------------------------------------------------


def clean_phone(raw: str) -> str:
    """International number, digits only: ``+7 (999) 000-11-22`` → ``79990001122``."""
    digits = re.sub(r"[\s()+.-]", "", raw or "")
    if digits.endswith("@c.us"):
        digits = digits[:-5]
    if not _PHONE.match(digits):
        raise CustomerError(
            400,
            f"phone {raw!r}: 7 to 15 digits in international format",
            errors={"phone": "7 to 15 digits in international format, e.g. +7 999 000 11 22"},
        )
    return digits


def clean_tags(raw: str | list[str]) -> list[str]:
    """Tags are lower-case words (letters, digits, '_' or '-'), separated by ';', ',' or spaces."""
    parts = raw if isinstance(raw, list) else re.split(r"[;,\s]+", raw or "")
    tags: list[str] = []
    for part in parts:
        tag = part.strip().lower()
        if not tag:
            continue
        if not _TAG.match(tag):
            raise CustomerError(
                400,
                f"tag {part!r}: letters, digits, '_' or '-', at most 60",
                errors={"tags": f"{part!r}: letters, digits, '_' or '-', at most 60 each"},
            )
        if tag not in tags:
            tags.append(tag)
    if len(tags) > MAX_TAGS:
        raise CustomerError(400, f"at most {MAX_TAGS} tags per contact", field="tags")
    return tags


def _tags_checked(checks: Checks, raw: str | list[str]) -> list[str]:
    try:
        return clean_tags(raw)
    except CustomerError as exc:
        checks.refuse(exc)
        return []


def _text(value: str, what: str, limit: int) -> str:
    """A free text of at most ``limit`` characters; refused as the form field ``what`` (spaces
    read as '_')."""
    value = (value or "").strip()
    problem = f"at most {limit} characters" if len(value) > limit else safetext.problem(value)
    if problem:
        raise CustomerError(400, f"{what}: {problem}", errors={what.replace(" ", "_"): problem})
    return value


def consenting(query: Any) -> Any:
    """Only contacts who agreed to promotions and have not withdrawn."""
    return query.where(contacts.c.consent_ms.is_not(None) & contacts.c.optout_ms.is_(None))


# --- reading -------------------------------------------------------------------------------------


async def _tags_of(conn: AsyncConnection, ids: list[int]) -> dict[int, list[str]]:
    out: dict[int, list[str]] = {i: [] for i in ids}
    for start in range(0, len(ids), 1000):  # PostgreSQL takes at most 32767 parameters
        rows = await conn.execute(
            select(contact_tags.c.contact_id, contact_tags.c.tag)
            .where(contact_tags.c.contact_id.in_(ids[start : start + 1000]))
            .order_by(contact_tags.c.tag)
        )
        for contact_id, tag in rows:
            out[int(contact_id)].append(tag)
    return out


def _contact_json(row: Any, tags: list[str]) -> dict[str, Any]:
    return {
        "id": int(row.id),
        "phone": row.phone,
        "chatId": f"{row.phone}@c.us",
        "name": row.name,
        "source": row.source,
        "note": row.note,
        "tags": tags,
        "consent": row.consent_ms is not None and row.optout_ms is None,
        "consentMs": row.consent_ms,
        "consentSource": row.consent_source,
        "optoutMs": row.optout_ms,
        "optoutSource": row.optout_source,
        "campaignsReached": int(row.campaigns_reached),
        "createdMs": int(row.created_ms),
    }


async def list_contacts(
    core: Core, account_id: int, *, tag: str = "", search: str = "", limit: int = 500
) -> list[dict[str, Any]]:
    query = select(contacts).where(contacts.c.account_id == account_id)
    if tag:
        query = query.where(
            contacts.c.id.in_(select(contact_tags.c.contact_id).where(contact_tags.c.tag == tag.lower()))
        )
    if search:
        like = f"%{search.strip()}%"
        query = query.where(contacts.c.name.ilike(like) | contacts.c.phone.like(like))
    async with core.read() as conn:
        rows = (await conn.execute(query.order_by(contacts.c.name, contacts.c.phone).limit(limit))).all()
        tags = await _tags_of(conn, [int(r.id) for r in rows])
    return [_contact_json(r, tags[int(r.id)]) for r in rows]


async def _contact_row(conn: AsyncConnection, account_id: int, contact_id: int) -> Any:
    row = (
        await conn.execute(
            select(contacts).where((contacts.c.id == contact_id) & (contacts.c.account_id == account_id))
        )
    ).first()
    if row is None:
        raise CustomerError(404, f"no contact {contact_id}")
    return row


async def get_contact(core: Core, account_id: int, contact_id: int) -> dict[str, Any]:
    """One contact with its consumption: messages exchanged with the team's instances, campaigns."""
    async with core.read() as conn:
        row = await _contact_row(conn, account_id, contact_id)
        tags = await _tags_of(conn, [contact_id])
        own = select(instances.c.id).where(instances.c.account_id == account_id)
        counts: dict[str, int] = dict(
            (
                await conn.execute(
                    select(messages.c.direction, func.count())
                    .where(messages.c.instance_id.in_(own) & (messages.c.chat_id == f"{row.phone}@c.us"))
                    .group_by(messages.c.direction)
                )
            ).all()
        )
        last = await conn.scalar(
            select(func.max(messages.c.created_ms)).where(
                messages.c.instance_id.in_(own) & (messages.c.chat_id == f"{row.phone}@c.us")
            )
        )
        reached = (
            await conn.execute(
                select(
                    campaigns.c.id,
                    campaigns.c.name,
                    campaign_recipients.c.status,
                    campaign_recipients.c.done_ms,
                )
                .join(campaigns, campaigns.c.id == campaign_recipients.c.campaign_id)
                .where(campaign_recipients.c.contact_id == contact_id)
                .order_by(campaigns.c.id.desc())
            )
        ).all()
    out = _contact_json(row, tags[contact_id])
    out["consumption"] = {
        "messagesIn": int(counts.get("in", 0)),
        "messagesOut": int(counts.get("out", 0)),
        "lastMessageMs": last,
        "campaigns": [
            {"id": int(r.id), "name": r.name, "status": r.status, "doneMs": r.done_ms} for r in reached
        ],
    }
    return out


# --- changes -------------------------------------------------------------------------------------


async def _set_tags(conn: AsyncConnection, contact_id: int, tags: list[str]) -> None:
    await conn.execute(delete(contact_tags).where(contact_tags.c.contact_id == contact_id))
    if tags:
        await conn.execute(insert(contact_tags), [{"contact_id": contact_id, "tag": t} for t in tags])


async def add_contact(
    core: Core,
    account_id: int,
    *,
    phone: str,
    name: str = "",
    tags: str | list[str] = "",
    note: str = "",
    consent: bool = False,
    consent_source: str = "",
    source: str = "console",
) -> dict[str, Any]:
    checks = Checks()
    number = checks.run(clean_phone, phone)
    clean_name = checks.run(_text, name, "name", 200)
    clean_note = checks.run(_text, note, "note", 2000)
    tag_list = _tags_checked(checks, tags)
    how = checks.run(_text, consent_source, "consent source", 200)
    if consent and not how and "consent_source" not in checks.errors:
        checks.refuse(
            CustomerError(
                400,
                "say how the consent was given (e.g. 'signed form', 'web form')",
                field="consent_source",
            )
        )
    checks.done(CustomerError)
    at = now_ms()
    async with core.tx() as tx:
        exists = await tx.conn.scalar(
            select(contacts.c.id).where((contacts.c.account_id == account_id) & (contacts.c.phone == number))
        )
        if exists is not None:
            raise CustomerError(
                409,
                f"+{number} is already contact {exists}",
                errors={"phone": f"+{number} is already contact {exists}; edit that one instead"},
            )
        result = await tx.conn.execute(
            insert(contacts).values(
                account_id=account_id,
                phone=number,
                name=clean_name,
                source=source,
                note=clean_note,
                consent_ms=at if consent else None,
                consent_source=how if consent else "",
                created_ms=at,
            )
        )
        contact_id = int(result.inserted_primary_key[0])  # type: ignore[index]
        await _set_tags(tx.conn, contact_id, tag_list)
        row = await _contact_row(tx.conn, account_id, contact_id)
    return _contact_json(row, tag_list)


async def update_contact(
    core: Core, account_id: int, contact_id: int, *, name: str, tags: str | list[str], note: str
) -> dict[str, Any]:
    checks = Checks()
    clean_name = checks.run(_text, name, "name", 200)
    clean_note = checks.run(_text, note, "note", 2000)
    tag_list = _tags_checked(checks, tags)
    checks.done(CustomerError)
    async with core.tx() as tx:
        await _contact_row(tx.conn, account_id, contact_id)
        await tx.conn.execute(
            update(contacts).where(contacts.c.id == contact_id).values(name=clean_name, note=clean_note)
        )
        await _set_tags(tx.conn, contact_id, tag_list)
        row = await _contact_row(tx.conn, account_id, contact_id)
    return _contact_json(row, tag_list)


async def set_consent(
    core: Core, account_id: int, contact_id: int, *, granted: bool, source: str
) -> dict[str, Any]:
    """Record consent (with how it was given) or its withdrawal. A new consent after a withdrawal
    replaces both; a withdrawal keeps the consent's record."""
    how = _text(source, "source", 200)
    if not how:
        raise CustomerError(400, "say how the consent was given or withdrawn", field="source")
    at = now_ms()
    async with core.tx() as tx:
        row = await _contact_row(tx.conn, account_id, contact_id)
        if granted:
            values = {"consent_ms": at, "consent_source": how, "optout_ms": None, "optout_source": ""}
        elif row.optout_ms is not None:
            raise CustomerError(409, "the contact has already withdrawn consent")
        else:
            values = {"optout_ms": at, "optout_source": how}
        await tx.conn.execute(update(contacts).where(contacts.c.id == contact_id).values(**values))
    return await get_contact(core, account_id, contact_id)


async def delete_contact(core: Core, account_id: int, contact_id: int) -> None:
    """Erase a contact with its tags and its campaign records (it leaves the campaigns' recipient
    lists and counts: an erased person is not kept as a row anywhere)."""
    async with core.tx() as tx:
        await _contact_row(tx.conn, account_id, contact_id)
        await tx.conn.execute(delete(contact_tags).where(contact_tags.c.contact_id == contact_id))
        await tx.conn.execute(
            delete(campaign_recipients).where(campaign_recipients.c.contact_id == contact_id)
        )
        await tx.conn.execute(delete(contacts).where(contacts.c.id == contact_id))


async def erase_account(conn: AsyncConnection, account_id: int) -> None:
    """Delete every contact and campaign of a tenant (account deletion)."""
    own_contacts = select(contacts.c.id).where(contacts.c.account_id == account_id)
    own_campaigns = select(campaigns.c.id).where(campaigns.c.account_id == account_id)
    await conn.execute(delete(contact_tags).where(contact_tags.c.contact_id.in_(own_contacts)))
    await conn.execute(
        delete(campaign_recipients).where(campaign_recipients.c.campaign_id.in_(own_campaigns))
    )
    await conn.execute(delete(campaigns).where(campaigns.c.account_id == account_id))
    await conn.execute(delete(contacts).where(contacts.c.account_id == account_id))


# --- CSV -----------------------------------------------------------------------------------------


def _yes(value: str) -> bool | None:
    value = value.strip().lower()
    if value in ("yes", "y", "true", "1"):
        return True
    if value in ("", "no", "n", "false", "0"):
        return False
    return None


def _csv_row(fields: dict[str | None, Any]) -> tuple[list[str], str, dict[str, Any]]:
    """One CSV line: every problem in it (not the first alone), or its phone and contact."""
    problems: list[str] = []

    def check(rule: Callable[..., Any], *args: Any) -> Any:
        try:
            return rule(*args)
        except CustomerError as exc:
            problems.append(exc.message)
            return None

    if None in fields:
        problems.append("more fields than columns")
    phone = check(clean_phone, fields.get("phone") or "")
    consent = _yes(fields.get("consent") or "")
    if consent is None:
        problems.append("consent must be yes or no")
    how = check(_text, fields.get("consent_source") or "", "consent_source", 200)
    row = {
        "name": check(_text, fields.get("name") or "", "name", 200),
        "tags": check(clean_tags, fields.get("tags") or ""),
        "note": check(_text, fields.get("note") or "", "note", 2000),
        "consent": consent,
        "consent_source": how or ("imported" if consent else ""),
    }
    return problems, phone or "", row


def parse_csv(text: str) -> dict[str, dict[str, Any]]:
    """The contacts of a CSV file by phone, or CustomerError naming every bad line (pure; runs in
    a worker thread so a large file does not hold up the server)."""
    if "\x00" in text:
        raise CustomerError(400, "the file is not text")
    reader = csv.DictReader(io.StringIO(text.lstrip("\ufeff"), newline=""))
    try:
        header = [h.strip().lower() for h in reader.fieldnames or []]
    except csv.Error as exc:
        raise CustomerError(400, f"line 1: {exc}") from None
    if "phone" not in header:
        raise CustomerError(
            400, f"the first line must name the columns, at least 'phone' ({', '.join(CSV_COLUMNS)})"
        )
    unknown = [h for h in header if h not in CSV_COLUMNS]
    if unknown:
        raise CustomerError(400, f"unknown columns: {', '.join(unknown)}")
    reader.fieldnames = header
    parsed: dict[str, dict[str, Any]] = {}
    errors: list[str] = []
    rows = iter(reader)
    line = 1
    while True:
        try:
            fields = next(rows)
        except StopIteration:
            break
        except csv.Error as exc:
            raise CustomerError(400, f"nothing imported: line {reader.line_num}: {exc}") from None
        line += 1
        if line > MAX_IMPORT_ROWS + 1:
            raise CustomerError(400, f"at most {MAX_IMPORT_ROWS} rows per file")
        problems, phone, row = _csv_row(fields)
        if problems:
            errors.append(f"line {line}: {'; '.join(problems)}")
        else:
            parsed[phone] = row
    if errors:
        shown = "; ".join(errors[:10]) + (f"; and {len(errors) - 10} more" if len(errors) > 10 else "")
        raise CustomerError(400, f"nothing imported: {shown}")
    return parsed


def _chunks(items: list[Any], size: int = 1000) -> list[list[Any]]:
    return [items[n : n + size] for n in range(0, len(items), size)]


async def import_csv(core: Core, account_id: int, text: str) -> dict[str, int]:
    """Add or update contacts from CSV (header ``phone,name,tags,consent,consent_source,note``;
    only ``phone`` is required). All or nothing: one bad row refuses the whole file, naming every
    bad row. An existing contact gets the file's name and note (when given), its tags added, and
    consent when the row says yes and it has neither consent nor a withdrawal. Written in bulk
    statements of 1000 rows, in one transaction."""
    parsed = await asyncio.to_thread(parse_csv, text)
    at = now_ms()
    phones = list(parsed)
    async with core.tx() as tx:
        existing: dict[str, Any] = {}
        for chunk in _chunks(phones):
            for r in (
                await tx.conn.execute(
                    select(contacts).where(
                        (contacts.c.account_id == account_id) & contacts.c.phone.in_(chunk)
                    )
                )
            ).all():
                existing[r.phone] = r
        new = [p for p in phones if p not in existing]
        for chunk in _chunks(new):
            await tx.conn.execute(
                insert(contacts),
                [
                    {
                        "account_id": account_id,
                        "phone": p,
                        "name": parsed[p]["name"],
                        "source": "import",
                        "note": parsed[p]["note"],
                        "consent_ms": at if parsed[p]["consent"] else None,
                        "consent_source": parsed[p]["consent_source"] if parsed[p]["consent"] else "",
                        "created_ms": at,
                    }
                    for p in chunk
                ],
            )
            await asyncio.sleep(0)  # let other requests run between chunks
        ids: dict[str, int] = {}
        for chunk in _chunks(new):
            for r in (
                await tx.conn.execute(
                    select(contacts.c.id, contacts.c.phone).where(
                        (contacts.c.account_id == account_id) & contacts.c.phone.in_(chunk)
                    )
                )
            ).all():
                ids[r.phone] = int(r.id)
        old_tags: dict[int, list[str]] = {}
        for chunk in _chunks([int(r.id) for r in existing.values()]):
            old_tags.update(await _tags_of(tx.conn, chunk))
        changes = []
        for phone, row in existing.items():
            data = parsed[phone]
            grant = data["consent"] and row.consent_ms is None and row.optout_ms is None
            changes.append(
                {
                    "cid": int(row.id),
                    "new_name": data["name"] or row.name,
                    "new_note": data["note"] or row.note,
                    "new_consent_ms": at if grant else row.consent_ms,
                    "new_consent_source": data["consent_source"] if grant else row.consent_source,
                }
            )
            ids[phone] = int(row.id)
        for chunk in _chunks(changes):
            await tx.conn.execute(
                update(contacts)
                .where(contacts.c.id == bindparam("cid"))
                .values(
                    name=bindparam("new_name"),
                    note=bindparam("new_note"),
                    consent_ms=bindparam("new_consent_ms"),
                    consent_source=bindparam("new_consent_source"),
                ),
                chunk,
            )
            await asyncio.sleep(0)
        tag_rows = []
        for phone, contact_id in ids.items():
            merged = clean_tags(old_tags.get(contact_id, []) + parsed[phone]["tags"])
            tag_rows += [{"contact_id": contact_id, "tag": t} for t in merged]
        for chunk in _chunks(list(old_tags)):
            await tx.conn.execute(delete(contact_tags).where(contact_tags.c.contact_id.in_(chunk)))
        for chunk in _chunks(tag_rows):
            await tx.conn.execute(insert(contact_tags), chunk)
            await asyncio.sleep(0)
    return {"added": len(new), "updated": len(existing)}


def _cell(value: Any) -> Any:
    """Text a spreadsheet would run as a formula gets a leading apostrophe (CSV injection)."""
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    return value


async def export_csv(core: Core, account_id: int) -> str:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow([*CSV_COLUMNS, "optout", "campaigns_reached", "source"])
    for c in await list_contacts(core, account_id, limit=MAX_IMPORT_ROWS):
        writer.writerow(
            [
                _cell(v)
                for v in (
                    c["phone"],
                    c["name"],
                    ";".join(c["tags"]),
                    "yes" if c["consent"] else "no",
                    c["consentSource"],
                    c["note"],
                    "yes" if c["optoutMs"] else "no",
                    c["campaignsReached"],
                    c["source"],
                )
            ]
        )
    return out.getvalue()


# --- opt-out by reply (T-22) ---------------------------------------------------------------------


def optout_words(core: Core) -> frozenset[str]:
    return frozenset(w.strip().upper() for w in core.settings.customers_optout_words.split(",") if w.strip())


async def on_incoming(
    tx: Tx, inst: InstanceRecord, chat_id: str, type_message: str, content: dict[str, Any]
) -> None:
    """An incoming message: a reply such as STOP withdraws the sender's consent at once, in the
    transaction that stores the message, so no later campaign step can reach them."""
    if inst.account_id is None or not chat_id.endswith("@c.us"):
        return
    text = plain_text(type_message, content).strip().strip(".!").upper()
    if not text or len(text) > 40 or text not in optout_words(tx.core):
        return
    await tx.conn.execute(
        update(contacts)
        .where(
            (contacts.c.account_id == inst.account_id)
            & (contacts.c.phone == chat_id[:-5])
            & contacts.c.optout_ms.is_(None)
        )
        .values(optout_ms=now_ms(), optout_source=f"replied {text!r} to instance {inst.id}")
    )
