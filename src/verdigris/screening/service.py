"""Screening of outgoing content (T-23).

The operator defines rules: a *keyword* or phrase (case-insensitive, on word boundaries), a
*pattern* (regular expression) or a *domain* (links to that host or its subdomains, in the text or
as a file URL). A rule either **blocks** (the send is refused with a clear error and nothing is
queued) or sends the message to **review** (it is accepted, 200 with its idMessage, and waits in
status ``review`` until the operator approves it into the queue or rejects it, which fails it with an
``outgoingMessageStatus`` notice). Blocking rules win over review rules. Every block and hold is a
case with the rule, an excerpt and, for holds, the decision: who and when.

Installed as ``core.screening``; the messaging service asks :meth:`Screening.check` for every
outgoing message. With no active rule that is one attribute test; rules are compiled once and
reloaded whenever they change (in this process; other processes re-read them every minute).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote

import orjson
import re2
from sqlalchemy import delete, insert, select, update

from verdigris.accounts.policy import Checks
from verdigris.errors import ServiceError
from verdigris.instances.service import InstanceRecord
from verdigris.messaging import lifecycle
from verdigris.messaging.models import messages
from verdigris.messaging.vocabulary import Status
from verdigris.screening.models import screening_cases, screening_rules
from verdigris.store.clock import now_ms
from verdigris.words import cleaned

if TYPE_CHECKING:
    from verdigris.core import Core, Tx

KINDS = ("keyword", "pattern", "domain")
BLOCK, REVIEW = "block", "review"
RELOAD_EVERY_MS = 60_000
# Host-like runs: labels of letters, digits, '-' or percent-escapes joined by dots, anywhere in the
# text (after "scheme://", "user@", or on their own).
_HOST = re.compile(r"(?:[\w%-]+\.)+[\w%-]*[^\W\d_%][\w%-]*")
_DOTS = str.maketrans({"\u3002": ".", "\uff0e": ".", "\uff61": "."})
MAX_SCREENED = 64 * 1024  # characters of one message that are screened (longer texts: the start)


class ScreeningError(ServiceError):
    pass


@dataclass(frozen=True, slots=True)
class Verdict:
    rule_id: int
    action: str
    reason: str


@dataclass(frozen=True, slots=True)
class _Rule:
    id: int
    kind: str
    action: str
    note: str
    regex: Any
    domain: str

    def matches(self, text: str, hosts: list[str]) -> bool:
        if self.kind == "domain":
            return any(h == self.domain or h.endswith("." + self.domain) for h in hosts)
        assert self.regex is not None
        return self.regex.search(text) is not None


def _compile(kind: str, value: str) -> Any:
    """Keywords: an escaped phrase on word boundaries (stdlib ``re``; a literal cannot backtrack
    badly). Patterns: RE2, which matches in linear time, so no rule can stall the server."""
    if kind == "keyword":
        return re.compile(r"(?<!\w)" + re.escape(value) + r"(?!\w)", re.IGNORECASE)
    if kind == "pattern":
        return re2.compile("(?i)" + value)
    return None


def _texts(value: Any, out: list[str]) -> list[str]:
    """Every string inside a message's content (text, captions, poll options, file names, URLs)."""
    if isinstance(value, str):
        out.append(value)
    elif isinstance(value, dict):
        for item in value.values():
            _texts(item, out)
    elif isinstance(value, list):
        for item in value:
            _texts(item, out)
    return out


def _host(raw: str) -> str:
    """A host name as rules compare it: unquoted, dots normalised, lower case, IDNA (punycode)."""
    host = unquote(raw).translate(_DOTS).strip(".").lower()
    try:
        return host.encode("idna").decode("ascii")
    except UnicodeError:
        return host


def _hosts(texts: list[str]) -> list[str]:
    """Every host a link in the text could lead to: with or without a scheme (messengers make bare
    domains clickable), percent-encoded or with look-alike dots."""
    hosts = []
    for text in texts:
        for found in _HOST.findall(re.sub(r"(?i)%2e", ".", text.translate(_DOTS))):
            host = _host(found)
            if "." in host:
                hosts.append(host)
    return hosts


class Screening:
    def __init__(self, core: Core) -> None:
        self.core = core
        self._rules: list[_Rule] = []
        self._loaded_ms = -RELOAD_EVERY_MS

    async def reload(self) -> None:
        async with self.core.read() as conn:
            rows = (
                await conn.execute(
                    select(screening_rules)
                    .where(screening_rules.c.active.is_(True))
                    .order_by(screening_rules.c.id)
                )
            ).all()
        rules = []
        for r in rows:
            try:
                regex = _compile(r.kind, r.value)
            except (re.error, re2.error):  # stored before validation changed; skip, never fail sends
                continue
            rules.append(_Rule(int(r.id), r.kind, r.action, r.note, regex, r.value.lower()))
        # Blocking rules first: a message both rules match is refused, not held.
        self._rules = sorted(rules, key=lambda rule: (rule.action != BLOCK, rule.id))
        self._loaded_ms = now_ms()

    async def check(self, content: dict[str, Any]) -> Verdict | None:
        if now_ms() - self._loaded_ms >= RELOAD_EVERY_MS:
            await self.reload()
        if not self._rules:
            return None
        texts = [t[:MAX_SCREENED] for t in _texts(content, [])]
        joined = "\n".join(texts)[:MAX_SCREENED]
        hosts = _hosts(texts)
        for rule in self._rules:
            if rule.matches(joined, hosts):
                return Verdict(rule.id, rule.action, rule.note or f"{rule.kind} rule {rule.id}")
        return None

    async def record(
        self,
        tx: Tx,
        rec: InstanceRecord,
        chat_id: str,
        id_message: str,
        verdict: Verdict,
        content: dict[str, Any],
    ) -> None:
        await tx.conn.execute(
            insert(screening_cases).values(
                instance_id=rec.id,
                account_id=rec.account_id,
                chat_id=chat_id[:100],
                id_message=id_message,
                rule_id=verdict.rule_id,
                action="blocked" if verdict.action == BLOCK else "held",
                excerpt="\n".join(_texts(content, []))[:500],
                created_ms=now_ms(),
            )
        )


# --- the operator's side ---------------------------------------------------------------------------


def rule_json(row: Any) -> dict[str, Any]:
    return {
        "id": int(row.id),
        "kind": row.kind,
        "value": row.value,
        "action": row.action,
        "note": row.note,
        "active": bool(row.active),
        "createdMs": int(row.created_ms),
    }


async def list_rules(core: Core) -> list[dict[str, Any]]:
    async with core.read() as conn:
        rows = (await conn.execute(select(screening_rules).order_by(screening_rules.c.id.desc()))).all()
    return [rule_json(r) for r in rows]


def _rule_value(kind: str, value: str) -> tuple[str, str]:
    """A rule's value as stored, and what is wrong with it for its kind ("" when nothing)."""
    if kind == "pattern":
        try:
            compiled = re2.compile("(?i)" + value)
        except re2.error as exc:
            return value, (
                "not a valid regular expression (RE2 syntax: no backreferences or lookarounds): "
                + cleaned(str(exc)).replace("(?i)", "", 1)
            )
        if compiled.search("") is not None:
            return value, "the pattern matches an empty text, so it would match every message"
    if kind == "domain":
        value = _host(value.lower().removeprefix("http://").removeprefix("https://").strip("/"))
        if not re.fullmatch(r"[a-z0-9-]+(\.[a-z0-9-]+)+", value):
            return value, "a domain looks like example.com"
    return value, ""


async def add_rule(
    core: Core, operator_id: int, *, kind: str, value: str, action: str, note: str
) -> dict[str, Any]:
    value, note = value.strip(), note.strip()
    checks = Checks()  # every field's problem at once

    def refuse(field: str, problem: str) -> None:
        checks.refuse(ScreeningError(400, problem, field=field))

    if kind not in KINDS:
        refuse("kind", f"kind must be one of {', '.join(KINDS)}")
    if action not in (BLOCK, REVIEW):
        refuse("action", "action must be 'block' or 'review'")
    if not value or len(value) > 500:
        refuse("value", "the value is 1 to 500 characters")
    if len(note) > 400:
        refuse("note", "the note is at most 400 characters")
    if "value" not in checks.errors:
        value, problem = _rule_value(kind, value)
        if problem:
            refuse("value", problem)
    checks.done(ScreeningError)
    async with core.tx() as tx:
        result = await tx.conn.execute(
            insert(screening_rules).values(
                kind=kind,
                value=value,
                action=action,
                note=note,
                active=True,
                created_by=operator_id,
                created_ms=now_ms(),
            )
        )
        rule_id = int(result.inserted_primary_key[0])  # type: ignore[index]
        row = (await tx.conn.execute(select(screening_rules).where(screening_rules.c.id == rule_id))).first()
    await _reload(core)
    return rule_json(row)


async def deactivate_rule(core: Core, rule_id: int) -> None:
    async with core.tx() as tx:
        result = await tx.conn.execute(
            update(screening_rules)
            .where((screening_rules.c.id == rule_id) & screening_rules.c.active.is_(True))
            .values(active=False)
        )
        if not result.rowcount:
            raise ScreeningError(404, f"no active rule {rule_id}")
    await _reload(core)


async def _reload(core: Core) -> None:
    await core.screening.reload()


async def list_cases(core: Core, *, waiting_only: bool = False, limit: int = 200) -> list[dict[str, Any]]:
    query = select(
        screening_cases, screening_rules.c.kind, screening_rules.c.value, screening_rules.c.note
    ).join(screening_rules, screening_rules.c.id == screening_cases.c.rule_id, isouter=True)
    if waiting_only:
        query = query.where((screening_cases.c.action == "held") & (screening_cases.c.decision == ""))
    async with core.read() as conn:
        rows = (await conn.execute(query.order_by(screening_cases.c.id.desc()).limit(limit))).all()
    return [
        {
            "id": int(r.id),
            "instanceId": int(r.instance_id),
            "accountId": r.account_id,
            "chatId": r.chat_id,
            "idMessage": r.id_message,
            "action": r.action,
            "excerpt": r.excerpt,
            "rule": {"id": int(r.rule_id), "kind": r.kind, "value": r.value, "note": r.note or r.reason},
            "reason": r.reason,
            "createdMs": int(r.created_ms),
            "decision": r.decision,
            "decidedMs": r.decided_ms,
        }
        for r in rows
    ]


async def decide(core: Core, operator_id: int, case_id: int, approve: bool) -> dict[str, Any]:
    """Approve a held message into the queue, or reject it (it fails with a status notice)."""
    at = now_ms()
    async with core.tx() as tx:
        case = (await tx.conn.execute(select(screening_cases).where(screening_cases.c.id == case_id))).first()
        if case is None or case.action != "held":
            raise ScreeningError(404, f"no held message {case_id}")
        # Decide first, conditionally: of two concurrent decisions, only one changes the case.
        decided = await tx.conn.execute(
            update(screening_cases)
            .where((screening_cases.c.id == case_id) & (screening_cases.c.decision == ""))
            .values(decision="approved" if approve else "rejected", decided_by=operator_id, decided_ms=at)
        )
        if not decided.rowcount:
            raise ScreeningError(409, f"case {case_id} was already {case.decision or 'decided'}")
        row = (
            await tx.conn.execute(
                select(messages).where(
                    (messages.c.instance_id == case.instance_id)
                    & (messages.c.id_message == case.id_message)
                    & (messages.c.direction == "out")
                    & (messages.c.status == Status.HELD)
                )
            )
        ).first()
        rec = await core.instances.get(int(case.instance_id), tx.conn)
        if row is not None and rec is not None:
            if approve:
                await lifecycle.set_status(
                    tx, rec, row.id, row.chat_id, row.id_message, Status.QUEUED, expect=(Status.HELD,)
                )
                content = orjson.loads(row.content)
                media = core.media
                if content.get("fetchUrl") and not content.get("downloadUrl"):
                    tx.on_commit(lambda: media.schedule_fetch(int(row.id)))
            else:
                description = "rejected by the content rules of this service"
                await lifecycle.set_status(
                    tx,
                    rec,
                    row.id,
                    row.chat_id,
                    row.id_message,
                    Status.FAILED,
                    description,
                    expect=(Status.HELD,),
                )
    return {"id": case_id, "decision": "approved" if approve else "rejected", "messageFound": row is not None}


def check_removal(checks: Checks, id_message: str, reason: str) -> None:
    """The fields of a removal, each refusal collected in ``checks``."""
    reason, id_message = reason.strip(), id_message.strip()
    if not reason or len(reason) > 400:
        checks.refuse(ScreeningError(400, "give the reason (at most 400 characters)", field="reason"))
    if not id_message or len(id_message) > 64:
        checks.refuse(ScreeningError(400, "give the message's idMessage", field="id_message"))


async def remove_message(
    core: Core, operator_id: int, instance_id: int, id_message: str, reason: str
) -> dict[str, Any]:
    """The operator deletes a stored message of an instance that breaks the rules (T-16): its
    journal rows and its file go; a case keeps what was removed, why, by whom and when. What other
    parties received stays with them (as for a deleted account, decision 0006)."""
    reason, id_message = reason.strip(), id_message.strip()
    checks = Checks()
    check_removal(checks, id_message, reason)
    checks.done(ScreeningError)
    async with core.read() as conn:
        rows = (
            await conn.execute(
                select(messages).where(
                    (messages.c.instance_id == instance_id) & (messages.c.id_message == id_message)
                )
            )
        ).all()
    if not rows:
        raise ScreeningError(404, f"instance {instance_id} has no message {id_message}", field="id_message")
    media = core.media
    for row in rows:
        content = orjson.loads(row.content)
        for url in {content.get("downloadUrl"), content.get("urlFile")} - {None, ""}:
            record = await media.resolve_link(str(url))
            if record is not None and record.owner == str(instance_id):
                await media.discard(record)
    first = rows[0]
    async with core.tx() as tx:
        await tx.conn.execute(
            delete(messages).where(
                (messages.c.instance_id == instance_id) & (messages.c.id_message == id_message)
            )
        )
        await tx.conn.execute(
            insert(screening_cases).values(
                instance_id=instance_id,
                account_id=None,
                chat_id=first.chat_id[:100],
                id_message=id_message,
                rule_id=0,
                action="removed",
                reason=reason,
                excerpt="\n".join(_texts(orjson.loads(first.content), []))[:500],
                created_ms=now_ms(),
                decision="removed",
                decided_by=operator_id,
                decided_ms=now_ms(),
            )
        )
    return {"instanceId": instance_id, "idMessage": id_message, "removed": len(rows)}
