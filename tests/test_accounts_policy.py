"""The operator's username and password rules (T-11)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from verdigris.accounts.policy import PolicyError, check_password, check_username
from verdigris.config import Settings


def test_reserved_usernames_built_in_and_configured() -> None:
    settings = Settings(reserved_usernames="acme, Billing")
    assert check_username(settings, "  Alice.B ") == "alice.b"
    for name in ("admin", "Support", "acme", "billing"):
        with pytest.raises(PolicyError, match="reserved"):
            check_username(settings, name)
    for bad in ("ab", "-dash", "has space", "x" * 33, "émile"):
        with pytest.raises(PolicyError, match="3 to 32"):
            check_username(settings, bad)


def test_password_policy(tmp_path: Path) -> None:
    breached = tmp_path / "breached.txt"
    breached.write_text("Tr0ub4dor&3\nhunter2hunter2\n")
    settings = Settings(
        password_min_length=12, password_blocklist="Company-2026!", password_blocklist_file=str(breached)
    )
    assert check_password(settings, "Gentle-Otter-Runs-42") == "Gentle-Otter-Runs-42"
    cases = {
        "Short-1": "at least 12",
        "Quiet-Harbour-9": None,
        "company-2026!": "blocked",
        "HUNTER2HUNTER2": "blocked",
        "aaaaaaaaaaaaaa": "different",
        "my-name-is-carol!": "username",
        "x-smithy.c-1234": None,
        "mail-cs.smith@2026": None,
        "jcarol.smith-77": "username",
    }
    for password, why in cases.items():
        if why is None:
            check_password(settings, password, username="carol", email="carol.smith@example.test")
            continue
        with pytest.raises(PolicyError, match=why):
            check_password(settings, password, username="carol", email="carol.smith@example.test")
    with pytest.raises(PolicyError, match="e-mail"):
        check_password(settings, "dsmith.work-2026", username="dana", email="dsmith.work@example.test")
    # The file is read again when it changes.
    breached.write_text("Gentle-Otter-Runs-42\n")
    os.utime(breached, (1, 1))
    with pytest.raises(PolicyError, match="blocked"):
        check_password(settings, "Gentle-Otter-Runs-42")


def test_guessable_passwords_are_refused() -> None:
    """The probe's passwords pass length and variety rules but are in every cracker's first guesses
    (issue 16, item 7): zxcvbn's bundled lists and patterns refuse them."""
    settings = Settings()
    for weak in ("Summer2024!", "P@ssw0rd2024", "qwertyuiop1", "1234512345", "Welcome2025!"):
        with pytest.raises(PolicyError, match="too easy to guess"):
            check_password(settings, weak)
    assert check_password(settings, "Gentle-Otter-Runs-42") == "Gentle-Otter-Runs-42"
    check_password(Settings(password_min_strength=0), "Summer2024!")  # the operator may switch it off
