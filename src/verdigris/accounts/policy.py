"""Rules for usernames, passwords and contact details (T-11), configured by the operator.

Every place that sets a username or a password calls these functions, so the rules live here only.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from zxcvbn import zxcvbn

from verdigris.config import Settings
from verdigris.errors import ServiceError

# Never available to users: names that could be mistaken for the platform or its staff.
BUILTIN_RESERVED = frozenset(
    {
        "admin",
        "administrator",
        "root",
        "operator",
        "support",
        "security",
        "system",
        "staff",
        "verdigris",
        "api",
        "console",
        "sandbox",
        "postmaster",
        "abuse",
        "noreply",
        "help",
    }
)

# Passwords seen at the top of every breach list; refused whatever the policy length.
COMMON_PASSWORDS = frozenset(
    {
        "123456",
        "12345678",
        "123456789",
        "1234567890",
        "12345678910",
        "password",
        "password1",
        "password123",
        "passw0rd",
        "qwerty",
        "qwerty123",
        "qwertyuiop",
        "1q2w3e4r5t",
        "1q2w3e4r5t6y",
        "abc123",
        "111111",
        "000000",
        "iloveyou",
        "letmein",
        "welcome",
        "welcome123",
        "admin123",
        "monkey",
        "dragon",
        "sunshine",
        "football",
        "baseball",
        "princess",
        "trustno1",
        "superman",
        "1qaz2wsx",
        "zaq12wsx",
        "changeme",
        "whatsapp",
        "whatsapp123",
    }
)

USERNAME_RE = re.compile(r"^[a-z0-9][a-z0-9_.-]{2,31}$")
EMAIL_RE = re.compile(r"^[^@\s]{1,64}@[^@\s]+\.[^@\s]{2,}$")
PHONE_RE = re.compile(r"^\+?[0-9]{7,15}$")


# The field names the rules' messages start with ("e-mail: not a valid address"; "reason" and
# "until" are the operator's moderation forms').
FIELDS = ("username", "password", "e-mail", "phone", "name", "organisation", "role", "reason", "until")


class PolicyError(ServiceError, ValueError):
    """A value the operator's rules refuse (status 400); the message says what to change.

    Its ``fields`` (see :class:`verdigris.errors.ServiceError`) are also read from a message that
    starts with one of :data:`FIELDS` ("e-mail: not a valid address").
    """

    def __init__(self, message: str, *, field: str = "", errors: dict[str, str] | None = None) -> None:
        if not errors and not field:
            key, _, text = message.partition(": ")
            if key in FIELDS and text:
                errors = {key: text}
        super().__init__(400, message, field=field, errors=errors)


class Checks:
    """Runs every check of a form and refuses once with all that failed (a form shows each error
    next to its field, not the first one alone). Any service's refusal is collected by its
    ``fields``; :meth:`done` raises a :class:`PolicyError`, or ``error`` (a ServiceError type)."""

    def __init__(self) -> None:
        self.errors: dict[str, str] = {}
        self.status = 400

    def run(self, check: Callable[..., str], *args: Any, **kwargs: Any) -> str:
        try:
            return check(*args, **kwargs)
        except ServiceError as exc:
            self.refuse(exc)
            return ""

    def refuse(self, exc: ServiceError) -> None:
        for key, text in exc.fields.items():
            self.errors.setdefault(key, text)
        self.status = max(self.status, exc.status)

    def done(self, error: type[ServiceError] | None = None) -> None:
        if self.errors:
            if error is None:
                message = "; ".join(f"{k}: {v}" if k in FIELDS else v for k, v in self.errors.items())
                raise PolicyError(message, errors=self.errors)
            message = "; ".join(f"{k.replace('_', ' ')}: {v}" if k else v for k, v in self.errors.items())
            raise error(self.status, message, errors=self.errors)


def _listed(text: str) -> set[str]:
    return {item.strip().lower() for item in text.split(",") if item.strip()}


def check_username(settings: Settings, username: str) -> str:
    value = username.strip().lower()
    if not USERNAME_RE.match(value):
        raise PolicyError(
            "username: 3 to 32 characters, lowercase letters, digits, '.', '_' or '-', "
            "starting with a letter or digit"
        )
    if value in BUILTIN_RESERVED or value in _listed(settings.reserved_usernames):
        raise PolicyError(f"username: {value!r} is reserved, choose another")
    return value


_FILE_LISTS: dict[tuple[str, float], frozenset[str]] = {}


def _file_list(path_text: str) -> frozenset[str]:
    """The operator's blocklist file, read once per modification (lowercased, one per line)."""
    if not path_text:
        return frozenset()
    path = Path(path_text)
    try:
        key = (str(path), path.stat().st_mtime)
    except OSError:
        return frozenset()
    cached = _FILE_LISTS.get(key)
    if cached is None:
        with path.open(encoding="utf-8", errors="replace") as handle:
            cached = frozenset(line.strip().lower() for line in handle if line.strip())
        _FILE_LISTS.clear()
        _FILE_LISTS[key] = cached
    return cached


def check_password(settings: Settings, password: str, *, username: str = "", email: str = "") -> str:
    if len(password) < settings.password_min_length:
        raise PolicyError(f"password: at least {settings.password_min_length} characters")
    if len(password) > 200:
        raise PolicyError("password: at most 200 characters")
    lowered = password.lower()
    if (
        lowered in COMMON_PASSWORDS
        or lowered in _listed(settings.password_blocklist)
        or lowered in _file_list(settings.password_blocklist_file)
    ):
        raise PolicyError("password: this password is on the list of common or blocked passwords")
    if username and username.lower() in lowered:
        raise PolicyError("password: must not contain the username")
    local = email.split("@", 1)[0].lower()
    if len(local) >= 4 and local in lowered:
        raise PolicyError("password: must not contain the e-mail address")
    if len(set(password)) < 4:
        raise PolicyError("password: use more different characters")
    if settings.password_min_strength:
        # zxcvbn's estimate against its bundled common-password, word and name lists, keyboard
        # patterns, dates and l33t spellings (``Summer2024!``, ``P@ssw0rd2024`` are refused).
        found = zxcvbn(password[:100], user_inputs=[v for v in (username, email) if v])
        if found["score"] < settings.password_min_strength:
            hint = (found.get("feedback") or {}).get("warning") or "it is built from common patterns"
            raise PolicyError(
                f"password: too easy to guess ({hint.rstrip('.')}); "
                "a few unrelated words with digits or signs between them work well"
            )
    return password


def check_email(email: str) -> str:
    value = email.strip()
    if len(value) > 254 or not EMAIL_RE.match(value):
        raise PolicyError("e-mail: not a valid address")
    return value


def check_phone(phone: str, *, required: bool = False) -> str:
    value = phone.strip().replace(" ", "").replace("-", "")
    if not value and not required:
        return ""
    if not PHONE_RE.match(value):
        raise PolicyError("phone: international format, 7 to 15 digits (e.g. +79991234567)")
    return value.lstrip("+")


def check_text(label: str, value: str, *, required: bool = False, limit: int = 200) -> str:
    text = value.strip()
    if required and not text:
        raise PolicyError(f"{label}: required")
    if len(text) > limit:
        raise PolicyError(f"{label}: at most {limit} characters")
    return text
