"""The demo workspace: what a newcomer gets on an empty data dir.

An operator account, a licensee account with a partner token, sandbox phones, and two instances
of the licensee linked to two phones so they can message each other at once. ``verdigris demo
--json`` prints it (the keys of that JSON are a stable interface: bot developers use it in CI).

The server creates it by itself only on the embedded default's first start (SQLite in the data dir,
no accounts yet, ``VERDIGRIS_DEMO`` not switched off, no ``--no-demo``); anywhere else it exists only
when the operator runs ``verdigris demo``. Its passwords are stored as argon2 hashes like every other
password and printed once, when they are made: at creation, or when ``verdigris demo
--new-passwords`` replaces them. Other times the JSON's ``password`` fields are null.
"""

from __future__ import annotations

from typing import Any

import orjson

from verdigris.accounts import credentials as accounts_credentials
from verdigris.accounts import service as accounts
from verdigris.channels.sandbox import network
from verdigris.channels.sandbox.routes import sandbox_token
from verdigris.core import Core
from verdigris.instances import service as instances
from verdigris.instances.settings import MESSAGE_FLAGS
from verdigris.licensing import service as licensing

# A starter price list the operator edits on the billing desk. Demo instances stay unlicensed: the
# default unlicensed policy ("open") lets them work without limits.
DEMO_TARIFFS: list[dict[str, Any]] = [
    {
        "code": "developer",
        "name": "Developer",
        "kind": "free",
        "price": "0",
        "limits": {"correspondents": 3, "methods": {"checkWhatsapp": 100}},
        "description": "Free for development: three correspondents a month.",
    },
    {"code": "trial", "name": "Business trial", "kind": "trial", "price": "0", "trial_days": 3},
    {
        "code": "business",
        "name": "Business",
        "kind": "paid",
        "price": "12.00",
        "features": ["unlimited correspondents", "webhooks", "groups"],
    },
    {
        "code": "business-quarter",
        "name": "Business, 3 months",
        "kind": "paid",
        "price": "33.00",
        "period_count": 3,
        "features": ["unlimited correspondents", "webhooks", "groups"],
    },
]

DEMO_PHONES = [
    ("79990000001", "Ada (demo A)"),
    ("79990000002", "Ben (demo B)"),
    ("79990000003", "Cleo (customer)"),
]


async def wanted_at_start(core: Core) -> bool:
    """Whether this start creates the demo: the embedded default's first start only."""
    settings = core.settings
    if not settings.demo or settings.database_url:
        return False
    async with core.read() as conn:
        created = await instances.meta_get(conn, "demo")
    return created is None and await accounts.account_count(core) == 0


async def ensure_demo(core: Core, *, new_passwords: bool = False) -> dict[str, Any]:
    """Create the demo workspace if the data dir has none; return its description (with the
    passwords only when they were just made)."""
    async with core.read() as conn:
        stored = await instances.meta_get(conn, "demo")
    passwords: dict[str, str] = {}
    if stored is None:
        stored, passwords = await _create(core)
    record = orjson.loads(stored)
    if any("password" in record[who] for who in ("operator", "console")):
        # Written by an older version, with the passwords in clear: keep only the usernames.
        for who in ("operator", "console"):
            record[who].pop("password", None)
        async with core.tx() as tx:
            await instances.meta_set(tx.conn, "demo", orjson.dumps(record).decode())
    if new_passwords and not passwords:
        passwords = await _new_passwords(core, record)
    info = await describe(core, record)
    for who in ("operator", "console"):
        info[who] = {"username": record[who]["username"], "password": passwords.get(who)}
    return info


async def _new_passwords(core: Core, record: dict[str, Any]) -> dict[str, str]:
    made = {}
    for who in ("operator", "console"):
        row = await accounts.get_by_username(core, record[who]["username"])
        if row is not None:
            made[who] = accounts.generate_password()
            await accounts_credentials.set_password_hash(
                core, int(row["id"]), accounts.hash_password(made[who])
            )
    return made


async def _create(core: Core) -> tuple[str, dict[str, str]]:
    operator_password = accounts.generate_password()
    licensee_password = accounts.generate_password()
    await accounts.create_account(
        core, username="operator", password=operator_password, role=accounts.OPERATOR, name="Demo operator"
    )
    licensee_id = await accounts.create_account(
        core,
        username="demo",
        password=licensee_password,
        role=accounts.LICENSEE,
        name="Demo licensee",
        email="demo@example.test",
    )
    partner_token = await accounts.issue_partner_token(core, licensee_id)
    for tariff in DEMO_TARIFFS:
        await licensing.publish_tariff(core, currency="USD", **tariff)
    for number, name in DEMO_PHONES:
        await network.create_phone(core, number, name)
    ids = []
    flags = {flag: "yes" for flag in MESSAGE_FLAGS}
    for number, name in DEMO_PHONES[:2]:
        rec = await instances.create(core, account_id=licensee_id, name=name, settings=flags)
        await instances.link(core, rec, network.wid_of(number))
        ids.append(rec.id)
    record = {
        "operator": {"username": "operator"},
        "console": {"username": "demo"},
        "partnerToken": partner_token,
        "instanceIds": ids,
        "phones": [number for number, _ in DEMO_PHONES],
    }
    text = orjson.dumps(record).decode()
    async with core.tx() as tx:
        await instances.meta_set(tx.conn, "demo", text)
    return text, {"operator": operator_password, "console": licensee_password}


async def describe(core: Core, record: dict[str, Any]) -> dict[str, Any]:
    url = core.public_url
    items = []
    for instance_id in record["instanceIds"]:
        rec = await core.instances.get(instance_id)
        if rec is None:
            continue
        items.append(
            {
                "idInstance": rec.id,
                "apiTokenInstance": rec.token,
                "wid": rec.wid,
                "stateInstance": rec.state,
                "name": rec.name,
                "apiUrl": url,
                "mediaUrl": core.media_url,
            }
        )
    return {
        "apiUrl": url,
        "mediaUrl": core.media_url,
        "partnerToken": record["partnerToken"],
        "instances": items,
        "console": {"username": record["console"]["username"], "password": None},
        "operator": {"username": record["operator"]["username"], "password": None},
        "sandbox": {"url": f"{url}/sandbox", "token": await sandbox_token(core), "phones": record["phones"]},
    }


def _login(who: dict[str, Any]) -> str:
    if who["password"]:
        return f"{who['username']} / {who['password']}   (shown this once)"
    return f"{who['username']}   (password shown once at creation; `verdigris demo --new-passwords` sets new ones)"


def banner(info: dict[str, Any]) -> str:
    lines = [
        "",
        "Verdigris is running.",
        f"  API URL           : {info['apiUrl']}   (OpenAPI docs: {info['apiUrl']}/docs)",
        f"  media URL         : {info['mediaUrl']}",
        f"  console (web)     : {info['apiUrl']}/console",
        f"  operator login    : {_login(info['operator'])}",
        f"  licensee login    : {_login(info['console'])}",
        f"  partner token     : {info['partnerToken']}",
        f"  sandbox API       : {info['sandbox']['url']}  (Authorization: Bearer {info['sandbox']['token']})",
        "  demo instances (linked to sandbox phones, able to message each other):",
    ]
    for inst in info["instances"]:
        lines.append(
            f"    idInstance={inst['idInstance']}  apiTokenInstance={inst['apiTokenInstance']}  wid={inst['wid']}  ({inst['stateInstance']})"
        )
    first = info["instances"][0] if info["instances"] else None
    if first and len(info["instances"]) > 1:
        other = info["instances"][1]
        lines += [
            "  try it:",
            f"    curl -s -X POST {info['apiUrl']}/waInstance{first['idInstance']}/sendMessage/{first['apiTokenInstance']} \\",
            f'         -H \'Content-Type: application/json\' -d \'{{"chatId":"{other["wid"]}","message":"hello"}}\'',
            f"    curl -s {info['apiUrl']}/waInstance{other['idInstance']}/receiveNotification/{other['apiTokenInstance']}",
            "  `verdigris demo --json` prints all of this as JSON.",
        ]
    return "\n".join(lines) + "\n"
