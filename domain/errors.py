"""Domain errors. Messages name fields and rules, never personal data."""

from __future__ import annotations


class DomainError(Exception):
    """A command the case's state does not allow, or input that breaks a domain rule."""

    def __init__(self, message: str, *, code: str = "refused") -> None:
        super().__init__(message)
        self.code = code


class UnknownKommuneError(DomainError):
    def __init__(self, kode: str) -> None:
        super().__init__(f"unknown kommune code {kode!r}: must be one of the 98 kommune codes", code="unknown_kommune")
