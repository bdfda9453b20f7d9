"""Run events: the append-only log of a run (tool calls, spans, lifecycle changes).

``append_event`` writes one event in the caller's transaction: it takes the run's next ``seq`` with
``UPDATE runs SET last_seq = last_seq + 1 … RETURNING`` (the row lock serializes writers of one run
until commit, so seqs are gap-free and commit in order) and keeps the run's stats in the same
statement. On PostgreSQL the insert also issues ``pg_notify`` (delivered on commit) so other nodes
learn of it. The events a connection appended wait in ``conn.info`` until the writer, once
committed, hands them to the hub (``take_pending``); a rolled-back writer drops them."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from krabs.contract.errors import KrabsError
from krabs.engine.uow import utcnow
from krabs.store.prepared import Prepared
from krabs.store.tables import run_events, runs

#: Compact JSON of an event's data, by one encoder (``json.dumps`` with options builds one per call).
_encode = json.JSONEncoder(separators=(",", ":"), default=str).encode
#: Where a connection keeps the events it appended until they are published (or dropped).
PENDING = "krabs_run_events"
#: The ``pg_notify`` channel prefix; the schema name completes it (test schemas share a database).
CHANNEL_PREFIX = "krabs_ev_"

TERMINAL = ("completed", "failed", "cancelled", "expired")


@dataclass(frozen=True, slots=True)
class RunEvent:
    """One stored event. ``data`` is the type's own JSON object, as text."""

    id: int
    seq: int
    account_id: str
    run_id: str
    type: str
    ts: str
    data: str
    op: str | None = None
    action_id: str | None = None
    agent_id: str | None = None
    #: The run's status right after this event (for the firehose's ``status`` filter).
    status: str | None = None
    _cache: dict[str, str] = field(default_factory=dict, compare=False, repr=False)

    def payload(self) -> str:
        """The event as one JSON object: ``seq``, ``type``, ``ts``, ``run_id`` then the type's own
        fields. Spliced as text so a stream with many readers serializes each event once."""
        cached = self._cache.get("payload")
        if cached is None:
            head = json.dumps(
                {
                    "seq": self.seq,
                    "id": self.id,
                    "type": self.type,
                    "ts": self.ts,
                    "run_id": self.run_id,
                },
                separators=(",", ":"),
            )
            body = self.data.strip()
            cached = head if body in ("{}", "") else head[:-1] + "," + body[1:]
            self._cache["payload"] = cached
        return cached

    def frame(self, cursor: str = "seq") -> str:
        """The SSE frame; ``cursor`` is ``seq`` (a run's stream) or ``id`` (the firehose)."""
        cached = self._cache.get(cursor)
        if cached is None:
            ident = self.seq if cursor == "seq" else self.id
            cached = f"id: {ident}\nevent: {self.type}\ndata: {self.payload()}\n\n"
            self._cache[cursor] = cached
        return cached

    def as_dict(self) -> dict[str, Any]:
        return dict(json.loads(self.payload()))


def _stats(type: str, body: dict[str, Any]) -> dict[str, Any]:
    """What one event adds to its run's counters."""
    d = {"d_calls": 0, "d_errors": 0, "d_writes": 0, "d_in": 0, "d_out": 0, "d_cost": 0}
    if type == "tool_call":
        d["d_calls"] = 1
        d["d_errors"] = 1 if body.get("error") else 0
        committed = body.get("action_id") and not body.get("dry_run") and not body.get("replayed")
        d["d_writes"] = 1 if committed else 0
    elif type == "span":
        d["d_in"] = _int(body.get("input_tokens"))
        d["d_out"] = _int(body.get("output_tokens"))
        cost = body.get("cost_usd")
        d["d_cost"] = round(float(cost) * 1_000_000) if isinstance(cost, int | float) else 0
    return d


def _int(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


# Both statements of every event are compiled once and run on the driver (``krabs.store.prepared``):
# through SQLAlchemy's execution machinery they cost more than the rest of a small write's SQL.
_BUMP = Prepared(
    runs.update()
    .where(runs.c.id == sa.bindparam("run"), runs.c.account_id == sa.bindparam("acct"))
    .values(
        last_seq=runs.c.last_seq + 1,
        calls=runs.c.calls + sa.bindparam("d_calls", type_=sa.BigInteger),
        errors=runs.c.errors + sa.bindparam("d_errors", type_=sa.BigInteger),
        writes=runs.c.writes + sa.bindparam("d_writes", type_=sa.BigInteger),
        input_tokens=runs.c.input_tokens + sa.bindparam("d_in", type_=sa.BigInteger),
        output_tokens=runs.c.output_tokens + sa.bindparam("d_out", type_=sa.BigInteger),
        cost_micros=runs.c.cost_micros + sa.bindparam("d_cost", type_=sa.BigInteger),
        last_call_at=sa.func.coalesce(sa.bindparam("lca", type_=sa.String), runs.c.last_call_at),
        updated_at=sa.bindparam("now", type_=sa.String),
    )
    .returning(runs.c.last_seq, runs.c.agent_id, runs.c.name, runs.c.status)
)
_EVENT_COLUMNS = (
    "account_id",
    "run_id",
    "seq",
    "ts",
    "type",
    "op",
    "action_id",
    "latency_ms",
    "data",
)
_INSERT = Prepared(run_events.insert().returning(run_events.c.id), column_keys=_EVENT_COLUMNS)
_NOTIFY_INSERT = Prepared(
    sa.text(
        "WITH e AS (INSERT INTO run_events (account_id, run_id, seq, ts, type, op, action_id, "
        "latency_ms, data) VALUES (:account_id, :run_id, :seq, :ts, :type, :op, :action_id, "
        ":latency_ms, :data) RETURNING id) "
        "SELECT e.id, pg_notify(CAST(:channel AS text), CAST(:prefix AS text) || e.id) FROM e"
    )
)


#: Advisory lock keys of in-flight event writers: this bit plus a value of the event id sequence.
LOCK_BASE = 1 << 62
#: The second key of the lock that tags an in-flight writer with an account ('krbs'); the first is
#: the account's ``account_key``.
ACCOUNT_TAG = 0x6B726273
#: Taken once per PostgreSQL transaction before its first event takes an id: a shared (never
#: waiting) lock on the sequence's last value, so an in-flight writer's ids are all above its key,
#: and one naming the account whose events it writes.
_LOCK_BEFORE_ID = Prepared(
    sa.text(
        "SELECT pg_advisory_xact_lock_shared(CAST(:base AS bigint) + coalesce("
        "pg_sequence_last_value(CAST(pg_get_serial_sequence('run_events', 'id') AS regclass)), 0)),"
        " pg_advisory_xact_lock_shared(CAST(:acct AS integer), CAST(:tag AS integer))"
    )
)
#: A second account's events in the same transaction: its tag only (the id lock is held already).
_TAG_ACCOUNT = Prepared(
    sa.text("SELECT pg_advisory_xact_lock_shared(CAST(:acct AS integer), CAST(:tag AS integer))")
)
_MAX_ID = sa.text("SELECT coalesce(max(id), 0) FROM run_events")
_THIS_DATABASE = "(SELECT oid FROM pg_database WHERE datname = current_database())"
_ID_LOCKS = (
    "g.locktype = 'advisory' AND g.objsubid = 1 AND g.classid::bigint >= "
    f"(CAST(:base AS bigint) >> 32) AND g.database = {_THIS_DATABASE}"
)
#: The lowest key an in-flight event writer holds (any schema of this database: only cautious).
_LOWEST_IN_FLIGHT = sa.text(
    "SELECT min(((g.classid::bigint << 32) | g.objid::bigint) - CAST(:base AS bigint)) "
    f"FROM pg_locks g WHERE {_ID_LOCKS}"
)
#: The same, among the writers tagged with one account (a hash collision only adds caution).
_LOWEST_IN_FLIGHT_OF = sa.text(
    "SELECT min(((g.classid::bigint << 32) | g.objid::bigint) - CAST(:base AS bigint)) "
    f"FROM pg_locks g JOIN pg_locks a ON a.pid = g.pid WHERE {_ID_LOCKS} "
    "AND a.locktype = 'advisory' AND a.objsubid = 2 AND a.database = g.database "
    "AND a.classid::bigint = :acct AND a.objid::bigint = :tag"
)


def account_key(account_id: str) -> int:
    """The account's advisory lock key: 31 bits of a hash of its id."""
    digest = hashlib.blake2b(account_id.encode(), digest_size=4).digest()
    return int.from_bytes(digest, "big") & 0x7FFFFFFF


def _lock_before_id(conn: Connection, account_id: str) -> None:
    """Before the transaction's first event id, and before its first event of each account (see
    ``settled_horizon``)."""
    tx = conn.get_transaction()
    held = conn.info.get("krabs_id_lock")
    params = {"acct": account_key(account_id), "tag": ACCOUNT_TAG}
    if held is None or held[0] is not tx:
        _LOCK_BEFORE_ID.execute(conn, {"base": LOCK_BASE, **params})
        conn.info["krabs_id_lock"] = (tx, {account_id})
    elif account_id not in held[1]:
        _TAG_ACCOUNT.execute(conn, params)
        held[1].add(account_id)


def settled_horizon(conn: Connection, account_id: str | None = None) -> int:
    """The highest global event id at or below which every event (of ``account_id``, if given) is
    settled (committed, or rolled back for good): a reader that serves ids in order up to here
    never skips one that commits later.

    Ids come from a sequence (CACHE 1: handed out in increasing order) when an event is inserted,
    and on PostgreSQL transactions commit in any order, so id 10 may become visible after id 11.
    Every writer transaction first takes a shared advisory lock keyed by the sequence's last value,
    before it takes any id, and holds it to its end: its ids are all above its key. So, reading the
    highest visible id M, then the lowest key K held, every id up to min(M, K) was taken before M
    (so its writer locked before that) and its writer either still holds a key ≤ K below it (then
    the id is above K) or has ended (then a later statement sees it). A writer also tags itself
    with each account whose events it writes, before their ids: for one account's events only its
    writers count, so another account's long transaction does not hold them back. On SQLite
    writers are serialized: what is visible is always a prefix."""
    highest = int(conn.execute(_MAX_ID).scalar_one())
    if conn.dialect.name != "postgresql":
        return highest
    if account_id is None:
        lowest = conn.execute(_LOWEST_IN_FLIGHT, {"base": LOCK_BASE}).scalar()
    else:
        params = {"base": LOCK_BASE, "acct": account_key(account_id), "tag": ACCOUNT_TAG}
        lowest = conn.execute(_LOWEST_IN_FLIGHT_OF, params).scalar()
    return highest if lowest is None else min(highest, int(lowest))


def channel_of(conn: Connection) -> str:
    """This database's notification channel (one per schema)."""
    cached = conn.info.get("krabs_channel")
    if cached is None:
        schema = conn.execute(sa.text("SELECT current_schema()")).scalar() or "public"
        cached = conn.info["krabs_channel"] = (CHANNEL_PREFIX + schema)[:63]
    return str(cached)


def append_event(
    conn: Connection,
    *,
    account_id: str,
    run_id: str,
    type: str,
    data: dict[str, Any],
    op: str | None = None,
    action_id: str | None = None,
    ts: str | None = None,
) -> tuple[int, int]:
    """Append one event to ``run_id`` in the caller's transaction; return ``(global id, seq)``.

    The first event of a run is always ``run.started``: appending anything else to a run that has
    none writes ``run.started`` first. Raises ``not_found`` if the run is not the account's."""
    ts = ts or utcnow()
    bump = {"run": run_id, "acct": account_id, "now": ts, **_stats(type, data)}
    bump["lca"] = ts if type == "tool_call" else None
    rows = _BUMP.execute(conn, bump)
    row = rows[0] if rows else None
    if row is None:
        raise KrabsError(
            "not_found", f"no run with id {run_id[:80]!r} in this account", param="run_id"
        )
    seq, agent_id, name, status = int(row[0]), row[1], row[2], row[3]
    if seq == 1 and type != "run.started":
        started = {"agent": agent_id, "name": name}
        _insert(
            conn, account_id, run_id, 1, "run.started", started, None, None, ts, agent_id, status
        )
        zero = {k: 0 for k in bump if k.startswith("d_")}
        rows = _BUMP.execute(conn, {**bump, **zero})
        assert rows
        seq = int(rows[0][0])
    event_id = _insert(
        conn, account_id, run_id, seq, type, data, op, action_id, ts, agent_id, status
    )
    return event_id, seq


def _insert(
    conn: Connection,
    account_id: str,
    run_id: str,
    seq: int,
    type: str,
    data: dict[str, Any],
    op: str | None,
    action_id: str | None,
    ts: str,
    agent_id: str,
    status: str,
) -> int:
    text = _encode(data)
    latency = data.get("latency_ms")
    values = {
        "account_id": account_id,
        "run_id": run_id,
        "seq": seq,
        "ts": ts,
        "type": type,
        "op": op,
        "action_id": action_id,
        "latency_ms": float(latency) if isinstance(latency, int | float) else None,
        "data": text,
    }
    if conn.dialect.name == "postgresql":
        from krabs.runs.hub import node_prefix

        _lock_before_id(conn, account_id)
        params = {
            **values,
            "channel": channel_of(conn),
            "prefix": node_prefix(conn.engine, run_id, seq),
        }
        inserted = _NOTIFY_INSERT.execute(conn, params)
        assert inserted is not None and len(inserted) == 1
        event_id = int(inserted[0][0])
    else:
        inserted = _INSERT.execute(conn, values)
        assert inserted is not None and len(inserted) == 1
        event_id = int(inserted[0][0])
    event = RunEvent(
        id=event_id,
        seq=seq,
        account_id=account_id,
        run_id=run_id,
        type=type,
        ts=ts,
        data=text,
        op=op,
        action_id=action_id,
        agent_id=agent_id,
        status=status,
    )
    conn.info.setdefault(PENDING, []).append(event)
    return event_id


def take_pending(conn: Connection) -> list[RunEvent]:
    """The events this connection appended since the last call (to publish once committed, or to
    drop on rollback)."""
    pending: list[RunEvent] = conn.info.pop(PENDING, None) or []
    return pending


def _event(row: Any, agent_id: str | None = None, status: str | None = None) -> RunEvent:
    m = row._mapping
    return RunEvent(
        id=int(m["id"]),
        seq=int(m["seq"]),
        account_id=m["account_id"],
        run_id=m["run_id"],
        type=m["type"],
        ts=m["ts"],
        data=m["data"],
        op=m["op"],
        action_id=m["action_id"],
        agent_id=m.get("agent_id", agent_id),
        status=m.get("status", status),
    )


def read_events(
    conn: Connection, account_id: str, run_id: str, after_seq: int = 0, limit: int = 500
) -> list[RunEvent]:
    """A run's events with ``seq > after_seq``, in order, at most ``limit``."""
    rows = conn.execute(
        sa.select(run_events)
        .where(
            run_events.c.account_id == account_id,
            run_events.c.run_id == run_id,
            run_events.c.seq > after_seq,
        )
        .order_by(run_events.c.seq)
        .limit(limit)
    ).all()
    return [_event(r) for r in rows]


def read_events_by_id(conn: Connection, ids: list[int]) -> list[RunEvent]:
    """Events by global id, with their run's agent and status (what another node notified)."""
    if not ids:
        return []
    rows = conn.execute(
        sa.select(run_events, runs.c.agent_id, runs.c.status)
        .join(runs, runs.c.id == run_events.c.run_id)
        .where(run_events.c.id.in_(ids))
        .order_by(run_events.c.id)
    ).all()
    return [_event(r) for r in rows]


def read_firehose(
    conn: Connection,
    account_id: str,
    after_id: int,
    limit: int = 500,
    *,
    agent: str | None = None,
    op: str | None = None,
    status: str | None = None,
    upto: int | None = None,
) -> list[RunEvent]:
    """Every run's events of the account with global ``id > after_id`` (and ``<= upto``), in id
    order."""
    q = (
        sa.select(run_events, runs.c.agent_id, runs.c.status)
        .join(runs, runs.c.id == run_events.c.run_id)
        .where(run_events.c.account_id == account_id, run_events.c.id > after_id)
    )
    if upto is not None:
        q = q.where(run_events.c.id <= upto)
    if agent is not None:
        q = q.where(runs.c.agent_id == agent)
    if op is not None:
        q = q.where(run_events.c.op == op)
    if status is not None:
        q = q.where(runs.c.status == status)
    rows = conn.execute(q.order_by(run_events.c.id).limit(limit)).all()
    return [_event(r) for r in rows]


def last_seq(conn: Connection, account_id: str, run_id: str) -> tuple[int, str] | None:
    """The run's last seq and status, or None when it is not the account's."""
    row = conn.execute(
        sa.select(runs.c.last_seq, runs.c.status).where(
            runs.c.id == run_id, runs.c.account_id == account_id
        )
    ).first()
    return (int(row[0]), str(row[1])) if row is not None else None
