"""The one error type of the domain services: a refused action, with an HTTP-like status (400 bad
input, 404 not found or not yours, 409 conflicts with the current state) and a message for people.
A service raises it before changing anything; each face renders it in its own format."""

from __future__ import annotations


class ServiceError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
