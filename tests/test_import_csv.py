"""contact.import_csv through the real engine on SQLite and PostgreSQL: header mapping, dialects,
dedupe within the file and against existing contacts, on_match, the per-row report, dry-run counts,
undo, batches, and hostile input (which fails typed and writes nothing)."""

from __future__ import annotations

import random
from typing import Any

import pytest

from bulk_helpers import account_data, all_contacts, by_email, primary, values
from conftest import Caller, err, ok, snapshot
from krabs.accounts import NewAccount
from krabs.bulk.csv_in import CsvError, CsvReader, auto_target
from krabs.engine import Engine


def imp(call: Caller, csv: str, **args: Any) -> dict[str, Any]:
    return ok(call("contact.import_csv", {"csv": csv, **args}))


def codes(result: dict[str, Any]) -> list[tuple[int, str | None, str]]:
    return [(e["row"], e["column"], e["code"]) for e in result["report"]]


# -- mapping ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("header", "target"),
    [
        ("email", "email"),
        ("E-mail", "email"),
        ("Email Address", "email"),
        ("Work Email", "email"),
        ("Secondary email", "email"),
        ("email_2", "email"),
        ("Phone", "phone"),
        ("Mobile", "phone"),
        ("Telephone", "phone"),
        ("Phone (Work)", "phone"),
        ("First Name", "given_name"),
        ("Last Name", "family_name"),
        ("Full Name", "display_name"),
        ("Name", "display_name"),
        ("Company", "company"),
        ("Organization", "company"),
        ("Title", "title"),
        ("Job Title", "title"),
        ("LinkedIn", "linkedin"),
        ("Twitter", "x"),
        ("X", "x"),
        ("GitHub", "github"),
        ("Website", "url"),
        ("URL", "url"),
        ("Stage", "stage"),
        ("Tags", "tags"),
        ("Owner", "owner"),
        ("Notes", "notes"),
        ("Shoe size", "attributes.Shoe size"),
        ("Email opt-out", "attributes.Email opt-out"),
    ],
)
def test_common_headers_map_automatically(header: str, target: str) -> None:
    assert auto_target(header) == target


def test_every_mapped_column_lands_on_the_contact(call: Caller) -> None:
    csv = (
        "First Name,Last Name,Email Address,Work Email,Mobile,Organization,Job Title,LinkedIn,"
        "Twitter,GitHub,Website,Stage,Tags,Owner,Notes,Shoe size\n"
        "Ada,Lovelace,ada@lovelace.dev,ADA@work.example,+1 415 555 2671,Analytical Engines,"
        "Countess,https://www.linkedin.com/in/ada-lovelace,@ada,ada-l,https://lovelace.dev,"
        'Customer,"vip, math",agent:sales,"Met at\nthe salon",42\n'
    )
    result = imp(call, csv)
    assert (result["created"], result["failed"], result["rows"]) == (1, 0, 1)
    assert result["report"] == [] and result["undo_token"].startswith("undo_")
    assert {c["header"]: c["target"] for c in result["columns"]}["Work Email"] == "email"
    c = by_email(call, "ada@work.example")
    assert (c["given_name"], c["family_name"], c["display_name"]) == (
        "Ada",
        "Lovelace",
        "Ada Lovelace",
    )
    assert (c["company"], c["title"], c["stage"], c["owner"]) == (
        "Analytical Engines",
        "Countess",
        "customer",
        "agent:sales",
    )
    assert values(c, "email") == ["ada@lovelace.dev", "ada@work.example"]
    assert primary(c, "email") == "ada@lovelace.dev"
    assert values(c, "phone") == ["+14155552671"]
    assert values(c, "linkedin") == ["linkedin.com/in/ada-lovelace"]
    assert values(c, "x") == ["ada"] and values(c, "github") == ["ada-l"]
    assert values(c, "url") == ["https://lovelace.dev"]
    assert sorted(t["name"] for t in c["tags"]) == ["math", "vip"]
    assert c["attributes"] == {"notes": "Met at\nthe salon", "Shoe size": "42"}
    assert {i["source"] for i in c["identities"]} == {"csv_import"}


def test_explicit_mapping_overrides_and_attributes_keys(call: Caller) -> None:
    csv = "Nom,Courriel,Société,Name\nLovelace,ada@x.dev,AE,ignored?\n"
    result = imp(
        call,
        csv,
        mapping={
            "Nom": "family_name",
            "courriel": "email",
            "Société": "attributes.societe",
            "Name": "ignore",
        },
    )
    assert result["created"] == 1
    c = by_email(call, "ada@x.dev")
    assert c["family_name"] == "Lovelace" and c["display_name"] == "Lovelace"
    assert c["attributes"] == {"societe": "AE"}


@pytest.mark.parametrize(
    ("mapping", "param"),
    [
        ({"Email": "e-mail-address"}, "mapping.Email"),
        ({"Nope": "email"}, "mapping.Nope"),
        ({"Email": "attributes."}, "mapping.Email"),
    ],
)
def test_bad_mapping_is_a_typed_error(call: Caller, mapping: dict[str, str], param: str) -> None:
    e = err(
        call("contact.import_csv", {"csv": "Email\na@x.dev\n", "mapping": mapping}),
        "invalid_argument",
    )
    assert e["param"] == param


# -- dialects --------------------------------------------------------------------------------------


@pytest.mark.parametrize("sep", [";", "\t", "|", ","])
def test_delimiter_is_sniffed(call: Caller, sep: str) -> None:
    csv = sep.join(["name", "email", "company"]) + "\r\n"
    csv += sep.join(["Ada", "ada@x.dev", '"Engines, Analytical"']) + "\r\n"
    csv += sep.join(["Bob", "bob@x.dev", "B Corp"]) + "\r\n"
    result = imp(call, csv)
    assert result["delimiter"] == sep and result["created"] == 2
    assert by_email(call, "ada@x.dev")["company"] == "Engines, Analytical"


def test_bom_quoted_newlines_and_blank_lines(call: Caller) -> None:
    csv = '\ufeffEmail,Notes\r\n\r\nada@x.dev,"line one\r\nline two, ""quoted"""\r\n\r\n'
    result = imp(call, csv)
    assert result["columns"][0] == {"header": "Email", "target": "email"}
    assert result["rows"] == 1
    assert by_email(call, "ada@x.dev")["attributes"] == {"notes": 'line one\r\nline two, "quoted"'}


def test_ragged_rows_are_reported_not_fatal(call: Caller) -> None:
    csv = "name,email,company\nAda,ada@x.dev\nBob,bob@x.dev,B,extra,more\n"
    result = imp(call, csv)
    assert result["created"] == 2 and result["failed"] == 0
    assert codes(result) == [(2, None, "ragged_row"), (3, None, "ragged_row")]
    assert {e["severity"] for e in result["report"]} == {"warning"}
    assert by_email(call, "bob@x.dev")["company"] == "B"


def test_reader_takes_any_iterator_of_lines() -> None:
    def lines():
        yield "email,name\n"
        for n in range(3):
            yield f"u{n}@x.dev,User {n}\n"

    reader = CsvReader(lines())
    records = [r for r, _ in reader]
    assert [r.fields["display_name"] for r in records if r] == ["User 0", "User 1", "User 2"]


# -- dedupe ----------------------------------------------------------------------------------------


def test_rows_naming_the_same_person_become_one_contact(call: Caller) -> None:
    csv = (
        "name,email,phone,company,tags\n"
        "Ada,ada@x.dev,,,vip\n"
        "Ada Lovelace,ADA@X.DEV,+14155552671,AE,math\n"
        "A. L.,,+1 (415) 555-2671,,\n"
        "Bob,bob@x.dev,,,vip\n"
    )
    result = imp(call, csv)
    assert (result["created"], result["merged"], result["failed"]) == (2, 2, 0)
    contacts = all_contacts(call)
    assert len(contacts) == 2
    ada = by_email(call, "ada@x.dev")
    assert ada["display_name"] == "Ada" and ada["company"] == "AE"
    assert values(ada, "phone") == ["+14155552671"]
    assert sorted(t["name"] for t in ada["tags"]) == ["math", "vip"]
    vip = {t["id"] for c in contacts for t in c["tags"] if t["name"] == "vip"}
    assert len(vip) == 1, "one tag, created once, attached twice"


def test_update_fills_only_empty_fields_and_matches_secondary_identities(call: Caller) -> None:
    existing = ok(
        call(
            "contact.create",
            {
                "display_name": "Countess",
                "company": "Analytical Engines",
                "attributes": {"tier": 1},
                "identities": [
                    {"kind": "email", "value": "ada@x.dev"},
                    {"kind": "email", "value": "ada.second@x.dev"},
                ],
            },
        )
    )
    csv = "name,email,phone,company,title,tier,city\nOther Name,Ada.Second@x.dev,+14155552671,New Co,CTO,9,London\n"
    result = imp(call, csv)
    assert (result["created"], result["updated"]) == (0, 1)
    after = ok(call("contact.get", {"id": existing["id"]}))
    assert (after["display_name"], after["company"], after["title"]) == (
        "Countess",
        "Analytical Engines",
        "CTO",
    )
    assert after["attributes"] == {"tier": 1, "city": "London"}
    assert values(after, "phone") == ["+14155552671"]
    assert primary(after, "email") == "ada@x.dev"
    assert after["updated_at"] > existing["updated_at"]
    again = imp(call, csv)
    assert (again["updated"], again["unchanged"]) == (0, 1)
    assert ok(call("contact.get", {"id": existing["id"]})) == after


def test_on_match_skip_and_create(call: Caller, engine: Engine, account: NewAccount) -> None:
    existing = ok(call("contact.create", {"identities": [{"kind": "email", "value": "ada@x.dev"}]}))
    csv = "name,email,phone\nAda,ada@x.dev,+14155552671\n"
    before = account_data(engine.store, account.account_id)
    skipped = imp(call, csv, on_match="skip")
    assert (skipped["skipped"], skipped["created"], skipped["updated"]) == (1, 0, 0)
    assert account_data(engine.store, account.account_id) == before
    created = imp(call, csv, on_match="create")
    assert created["created"] == 1
    assert codes(created) == [(2, "email", "identity_taken")]
    assert by_email(call, "ada@x.dev")["id"] == existing["id"]
    [new] = [c for c in all_contacts(call) if c["id"] != existing["id"]]
    assert new["display_name"] == "Ada" and values(new, "phone") == ["+14155552671"]


def test_dedupe_spans_batches(call: Caller) -> None:
    rows = [f"User {n},u{n}@x.dev," for n in range(1200)]
    rows.append("Late Title,U7@X.dev,Engineer")
    result = imp(call, "name,email,title\n" + "\n".join(rows))
    assert (result["created"], result["merged"], result["rows"]) == (1200, 1, 1201)
    assert by_email(call, "u7@x.dev")["title"] == "Engineer"
    assert len(all_contacts(call)) == 1200


# -- the report ------------------------------------------------------------------------------------


def test_bad_rows_are_reported_and_the_rest_imported(call: Caller) -> None:
    csv = (
        "name,email,phone,stage,title\n"
        "Ada,not-an-email,,,\n"
        "Bob,bob@x.dev,,sold,\n"
        f"Carl,carl@x.dev,,,{'t' * 201}\n"
        "Dee,dee@x.dev,12,,\n"
        "Eve,eve@x.dev,,lead,\n"
    )
    result = imp(call, csv)
    assert (result["created"], result["failed"]) == (1, 4)
    assert codes(result) == [
        (2, "email", "invalid_identity"),
        (3, "stage", "invalid_value"),
        (4, "title", "too_long"),
        (5, "phone", "invalid_identity"),
    ]
    assert "lead, prospect, customer, churned" in result["report"][1]["message"]
    assert [c["display_name"] for c in all_contacts(call)] == ["Eve"]


def test_report_is_capped_and_says_so(call: Caller) -> None:
    csv = "name,email\n" + "".join(f"U{n},bad{n}\n" for n in range(1100))
    result = imp(call, csv)
    assert result["failed"] == 1100
    assert len(result["report"]) == 1000 and result["report_total"] == 1100
    assert result["report_truncated"] is True


def test_too_many_identities_in_a_row_fails_that_row(call: Caller) -> None:
    header = ",".join(["name", *(f"email {n}" for n in range(51))])
    row = ",".join(["Many", *(f"m{n}@x.dev" for n in range(51))])
    result = imp(call, f"{header}\n{row}\nOk,ok@x.dev\n")
    assert [c for c in codes(result) if c[2] != "ragged_row"] == [(2, None, "too_many_identities")]
    assert (result["created"], result["failed"]) == (1, 1)


def test_one_enormous_cell_fails_its_row_only(call: Caller) -> None:
    csv = f'name,email,notes\nBig,big@x.dev,"{"x" * 200_000}"\nSmall,small@x.dev,ok\n'
    result = imp(call, csv)
    assert result["failed"] == 1 and result["created"] == 1
    assert result["report"][0]["code"] == "malformed_row"
    assert by_email(call, "small@x.dev")["attributes"] == {"notes": "ok"}


def test_formula_cells_are_stored_as_text(call: Caller) -> None:
    csv = 'name,email,company\n"=HYPERLINK(""http://evil"")",f@x.dev,+cmd|calc\n'
    imp(call, csv)
    c = by_email(call, "f@x.dev")
    assert c["display_name"] == '=HYPERLINK("http://evil")' and c["company"] == "+cmd|calc"


# -- dry-run and undo ------------------------------------------------------------------------------


def test_dry_run_reports_the_same_counts_and_writes_nothing(
    call: Caller, engine: Engine, account: NewAccount
) -> None:
    ok(
        call(
            "contact.create",
            {"company": "Old", "identities": [{"kind": "email", "value": "a@x.dev"}]},
        )
    )
    csv = "name,email,title\nA,a@x.dev,CTO\nB,b@x.dev,\nB2,B@x.dev,\nC,bad,\n"
    before = snapshot(engine.store, account.account_id)
    plan = ok(call("contact.import_csv", {"csv": csv, "dry_run": True}))
    assert snapshot(engine.store, account.account_id) == before
    real = imp(call, csv)
    counts = ("rows", "created", "updated", "merged", "unchanged", "skipped", "failed", "report")
    assert {k: plan["result"][k] for k in counts} == {k: real[k] for k in counts}
    assert (real["created"], real["updated"], real["merged"], real["failed"]) == (1, 1, 1, 1)


def test_undo_reverses_the_whole_import_exactly(
    call: Caller, engine: Engine, account: NewAccount
) -> None:
    ok(call("tag.create", {"name": "vip"}))
    existing = ok(
        call(
            "contact.create",
            {"display_name": "Ada", "identities": [{"kind": "email", "value": "ada@x.dev"}]},
        )
    )
    before = account_data(engine.store, account.account_id)
    csv = "name,email,company,tags\nIgnored,ada@x.dev,AE,vip;new tag\nBob,bob@x.dev,B,vip\n"
    result = imp(call, csv)
    assert (result["created"], result["updated"]) == (1, 1)
    assert account_data(engine.store, account.account_id) != before
    undone = ok(call("action.undo", {"undo_token": result["undo_token"]}))
    assert undone["conflicts"] == []
    assert account_data(engine.store, account.account_id) == before
    assert ok(call("contact.get", {"id": existing["id"]}))["company"] is None


def test_the_import_is_one_audited_action(call: Caller) -> None:
    outcome = call("contact.import_csv", {"csv": "email\na@x.dev\nb@x.dev\n"})
    ok(outcome)
    action = ok(call("action.get", {"id": outcome.action_id}))
    assert action["op"] == "contact.import_csv"


# -- hostile input ---------------------------------------------------------------------------------


def _garbage(n: int, seed: int, controls: bool) -> str:
    rng = random.Random(seed)
    chars = [*range(0x20 * (not controls), 0x7F), *range(0x80 if controls else 0xA0, 0x2FF)]
    return "".join(chr(rng.choice(chars)) for _ in range(n))


@pytest.mark.parametrize(
    ("args", "param"),
    [
        ({"csv": ""}, "csv"),
        ({"csv": "   \n\n  "}, "csv"),
        ({"csv": _garbage(5000, 1, controls=True)}, None),
        ({"csv": _garbage(5000, 2, controls=False)}, "csv"),
        ({"csv": "a\x00b,c\n1,2\n"}, "csv"),
        ({"csv": "h" * 200_000 + "\nx\n"}, "csv"),
        ({"csv": "shoe size,city\n42,Paris\n"}, "csv"),
        ({"csv": 42}, "csv"),
        ({"csv": ["email", "a@x.dev"]}, "csv"),
        ({}, "csv"),
        ({"csv": "email\na@x.dev\n", "mapping": ["email"]}, "mapping"),
        ({"csv": "email\na@x.dev\n", "mapping": {"email": 3}}, "mapping.email"),
        ({"csv": "email\na@x.dev\n", "on_match": "merge"}, "on_match"),
        ({"csv": "email\na@x.dev\n", "delimiter": ";"}, "delimiter"),
    ],
    ids=[
        "zero-bytes",
        "blank",
        "binary-garbage",
        "printable-garbage",
        "nul",
        "enormous-header",
        "no-usable-column",
        "int",
        "list",
        "missing",
        "mapping-list",
        "mapping-int",
        "on-match",
        "unknown-arg",
    ],
)
def test_hostile_input_fails_typed_and_writes_nothing(
    call: Caller, engine: Engine, account: NewAccount, args: dict[str, Any], param: str | None
) -> None:
    ok(call("action.list", {"limit": 1}))  # the day's run and the key's last use are bookkeeping
    before = snapshot(engine.store, account.account_id)
    e = err(call("contact.import_csv", args), "invalid_argument")
    if param is not None:
        assert e["param"] == param
    assert e["message"]
    assert snapshot(engine.store, account.account_id) == before


def test_reader_refuses_an_empty_source() -> None:
    with pytest.raises(CsvError, match="empty"):
        CsvReader(iter(()))


def test_http_never_500s_on_garbage(http: Any) -> None:
    for body in ({"csv": _garbage(3000, 3, controls=False)}, {"csv": "\ufeff"}, {"csv": None}):
        r = http.post("/v1/contact.import_csv", json=body)
        assert r.status_code == 400, r.text
        assert r.json()["error"]["code"] == "invalid_argument"


def test_tag_names_follow_the_tag_rules(call: Caller) -> None:
    csv = (
        "name,email,tags\n"
        f"A,a@x.dev,{'ß' * 60}\n"
        "B,b@x.dev,tg_01ABC\n"
        f"C,c@x.dev,{'t' * 101}\n"
        "D,d@x.dev,  Very   Important ; very important;VERY IMPORTANT \n"
    )
    result = imp(call, csv)
    assert codes(result) == [
        (2, "tags", "too_long"),
        (3, "tags", "invalid_value"),
        (4, "tags", "too_long"),
    ]
    assert [t["name"] for t in by_email(call, "d@x.dev")["tags"]] == ["Very Important"]


def test_a_leading_empty_header_cell_is_kept(call: Caller) -> None:
    result = imp(call, "\tname\temail\n7\tAda\tada@x.dev\n")
    assert result["delimiter"] == "\t" and result["created"] == 1
    c = by_email(call, "ada@x.dev")
    assert c["display_name"] == "Ada" and c["attributes"] == {"column": "7"}
