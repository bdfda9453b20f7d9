"""``krabs audit verify`` and ``krabs audit rotate-key``. Importing this module adds the ``audit``
group to the ``krabs`` command (``krabs.cli`` imports it once, last)."""

from __future__ import annotations

import base64
import json
import sys
import time
from pathlib import Path

import click

from krabs.audit.verify import LogData, Tampered, verify_log
from krabs.cli import cli
from krabs.config import Settings
from krabs.transports.cli import NounGroup

VERIFIED, TAMPERED = 0, 3


def _pins(values: tuple[str, ...]) -> list[bytes]:
    """Public keys from ``--key``: a note verifier key (name+hash+base64) or plain base64."""
    out = []
    for value in values:
        parts = value.split("+", 2)
        is_vkey = (
            len(parts) == 3
            and len(parts[1]) == 8
            and all(c in "0123456789abcdef" for c in parts[1])
        )
        text = parts[2] if is_vkey else value
        try:
            raw = base64.b64decode(text, validate=True)
        except ValueError:
            raise click.BadParameter(f"{value[:60]!r} is not a key", param_hint="--key") from None
        raw = raw[1:] if len(raw) == 33 and raw[0] == 1 else raw
        if len(raw) != 32:
            raise click.BadParameter("an Ed25519 public key is 32 bytes", param_hint="--key")
        out.append(raw)
    return out


def _local(account: str | None) -> LogData:
    import sqlalchemy as sa

    from krabs.app import open_store
    from krabs.audit.sources import from_database
    from krabs.store.tables import accounts

    store = open_store(Settings.from_env())
    conn = store.engine.connect()
    if account is None:
        ids = conn.execute(sa.select(accounts.c.id).limit(2)).scalars().all()
        if len(ids) != 1:
            raise click.UsageError("this database has several accounts (or none): pass --account")
        account = ids[0]
    return from_database(conn, account)


class AuditGroup(NounGroup):
    """``krabs audit``: the ``audit.*`` operations plus ``verify`` and ``rotate-key``."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*self.commands, *super().list_commands(ctx)})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        return self.commands.get(cmd_name) or super().get_command(ctx, cmd_name)


audit = AuditGroup(
    "audit",
    help="The signed audit log: its operations, verify (offline) and rotate-key.",
)
cli.add_command(audit)


@audit.command("verify")
@click.option("--url", envvar="KRABS_URL", help="Verify a live server's log (KRABS_URL).")
@click.option("--api-key", envvar="KRABS_API_KEY", help="Its API key (KRABS_API_KEY).")
@click.option(
    "--export",
    "export",
    type=click.Path(exists=True, dir_okay=False),
    help="Verify an account export zip, offline.",
)
@click.option("--account", help="Without --url or --export: this account of the local database.")
@click.option("--run", "run_id", help="Also require and count this run's records.")
@click.option(
    "--since",
    help="A checkpoint (signed note, or a file holding one) you kept: the log must extend it.",
)
@click.option(
    "--key",
    "keys",
    multiple=True,
    help="Pin the first signing key (vkey or base64 public key from GET /v1/audit/key).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
def verify_command(
    url: str | None,
    api_key: str | None,
    export: str | None,
    account: str | None,
    run_id: str | None,
    since: str | None,
    keys: tuple[str, ...],
    as_json: bool,
) -> None:
    """Recompute every leaf and root, check every signature, checkpoint and the seq chain.

    Exits 0 when the log verifies, 3 when it was tampered with (naming the first bad record).
    """
    from krabs.audit import sources

    if since is not None and Path(since).is_file():
        since = Path(since).read_text(encoding="utf-8")
    started = time.perf_counter()
    if export:
        data = sources.from_export(export)
    elif url:
        if not api_key:
            raise click.UsageError("--url needs --api-key (or KRABS_API_KEY)")
        data = sources.from_server(url, api_key)
    else:
        data = _local(account)
    try:
        report = verify_log(data, pinned=_pins(keys), since=since, run_id=run_id)
    except Tampered as exc:
        if as_json:
            click.echo(json.dumps({"verified": False, "seq": exc.seq, "reason": exc.reason}))
        else:
            click.echo(f"TAMPERED: {exc}", err=True)
        sys.exit(TAMPERED)
    seconds = time.perf_counter() - started
    if as_json:
        click.echo(json.dumps({"verified": True, **report.to_dict(), "seconds": seconds}))
    else:
        click.echo(
            f"verified: account {report.account_id}, {report.records} records "
            f"({report.signed} signed, {report.unsigned_before_signing} from before signing), "
            f"{report.checkpoints} checkpoints, keys {', '.join(report.keys) or 'none'}, "
            f"root {report.root_hash} in {seconds:.1f}s"
        )
        if not report.pinned:
            click.echo("note: keys not pinned (pass --key for each key you trust to check them)")
        if report.run_records is not None:
            click.echo(f"run {run_id}: {report.run_records} records")
        for line in report.erased:
            click.echo(f"payload {line}")
    sys.exit(VERIFIED)


@audit.command("rotate-key")
def rotate_key_command() -> None:
    """Replace the signing key of the local deployment (stop the other nodes first; give them the
    new key file). Each account's log records the rotation, signed by the old key, and a
    checkpoint signed by both."""
    from krabs.app import open_store
    from krabs.audit.rotation import rotate_key

    settings = Settings.from_env()
    if settings.signing_dir is None:
        raise click.ClickException("audit signing is off (KRABS_AUDIT_SIGNING); nothing to rotate")
    done = rotate_key(open_store(settings), settings.signing_dir)
    click.echo(
        f"rotated {done['old_key']} -> {done['new_key']} on {len(done['accounts'])} account(s)"
    )
