"""The contract as documents: ``/v1/schema`` (the agent's manual) and OpenAPI 3.1, both generated
from the registry. JSON Schemas are inlined (no ``$ref``) so any client can read them standalone."""

from __future__ import annotations

import copy
from typing import Any

from pydantic import BaseModel

from krabs import CONTRACT_VERSION
from krabs.contract.errors import DESCRIPTIONS, STATUS_BY_CODE
from krabs.contract.registry import Operation, Registry

DRY_RUN_PROPERTY = {
    "type": "boolean",
    "default": False,
    "description": "Return the plan (result, touched rows, diff, audit record) and persist nothing.",
}


def inline_refs(schema: dict[str, Any]) -> dict[str, Any]:
    defs = schema.get("$defs", {})

    def resolve(node: Any, depth: int = 0) -> Any:
        if depth > 32:
            return {}
        if isinstance(node, dict):
            if "$ref" in node:
                target = defs[node["$ref"].rsplit("/", 1)[-1]]
                merged = {**resolve(copy.deepcopy(target), depth + 1)}
                merged.update({k: resolve(v, depth + 1) for k, v in node.items() if k != "$ref"})
                return merged
            return {k: resolve(v, depth + 1) for k, v in node.items() if k != "$defs"}
        if isinstance(node, list):
            return [resolve(v, depth + 1) for v in node]
        return node

    return dict(resolve(schema))


def model_schema(model: type[BaseModel], mode: str = "validation") -> dict[str, Any]:
    return inline_refs(model.model_json_schema(mode=mode))  # type: ignore[arg-type]


def input_schema(op: Operation) -> dict[str, Any]:
    schema = model_schema(op.input)
    if op.mutates:
        schema.setdefault("properties", {})["dry_run"] = DRY_RUN_PROPERTY
    return schema


def operation_entry(op: Operation) -> dict[str, Any]:
    entry = _entry(op)
    if op.digest_args:  # the argument a file can feed (HTTP body, the CLI's FILE)
        entry["file_argument"] = op.digest_args[0]
    return entry


def _entry(op: Operation) -> dict[str, Any]:
    return {
        "name": op.name,
        "summary": op.summary,
        "description": op.description,
        "input": input_schema(op),
        "output": model_schema(op.output, "serialization"),
        "errors": [
            {"code": c, "status": STATUS_BY_CODE[c], "description": DESCRIPTIONS.get(c, "")}
            for c in op.all_errors
        ],
        "scope": op.scope,
        "mutates": op.mutates,
        "destructive": op.destructive,
        "idempotent": True if not op.mutates else "with Idempotency-Key",
        "added_in": op.added_in,
        "audit_events": list(op.audit_events),
        "examples": [{"title": e.title, "args": e.args} for e in op.examples],
    }


def schema_document(registry: Registry) -> dict[str, Any]:
    return {
        "object": "schema",
        "version": CONTRACT_VERSION,
        "operations": {op.name: operation_entry(op) for op in registry},
        "errors": {
            c: {"status": s, "description": DESCRIPTIONS.get(c, "")}
            for c, s in STATUS_BY_CODE.items()
        },
    }


ERROR_SCHEMA = {
    "type": "object",
    "properties": {
        "error": {
            "type": "object",
            "properties": {
                "code": {"type": "string"},
                "message": {"type": "string"},
                "param": {"type": ["string", "null"]},
                "op": {"type": ["string", "null"]},
                "request_id": {"type": ["string", "null"]},
            },
            "required": ["code", "message"],
        }
    },
    "required": ["error"],
}


def openapi_document(registry: Registry) -> dict[str, Any]:
    paths: dict[str, Any] = {}
    for op in registry:
        responses: dict[str, Any] = {
            "200": {
                "description": "Success",
                "content": {
                    "application/json": {"schema": model_schema(op.output, "serialization")}
                },
            }
        }
        for status in sorted({STATUS_BY_CODE[c] for c in op.all_errors}):
            codes = [c for c in op.all_errors if STATUS_BY_CODE[c] == status]
            responses[str(status)] = {
                "description": ", ".join(codes),
                "content": {"application/json": {"schema": ERROR_SCHEMA}},
            }
        parameters = [
            {"name": "X-Krabs-Run", "in": "header", "required": False, "schema": {"type": "string"}}
        ]
        if op.mutates:
            parameters.append(
                {
                    "name": "Idempotency-Key",
                    "in": "header",
                    "required": False,
                    "schema": {"type": "string", "maxLength": 255},
                }
            )
        paths[f"/v1/{op.name}"] = {
            "post": {
                "operationId": op.name.replace(".", "_"),
                "summary": op.summary,
                "description": op.description,
                "tags": [op.noun],
                "parameters": parameters,
                "requestBody": {
                    "required": False,
                    "content": {"application/json": {"schema": input_schema(op)}},
                },
                "responses": responses,
                "x-krabs": {
                    "mutates": op.mutates,
                    "destructive": op.destructive,
                    "added_in": op.added_in,
                    "scope": op.scope,
                },
            }
        }
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "krabs",
            "version": CONTRACT_VERSION,
            "description": "The CRM that AI agents operate.",
        },
        "servers": [{"url": "/"}],
        "components": {"securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}}},
        "security": [{"bearer": []}],
        "paths": paths,
    }
