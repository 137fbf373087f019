"""Who may call the console: one bearer token, checked on every request.

    token, source = resolve_token(config.console.token)   # config, env, or the token file
    app.add_middleware(TokenAuth, token=token)            # 401 without it (create_app does this)

The token comes from ``console.token`` in the config, else ``$SELFIMPROVE_TOKEN``,
else ``$XDG_CONFIG_HOME/selfimprove/token`` (default ``~/.config/selfimprove/token``),
generated on first start and readable by its owner only (mode 0600). A client
sends it as ``Authorization: Bearer <token>``; a browser opens
``/login?token=<token>`` once and then carries it in an HttpOnly, SameSite=Strict
cookie. Comparisons are constant-time.
"""

from __future__ import annotations

import hmac
import os
import secrets
import stat
from pathlib import Path

from starlette.requests import HTTPConnection
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from selfimprove.config import secret

COOKIE = "selfimprove_token"
MIN_TOKEN_CHARS = 16
LOGIN_PATH = "/login"
_HOW = (
    "send the header 'Authorization: Bearer <token>' with the token `selfimprove serve` printed "
    "(console.token, $SELFIMPROVE_TOKEN or ~/.config/selfimprove/token), or open "
    "/login?token=<token> in a browser"
)


class TokenError(ValueError):
    """A configured or stored token that cannot be used."""


def token_path() -> Path:
    """Where a generated token is kept: ``$XDG_CONFIG_HOME/selfimprove/token``."""
    base = secret("XDG_CONFIG_HOME") or os.path.expanduser("~/.config")
    return Path(base) / "selfimprove" / "token"


def resolve_token(config_token: str | None, *, given_as: str = "console.token") -> tuple[str, str]:
    """The console's token and where it came from (for the startup message).

    ``config_token`` (named ``given_as`` in messages) wins when set.

    Raises:
        TokenError: the token given, in the environment or in the file is too short.
    """
    if config_token:
        return _checked(config_token, given_as), given_as
    if env := secret("SELFIMPROVE_TOKEN"):
        return _checked(env, "$SELFIMPROVE_TOKEN"), "$SELFIMPROVE_TOKEN"
    path = token_path()
    if path.exists():
        _owner_only(path)
        return _checked(path.read_text().strip(), str(path)), str(path)
    return _generate(path), f"{path} (generated now)"


def token_matches(presented: str | None, token: str) -> bool:
    """Whether ``presented`` is ``token``, in time independent of where they differ."""
    if not presented:
        return False
    return hmac.compare_digest(presented.encode(), token.encode())


def _checked(token: str, where: str) -> str:
    if len(token) < MIN_TOKEN_CHARS:
        raise TokenError(
            f"the token in {where} has {len(token)} characters; use at least {MIN_TOKEN_CHARS} "
            "(e.g. python -c 'import secrets; print(secrets.token_urlsafe(32))')"
        )
    return token


def _generate(path: Path) -> str:
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    token = secrets.token_urlsafe(32)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:  # another process generated it first: use theirs
        return _checked(path.read_text().strip(), str(path))
    with os.fdopen(fd, "w") as f:
        f.write(token + "\n")
    return token


def _owner_only(path: Path) -> None:
    """Tighten a token file others may read (the token controls the run)."""
    if path.stat().st_mode & (stat.S_IRWXG | stat.S_IRWXO):
        path.chmod(0o600)


def presented_token(connection: HTTPConnection) -> str | None:
    """The token a request carries: the bearer header first, else the cookie."""
    scheme, _, value = connection.headers.get("authorization", "").partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    return connection.cookies.get(COOKIE) or None


class TokenAuth:
    """ASGI middleware: every HTTP and WebSocket request must carry the token.

    The one exception is ``GET /login``, which checks the token in its query itself.
    Pure ASGI (not ``BaseHTTPMiddleware``), so streamed responses and mounted apps
    pass through untouched.
    """

    def __init__(self, app: ASGIApp, *, token: str) -> None:
        self.app = app
        self.token = token

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket") or (
            scope["type"] == "http" and scope["path"] == LOGIN_PATH
        ):
            await self.app(scope, receive, send)
            return
        presented = presented_token(HTTPConnection(scope))
        if token_matches(presented, self.token):
            await self.app(scope, receive, send)
            return
        if scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 1008, "reason": "unauthorized"})
            return
        detail = (
            f"authentication required: {_HOW}" if presented is None else f"invalid token: {_HOW}"
        )
        error = "" if presented is None else ', error="invalid_token"'
        response = JSONResponse(
            {"detail": detail}, status_code=401, headers={"WWW-Authenticate": f"Bearer{error}"}
        )
        await response(scope, receive, send)
