"""Scenarios for the bulk operations: CSV import and export, vCard ingestion, the account archive."""

from __future__ import annotations

from typing import Any

from krabs.compliance.scenarios import Setup, scenario, unique


@scenario("contact.import_csv")
def _import_csv(setup: Setup) -> dict[str, Any]:
    existing = f"{unique('csv')}@example.com"
    setup("contact.create", {"identities": [{"kind": "email", "value": existing}]})
    return {
        "csv": "Full Name,Email,Company,Tags\n"
        f"Ada Lovelace,{unique('ada')}@example.com,Analytical Engines,vip\n"
        f"Existing One,{existing},Acme,\n",
    }


@scenario("contact.export_csv")
def _export_csv(setup: Setup) -> dict[str, Any]:
    setup(
        "contact.create",
        {
            "display_name": "Export Me",
            "identities": [{"kind": "email", "value": f"{unique('e')}@x.dev"}],
        },
    )
    return {"limit": 50}


@scenario("contact.ingest_vcard")
def _ingest_vcard(setup: Setup) -> dict[str, Any]:
    return {
        "vcard": "BEGIN:VCARD\r\nVERSION:3.0\r\nFN:Grace Hopper\r\nN:Hopper;Grace;;;\r\n"
        f"EMAIL:{unique('grace')}@example.com\r\nORG:Navy\r\nCATEGORIES:admiral\r\nEND:VCARD\r\n"
    }


@scenario("account.export")
def _account_export(setup: Setup) -> dict[str, Any]:
    return {}
