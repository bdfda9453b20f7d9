"""The dashboard's routes: sign-in and sign-out, page shells and static files.

Pages are server-rendered shells (Jinja2) holding no data: every read and write they show is made
from the browser by small ES modules through ``POST /v1/{op}`` and the run streams, like any other
client of the contract. The only dashboard-specific endpoints exchange a key for a session cookie
and revoke it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote, urlsplit

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.templating import Jinja2Templates

from krabs import __version__
from krabs.contract.errors import KrabsError
from krabs.engine import Engine
from krabs.engine.context import Principal
from krabs.web import sessions

HERE = Path(__file__).parent
TEMPLATES = Jinja2Templates(directory=HERE / "templates")
FORM_LIMIT = 4096

#: Served with every page: nothing from elsewhere, no framing, no inline script.
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
        "img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; "
        "form-action 'self'"
    ),
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}

#: The navigation: path, label, template. Detail pages share their section's entry.
NAV = (("/runs", "Runs"), ("/audit", "Audit"), ("/contacts", "Contacts"), ("/finance", "Finance"))
NAV_END = (("/schema", "Schema"),)


def _safe_next(value: str | None) -> str:
    """Only a local path: never another origin (``//host`` or a scheme)."""
    if value and value.startswith("/") and not value.startswith("//") and "\\" not in value:
        return value
    return "/runs"


def _same_origin(request: Request) -> bool:
    """A form post must come from this origin (login CSRF): browsers send Origin on POST."""
    origin = request.headers.get("origin") or request.headers.get("referer")
    if origin is None:
        return True  # not a browser: SameSite and the key itself protect the exchange
    parts = urlsplit(origin)
    return f"{parts.scheme}://{parts.netloc}" == f"{request.url.scheme}://{request.url.netloc}"


async def _form(request: Request) -> dict[str, str]:
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > FORM_LIMIT:
            return {}
    fields = parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True)
    return {k: v[0] for k, v in fields.items()}


def _render(
    request: Request, template: str, context: dict[str, Any], status: int = 200
) -> Response:
    response = TEMPLATES.TemplateResponse(
        request,
        template,
        {"version": __version__, "nav": NAV, "nav_end": NAV_END, **context},
        status_code=status,
    )
    response.headers.update(SECURITY_HEADERS)
    return response


def web_routes(engine: Engine) -> list[BaseRoute]:
    """Every dashboard route, for ``transports.http.create_app`` to mount."""

    async def session_of(request: Request) -> tuple[str, Principal] | None:
        secret = request.cookies.get(sessions.COOKIE)
        if not secret:
            return None
        try:
            principal = await run_in_threadpool(sessions.resolve, engine.store, engine.keys, secret)
        except KrabsError:
            return None
        return secret, principal

    def page(template: str, title: str, section: str) -> Any:
        async def handler(request: Request) -> Response:
            found = await session_of(request)
            if found is None:
                target = quote(request.url.path, safe="/")
                return RedirectResponse(f"/signin?next={target}", status_code=303)
            secret, principal = found
            return _render(
                request,
                template,
                {
                    "title": title,
                    "section": section,
                    "csrf": sessions.csrf_token(secret),
                    "principal": principal,
                    "params": dict(request.path_params),
                },
            )

        return handler

    async def home(request: Request) -> Response:
        return RedirectResponse("/runs", status_code=303)

    async def signin_form(request: Request) -> Response:
        context = {"title": "Sign in", "next": _safe_next(request.query_params.get("next"))}
        return _render(request, "signin.html", context)

    async def signin(request: Request) -> Response:
        if not _same_origin(request):
            return _render(request, "signin.html", _refused("cross-site sign-in refused"), 403)
        form = await _form(request)
        target = _safe_next(form.get("next"))
        try:
            secret, _, _ = await run_in_threadpool(
                sessions.sign_in, engine.store, engine.keys, form.get("api_key", "")
            )
        except KrabsError as exc:
            context = {"title": "Sign in", "next": target, "error": exc.message}
            return _render(request, "signin.html", context, 401)
        response = RedirectResponse(target, status_code=303)
        response.set_cookie(
            sessions.COOKIE,
            secret,
            max_age=int(sessions.LIFETIME.total_seconds()),
            path="/",
            httponly=True,
            samesite="strict",
            secure=request.url.scheme == "https",
        )
        return response

    async def signout(request: Request) -> Response:
        secret = request.cookies.get(sessions.COOKIE)
        form = await _form(request)
        if not secret or not _same_origin(request):
            return _render(request, "signin.html", _refused("sign-out refused"), 403)
        try:
            sessions.check_csrf(secret, form.get("csrf"))
        except KrabsError as exc:
            return _render(request, "signin.html", _refused(exc.message), 403)
        await run_in_threadpool(sessions.sign_out, engine.store, secret)
        response = RedirectResponse("/signin", status_code=303)
        response.delete_cookie(sessions.COOKIE, path="/", httponly=True, samesite="strict")
        return response

    return [
        Route("/", home, methods=["GET"]),
        Route("/signin", signin_form, methods=["GET"]),
        Route("/signin", signin, methods=["POST"]),
        Route("/signout", signout, methods=["POST"]),
        Route("/runs", page("runs.html", "Runs", "/runs"), methods=["GET"]),
        Route("/runs/{run_id:str}", page("run.html", "Run", "/runs"), methods=["GET"]),
        Route("/audit", page("audit.html", "Audit log", "/audit"), methods=["GET"]),
        Route("/contacts", page("contacts.html", "Contacts", "/contacts"), methods=["GET"]),
        Route(
            "/contacts/{contact_id:str}",
            page("contact.html", "Contact", "/contacts"),
            methods=["GET"],
        ),
        Route("/finance", page("finance.html", "Finance", "/finance"), methods=["GET"]),
        Route("/schema", page("schema.html", "Schema", "/schema"), methods=["GET"]),
        Mount("/static", StaticFiles(directory=HERE / "static"), name="static"),
    ]


def _refused(message: str) -> dict[str, Any]:
    return {"title": "Sign in", "next": "/runs", "error": message}
