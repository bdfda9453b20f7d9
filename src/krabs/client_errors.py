"""Typed errors of the SDK and the CLI: one exception per family of error codes, each carrying the
server's ``code``, ``message``, ``param`` and HTTP ``status``, and the CLI's exit code for it."""

from __future__ import annotations

from typing import Any

import httpx


class KrabsAPIError(Exception):
    """A call the server refused (or could not be reached for). ``code`` is the stable contract code."""

    #: The ``krabs`` command's exit status for this family (documented in ``krabs --help``).
    exit_code = 1

    def __init__(
        self,
        code: str,
        message: str,
        *,
        param: str | None = None,
        status: int = 0,
        op: str | None = None,
        request_id: str | None = None,
        retry_after: float | None = None,
        body: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(f"{code}: {message}" + (f" (param: {param})" if param else ""))
        self.code = code
        self.message = message
        self.param = param
        self.status = status
        self.op = op
        self.request_id = request_id
        self.retry_after = retry_after
        self.body = body or {}

    def to_dict(self) -> dict[str, Any]:
        return {
            "code": self.code,
            "message": self.message,
            "param": self.param,
            "op": self.op,
            "request_id": self.request_id,
        }


class InvalidArgument(KrabsAPIError):
    """The arguments were wrong; ``param`` names the one to fix."""

    exit_code = 2


class NotFound(KrabsAPIError):
    exit_code = 3


class Conflict(KrabsAPIError):
    """A uniqueness rule or an undo refused the write."""

    exit_code = 4


class IdempotencyError(Conflict):
    """The Idempotency-Key is in flight, or was used with other arguments."""


class AlreadyUsed(Conflict):
    """The undo token expired or was already used."""


class AuthError(KrabsAPIError):
    """No valid key, or the key lacks the scope."""

    exit_code = 5


class RateLimited(KrabsAPIError):
    exit_code = 6


class RunClosed(KrabsAPIError):
    """The run is completed, expired or cancelled and takes no more calls."""

    exit_code = 7


class ApprovalRequired(KrabsAPIError):
    """A human must approve the call first; retry it with the same Idempotency-Key."""

    exit_code = 8


class ApprovalRejected(KrabsAPIError):
    """A human rejected the call; it will not run under this Idempotency-Key."""

    exit_code = 8


class InternalError(KrabsAPIError):
    exit_code = 1


class KrabsConnectionError(KrabsAPIError):
    """The server could not be reached, even after the retries."""

    exit_code = 9

    def __init__(self, op: str, url: str, cause: Exception) -> None:
        super().__init__(
            "unavailable",
            f"cannot reach {url}: {type(cause).__name__}: {cause}"[:500],
            op=op,
        )


ERROR_CLASSES: dict[str, type[KrabsAPIError]] = {
    "invalid_argument": InvalidArgument,
    "invalid_json": InvalidArgument,
    "payload_too_large": InvalidArgument,
    "unsupported_media_type": InvalidArgument,
    "method_not_allowed": InvalidArgument,
    "not_found": NotFound,
    "unknown_operation": NotFound,
    "conflict": Conflict,
    "undo_conflict": Conflict,
    "idempotency_key_in_use": IdempotencyError,
    "idempotency_key_reused": IdempotencyError,
    "undo_expired": AlreadyUsed,
    "undo_used": AlreadyUsed,
    "unauthenticated": AuthError,
    "forbidden": AuthError,
    "rate_limited": RateLimited,
    "busy": RateLimited,
    "run_closed": RunClosed,
    "run_cancelled": RunClosed,
    "approval_required": ApprovalRequired,
    "approval_rejected": ApprovalRejected,
    "internal": InternalError,
}


def make_error(
    code: str,
    message: str,
    *,
    param: str | None = None,
    status: int = 0,
    op: str | None = None,
    request_id: str | None = None,
    retry_after: float | None = None,
    body: dict[str, Any] | None = None,
) -> KrabsAPIError:
    """The right subclass for ``code``; an unknown code is still a ``KrabsAPIError``."""
    cls = ERROR_CLASSES.get(code, KrabsAPIError)
    if code not in ERROR_CLASSES and 400 <= status < 500:
        cls = InvalidArgument if status == 400 else KrabsAPIError
    return cls(
        code,
        message,
        param=param,
        status=status,
        op=op,
        request_id=request_id,
        retry_after=retry_after,
        body=body,
    )


def error_from_response(op: str, response: httpx.Response) -> KrabsAPIError:
    try:
        body = response.json()
        err = body["error"]
        code, message = str(err["code"]), str(err.get("message", ""))
    except (ValueError, KeyError, TypeError):
        body, err = {}, {}
        code = "internal" if response.status_code >= 500 else "http_error"
        message = f"HTTP {response.status_code}: {response.text[:300]}"
    after = response.headers.get("retry-after", "")
    return make_error(
        code,
        message,
        param=err.get("param"),
        status=response.status_code,
        op=err.get("op") or op,
        request_id=err.get("request_id") or response.headers.get("x-request-id"),
        retry_after=float(after) if after.replace(".", "", 1).isdigit() else None,
        body=body,
    )
