"""The README's curl walkthrough works as written: each command, run by a shell against a live
server, answers without an error. Its placeholders (``ct_…``, ``undo_…``) become the values the
commands before them returned, as a reader would paste them."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from conftest import LiveServer
from krabs.accounts import NewAccount

README = Path(__file__).resolve().parent.parent / "README.md"

pytestmark = pytest.mark.skipif(shutil.which("curl") is None, reason="needs curl")


def walkthrough() -> list[str]:
    """The commands of the README's "Walkthrough (curl)" block, continuation lines joined."""
    text = README.read_text()
    section = text.split("## Walkthrough (curl)", 1)[1]
    block = re.search(r"```sh\n(.*?)```", section, re.S)
    assert block is not None, "the walkthrough has a sh block"
    commands: list[str] = []
    pending = ""
    for line in block.group(1).splitlines():
        if not pending and (not line.strip() or line.lstrip().startswith(("#", "export "))):
            continue
        pending += line.rstrip("\\").rstrip() + " " if line.endswith("\\") else line
        if not line.endswith("\\"):
            commands.append(pending)
            pending = ""
    return commands


def shell(command: str, env: dict[str, str]) -> str:
    done = subprocess.run(
        ["bash", "-o", "pipefail", "-c", command],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert done.returncode == 0, (command, done.stderr)
    return done.stdout


def run(command: str, env: dict[str, str]) -> Any:
    """The command's JSON answer (before a pipe into jq, which also runs when installed)."""
    curl, _, jq = command.partition(" | jq")
    if jq and shutil.which("jq"):
        assert shell(command, env).strip(), command
    return json.loads(shell(curl, env))


def test_the_curl_walkthrough_runs_as_written(live: LiveServer, account: NewAccount) -> None:
    commands = walkthrough()
    assert len(commands) >= 8 and all(c.startswith("curl ") for c in commands), commands
    env = {**os.environ, "KRABS_URL": live.url, "KRABS_API_KEY": account.secret}
    pasted: dict[str, str] = {"7b0e…": "readme-walkthrough"}
    for command in commands:
        for placeholder, value in pasted.items():
            command = command.replace(placeholder, value)
        assert "…" not in command, f"a placeholder no earlier command answered: {command}"
        answer = run(command, env)
        assert isinstance(answer, dict) and "error" not in answer, (command, answer)
        if "/v1/contact.create" in command:
            pasted["ct_…"] = answer["id"]
        if "/v1/contact.delete" in command and answer.get("undo_token"):
            pasted["undo_…"] = answer["undo_token"]


def test_the_sdk_example_runs_as_written(live: LiveServer, account: NewAccount, call: Any) -> None:
    block = re.search(r"## Python SDK\n\n```python\n(.*?)```", README.read_text(), re.S)
    assert block is not None, "the README has the SDK example"
    run_id = call("run.create", {"name": "readme"}).result["id"]
    source = (
        block.group(1)
        .replace('"http://127.0.0.1:8787"', repr(live.url))
        .replace('"krabs_sk_…"', repr(account.secret))
        .replace('"run_…"', repr(run_id))
    )
    assert "…" not in source, source
    scope: dict[str, Any] = {}
    exec(compile(source, "README.md", "exec"), scope)  # our own README's example
    assert scope["ada"]["created"] is True and scope["plan"]["dry_run"] is True
