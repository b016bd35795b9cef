"""``matcha serve`` and ``matcha users add / list / remove``."""

from __future__ import annotations

import getpass
import ipaddress
import sys
from pathlib import Path

import typer

from matcha.cli import render
from matcha.cli.main import JSON, _state, app, handled, users_app


def _home() -> Path:
    from matcha.runtime.run import Workspace

    return Workspace(_state["home"]).home


@app.command()
@handled
def serve(
    host: str = typer.Option("127.0.0.1", "--host", help="Address to bind. Default: loopback only; binding "
                             "elsewhere is explicit (put a TLS proxy in front)."),
    port: int = typer.Option(8765, "--port", min=1, max=65535, help="Port to bind."),
    trust_header: str | None = typer.Option(None, "--trust-header", help="A header a trusted reverse proxy sets to "
                                            "the authenticated user's name (off by default)."),
    trusted_proxy: list[str] = typer.Option(["127.0.0.1", "::1"], "--trusted-proxy", help="Address of that proxy: "
                                            "the header is believed from it only (repeat for several)."),
    secure_cookies: bool = typer.Option(False, "--secure-cookies", help="Mark cookies Secure (served over HTTPS)."),
) -> None:
    """Serve the review web page: reviewers log in, read each draft with its context, approve, edit or reject."""
    import uvicorn

    from matcha.serve import create_app
    from matcha.serve.users import Users

    home = _home()
    if not Users(home).list():
        render.err.print("no account yet: add one with `matcha users add NAME` (reviewers log in with it)")
    try:
        loopback = ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = host == "localhost"
    if not loopback:
        render.err.print(f"binding {host}: the review page is reachable from other machines; serve it over TLS "
                         "(a reverse proxy) and pass --secure-cookies")
    render.err.print(f"review page: http://{host}:{port}/  (runs of {home})")
    app_ = create_app(home, trust_header=trust_header, trusted_proxies=trusted_proxy, secure_cookies=secure_cookies)
    # proxy_headers off: a client's X-Forwarded-For must not change the address logins are limited by
    uvicorn.run(app_, host=host, port=port, log_level="warning", access_log=False, server_header=False,
                proxy_headers=False)


@users_app.command("add")
@handled
def users_add(
    name: str = typer.Argument(..., help="The user name (letters, digits, '.', '_', '@', '-')."),
    role: str = typer.Option("reviewer", "--role", help="reviewer (reads and decides) or viewer (reads only)."),
    password_stdin: bool = typer.Option(False, "--password-stdin", help="Read the password from stdin."),
    replace: bool = typer.Option(False, "--replace", help="Set a new password (and role) for an existing user."),
) -> None:
    """Add a reviewer or viewer account (the password is read without echo, or from stdin)."""
    from matcha.serve.users import UserError, Users

    if password_stdin or not sys.stdin.isatty():
        password = sys.stdin.readline().rstrip("\n")
    else:
        password = getpass.getpass("Password: ")
        if getpass.getpass("Password again: ") != password:
            raise UserError("the two passwords differ; nothing was saved")
    user = Users(_home()).add(name, password, role, replace=replace)
    render.out.print(f"user {user.name} ({user.role}) saved in {Users(_home()).path}")


@users_app.command("list")
@handled
def users_list(as_json: bool = JSON) -> None:
    """The accounts (names and roles; never passwords)."""
    from matcha.serve.users import Users

    users = Users(_home()).list()
    if as_json:
        render.emit_json([{"name": u.name, "role": u.role} for u in users])
    else:
        render.table("users", ["name", "role"], [[u.name, u.role] for u in users])


@users_app.command("remove")
@handled
def users_remove(name: str = typer.Argument(..., help="The user to remove.")) -> None:
    """Remove an account (its past decisions keep its name)."""
    from matcha.serve.users import Users

    Users(_home()).remove(name)
    render.out.print(f"user {name} removed")
