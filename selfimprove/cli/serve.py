"""``selfimprove serve`` and ``selfimprove console``: the REST API and web console of a run.

    selfimprove serve --run runs/demo                  # prints the login URL, serves until ^C
    selfimprove console --run runs/demo                # the same, and opens the browser
    selfimprove serve --run runs/x --config run.yaml --port 9000 --no-ui

The config is ``--config``, else the run folder's ``config.json``, else the
defaults; ``console.host``/``port``/``token`` come from it unless a flag says
otherwise. The token is resolved as ``selfimprove.console.auth.resolve_token``
describes. The app (``selfimprove.console.server``) is imported only when a
command runs, so ``selfimprove --help`` stays fast.
"""

from __future__ import annotations

import ipaddress
import socket
import sys
from pathlib import Path
from typing import Annotated

import typer

from selfimprove.config import Config, ConfigError, load_config

RunOption = Annotated[Path, typer.Option("--run", help="The run folder (loop.out_dir).")]
HostOption = Annotated[
    str | None, typer.Option(help="Bind address (default: console.host, 127.0.0.1).")
]
PortOption = Annotated[int | None, typer.Option(help="Port (default: console.port, 8765).")]
TokenOption = Annotated[
    str | None,
    typer.Option(
        help="Bearer token (16+ characters); prefer $SELFIMPROVE_TOKEN, a flag shows in `ps`."
    ),
]
ConfigOption = Annotated[
    Path | None,
    typer.Option(help="YAML config (default: the run's config.json, else the defaults)."),
]
NoUiOption = Annotated[bool, typer.Option("--no-ui", help="Serve the REST API only.")]


def serve(
    run: RunOption = Path("runs/demo"),
    host: HostOption = None,
    port: PortOption = None,
    token: TokenOption = None,
    config: ConfigOption = None,
    no_ui: NoUiOption = False,
) -> None:
    """Serve the run's REST API and web console (token required on every call)."""
    _serve(run, host, port, token, config, no_ui, open_browser=False)


def console(
    run: RunOption = Path("runs/demo"),
    host: HostOption = None,
    port: PortOption = None,
    token: TokenOption = None,
    config: ConfigOption = None,
    no_ui: NoUiOption = False,
) -> None:
    """Like `serve`, and open the console in the browser (logged in)."""
    _serve(run, host, port, token, config, no_ui, open_browser=True)


def _serve(
    run: Path,
    host: str | None,
    port: int | None,
    token: str | None,
    config: Path | None,
    no_ui: bool,
    *,
    open_browser: bool,
) -> None:
    from selfimprove.cli.app import _fail
    from selfimprove.console.auth import TokenError, resolve_token

    try:
        cfg = run_config(run, config)
        if token:
            secret, source = resolve_token(token, given_as="--token")
        else:
            secret, source = resolve_token(cfg.console.token)
    except (ConfigError, TokenError) as exc:
        _fail(str(exc))
    host = host or cfg.console.host
    port = port or cfg.console.port
    if not 1 <= port <= 65535:
        _fail(f"--port must be between 1 and 65535, got {port}")
    if problem := _cannot_bind(host, port):
        _fail(problem)
    url = f"http://{_url_host(host)}:{port}/login?token={secret}"
    print(f"selfimprove console: {url}  (token from {source})", flush=True)
    if not _is_loopback(host):
        _warn_exposed(host)
    from selfimprove.console.server import create_app
    from selfimprove.models.base import ModelError

    try:
        app = create_app(run, token=secret, config=cfg, ui=not no_ui)
    except ModelError as exc:  # console.operator names a model that cannot be used
        _fail(str(exc))
    if open_browser and sys.stdout.isatty():
        import webbrowser

        webbrowser.open(url)
    import uvicorn

    uvicorn.run(app, host=host, port=port, log_level="warning")


def run_config(run: Path, config: Path | None) -> Config:
    """``--config``, else the run's ``config.json``, else the defaults (writing to ``run``).

    Raises:
        ConfigError: ``--config`` or the run's ``config.json`` cannot be read.
    """
    if config is not None:
        cfg = load_config(config)
    elif (run / "config.json").exists():
        try:
            cfg = Config.model_validate_json((run / "config.json").read_text())
        except ValueError as exc:
            raise ConfigError(f"cannot read {str(run / 'config.json')!r}: {exc}") from None
    else:
        cfg = Config()
    cfg.loop.out_dir = run
    return cfg


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _url_host(host: str) -> str:
    """The host a browser on this machine can open (``0.0.0.0`` is not one)."""
    if host in ("0.0.0.0", "", "::"):
        return "127.0.0.1"
    return f"[{host}]" if ":" in host else host


def _cannot_bind(host: str, port: int) -> str | None:
    """Why ``host:port`` cannot be listened on (in use, unknown address), or None."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError as exc:
        return f"cannot listen on {host!r}: {exc}; pass --host 127.0.0.1"
    family, kind, proto, _, address = infos[0]
    with socket.socket(family, kind, proto) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(address)
        except OSError as exc:
            return f"cannot listen on {host}:{port} ({exc.strerror}); pass another --port"
    return None


def _warn_exposed(host: str) -> None:
    from rich.console import Console

    Console(stderr=True).print(
        f"[bold red]warning:[/] listening on {host}, not loopback: anyone who can reach this "
        "machine can try the console, and plain HTTP sends the token unencrypted. Whoever has "
        "the token controls the run. Prefer --host 127.0.0.1 with an SSH tunnel, or a TLS "
        "proxy in front.",
        highlight=False,
        soft_wrap=True,
    )
