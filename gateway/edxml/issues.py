"""What a validation finds: ``Issue`` records, their ``Severity``, and the ``ValidationReport``.

Kept apart from ``validate.py`` so that ``attachments.py`` (which ``validate.py`` uses) can report
issues too; ``validate.py`` re-exports all three names, which is where callers import them from.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from gateway.core.errors import PackageError


class Severity(StrEnum):
    """An error rejects the package; a warning is logged and the package goes on."""

    ERROR = "error"
    WARNING = "warning"


@dataclass(frozen=True, slots=True)
class Issue:
    """One finding: a stable ``code`` (``edxml.*``), the element ``path`` it concerns, and why."""

    code: str
    path: str
    message: str
    severity: Severity = Severity.ERROR


@dataclass(frozen=True, slots=True)
class ValidationReport:
    """All findings of one validation, errors and warnings together, in the order found."""

    issues: tuple[Issue, ...] = ()

    @property
    def errors(self) -> tuple[Issue, ...]:
        return tuple(i for i in self.issues if i.severity is Severity.ERROR)

    @property
    def warnings(self) -> tuple[Issue, ...]:
        return tuple(i for i in self.issues if i.severity is Severity.WARNING)

    @property
    def ok(self) -> bool:
        """True when there is no error (warnings do not count)."""
        return not self.errors

    def raise_for_errors(self) -> None:
        """Raise a ``PackageError`` with the first error's code, message and path, if any."""
        errors = self.errors
        if errors:
            first = errors[0]
            more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
            raise PackageError(first.message + more, code=first.code, path=first.path)


def error(code: str, path: str, message: str) -> Issue:
    return Issue(code, path, message, Severity.ERROR)


def warning(code: str, path: str, message: str) -> Issue:
    return Issue(code, path, message, Severity.WARNING)
