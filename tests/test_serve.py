"""`krabs serve` as a user starts it: a real process on a free port, a demo account, a printed key."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import httpx

from conftest import free_port

KEY = "krabs_sk_servetest00000000000000000000"


def start(tmp_path, **env: str) -> tuple[subprocess.Popen[str], str]:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "krabs", "serve", "--port", str(port)],
        env={**os.environ, "KRABS_DATA_DIR": str(tmp_path / "data"), **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if httpx.get(url + "/healthz", timeout=1).status_code == 200:
                return proc, url
        except httpx.HTTPError:
            time.sleep(0.1)
        if proc.poll() is not None:
            break
    proc.kill()
    raise AssertionError(f"server did not start: {proc.stderr.read() if proc.stderr else ''}")


def stop(proc: subprocess.Popen[str]) -> str:
    proc.terminate()
    out, _ = proc.communicate(timeout=15)
    return out


def test_serve_with_bootstrap_key(tmp_path):
    proc, url = start(tmp_path, KRABS_BOOTSTRAP_KEY=KEY)
    try:
        r = httpx.post(
            url + "/v1/contact.create",
            json={"identities": [{"kind": "email", "value": "ada@lovelace.dev"}]},
            headers={"Authorization": f"Bearer {KEY}"},
        )
        assert r.status_code == 200, r.text
        assert r.headers["X-Krabs-Run"].startswith("run_")
    finally:
        out = stop(proc)
    assert KEY in out and "KRABS_URL=" in out
    assert (tmp_path / "data" / "krabs.db").exists()
    # A restart keeps the data and prints no new key.
    proc, url = start(tmp_path, KRABS_BOOTSTRAP_KEY=KEY)
    try:
        listed = httpx.post(url + "/v1/contact.list", headers={"Authorization": f"Bearer {KEY}"})
        assert [c["display_name"] for c in listed.json()["data"]] == ["ada@lovelace.dev"]
    finally:
        out = stop(proc)
    assert "krabs_sk_" not in out


def test_serve_prints_a_fresh_demo_key(tmp_path):
    proc, url = start(tmp_path)
    try:
        time.sleep(0.2)
    finally:
        out = stop(proc)
    keys = [line for line in out.splitlines() if line.startswith("krabs_sk_")]
    assert len(keys) == 1
    proc, url = start(tmp_path)
    try:
        r = httpx.post(url + "/v1/contact.list", headers={"Authorization": f"Bearer {keys[0]}"})
        assert r.status_code == 200
    finally:
        stop(proc)
