"""One error type with a code; the HTTP status is a property of the code, never of the raise site."""

from __future__ import annotations

from typing import Any

STATUS_BY_CODE: dict[str, int] = {
    "invalid_argument": 400,
    "invalid_json": 400,
    "unauthenticated": 401,
    "forbidden": 403,
    "not_found": 404,
    "conflict": 409,
    "idempotency_key_in_use": 409,
    "idempotency_key_reused": 422,
    "undo_expired": 410,
    "undo_conflict": 409,
    "undo_used": 409,
    "run_closed": 409,
    "run_cancelled": 409,
    "approval_required": 202,
    "approval_rejected": 403,
    "rate_limited": 429,
    "busy": 503,
    "payload_too_large": 413,
    "unsupported_media_type": 415,
    "method_not_allowed": 405,
    "unknown_operation": 404,
    "internal": 500,
}

DESCRIPTIONS: dict[str, str] = {
    "invalid_argument": "An argument is missing, of the wrong type, unknown or out of range; `param` names it.",
    "invalid_json": "The request body is not a JSON object.",
    "unauthenticated": "No API key, or the key is unknown, revoked or expired.",
    "forbidden": "The key lacks the scope the operation needs.",
    "not_found": "The id does not exist in the caller's account.",
    "conflict": "The write would break a uniqueness rule (e.g. an identity owned by another contact).",
    "idempotency_key_in_use": "A request with this Idempotency-Key is still being processed.",
    "idempotency_key_reused": "This Idempotency-Key was used with another operation or other arguments.",
    "undo_expired": "The undo token is older than 24 hours.",
    "undo_conflict": "A row touched by the action changed since; pass force: true to overwrite.",
    "undo_used": "The action was already undone.",
    "run_closed": "The run is completed or expired and takes no more calls.",
    "run_cancelled": "The run was cancelled and takes no more calls.",
    "approval_required": "A human must approve this call first.",
    "approval_rejected": "A human rejected this call; do not retry it, change the plan instead.",
    "rate_limited": "Too many requests for this key; retry after `Retry-After` seconds.",
    "busy": "The database's single writer is held by a long write (an import); nothing was done: retry after `Retry-After` seconds.",
    "payload_too_large": "The request body exceeds the configured limit.",
    "unsupported_media_type": "The request body must be application/json.",
    "method_not_allowed": "Operations are called with POST /v1/{op}.",
    "unknown_operation": "No operation of that name; GET /v1/schema lists them.",
    "internal": "An unexpected server error; never caused by bad input.",
}


class KrabsError(Exception):
    """A typed failure an agent can act on: a stable code, a message saying what would be accepted,
    and the offending parameter."""

    def __init__(
        self,
        code: str,
        message: str,
        *,
        param: str | None = None,
        details: dict[str, Any] | None = None,
    ) -> None:
        if code not in STATUS_BY_CODE:
            raise ValueError(f"unregistered error code {code!r}")
        super().__init__(message)
        self.code = code
        self.message = message
        self.param = param
        self.details = details or {}

    @property
    def status(self) -> int:
        return STATUS_BY_CODE[self.code]

    def to_dict(self, *, op: str | None = None, request_id: str | None = None) -> dict[str, Any]:
        body: dict[str, Any] = {
            "code": self.code,
            "message": self.message,
            "param": self.param,
            "op": op,
            "request_id": request_id,
        }
        body.update(self.details)
        return body


def not_found(noun: str, id_: str, param: str = "id") -> KrabsError:
    return KrabsError("not_found", f"no {noun} with id {id_!r} in this account", param=param)


def invalid(param: str, message: str) -> KrabsError:
    return KrabsError("invalid_argument", message, param=param)
