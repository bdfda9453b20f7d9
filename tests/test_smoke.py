from conftest import ok


def test_create_and_get(call):
    created = ok(call("contact.create", {"display_name": "Ada", "identities": [{"kind": "email", "value": "ADA@lovelace.dev"}]}))
    got = ok(call("contact.get", {"id": created["id"]}))
    assert got["identities"][0]["normalized"] == "ada@lovelace.dev"
