"""The ``krabs`` command. This module holds the server and bootstrap commands; the generated
``krabs <noun> <verb>`` commands arrive with the CLI transport."""

from __future__ import annotations

import dataclasses
import logging

import click
from rich.console import Console

from krabs import __version__
from krabs.accounts import create_account, ensure_demo_account
from krabs.app import open_engine, open_store
from krabs.auth import SECRET_PREFIX
from krabs.config import Settings

console = Console(stderr=True)


@click.group()
@click.version_option(__version__, prog_name="krabs")
def cli() -> None:
    """krabs: the CRM that AI agents operate."""


@cli.command()
@click.option("--host", default=None, help="Interface to bind (KRABS_HOST, default 127.0.0.1).")
@click.option("--port", default=None, type=int, help="Port (KRABS_PORT, default 8787).")
def serve(host: str | None, port: int | None) -> None:
    """Serve the HTTP API over the configured database, creating a demo account on first start."""
    import uvicorn

    from krabs.transports.http import create_app

    settings = Settings.from_env()
    settings = dataclasses.replace(settings, host=host or settings.host, port=port or settings.port)
    if settings.bootstrap_key and not settings.bootstrap_key.startswith(SECRET_PREFIX):
        raise click.BadParameter(f"KRABS_BOOTSTRAP_KEY must start with {SECRET_PREFIX}")
    engine = open_engine(settings)
    demo = ensure_demo_account(engine.store, settings.bootstrap_key)
    url = f"http://{settings.host}:{settings.port}"
    console.print(f"[bold]krabs[/bold] {__version__} on {engine.store.dialect} — {url}")
    if demo is not None:
        console.print(f"demo account {demo.account_id}; admin API key (shown once):")
        click.echo(demo.secret)
    click.echo(f"KRABS_URL={url}")
    logging.basicConfig(level=logging.WARNING)
    uvicorn.run(
        create_app(engine),
        host=settings.host,
        port=settings.port,
        log_level="warning",
        access_log=False,
    )


@cli.command()
def migrate() -> None:
    """Apply database migrations and exit."""
    store = open_store(Settings.from_env())
    console.print(f"migrated {store.dialect} database")


@cli.group()
def keys() -> None:
    """Bootstrap API keys directly in the local database."""


@keys.command("create")
@click.option("--account-name", default="New account", help="Name of the account to create.")
def keys_create(account_name: str) -> None:
    """Create a new account with an admin key and print the key."""
    store = open_store(Settings.from_env())
    new = create_account(store, account_name)
    console.print(f"account {new.account_id}, key {new.key_id}")
    click.echo(new.secret)


@cli.command()
@click.option("--toolsets", default=None, help="Nouns to load, e.g. contact,deal (default: all).")
def mcp(toolsets: str | None) -> None:
    """Serve every operation as an MCP tool over stdio, as KRABS_API_KEY (see README)."""
    from krabs.transports.mcp import run_stdio

    try:
        run_stdio(toolsets)
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None


def main() -> None:
    cli()
