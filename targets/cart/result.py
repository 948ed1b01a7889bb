"""Results as values: a command either yields `Ok(value)` or `Err(error)`, never raises for
an expected outcome (validation, conflict, missing cart), so the HTTP layer maps them plainly."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Generic, TypeAlias, TypeVar

T = TypeVar("T")
E = TypeVar("E")


@dataclass(frozen=True, slots=True)
class Ok(Generic[T]):
    value: T

    def is_ok(self) -> bool:
        return True


@dataclass(frozen=True, slots=True)
class Err(Generic[E]):
    error: E

    def is_ok(self) -> bool:
        return False


Result: TypeAlias = Ok[T] | Err[E]


@dataclass(frozen=True, slots=True)
class Problem:
    """An expected failure of a command or query, with the HTTP status it maps to."""

    status: int
    code: str
    message: str
    details: list[dict[str, Any]] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)

    def body(self) -> dict[str, Any]:
        out: dict[str, Any] = {"error": self.code, "message": self.message}
        if self.details:
            out["details"] = self.details
        out.update(self.extra)
        return out


def invalid(message: str, field_name: str | None = None, code: str = "validation_failed") -> Err[Problem]:
    """A 422 with one field-level detail, the shape every validator returns."""
    details = [{"field": field_name, "message": message}] if field_name else []
    return Err(Problem(422, code, message, details))


def not_found(message: str, code: str = "not_found") -> Err[Problem]:
    return Err(Problem(404, code, message))


def conflict(current: int, expected: int | None) -> Err[Problem]:
    return Err(
        Problem(
            409,
            "version_conflict",
            f"cart is at version {current}, not {expected}",
            extra={"currentVersion": current, "expectedVersion": expected},
        )
    )
