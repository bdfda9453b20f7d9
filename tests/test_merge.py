"""contact.merge through the real engine, on SQLite and PostgreSQL: every link moves to the survivor
(duplicates dropped), field resolution by `prefer`, merged contacts readable with `merged_into`,
hostile input, and — as a property over random contact graphs — `action.undo` restoring the
database exactly."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import Caller, err, ok, snapshot
from krabs.accounts import NewAccount, create_account
from krabs.contract.ids import new_id
from krabs.engine import Engine
from krabs.engine.uow import utcnow
from krabs.store.db import Store
from krabs.store.tables import (
    contacts,
    deals,
    identities,
    interaction_participants,
    interactions,
    notes,
    tag_links,
    tasks,
)

UNKNOWN = "ct_01HG7Z4X9Q8M2N7P3R5T6V8W"
BOOKKEEPING = ("audit_", "idempotency_keys", "runs", "api_keys")


def data(store: Store, account_id: str) -> dict[str, Any]:
    """The account's database without the tables every call writes to (audit, idempotency, runs,
    keys)."""
    return {k: v for k, v in snapshot(store, account_id).items() if not k.startswith(BOOKKEEPING)}


def email() -> str:
    return f"m-{uuid.uuid4().hex[:12]}@example.com"


def contact(call: Caller, *emails: str, key: str | None = None, **fields: Any) -> dict[str, Any]:
    idents = [{"kind": "email", "value": e} for e in emails]
    return ok(call("contact.create", {**fields, "identities": idents}, key=key))


def write(store: Store, table: sa.Table, account_id: str, noun: str, **values: Any) -> str:
    """Rows of nouns whose operations live elsewhere, written directly."""
    now = utcnow()
    defaults: dict[str, dict[str, Any]] = {
        "interactions": {
            "kind": "email",
            "direction": "inbound",
            "occurred_at": now,
            "attributes": {},
            "updated_at": now,
            "deleted_at": None,
        },
        "interaction_participants": {},
        "deals": {
            "title": "Deal",
            "amount": 1000,
            "currency": "EUR",
            "stage": "lead",
            "status": "open",
            "recurring_interval": "none",
            "attributes": {},
            "updated_at": now,
            "deleted_at": None,
        },
        "tasks": {
            "title": "Task",
            "status": "open",
            "priority": "normal",
            "updated_at": now,
            "deleted_at": None,
        },
        "notes": {"body": "Note", "author": "agent:test", "updated_at": now, "deleted_at": None},
    }
    row_id = new_id(noun)
    row = {
        "id": row_id,
        "account_id": account_id,
        "created_at": now,
        **defaults[str(table.name)],
        **values,
    }
    with store.transaction() as conn:
        conn.execute(table.insert().values(**row))
    return row_id


def rows(store: Store, table: sa.Table, **where: Any) -> list[dict[str, Any]]:
    with store.connect(write=False) as conn:
        q = sa.select(table).where(*(table.c[k] == v for k, v in where.items()))
        return [dict(r._mapping) for r in conn.execute(q.order_by(table.c.id))]


@pytest.fixture
def other(engine: Engine) -> NewAccount:
    return create_account(engine.store, "other")


# -- what moves --------------------------------------------------------------------------------------


def test_merge_moves_every_link_and_drops_duplicates(
    call: Caller, engine: Engine, account: NewAccount
) -> None:
    store, acct = engine.store, account.account_id
    s = contact(call, email(), display_name="Ada")
    m = contact(call, email(), email(), display_name="Ada L.")
    ix = write(store, interactions, acct, "interaction")
    both = write(store, interaction_participants, acct, "participant", interaction_id=ix, contact_id=s["id"], role="to")  # fmt: skip
    dup = write(store, interaction_participants, acct, "participant", interaction_id=ix, contact_id=m["id"], role="to")  # fmt: skip
    cc = write(store, interaction_participants, acct, "participant", interaction_id=ix, contact_id=m["id"], role="cc")  # fmt: skip
    deal = write(store, deals, acct, "deal", contact_id=m["id"])
    task = write(store, tasks, acct, "task", contact_id=m["id"])
    note = write(store, notes, acct, "note", contact_id=m["id"])
    ok(call("tag.attach", {"tag": "VIP", "create": True, "targets": [{"target_id": s["id"]}, {"target_id": m["id"]}]}))  # fmt: skip
    ok(call("tag.attach", {"tag": "Cold", "create": True, "target_id": m["id"]}))

    out = ok(call("contact.merge", {"survivor_id": s["id"], "merged_ids": [m["id"]]}))
    assert out["object"] == "contact" and out["id"] == s["id"]
    assert out["merged_ids"] == [m["id"]] and out["undo_token"].startswith("undo_")
    assert {i["normalized"] for i in out["identities"]} == {
        i["normalized"] for i in s["identities"] + m["identities"]
    }
    assert [i["kind"] for i in out["identities"] if i["primary"]] == ["email"]  # one primary
    assert [t["name"] for t in out["tags"]] == ["Cold", "VIP"]
    parts = rows(store, interaction_participants, interaction_id=ix)
    assert {(p["id"], p["contact_id"], p["role"]) for p in parts} == {
        (both, s["id"], "to"),
        (cc, s["id"], "cc"),
    }
    assert dup not in {p["id"] for p in parts}
    for table, row_id in ((deals, deal), (tasks, task), (notes, note)):
        [row] = rows(store, table, id=row_id)
        assert row["contact_id"] == s["id"]
    assert len(rows(store, tag_links, target_id=s["id"])) == 2
    assert rows(store, tag_links, target_id=m["id"]) == []
    assert rows(store, identities, contact_id=m["id"]) == []

    merged = ok(call("contact.get", {"id": m["id"]}))
    assert merged["merged_into"] == s["id"] and merged["identities"] == [] and merged["tags"] == []
    assert m["id"] not in [c["id"] for c in ok(call("contact.list", {}))["data"]]
    found = ok(call("contact.find_by_identity", {"identity": {"kind": "email", "value": m["identities"][0]["value"]}}))  # fmt: skip
    assert found["id"] == s["id"]
    err(call("contact.update", {"id": m["id"], "title": "x"}), "not_found")
    err(call("contact.delete", {"id": m["id"]}), "not_found")


def test_merge_undo_restores_everything_and_the_merged_contact_comes_back(
    call: Caller, engine: Engine, account: NewAccount
) -> None:
    s = contact(call, email(), company="Engines", attributes={"a": 1})
    m = contact(call, email(), title="CTO", attributes={"a": 2, "b": 3})
    ix = write(engine.store, interactions, account.account_id, "interaction")
    for who in (s, m):
        write(engine.store, interaction_participants, account.account_id, "participant", interaction_id=ix, contact_id=who["id"], role="from")  # fmt: skip
    ok(call("tag.attach", {"tag": "VIP", "create": True, "targets": [{"target_id": s["id"]}, {"target_id": m["id"]}]}))  # fmt: skip
    before = data(engine.store, account.account_id)
    out = ok(call("contact.merge", {"survivor_id": s["id"], "merged_ids": [m["id"]]}))
    ok(call("action.undo", {"undo_token": out["undo_token"]}))
    assert data(engine.store, account.account_id) == before
    got = ok(call("contact.get", {"id": m["id"]}))
    assert got["merged_into"] is None and got["identities"] == m["identities"]


def test_deleted_contacts_stay_not_found_but_merged_ones_are_readable(call: Caller) -> None:
    s, m, d = contact(call), contact(call), contact(call)
    ok(call("contact.delete", {"id": d["id"]}))
    ok(call("contact.merge", {"survivor_id": s["id"], "merged_ids": [m["id"]]}))
    err(call("contact.get", {"id": d["id"]}), "not_found")
    assert ok(call("contact.get", {"id": m["id"]}))["merged_into"] == s["id"]


def test_a_chain_of_merges_points_at_the_last_survivor(call: Caller) -> None:
    a, b, c = contact(call), contact(call), contact(call)
    ok(call("contact.merge", {"survivor_id": b["id"], "merged_ids": [a["id"]]}))
    ok(call("contact.merge", {"survivor_id": c["id"], "merged_ids": [b["id"]]}))
    assert ok(call("contact.get", {"id": a["id"]}))["merged_into"] == c["id"]
    assert ok(call("contact.get", {"id": b["id"]}))["merged_into"] == c["id"]


# -- which value wins --------------------------------------------------------------------------------


def test_survivor_values_win_else_the_first_merged_in_order(call: Caller) -> None:
    s = contact(call, display_name="Survivor", attributes={"k": "s", "only_s": 1})
    m1 = contact(call, display_name="One", company="One Inc", attributes={"k": "m1", "x": 1})
    m2 = contact(call, display_name="Two", company="Two Inc", given_name="Two", title="CEO", attributes={"x": 2, "y": 2})  # fmt: skip
    out = ok(call("contact.merge", {"survivor_id": s["id"], "merged_ids": [m1["id"], m2["id"]]}))
    assert out["display_name"] == "Survivor"
    assert out["company"] == "One Inc"  # the survivor had none; first merged in the order given
    assert out["given_name"] == "Two"  # neither the survivor nor m1 had one
    assert out["title"] == "CEO"
    assert out["stage"] is None
    assert out["attributes"] == {"k": "s", "only_s": 1, "x": 1, "y": 2}


def test_prefer_picks_a_contacts_value_even_an_empty_one(call: Caller) -> None:
    s = contact(call, display_name="S", company="S Inc", stage="lead", attributes={"k": "s"})
    m1 = contact(call, display_name="M1", company="M1 Inc", stage="customer", attributes={"k": "m1"})  # fmt: skip
    m2 = contact(call, display_name="M2", owner="agent:bob", attributes={"k": "m2", "z": 0})
    args = {
        "survivor_id": s["id"],
        "merged_ids": [m1["id"], m2["id"]],
        "prefer": {
            "company": m2["id"],  # m2 has no company: the preference still wins
            "stage": m1["id"],
            "display_name": s["id"],
            "attributes": m2["id"],
        },
    }
    out = ok(call("contact.merge", args))
    assert (out["display_name"], out["company"], out["stage"], out["owner"]) == (
        "S",
        None,
        "customer",
        "agent:bob",
    )
    assert out["attributes"] == {"k": "m2", "z": 0}


def test_attributes_already_covering_the_merged_keys_are_left_as_stored(
    call: Caller, engine: Engine, account: NewAccount
) -> None:
    s = contact(call, attributes={"a": 0, "b": 0})
    m = contact(call, attributes={"b": 1})
    before = data(engine.store, account.account_id)
    out = ok(call("contact.merge", {"survivor_id": s["id"], "merged_ids": [m["id"]]}))
    assert list(out["attributes"].items()) == [("a", 0), ("b", 0)]
    ok(call("action.undo", {"undo_token": out["undo_token"]}))
    assert data(engine.store, account.account_id) == before


# -- hostile input -----------------------------------------------------------------------------------


def test_merge_rejects_bad_requests(call: Caller, other: NewAccount) -> None:
    s, m, gone = contact(call), contact(call), contact(call)
    ok(call("contact.delete", {"id": gone["id"]}))
    theirs = contact(call, key=other.secret)
    merged_before = contact(call)
    ok(call("contact.merge", {"survivor_id": s["id"], "merged_ids": [merged_before["id"]]}))
    S, M = s["id"], m["id"]
    invalid = [
        ({"survivor_id": S, "merged_ids": [M, S]}, "merged_ids.1"),
        ({"survivor_id": S, "merged_ids": [M, M]}, "merged_ids.1"),
        ({"survivor_id": S, "merged_ids": []}, "merged_ids"),
        ({"survivor_id": S, "merged_ids": [M] + [UNKNOWN] * 10}, "merged_ids"),
        ({"survivor_id": S, "merged_ids": ["dl_123"]}, "merged_ids.0"),
        ({"survivor_id": S, "merged_ids": M}, "merged_ids"),
        ({"survivor_id": S, "merged_ids": [7]}, "merged_ids.0"),
        ({"survivor_id": S}, "merged_ids"),
        ({"merged_ids": [M]}, "survivor_id"),
        ({"survivor_id": S, "merged_ids": [M], "prefer": {"company": UNKNOWN}}, "prefer.company"),
        ({"survivor_id": S, "merged_ids": [M], "prefer": {"email": M}}, "prefer.email"),
        ({"survivor_id": S, "merged_ids": [M], "prefer": {"company": "S"}}, "prefer.company"),
        ({"survivor_id": S, "merged_ids": [M], "prefer": ["company"]}, "prefer"),
        ({"survivor_id": S, "merged_ids": [M], "force": True}, "force"),
    ]
    for args, param in invalid:
        e = err(call("contact.merge", args), "invalid_argument")
        assert e["param"] == param, (args, e)
    missing = [
        ({"survivor_id": UNKNOWN, "merged_ids": [M]}, "survivor_id"),
        ({"survivor_id": theirs["id"], "merged_ids": [M]}, "survivor_id"),
        ({"survivor_id": gone["id"], "merged_ids": [M]}, "survivor_id"),
        ({"survivor_id": merged_before["id"], "merged_ids": [M]}, "survivor_id"),
        ({"survivor_id": S, "merged_ids": [M, UNKNOWN]}, "merged_ids.1"),
        ({"survivor_id": S, "merged_ids": [theirs["id"]]}, "merged_ids.0"),
        ({"survivor_id": S, "merged_ids": [M, gone["id"]]}, "merged_ids.1"),
        ({"survivor_id": S, "merged_ids": [merged_before["id"]]}, "merged_ids.0"),
    ]
    for args, param in missing:
        e = err(call("contact.merge", args), "not_found")
        assert e["param"] == param, (args, e)
    assert ok(call("contact.get", {"id": M}))["merged_into"] is None
    assert ok(call("contact.get", {"id": theirs["id"]}, key=other.secret))["merged_into"] is None


def test_self_merge_message_says_why(call: Caller) -> None:
    s = contact(call)
    e = err(call("contact.merge", {"survivor_id": s["id"], "merged_ids": [s["id"]]}), "invalid_argument")  # fmt: skip
    assert e["param"] == "merged_ids.0" and "itself" in e["message"]


# -- the property: merge then undo is the identity on the database -----------------------------------

ROLES = ("from", "to", "cc")
text = st.one_of(st.none(), st.sampled_from(["Ada", "Grace", "Ünïcode ß"]))
# Attribute keys in sorted order: undo writes JSON back from the canonical (key-sorted) audit
# payload, so a dict stored in another key order comes back equal but reordered.
attrs = st.dictionaries(st.sampled_from("abcd"), st.integers(-3, 3), max_size=3).map(
    lambda d: dict(sorted(d.items()))
)


@st.composite
def graphs(draw: st.DrawFn) -> dict[str, Any]:
    n = draw(st.integers(2, 5))
    people = [
        {
            "fields": {
                "display_name": draw(st.one_of(st.none(), st.sampled_from(["A", "B", "C"]))),
                "given_name": draw(text),
                "company": draw(text),
                "stage": draw(st.sampled_from([None, "lead", "customer"])),
                "owner": draw(st.sampled_from([None, "agent:x"])),
                "attributes": draw(attrs),
            },
            "emails": draw(st.integers(0, 3)),
            "phone": draw(st.booleans()),
        }
        for _ in range(n)
    ]
    idx = st.integers(0, n - 1)
    interactions_ = draw(
        st.lists(st.lists(st.tuples(idx, st.sampled_from(ROLES)), max_size=4), max_size=3)
    )
    owned = {
        noun: draw(st.lists(st.tuples(st.one_of(st.none(), idx), st.booleans()), max_size=3))
        for noun in ("deal", "task", "note")
    }
    tag_sets = draw(st.lists(st.sets(idx, max_size=n), max_size=3))
    order = draw(st.permutations(range(n)))
    k = draw(st.integers(1, n - 1))
    survivor, merged = order[0], list(order[1 : 1 + k])
    fields = ["display_name", "given_name", "company", "stage", "owner", "attributes"]
    prefer = draw(st.dictionaries(st.sampled_from(fields), st.sampled_from([survivor, *merged])))
    return {
        "people": people,
        "interactions": interactions_,
        "owned": owned,
        "tags": tag_sets,
        "survivor": survivor,
        "merged": merged,
        "prefer": prefer,
        "premerged": draw(st.booleans()),
    }


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(g=graphs())
def test_merge_then_undo_restores_the_database_exactly(
    call: Caller, engine: Engine, account: NewAccount, g: dict[str, Any]
) -> None:
    store, acct = engine.store, account.account_id
    ids = []
    for n, p in enumerate(g["people"]):
        idents = [{"kind": "email", "value": email()} for _ in range(p["emails"])]
        if p["phone"]:
            idents.append({"kind": "x", "value": f"@h{uuid.uuid4().hex[:10]}"})
        ids.append(ok(call("contact.create", {**p["fields"], "identities": idents}))["id"])
        if n == g["merged"][0] and g["premerged"]:
            # An older duplicate already merged into a contact being merged now.
            older = contact(call, email())
            ok(call("contact.merge", {"survivor_id": ids[n], "merged_ids": [older["id"]]}))
    for parts in g["interactions"]:
        ix = write(store, interactions, acct, "interaction")
        for who, role in dict.fromkeys(parts):
            write(store, interaction_participants, acct, "participant", interaction_id=ix, contact_id=ids[who], role=role)  # fmt: skip
    tables = {"deal": deals, "task": tasks, "note": notes}
    for noun, owners in g["owned"].items():
        for who, deleted in owners:
            write(
                store,
                tables[noun],
                acct,
                noun,
                contact_id=None if who is None else ids[who],
                deleted_at=utcnow() if deleted else None,
            )
    for members in g["tags"]:
        name = f"T{uuid.uuid4().hex[:8]}"
        ok(call("tag.create", {"name": name}))
        if members:
            targets = [{"target_id": ids[i]} for i in sorted(members)]
            ok(call("tag.attach", {"tag": name, "targets": targets}))

    survivor, merged = ids[g["survivor"]], [ids[i] for i in g["merged"]]
    prefer = {f: ids[i] for f, i in g["prefer"].items()}
    before = data(store, acct)
    out = ok(call("contact.merge", {"survivor_id": survivor, "merged_ids": merged, "prefer": prefer}))  # fmt: skip
    assert out["id"] == survivor and out["merged_ids"] == merged
    for table, column in (
        (identities, "contact_id"),
        (interaction_participants, "contact_id"),
        (deals, "contact_id"),
        (tasks, "contact_id"),
        (notes, "contact_id"),
        (tag_links, "target_id"),
    ):
        for mid in merged:
            left = [r for r in rows(store, table, **{column: mid}) if r.get("deleted_at") is None]
            assert left == [], f"{table.name} still points at merged {mid}"
    for mid in merged:
        [row] = rows(store, contacts, id=mid)
        assert row["merged_into"] == survivor and row["deleted_at"] is not None
    ok(call("action.undo", {"undo_token": out["undo_token"]}))
    assert data(store, acct) == before
