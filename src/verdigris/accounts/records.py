"""The account as services hand it around, and the roles that decide what each may do (T-14)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from verdigris.accounts.models import accounts

OPERATOR = "operator"
LICENSEE = "licensee"

OWNER, ADMIN, DEVELOPER, VIEWER = "owner", "admin", "developer", "viewer"
TEAM_ROLES = (OWNER, ADMIN, DEVELOPER, VIEWER)
INVITABLE_ROLES = (ADMIN, DEVELOPER, VIEWER)

ACTIVE, INVITED, CLOSED = "active", "invited", "closed"

# What each team role may do beyond looking at instances, their state, queues and journals.
PERMISSIONS: dict[str, frozenset[str]] = {
    OWNER: frozenset(
        {
            "instance.create",
            "instance.delete",
            "instance.token",
            "instance.manage",
            "team",
            "billing",
            "customers",
            "close",
        }
    ),
    ADMIN: frozenset(
        {
            "instance.create",
            "instance.delete",
            "instance.token",
            "instance.manage",
            "team",
            "billing",
            "customers",
        }
    ),
    DEVELOPER: frozenset({"instance.token", "instance.manage", "customers"}),
    VIEWER: frozenset(),
}


@dataclass(slots=True)
class Account:
    id: int
    username: str
    email: str
    name: str
    role: str
    phone: str
    organisation: str
    status: str
    email_verified_ms: int | None
    tenant_id: int | None
    team_role: str
    created_ms: int
    password_hash: str
    delete_after_ms: int | None

    @property
    def tenant(self) -> int:
        """The account whose instances this one works on (itself, or its team's owner)."""
        return self.tenant_id if self.tenant_id is not None else self.id

    @property
    def is_operator(self) -> bool:
        return self.role == OPERATOR

    def can(self, permission: str) -> bool:
        return permission in PERMISSIONS.get(self.team_role, frozenset())


def account_from_row(row: Any) -> Account:
    return Account(
        id=int(row.id),
        username=row.username,
        email=row.email,
        name=row.name,
        role=row.role,
        phone=row.phone,
        organisation=row.organisation,
        status=row.status,
        email_verified_ms=row.email_verified_ms,
        tenant_id=row.tenant_id,
        team_role=row.team_role,
        created_ms=int(row.created_ms),
        password_hash=row.password_hash,
        delete_after_ms=row.delete_after_ms,
    )


async def load_account(conn: AsyncConnection, account_id: int) -> Account | None:
    row = (await conn.execute(select(accounts).where(accounts.c.id == account_id))).first()
    return account_from_row(row) if row else None
