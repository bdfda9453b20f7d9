"""The registry is the contract: every operation documented, with a valid example and its errors,
and the schema documents generated from it."""

from __future__ import annotations

import json

import pytest
from pydantic import BaseModel

from krabs.contract.errors import STATUS_BY_CODE
from krabs.contract.registry import load_registry
from krabs.contract.schema import openapi_document, schema_document

REGISTRY = load_registry()
OPS = list(REGISTRY)


@pytest.mark.parametrize("op", OPS, ids=lambda op: op.name)
def test_operation_is_documented(op):
    noun, verb = op.name.split(".")
    assert noun and verb and op.name == op.name.strip()
    assert len(op.summary) > 10 and op.summary.endswith(".")
    assert len(op.description) > 20, f"{op.name} needs a docstring"
    assert issubclass(op.input, BaseModel) and issubclass(op.output, BaseModel)
    assert op.examples, f"{op.name} has no example"
    for example in op.examples:
        op.input.model_validate(example.args)
    for code in op.all_errors:
        assert code in STATUS_BY_CODE
    if "id" in op.input.model_fields and op.name not in ("contact.update",):
        assert "not_found" in op.errors
    if op.mutates:
        assert {"idempotency_key_in_use", "idempotency_key_reused"} <= set(op.all_errors)
    if op.destructive:
        assert op.mutates and "undo_token" in op.output.model_fields


def test_versions():
    for op in OPS:
        additive = op.name == "contact.upsert" or op.noun in (
            "expense",
            "audit",
            "run",
            "approval",
            "approval_policy",
            "job",
        )
        assert op.added_in == ("1.1" if additive else "1.0"), op.name


def test_schema_document_is_flat_and_complete():
    doc = schema_document(REGISTRY)
    assert doc["version"].startswith("1.")
    assert sorted(doc["operations"]) == REGISTRY.names()
    text = json.dumps(doc)
    assert "$ref" not in text and "$defs" not in text
    entry = doc["operations"]["contact.create"]
    assert entry["mutates"] and not entry["destructive"] and entry["input"]["properties"]["dry_run"]
    assert {e["code"] for e in entry["errors"]} >= {
        "conflict",
        "invalid_argument",
        "unauthenticated",
    }
    assert doc["operations"]["contact.delete"]["destructive"]
    assert "dry_run" not in doc["operations"]["contact.get"]["input"]["properties"]


def test_openapi_document():
    doc = openapi_document(REGISTRY)
    assert doc["openapi"].startswith("3.1")
    assert set(doc["paths"]) == {f"/v1/{n}" for n in REGISTRY.names()}
    post = doc["paths"]["/v1/contact.delete"]["post"]
    assert "404" in post["responses"] and post["x-krabs"]["destructive"]


def test_schema_routes_over_http(http, live):
    import httpx

    schema = http.get("/v1/schema")
    assert schema.status_code == 200 and set(schema.json()["operations"]) == set(REGISTRY.names())
    assert http.get("/v1/openapi.json").json()["paths"]["/v1/contact.create"]
    docs = http.get("/docs")
    assert docs.status_code == 200 and "contact.find_by_identity" in docs.text
    for path in ("/v1/schema", "/v1/openapi.json", "/docs"):
        assert httpx.get(live.url + path).status_code == 401
    assert httpx.get(live.url + "/healthz").json()["ok"] is True
