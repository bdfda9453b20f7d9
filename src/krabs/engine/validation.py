"""Turning raw JSON arguments into a validated model, or into an error that names the parameter and
says what would be accepted."""

from __future__ import annotations

import math
import re
from typing import Any

from pydantic import BaseModel, ValidationError

from krabs.contract.errors import KrabsError

MAX_DEPTH = 16
MAX_SAFE_INT = 2**53 - 1
_ALLOWED_CONTROLS = {"\t", "\n", "\r"}


def scan_json(value: Any, path: str = "", depth: int = 0) -> None:
    """Reject what no database column or canonical-JSON hash can hold, wherever it hides:
    NUL and other control characters, lone surrogates, unsafe integers, non-finite numbers."""
    if depth > MAX_DEPTH:
        raise KrabsError(
            "invalid_argument", f"arguments nest deeper than {MAX_DEPTH} levels", param=path or None
        )
    if isinstance(value, str):
        _check_text(value, path)
    elif isinstance(value, bool) or value is None:
        return
    elif isinstance(value, int):
        if abs(value) > MAX_SAFE_INT:
            raise KrabsError(
                "invalid_argument",
                f"{path or 'value'}: integers must lie within ±(2^53-1) for exact JSON interchange",
                param=path or None,
            )
    elif isinstance(value, float):
        if not math.isfinite(value):
            raise KrabsError("invalid_argument", "numbers must be finite", param=path or None)
    elif isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                raise KrabsError("invalid_argument", "object keys must be strings", param=path)
            _check_text(key, path)
            if len(key) > 200:
                raise KrabsError(
                    "invalid_argument", "object keys are at most 200 characters", param=path
                )
            scan_json(item, f"{path}.{key}" if path else key, depth + 1)
    elif isinstance(value, list):
        for i, item in enumerate(value):
            scan_json(item, f"{path}.{i}" if path else str(i), depth + 1)


_SUSPECT = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ud800-\udfff]")


def _check_text(text: str, path: str) -> None:
    # One regex pass finds the first suspect character (a per-character loop costs seconds on a
    # 100 MB CSV argument); the loop below only names it.
    first = _SUSPECT.search(text)
    if first is None:
        return
    for ch in text[first.start() : first.start() + 1]:
        code = ord(ch)
        if (code < 0x20 and ch not in _ALLOWED_CONTROLS) or 0x7F <= code <= 0x9F:
            raise KrabsError(
                "invalid_argument",
                f"{path or 'value'} contains control character U+{code:04X}; remove it",
                param=path or None,
            )
        if 0xD800 <= code <= 0xDFFF:
            raise KrabsError(
                "invalid_argument",
                f"{path or 'value'} contains a lone UTF-16 surrogate; send valid Unicode",
                param=path or None,
            )


def validate_args(model: type[BaseModel], raw: dict[str, Any], op_name: str) -> BaseModel:
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        raise _to_error(exc, model, op_name) from None


def _fields_at(model: type[BaseModel], path: list[str]) -> list[str]:
    """The argument names accepted at ``path`` (e.g. inside ``identities.0``)."""
    current: Any = model
    for part in path:
        if part.isdigit():
            continue
        fields = getattr(current, "model_fields", {})
        if part not in fields:
            return []
        current = _model_in(fields[part].annotation)
        if current is None:
            return []
    return [f.alias or n for n, f in getattr(current, "model_fields", {}).items()]


def _model_in(annotation: Any) -> Any:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in getattr(annotation, "__args__", ()):
        found = _model_in(arg)
        if found is not None:
            return found
    return None


def _to_error(exc: ValidationError, model: type[BaseModel], op_name: str) -> KrabsError:
    first = exc.errors(include_url=False)[0]
    loc = [str(p) for p in first.get("loc", ())]
    param = ".".join(loc) or None
    kind = first.get("type", "")
    if kind == "extra_forbidden":
        accepted = ", ".join(_fields_at(model, loc[:-1])) or "no arguments"
        message = f"unknown argument {param!r} for {op_name}; accepted: {accepted}"
    elif kind == "missing":
        message = f"{param} is required for {op_name}"
    else:
        message = f"{param}: {first.get('msg', 'invalid value')}" if param else first.get("msg", "")
    return KrabsError("invalid_argument", message, param=param)
