"""``/docs``: the contract rendered as one self-contained HTML page (no CDN: krabs runs offline)."""

from __future__ import annotations

import json
from html import escape
from typing import Any

STYLE = """
body{font:15px/1.5 system-ui,sans-serif;max-width:980px;margin:2rem auto;padding:0 1rem;color:#1b1b1b}
h1{margin-bottom:0}.op{border-top:1px solid #ddd;padding:1rem 0}code,pre{background:#f4f4f4;border-radius:4px}
pre{padding:.6rem;overflow:auto;font-size:13px}.tag{font-size:12px;padding:1px 6px;border-radius:8px;
background:#eef;margin-left:.4rem}.d{background:#fee}nav a{margin-right:.6rem}
"""


def render_docs(schema: dict[str, Any]) -> str:
    ops = schema["operations"]
    nav = " ".join(f'<a href="#{escape(n)}">{escape(n)}</a>' for n in ops)
    parts = [
        f"<!doctype html><html lang=en><meta charset=utf-8><title>krabs API v{escape(schema['version'])}</title>",
        f"<style>{STYLE}</style><h1>krabs API</h1><p>Contract version {escape(schema['version'])}. "
        "Every operation is <code>POST /v1/{op}</code> with a JSON body; "
        "<a href='/v1/openapi.json'>OpenAPI</a>, <a href='/v1/schema'>schema</a>.</p>",
        f"<nav>{nav}</nav>",
    ]
    for name, op in ops.items():
        tags = f"<span class=tag>{escape(op['scope'])}</span>"
        if op["destructive"]:
            tags += "<span class='tag d'>destructive</span>"
        errors = ", ".join(f"<code>{escape(e['code'])}</code> {e['status']}" for e in op["errors"])
        example = json.dumps(op["examples"][0]["args"], indent=2) if op["examples"] else "{}"
        parts.append(
            f"<section class=op id='{escape(name)}'><h2><code>{escape(name)}</code>{tags}</h2>"
            f"<p><b>{escape(op['summary'])}</b></p><p>{escape(op['description'])}</p>"
            f"<p>Added in {escape(op['added_in'])}. Errors: {errors}</p>"
            f"<details><summary>Input schema</summary><pre>{escape(json.dumps(op['input'], indent=2))}</pre></details>"
            f"<details><summary>Output schema</summary><pre>{escape(json.dumps(op['output'], indent=2))}</pre></details>"
            f"<p>Example</p><pre>curl -X POST $KRABS_URL/v1/{escape(name)} -H 'Authorization: Bearer $KRABS_API_KEY' "
            f"-d '{escape(example)}'</pre></section>"
        )
    return "".join(parts)
