"""The gateway's one exception tree: every error has a stable code, an HTTP status and a retry flag.

    LgspError                      code, http_status, retryable, path
     ├── InputError                 4xx: the caller sent something we refuse
     │    ├── PackageError           edxml.*   malformed, unsafe or invalid package
     │    │    └── LimitError        edxml.too_* / attachment limits exceeded
     │    ├── SignatureError         signature.*  / jws.*   the signature does not hold
     │    ├── TrustError             trust.*   the signer's certificate is not trusted
     │    ├── BindingError           binding.* the signer may not speak for the sender
     │    ├── AuthError              auth.*    the caller is not authenticated (401)
     │    ├── RateLimitError         rate.*    too many requests or failed log-ins (429)
     │    ├── ForbiddenError         acl.*     the caller may not do this (403 / 422)
     │    ├── ConflictError          conflict.* (409)
     │    └── NotFoundError          not_found.* (404)
     ├── ConfigError                config.*  the configuration is wrong (CLI exit 2)
     └── ServiceError               5xx: our side or a dependency failed
          └── UnavailableError       unavailable.* broker/store down (503, retryable)

Dependency exceptions (lxml, cryptography, aio-pika, SQLAlchemy, zeep) are translated into this tree
at exactly one boundary each, with ``raise ... from exc``.
"""

from __future__ import annotations


class LgspError(Exception):
    """Base of every error the gateway raises on purpose."""

    http_status: int = 500
    retryable: bool = False
    default_code: str = "internal"

    def __init__(self, message: str, *, code: str | None = None, path: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.code = code or self.default_code
        self.path = path

    def __str__(self) -> str:
        where = f" at {self.path}" if self.path else ""
        return f"{self.code}: {self.message}{where}"

    def to_problem(self) -> dict[str, object]:
        """RFC 9457 problem details body for this error."""
        problem: dict[str, object] = {
            "type": f"urn:lgsp:error:{self.code}",
            "title": self.code,
            "status": self.http_status,
            "detail": self.message,
            "code": self.code,
            "retryable": self.retryable,
        }
        if self.path:
            problem["path"] = self.path
        return problem


class InputError(LgspError):
    """The caller sent something we refuse; retrying the same input will not help."""

    http_status = 400
    default_code = "input.invalid"


class PackageError(InputError):
    """A package is malformed, unsafe or semantically invalid (codes ``edxml.*``)."""

    http_status = 400
    default_code = "edxml.invalid"


class LimitError(PackageError):
    """A configured size, depth or count limit was exceeded."""

    http_status = 413
    default_code = "edxml.too_large"


class SignatureError(InputError):
    """A signature is missing, malformed, unsupported or does not verify."""

    http_status = 422
    default_code = "signature.invalid"


class TrustError(InputError):
    """The signer's certificate does not chain to a trusted, valid, unrevoked CA."""

    http_status = 422
    default_code = "trust.untrusted"


class BindingError(InputError):
    """The signer's certificate is not bound to the sender's OrganId."""

    http_status = 422
    default_code = "binding.organ_mismatch"


class AuthError(InputError):
    """The caller is not authenticated."""

    http_status = 401
    default_code = "auth.required"


class RateLimitError(InputError):
    """Too many requests (or failed authentications) in a window; retry after ``retry_after_s``."""

    http_status = 429
    retryable = True
    default_code = "rate.limited"

    def __init__(self, message: str, *, retry_after_s: float, code: str | None = None) -> None:
        super().__init__(message, code=code)
        self.retry_after_s = max(1, int(retry_after_s + 0.999))


class ForbiddenError(InputError):
    """The caller is authenticated but not allowed to do this."""

    http_status = 403
    default_code = "acl.denied"


class ConflictError(InputError):
    """The request conflicts with what is already recorded."""

    http_status = 409
    default_code = "conflict"


class NotFoundError(InputError):
    """The named resource does not exist (or is not visible to the caller)."""

    http_status = 404
    default_code = "not_found"


class ConfigError(LgspError):
    """The configuration or a command-line argument is wrong."""

    http_status = 500
    default_code = "config.invalid"


class ServiceError(LgspError):
    """Our side or one of our dependencies failed."""

    http_status = 500
    default_code = "internal"


class UnavailableError(ServiceError):
    """A dependency (broker, store, remote platform) is unavailable; try again later."""

    http_status = 503
    retryable = True
    default_code = "unavailable"
