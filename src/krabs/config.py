"""Settings from the environment, read once; every knob is a ``KRABS_*`` variable documented in the README."""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass, field
from pathlib import Path


def _int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    return int(raw) if raw not in (None, "") else default


def _float(name: str, default: float) -> float:
    raw = os.environ.get(name)
    return float(raw) if raw not in (None, "") else default


@dataclass(frozen=True)
class Settings:
    data_dir: Path = field(default_factory=lambda: Path("krabs-data"))
    database_url: str | None = None
    host: str = "127.0.0.1"
    port: int = 8787
    bootstrap_key: str | None = None
    default_region: str | None = None
    #: Sustained requests per second per API key; bursts of twice that are allowed. 0 disables.
    rate_limit_per_second: float = 100.0
    max_body_bytes: int = 1024 * 1024
    #: Validate every handler's result against its output model (on in tests; costs time in production).
    validate_output: bool = False
    undo_ttl_seconds: int = 24 * 3600
    idempotency_ttl_seconds: int = 24 * 3600
    #: The longest a call held at an approval gate may wait for the decision (``Prefer: wait=N``).
    approval_wait_max_seconds: float = 60.0
    #: Seconds between an SSE stream's ``:`` keepalive comments (the seed's 15).
    sse_keepalive_seconds: float = 15.0
    #: Events an SSE subscriber may fall behind before it is cut off (its client resumes).
    sse_queue: int = 2048
    #: An open run with no call for this long expires.
    run_idle_seconds: int = 24 * 3600
    #: How often a server's sweep looks for idle runs.
    run_sweep_seconds: float = 300.0
    #: Span uploads per key per minute (the seed's 60), per process.
    spans_per_minute: float = 60.0
    #: On SQLite, the longest a write waits for the single writer (a long import holds it) before
    #: it is answered ``busy`` without being run. 0: wait as long as it takes.
    write_wait_seconds: float = 10.0
    #: Sign every audit record and checkpoint with this node's key (``KRABS_AUDIT_SIGNING=off``
    #: exists for the benchmark that measures what signing costs).
    audit_signing: bool = True

    @classmethod
    def from_env(cls) -> Settings:
        data_dir = Path(os.environ.get("KRABS_DATA_DIR") or "krabs-data")
        return cls(
            data_dir=data_dir,
            database_url=os.environ.get("KRABS_DATABASE_URL") or None,
            host=os.environ.get("KRABS_HOST") or "127.0.0.1",
            port=_int("KRABS_PORT", 8787),
            bootstrap_key=os.environ.get("KRABS_BOOTSTRAP_KEY") or None,
            default_region=(os.environ.get("KRABS_DEFAULT_REGION") or None),
            rate_limit_per_second=_float("KRABS_RATE_LIMIT_PER_SECOND", 100.0),
            max_body_bytes=_int("KRABS_MAX_BODY_BYTES", 1024 * 1024),
            validate_output=os.environ.get("KRABS_VALIDATE_OUTPUT", "") in ("1", "true", "yes"),
            approval_wait_max_seconds=_float("KRABS_APPROVAL_WAIT_MAX_SECONDS", 60.0),
            sse_keepalive_seconds=_float("KRABS_SSE_KEEPALIVE_SECONDS", 15.0),
            sse_queue=_int("KRABS_SSE_QUEUE", 2048),
            run_idle_seconds=_int("KRABS_RUN_IDLE_SECONDS", 24 * 3600),
            run_sweep_seconds=_float("KRABS_RUN_SWEEP_SECONDS", 300.0),
            spans_per_minute=_float("KRABS_SPANS_PER_MINUTE", 60.0),
            write_wait_seconds=_float("KRABS_WRITE_WAIT_SECONDS", 10.0),
            audit_signing=os.environ.get("KRABS_AUDIT_SIGNING", "").lower()
            not in ("off", "0", "no", "false"),
        )

    @property
    def signing_dir(self) -> Path | None:
        """Where the audit signing key lives, or None when signing is off."""
        return self.data_dir if self.audit_signing else None

    @property
    def url(self) -> str:
        """The database URL: the configured one, else an embedded SQLite file in the data directory."""
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'krabs.db').resolve()}"


@functools.cache
def env_settings() -> Settings:
    """This process's settings from the environment, read once: for code with no engine's
    ``Settings`` in reach (an operation's own limit, a run's idle time)."""
    return Settings.from_env()
