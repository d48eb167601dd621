"""The one error type of the domain services: a refused action, with an HTTP-like status (400 bad
input, 404 not found or not yours, 409 conflicts with the current state) and a message for people.
A service raises it before changing anything; each face renders it in its own format.

``fields`` says which input each refusal is about, so a console form shows every error next to its
field: it maps a field's name to its text (without the field's name); ``""`` is the key of a refusal
that belongs to no single field. Give ``field`` when the whole message is about one field, or
``errors`` for several fields at once (``accounts.policy.Checks`` collects them).
"""

from __future__ import annotations


class ServiceError(Exception):
    def __init__(
        self, status: int, message: str, *, field: str = "", errors: dict[str, str] | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        if errors:
            self.fields = dict(errors)
        elif field:
            self.fields = {field: message}
        else:
            self.fields = {"": message}
