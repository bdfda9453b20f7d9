"""The steps of the call path, each ``step(call, next) -> Outcome``. ``krabs.engine.core`` lists them in
order and folds them into one callable, as Starlette builds its middleware stack."""

from __future__ import annotations

import hashlib
import json
import secrets
import threading
from collections.abc import Callable
from typing import Any, NamedTuple

import sqlalchemy as sa

from krabs.audit import log
from krabs.audit.canonical import canonical
from krabs.auth import KeyCache, authenticate
from krabs.config import Settings
from krabs.contract.errors import KrabsError
from krabs.contract.ids import new_id
from krabs.contract.registry import Registry
from krabs.engine.context import Call, Outcome
from krabs.engine.uow import UnitOfWork, utcnow
from krabs.engine.validation import scan_json, validate_args
from krabs.ratelimit import RateLimiter
from krabs.runs.attach import RunResolver
from krabs.store.db import Store
from krabs.store.prepared import Prepared
from krabs.store.tables import idempotency_keys

Next = Callable[[Call], Outcome]


def _iso_in(seconds: int) -> str:
    """Now plus ``seconds``, formatted like ``utcnow`` (and as cheaply: once per write)."""
    return utcnow(seconds)


class Authenticate:
    def __init__(self, store: Store, cache: KeyCache) -> None:
        self.store, self.cache = store, cache

    def __call__(self, call: Call, next: Next) -> Outcome:
        principal = call.request.principal or authenticate(
            self.store, self.cache, call.request.api_key
        )
        return next(call.evolve(principal=principal))


class ResolveOperation:
    def __init__(self, registry: Registry) -> None:
        self.registry = registry

    def __call__(self, call: Call, next: Next) -> Outcome:
        op = self.registry.get(call.request.op)
        if op is None:
            raise KrabsError(
                "unknown_operation",
                f"no operation named {call.request.op[:100]!r}; GET /v1/schema lists all of them",
                param="op",
            )
        return next(call.evolve(operation=op))


class AuthorizeScope:
    def __call__(self, call: Call, next: Next) -> Outcome:
        if not call.who.allows(call.op.scope):
            raise KrabsError(
                "forbidden",
                f"{call.op.name} needs the {call.op.scope!r} scope; this key has "
                f"{', '.join(sorted(call.who.scopes)) or 'none'}",
            )
        return next(call)


class RateLimit:
    def __init__(self, limiter: RateLimiter) -> None:
        self.limiter = limiter

    def __call__(self, call: Call, next: Next) -> Outcome:
        subject = call.who.key_id or call.who.account_id
        wait = self.limiter.acquire(subject)
        if wait is not None:
            outcome = Outcome.failure(
                KrabsError(
                    "rate_limited",
                    f"rate limit of {self.limiter.rate:g} requests/s for this key exceeded; "
                    f"retry in {wait:.2f}s",
                    details={"retry_after": round(wait, 3)},
                )
            )
            outcome.retry_after = wait
            return outcome
        return next(call)


class AttachRun:
    def __init__(self, runs: RunResolver) -> None:
        self.runs = runs

    def __call__(self, call: Call, next: Next) -> Outcome:
        # A dry-run persists nothing, not even the day's default run: it reports the run it would use.
        run_id = self.runs.resolve(
            call.who, call.request.run_id, create=not _requested_dry_run(call)
        )
        outcome = next(call.evolve(run_id=run_id))
        outcome.run_id = outcome.run_id or run_id
        return outcome


class Validate:
    def __call__(self, call: Call, next: Next) -> Outcome:
        raw = call.request.args
        if not isinstance(raw, dict):
            raise KrabsError("invalid_argument", "arguments must be a JSON object", param=None)
        scan_json(raw)
        dry_run = call.request.dry_run
        if "dry_run" in raw:
            raw = dict(raw)
            flag = raw.pop("dry_run")
            if not isinstance(flag, bool):
                raise KrabsError(
                    "invalid_argument", "dry_run must be true or false", param="dry_run"
                )
            dry_run = dry_run or flag
        args = validate_args(call.op.input, raw, call.op.name)
        return next(call.evolve(args=args, dry_run=dry_run))


def _requested_dry_run(call: Call) -> bool:
    raw = call.request.args
    return call.request.dry_run or (isinstance(raw, dict) and raw.get("dry_run") is True)


class IdempotencyGuard:
    """Outside the transaction: refuse a key already in flight in this process, and remember a
    handler's error under the key once its transaction has rolled back (Stripe's semantics)."""

    def __init__(self, store: Store, settings: Settings) -> None:
        self.store, self.settings = store, settings
        self._in_flight: set[tuple[str, str]] = set()
        self._lock = threading.Lock()

    def __call__(self, call: Call, next: Next) -> Outcome:
        key = call.request.idempotency_key
        if key is None or not call.op.mutates or call.dry_run:
            return next(call)
        if not (1 <= len(key) <= 255) or not key.isascii() or not key.isprintable():
            raise KrabsError(
                "invalid_argument",
                "Idempotency-Key must be 1-255 printable ASCII characters",
                param="Idempotency-Key",
            )
        slot = (call.who.account_id, key)
        with self._lock:
            if slot in self._in_flight:
                raise KrabsError(
                    "idempotency_key_in_use",
                    "a request with this Idempotency-Key is still in progress; retry shortly",
                    param="Idempotency-Key",
                )
            self._in_flight.add(slot)
        try:
            outcome = next(call)
            if outcome.error is not None and outcome.executed and not outcome.replayed:
                self._remember_error(call, key, outcome)
            return outcome
        finally:
            with self._lock:
                self._in_flight.discard(slot)

    def _remember_error(self, call: Call, key: str, outcome: Outcome) -> None:
        assert outcome.error is not None
        body = {"error": outcome.error.to_dict(op=call.op.name)}
        with self.store.transaction(write=True) as conn:
            exists = conn.execute(
                sa.select(idempotency_keys.c.key).where(
                    idempotency_keys.c.account_id == call.who.account_id,
                    idempotency_keys.c.key == key,
                )
            ).first()
            if exists is None:
                conn.execute(
                    idempotency_keys.insert().values(
                        **_idem_row(call, key, outcome.status, body, None, self.settings)
                    )
                )


def fingerprint(op: str, args: Any) -> str:
    raw = dict(args) if isinstance(args, dict) else {}
    raw.pop("dry_run", None)
    return hashlib.sha256(canonical({"op": op, "args": raw})).hexdigest()


def _idem_row(
    call: Call,
    key: str,
    status: int,
    body: dict[str, Any],
    action_id: str | None,
    settings: Settings,
    encoded: tuple[Any, bytes] | None = None,
) -> dict[str, Any]:
    """The stored response; ``encoded`` is a (value, canonical JSON) pair already made for the
    audit record, used when ``body`` is that value."""
    return {
        "account_id": call.who.account_id,
        "key": key,
        "op": call.op.name,
        "fingerprint": fingerprint(call.op.name, call.request.args),
        "status": status,
        "response": encoded[1].decode() if encoded and encoded[0] is body else json.dumps(body),
        "run_id": call.run_id,
        "action_id": action_id,
        "created_at": utcnow(),
        "expires_at": _iso_in(settings.idempotency_ttl_seconds),
    }


class IdempotencyRace(Exception):
    """Another node stored a response under the same key first; the transaction is retried."""


class Transaction:
    """Run the rest inside one transaction: commit a successful write, roll back everything else.
    A dry-run is the same call, rolled back, reported as its plan."""

    def __init__(
        self, store: Store, settings: Settings, keys: KeyCache, runs: RunResolver | None = None
    ) -> None:
        self.store, self.settings, self.keys = store, settings, keys
        self._pending_run = runs.pending if runs is not None else None

    def __call__(self, call: Call, next: Next) -> Outcome:
        for _attempt in range(3):
            try:
                return self._once(call, next)
            except IdempotencyRace:
                continue
        raise KrabsError(
            "idempotency_key_in_use", "Idempotency-Key contended; retry", param="Idempotency-Key"
        )

    def _forget(self, key_ids: list[str]) -> None:
        for key_id in key_ids:
            self.keys.forget_key(key_id)

    def _once(self, call: Call, next: Next) -> Outcome:
        write = call.op.mutates
        with self.store.connect(write=write) as conn:
            tx = self.store.begin(conn)
            uow = UnitOfWork(
                conn=conn,
                principal=call.who,
                run_id=call.run_id,
                dialect=self.store.dialect,
                default_region=self.settings.default_region,
                data_dir=self.settings.data_dir,
                signing_dir=self.settings.signing_dir,
                pending_run=self._pending_run,
                dry_run=call.dry_run,
            )
            try:
                outcome = next(call.evolve(uow=uow))
                if outcome.ok and uow.unlinked is not None:
                    # Last: the chain's head is a row lock every write of the account waits for.
                    outcome.audit = log.link(uow)
            except sa.exc.IntegrityError:
                tx.rollback()
                outcome = Outcome.failure(
                    KrabsError("conflict", "the write conflicts with a concurrent change; retry")
                )
                outcome.executed = True
                return outcome
            except BaseException:
                tx.rollback()
                raise
            if outcome.ok and write and not call.dry_run and not outcome.replayed:
                tx.commit()
                changed_keys = [c.id for c in uow.changes if c.table == "api_keys"]
                if changed_keys:
                    # Now, for the calls after this one in a group commit; and once durable, in
                    # case a concurrent reader cached the old row in between.
                    self._forget(changed_keys)
                    self.store.after_commit(lambda: self._forget(changed_keys))
            else:
                tx.rollback()
        if call.dry_run and outcome.ok:
            outcome.result = {
                "dry_run": True,
                "result": outcome.result,
                "touched": uow.touched(),
                "diff": uow.diff(),
                "audit": outcome.audit,
            }
            outcome.action_id = None
        return outcome


class _Stored(NamedTuple):
    op: str
    fingerprint: str
    status: int
    response: str
    run_id: str | None
    action_id: str | None
    expires_at: str


_STORED_RESPONSE = Prepared(
    sa.select(*(idempotency_keys.c[name] for name in _Stored._fields)).where(
        idempotency_keys.c.account_id == sa.bindparam("acct"),
        idempotency_keys.c.key == sa.bindparam("key"),
    )
)
_STORE_RESPONSE = Prepared(
    idempotency_keys.insert(), column_keys=[str(c.name) for c in idempotency_keys.columns]
)


class IdempotentReplay:
    """Inside the transaction: return the stored response for a known key, or store this one."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    def __call__(self, call: Call, next: Next) -> Outcome:
        key = call.request.idempotency_key
        if key is None or not call.op.mutates or call.dry_run:
            return next(call)
        uow = call.uow
        assert uow is not None
        table = idempotency_keys
        rows = _STORED_RESPONSE.execute(uow.conn, {"acct": call.who.account_id, "key": key})
        row = _Stored(*rows[0]) if rows else None
        if row is not None and row.expires_at <= utcnow():
            uow.conn.execute(
                table.delete().where(table.c.account_id == call.who.account_id, table.c.key == key)
            )
            row = None
        if row is not None:
            if row.op != call.op.name or row.fingerprint != fingerprint(
                call.op.name, call.request.args
            ):
                raise KrabsError(
                    "idempotency_key_reused",
                    f"this Idempotency-Key was first used with {row.op} and other arguments; "
                    "use a new key for a new request",
                    param="Idempotency-Key",
                )
            body = json.loads(row.response)
            if row.status >= 400:
                err = body["error"]
                error = KrabsError(err["code"], err["message"], param=err.get("param"))
                outcome = Outcome(error=error, status=row.status, replayed=True, run_id=row.run_id)
            else:
                outcome = Outcome(result=body, status=row.status, replayed=True, run_id=row.run_id)
            outcome.action_id = row.action_id
            return outcome
        outcome = next(call)
        if outcome.ok:
            assert outcome.result is not None
            try:
                _STORE_RESPONSE.execute(
                    uow.conn,
                    _idem_row(
                        call,
                        key,
                        outcome.status,
                        call.op.redacted(outcome.result),
                        outcome.action_id,
                        self.settings,
                        uow.encoded_result,
                    ),
                )
            except sa.exc.IntegrityError:
                raise IdempotencyRace() from None
        return outcome


class AuditAppend:
    """Seal and store the write's audit payload; destructive writes get their undo token. Its record
    joins the hash chain last, right before commit (``Transaction``, ``krabs.audit.log.link``)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    def __call__(self, call: Call, next: Next) -> Outcome:
        if not call.op.mutates:
            return next(call)
        uow = call.uow
        assert uow is not None and call.args is not None
        uow.action_id = new_id("action")
        outcome = next(call)
        if not outcome.ok:
            return outcome
        assert outcome.result is not None
        token = token_hash = expires = None
        if (call.op.destructive or uow.wants_undo) and not call.dry_run:
            token = "undo_" + secrets.token_urlsafe(24)
            token_hash = hashlib.sha256(token.encode()).hexdigest()
            expires = _iso_in(self.settings.undo_ttl_seconds)
        log.prepare(
            uow,
            action_id=uow.action_id,
            op=call.op.name,
            args=call.op.digested(call.args.model_dump(mode="json", exclude_unset=True)),
            result=call.op.redacted(outcome.result),
            undo_token_hash=token_hash,
            undo_expires_at=expires,
            undo_of=uow.undo_of,
        )
        outcome.action_id = uow.action_id
        if token is not None:
            outcome.result = {**outcome.result, "undo_token": token, "undo_expires_at": expires}
        return outcome


class RunHandler:
    """The terminal step: the operation's own handler."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    def __call__(self, call: Call) -> Outcome:
        assert call.uow is not None
        try:
            result = call.op.handler(call.uow, call.args)
        except KrabsError as exc:
            outcome = Outcome.failure(exc)
            outcome.executed = True
            return outcome
        if self.settings.validate_output:
            call.op.output.model_validate(result)
        outcome = Outcome(result=result)
        outcome.executed = True
        return outcome
