"""``matcha serve``: the review web page (FastAPI, server-rendered Jinja2 pages, plain forms).

- Every page but ``/login`` and ``/static`` needs a session: a signed (itsdangerous), HttpOnly,
  SameSite=Strict cookie holding the user name and a CSRF token; every form posts that token back and
  a POST without it is refused (403). Login attempts are limited per client address. With
  ``trust_header`` (off by default) a reverse proxy that authenticates users may name them in that
  header instead; the name must still be an account here.
- The reviewer recorded on a decision is the logged-in user. Viewers read but cannot decide (403).
- AI and record text is always escaped (Jinja2 autoescape); a Content-Security-Policy allows scripts,
  styles, images and requests from Matcha's own origin only, and no inline script. Every asset is
  served by Matcha: nothing is fetched from elsewhere (air-gapped servers).
- A request never runs a pipeline: when a decision leaves nothing pending, the run is handed to a
  background worker that resumes it (safe alongside ``matcha approve`` on the same run: a run is
  driven by one process at a time, under its file lock).
"""

from __future__ import annotations

import contextlib
import difflib
import hmac
import ipaddress
import json
import secrets
import threading
import time
from collections import deque
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

import structlog
from fastapi import FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from itsdangerous import BadSignature, URLSafeTimedSerializer
from jinja2 import Environment, PackageLoader, select_autoescape

from matcha.errors import MatchaError
from matcha.runtime.run import ReviewItem, Run, Workspace
from matcha.runtime.store import sha256_text
from matcha.serve.users import User, Users
from matcha.serve.worker import Resumer

log = structlog.get_logger("matcha.serve")

SESSION, LOGIN = "matcha_session", "matcha_login"
SESSION_SECONDS = 12 * 3600
PAGE = 20
AUDIT_PAGE = 50
MAX_FORM = 2_000_000
MAX_TRACKED = 10_000  # addresses and names with recent failed logins
CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
       "form-action 'self'; base-uri 'none'; frame-ancestors 'none'")
# an artifact (a report) is shown sandboxed: no script, no request out, not framed
ARTIFACT_CSP = "sandbox; default-src 'none'; img-src data:; style-src 'unsafe-inline'; frame-ancestors 'none'"


class LoginLimiter:
    """At most ``attempts`` failed logins per client address in ``window`` seconds."""

    def __init__(self, attempts: int = 5, window: float = 300.0):
        self.attempts, self.window = attempts, window
        self._failed: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def wait(self, client: str) -> float:
        """Seconds before ``client`` may try again (0: now)."""
        with self._lock:
            q = self._failed.get(client)
            now = time.monotonic()
            while q and now - q[0] > self.window:
                q.popleft()
            return 0.0 if not q or len(q) < self.attempts else self.window - (now - q[0])

    def failed(self, client: str) -> None:
        with self._lock:
            if client not in self._failed and len(self._failed) >= MAX_TRACKED:
                now = time.monotonic()  # forget the stale first, then the oldest: memory stays bounded
                stale = [k for k, q in self._failed.items() if not q or now - q[-1] > self.window]
                for k in stale or [next(iter(self._failed))]:
                    del self._failed[k]
            self._failed.setdefault(client, deque(maxlen=self.attempts)).append(time.monotonic())

    def succeeded(self, client: str) -> None:
        with self._lock:
            self._failed.pop(client, None)


def secret_key(home: Path) -> str:
    """The key sessions are signed with: ``<home>/serve.key`` (made once, mode 0600)."""
    import os

    path = home / "serve.key"
    if not path.is_file():
        home.mkdir(parents=True, exist_ok=True)
        tmp = home / f".serve.key.{secrets.token_hex(8)}"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(secrets.token_urlsafe(32))
        try:
            os.link(tmp, path)  # atomic, and never replaces a key another process made first
        except FileExistsError:
            pass
        finally:
            tmp.unlink()
    key = path.read_text().strip()
    if len(key) < 32 or path.stat().st_mode & 0o077:
        raise MatchaError(f"{path} is not a usable key (shorter than 32 characters, or readable by others): "
                          "delete it and start again (every session then ends)")
    return key


class _Review:
    """The review app's state and pages (routes are registered by :func:`create_app`)."""

    def __init__(self, home: str | Path | None, trust_header: str | None, trusted_proxies: list[str],
                 secure_cookies: bool, resume: bool):
        self.ws = Workspace(home)
        self.users = Users(self.ws.home)
        self.key = secret_key(self.ws.home)
        self.signer = URLSafeTimedSerializer(self.key, salt="matcha-session")
        self.limiter = LoginLimiter()
        self.resumer = Resumer(self.ws.home, enabled=resume)
        self.trust_header, self.secure_cookies = trust_header, secure_cookies
        self.trusted_proxies = set(trusted_proxies)
        self.env = Environment(loader=PackageLoader("matcha.serve", "templates"),
                               autoescape=select_autoescape(default=True))
        self.env.filters["shown"] = _shown
        self.env.filters["sha"] = sha256_text
        self.env.globals["quote"] = lambda value: quote(str(value), safe="")  # one path segment

    async def headers(self, request: Request, call_next: Any) -> Response:
        response: Response = await call_next(request)
        response.headers.setdefault("Content-Security-Policy", CSP)
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers["Referrer-Policy"] = "no-referrer"
        response.headers.setdefault("Cache-Control", "no-store")
        return response

    def proxied_user(self, request: Request) -> str | None:
        """The user a trusted reverse proxy names (only when enabled, and only from its own address)."""
        if not self.trust_header:
            return None
        peer = request.client.host if request.client else ""
        return request.headers.get(self.trust_header) if peer in self.trusted_proxies else None

    def csrf(self, request: Request) -> str:
        """The token forms must post back: the session's, or for a user named by the trusted proxy
        header (no session cookie), one derived from the user name with the server's key."""
        token = _session(request, self.signer).get("csrf", "")
        name = self.proxied_user(request)
        if not token and name:
            token = hmac.new(self.key.encode(), f"csrf:{name}:{self.users.epoch(name)}".encode(), "sha256").hexdigest()
        return token

    def page(self, name: str, request: Request, status: int = 200, **ctx: Any) -> HTMLResponse:
        user = ctx.pop("user", None) or self.current(request)
        token = self.csrf(request) if user else ""
        html = self.env.get_template(name).render(user=user, csrf=token, **ctx)
        return HTMLResponse(html, status_code=status)

    def current(self, request: Request) -> User | None:
        proxied = self.proxied_user(request)
        if proxied:
            return self.users.get(proxied)
        session = _session(request, self.signer)
        name = session.get("u")
        if not name or str(session.get("e")) != str(self.users.epoch(name)):
            return None  # no session, or one ended by a logout or a new password
        return self.users.get(name)

    def need_user(self, request: Request) -> User:
        user = self.current(request)
        if user is None:
            raise _Redirect("/login?next=" + quote(str(request.url.path)))
        return user

    async def form_of(self, request: Request, user: User, *, decide: bool = True) -> dict[str, str]:
        form = await _read_form(request)
        token = self.csrf(request)
        if not token or not hmac.compare_digest(form.get("csrf", ""), token):
            raise _Refused(403, "This form has expired or did not come from this page: reload the page and try again.")
        if decide and not user.can_decide:
            raise _Refused(403, f"{user.name} is a viewer: viewers read runs but cannot decide.")
        return form

    async def redirect(self, request: Request, exc: _Redirect) -> Response:
        return RedirectResponse(exc.to, status_code=303)

    async def refused(self, request: Request, exc: _Refused) -> Response:
        return self.page("message.html", request, status=exc.status, title="Not allowed", message=exc.message)

    async def matcha_error(self, request: Request, exc: MatchaError) -> Response:
        return self.page("message.html", request, status=400, title="Cannot do that", message=str(exc))

    # -- login ---------------------------------------------------------------------------------
    async def login_form(self, request: Request, next: str = "/") -> Response:
        token = secrets.token_urlsafe(16)
        response = self.page("login.html", request, user=None, login_token=token, next=_local(next), error="")
        _set_cookie(response, LOGIN, self.signer.dumps({"t": token}), self.secure_cookies, max_age=3600)
        return response

    async def login(self, request: Request) -> Response:
        expected = _signed(request.cookies.get(LOGIN), self.signer, 3600).get("t", "")
        if not expected:
            raise _Refused(403, "This login form has expired: reload the page and try again.")
        form = await _read_form(request)
        client = request.client.host if request.client else "?"
        if not hmac.compare_digest(form.get("csrf", ""), expected):
            raise _Refused(403, "This login form has expired: reload the page and try again.")
        name = form.get("username", "")[:64]
        wait = max(self.limiter.wait(f"ip:{_network(client)}"), self.limiter.wait(f"user:{name}"))
        if wait:
            return self.page("login.html", request, status=429, user=None, login_token=expected,
                             next=_local(form.get("next")),
                             error=f"Too many failed attempts: try again in {int(wait) + 1} seconds.")
        user = await run_in_threadpool(self.users.authenticate, name, form.get("password", ""))
        if user is None:
            self.limiter.failed(f"ip:{_network(client)}")
            self.limiter.failed(f"user:{name}")
            log.info("login failed", user=name, client=client)
            return self.page("login.html", request, status=401, user=None, login_token=expected,
                        next=_local(form.get("next")), error="Wrong user name or password.")
        self.limiter.succeeded(f"ip:{_network(client)}")
        self.limiter.succeeded(f"user:{name}")
        log.info("logged in", user=user.name, client=client)
        response = RedirectResponse(_local(form.get("next")), status_code=303)
        session = {"u": user.name, "csrf": secrets.token_urlsafe(24), "e": str(self.users.epoch(user.name))}
        _set_cookie(response, SESSION, self.signer.dumps(session), self.secure_cookies, max_age=SESSION_SECONDS)
        response.delete_cookie(LOGIN, path="/")
        return response

    async def logout(self, request: Request) -> Response:
        user = self.need_user(request)
        await self.form_of(request, user, decide=False)
        await run_in_threadpool(self.users.end_sessions, user.name)  # a copied cookie dies with this one
        response = RedirectResponse("/login", status_code=303)
        response.delete_cookie(SESSION, path="/")
        return response

    # -- runs ----------------------------------------------------------------------------------
    def runs(self, request: Request) -> Response:
        user = self.need_user(request)
        rows = self.ws.store.list_runs(limit=200)
        listed: list[dict[str, Any]] = []
        for r in rows:
            waiting = r.status == "waiting_for_approval"
            pending = self.ws.store.count_approvals(r.run_id, status="pending") if waiting else 0
            listed.append({"id": r.run_id, "pipeline": r.name, "status": r.status, "pending": pending,
                           "created": time.strftime("%Y-%m-%d %H:%M", time.localtime(r.created_at))})
        listed.sort(key=lambda r: (r["status"] != "waiting_for_approval", -int(r["pending"])))
        return self.page("runs.html", request, user=user, runs=listed, title="Runs")

    def run_page(self, request: Request, run_id: str, after: str = "", q: str = "", step: str = "") -> Response:
        user = self.need_user(request)
        run = _open(run_id, self.ws)
        cursor = _cursor(after)
        items, next_cursor = _queue(run, q, step or None, cursor)
        summary = run.summary()
        return self.page("run.html", request, user=user, run=run, summary=summary, items=items, q=q, step=step,
                    next=next_cursor, first=not after, title=f"Run {run.id}",
                    pending=run.pending_count(), artifacts=run.artifacts(),
                    steps=[s for s in summary["steps"]], query=lambda **kw: _query(q=q, step=step, **kw))

    def audit(self, request: Request, run_id: str, before: str = "") -> Response:
        user = self.need_user(request)
        run = _open(run_id, self.ws)
        cursor: tuple[float, str, str] | None = None
        parts = before.split(":", 2)
        if len(parts) == 3:
            try:
                cursor = (float(parts[0]), parts[1], parts[2])
            except ValueError:
                cursor = None
        rows = [run._item(r) for r in self.ws.store.decided_page(run.id, before=cursor, limit=AUDIT_PAGE)]
        last = rows[-1] if len(rows) == AUDIT_PAGE else None
        more = f"{last.decided_at!r}:{last.step}:{last.id}" if last else ""
        return self.page("audit.html", request, user=user, run=run, rows=rows, next=more,
                         title=f"Audit of {run.id}", when=_when)

    def artifact(self, request: Request, run_id: str, name: str) -> Response:
        self.need_user(request)
        path = _open(run_id, self.ws).artifact(name)
        media = "text/html" if name.endswith(".html") else "text/plain; charset=utf-8"
        return FileResponse(path, media_type=media, headers={"Content-Security-Policy": ARTIFACT_CSP})

    # -- decisions (the item is a form field: ids may hold '/' or be '.') ---------------------
    async def decision(self, request: Request, run_id: str) -> tuple[User, dict[str, str]]:
        user = self.need_user(request)
        form = await self.form_of(request, user)
        if not form.get("item"):
            raise _Refused(400, "No item named: reload the page and try again.")
        return user, form

    async def approve(self, request: Request, run_id: str) -> Response:
        user, form = await self.decision(request, run_id)

        def work() -> None:
            run = _open(run_id, self.ws)
            _check_shown(run, form)
            run.approve(form["item"], step=form.get("step") or None, reviewer=user.name, resume=False)
            self.resumer.after_decision(run)

        await run_in_threadpool(work)
        return _back(run_id, form)

    async def reject(self, request: Request, run_id: str) -> Response:
        user, form = await self.decision(request, run_id)
        reason = form.get("reason", "").strip()
        if not reason:
            raise _Refused(400, "A rejection needs a reason: say why, so the team can learn from it.")

        def work() -> None:
            run = _open(run_id, self.ws)
            run.reject(form["item"], reason=reason, step=form.get("step") or None, reviewer=user.name, resume=False)
            self.resumer.after_decision(run)

        await run_in_threadpool(work)
        return _back(run_id, form)

    async def edit_preview(self, request: Request, run_id: str) -> Response:
        user, form = await self.decision(request, run_id)
        run = _open(run_id, self.ws)
        target = _item(run, form["item"], form.get("step"))
        text = form.get("text", "").replace("\r\n", "\n")
        return self.page("edit.html", request, user=user, run=run, item=target, text=text,
                         diff=word_diff(target.ai_text, text), back=_back_path(run_id, form),
                         title=f"Edit {target.id}")

    async def save_edit(self, request: Request, run_id: str) -> Response:
        user, form = await self.decision(request, run_id)
        text = form.get("text", "").replace("\r\n", "\n")
        if not text.strip():
            raise _Refused(400, "The edited text is empty: to publish nothing, reject the item with a reason.")

        def work() -> None:
            run = _open(run_id, self.ws)
            _check_shown(run, form)
            run.approve(form["item"], step=form.get("step") or None, edit=text, reviewer=user.name, resume=False)
            self.resumer.after_decision(run)

        await run_in_threadpool(work)
        return _back(run_id, form)

    async def approve_filtered(self, request: Request, run_id: str) -> Response:
        """Approve every pending item a filter matches, after a confirmation page that says how many. The
        confirmation carries a digest of exactly those items (ids and texts, signed): if anything changed
        in between (an item decided elsewhere, new items), nothing is approved and the count is shown again."""
        user = self.need_user(request)
        form = await self.form_of(request, user)
        q, step = form.get("q", ""), form.get("step", "")
        run = _open(run_id, self.ws)
        count, digest = await run_in_threadpool(self._filtered_digest, run, q, step or None)
        if form.get("confirm") != "yes" or not hmac.compare_digest(form.get("digest", ""), digest):
            changed = form.get("confirm") == "yes"
            return self.page("confirm.html", request, user=user, run=run, q=q, step=step, count=count,
                             digest=digest, changed=changed, title="Approve all shown")

        def work() -> int:
            done = 0
            try:
                batch: list[ReviewItem] = []
                for it in _matching(run, q, step or None):
                    batch.append(it)
                    if len(batch) == 500:
                        done += _approve_many(self.ws, run, batch, user)
                        batch = []
                done += _approve_many(self.ws, run, batch, user)
            finally:
                self.resumer.after_decision(run)
            return done

        done = await run_in_threadpool(work)
        log.info("approved filtered", run=run_id, filter=q, step=step, items=done, reviewer=user.name)
        return RedirectResponse(f"/runs/{quote(run_id, safe='')}" + _query(q=q, step=step), status_code=303)

    def _filtered_digest(self, run: Run, q: str, step: str | None) -> tuple[int, str]:
        h = hmac.new(self.key.encode(), f"{run.id}\x00{q}\x00{step}".encode(), "sha256")
        n = 0
        for it in _matching(run, q, step):
            h.update(f"\x00{it.step}\x01{it.id}\x01{sha256_text(it.ai_text)}".encode())
            n += 1
        return n, h.hexdigest()


def create_app(home: str | Path | None = None, *, trust_header: str | None = None,
               trusted_proxies: list[str] | tuple[str, ...] = ("127.0.0.1", "::1"), secure_cookies: bool = False,
               resume: bool = True) -> FastAPI:
    """The review app over the runs of ``home`` (default ``$MATCHA_HOME`` or ``./.matcha``).

    ``trust_header``: a header a trusted reverse proxy sets to the authenticated user's name (off by
    default), believed only from ``trusted_proxies`` (the proxy's own addresses); ``secure_cookies``:
    mark cookies Secure (behind HTTPS); ``resume``: resume runs in the background once their last
    item is decided."""
    r = _Review(home, trust_header, list(trusted_proxies), secure_cookies, resume)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        r.resumer.resume_waiting()  # runs whose last item was decided while no server ran
        yield
        await run_in_threadpool(r.resumer.idle.wait, 60)  # a resume in progress finishes

    app = FastAPI(title="Matcha review", docs_url=None, redoc_url=None, openapi_url=None, lifespan=lifespan)
    app.state.review = r
    app.mount("/static", StaticFiles(directory=str(Path(__file__).parent / "static")), name="static")
    app.middleware("http")(r.headers)
    app.exception_handler(_Redirect)(r.redirect)
    app.exception_handler(_Refused)(r.refused)
    app.exception_handler(MatchaError)(r.matcha_error)
    for method, path, handler in (
        ("GET", "/login", r.login_form), ("POST", "/login", r.login), ("POST", "/logout", r.logout),
        ("GET", "/", r.runs), ("GET", "/runs/{run_id}", r.run_page), ("GET", "/runs/{run_id}/audit", r.audit),
        ("GET", "/runs/{run_id}/artifacts/{name:path}", r.artifact),
        ("POST", "/runs/{run_id}/approve", r.approve), ("POST", "/runs/{run_id}/reject", r.reject),
        ("POST", "/runs/{run_id}/edit", r.edit_preview), ("POST", "/runs/{run_id}/save", r.save_edit),
        ("POST", "/runs/{run_id}/approve-filtered", r.approve_filtered),
    ):
        app.add_api_route(path, handler, methods=[method], response_class=HTMLResponse)
    return app


# -- helpers ---------------------------------------------------------------------------------------

class _Redirect(Exception):
    def __init__(self, to: str):
        self.to = to


class _Refused(Exception):
    def __init__(self, status: int, message: str):
        self.status, self.message = status, message


def _signed(value: str | None, signer: URLSafeTimedSerializer, max_age: int) -> dict[str, str]:
    if not value:
        return {}
    try:
        data = signer.loads(value, max_age=max_age)
    except BadSignature:
        return {}
    return data if isinstance(data, dict) else {}


def _session(request: Request, signer: URLSafeTimedSerializer) -> dict[str, str]:
    return _signed(request.cookies.get(SESSION), signer, SESSION_SECONDS)


def _set_cookie(response: Response, name: str, value: str, secure: bool, max_age: int) -> None:
    response.set_cookie(name, value, max_age=max_age, httponly=True, samesite="strict", secure=secure, path="/")


def _local(target: str | None) -> str:
    """Only a path on this site (no open redirect to another origin)."""
    t = target or "/"
    return t if t.startswith("/") and not t.startswith("//") and "\\" not in t else "/"


def _open(run_id: str, ws: Workspace) -> Run:
    return Run.open(run_id, workspace=ws)


def _cursor(after: str) -> tuple[str, int] | None:
    step, _, seq = after.rpartition(":")
    return (step, int(seq)) if step and seq.isdigit() else None


def _query(**kw: Any) -> str:
    kept = {k: v for k, v in kw.items() if v not in ("", None)}
    return "?" + urlencode(kept) if kept else ""


def _matches(item: ReviewItem, q: str) -> bool:
    if not q:
        return True
    needle = q.lower()
    return needle in item.ai_text.lower() or needle in item.id.lower() or \
        needle in json.dumps(item.context, ensure_ascii=False, default=str).lower()


def _matching(run: Run, q: str, step: str | None) -> Iterator[ReviewItem]:
    """Pending items that match the filter, read a page at a time."""
    for it in run.iter_items(status="pending", step=step):
        if _matches(it, q):
            yield it


def _queue(run: Run, q: str, step: str | None, cursor: tuple[str, int] | None
           ) -> tuple[list[ReviewItem], str]:
    """One page of pending items (keyset paging: the first page of 100,000 costs what it does of 10)."""
    found: list[ReviewItem] = []
    while len(found) < PAGE:
        got = run.items(status="pending", step=step, limit=PAGE * 5 if q else PAGE, after=cursor)
        if not got:
            return found, ""
        for it in got:
            cursor = (it.step, it.seq)
            if _matches(it, q):
                found.append(it)
                if len(found) == PAGE:
                    break
    last = found[-1]
    return found, f"{last.step}:{last.seq}"


def _item(run: Run, item: str, step: str | None) -> ReviewItem:
    return run._target(item, step or None)


def _check_shown(run: Run, form: dict[str, str]) -> None:
    """What the reviewer saw is what is decided: the page posts the sha256 of the text it showed."""
    target = _item(run, form["item"], form.get("step"))
    if not hmac.compare_digest(form.get("shown", ""), sha256_text(target.ai_text)):
        raise _Refused(409, "This item changed since the page was shown (or the form is incomplete): reload the "
                       "page and decide again.")


def _approve_many(ws: Workspace, run: Run, items: list[ReviewItem], user: User) -> int:
    """Approve the items as read (their AI text, its hash); an item decided meanwhile is left alone."""
    if not items:
        return 0
    return ws.store.decide_many(run.id, [(it.step, it.id, "approved", it.ai_text, sha256_text(it.ai_text), None)
                                         for it in items], user.name)


def _back_path(run_id: str, form: dict[str, str]) -> str:
    """Where to go after a decision: the queue page the form came from, never elsewhere."""
    back, home = form.get("back", ""), f"/runs/{quote(run_id, safe='')}"
    return _local(back) if back == home or back.startswith(home + "?") else home


def _back(run_id: str, form: dict[str, str]) -> Response:
    return RedirectResponse(_back_path(run_id, form), status_code=303)


async def _read_form(request: Request) -> dict[str, str]:
    """The posted form's fields (at most ``MAX_FORM`` bytes: a text area holds a draft, not a book)."""
    if int(request.headers.get("content-length") or 0) > MAX_FORM:
        raise _Refused(413, f"This form is larger than {MAX_FORM // 1_000_000} MB.")
    return {k: str(v) for k, v in (await request.form(max_files=0)).items()}


def _network(address: str) -> str:
    """A client's address for rate limiting: IPv6 clients by their /64 (one host has many addresses)."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return address
    return str(ipaddress.ip_network(f"{ip}/64", strict=False)) if ip.version == 6 else str(ip)


def _when(t: float | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(t)) if t else ""


def word_diff(old: str, new: str) -> list[tuple[str, str]]:
    """``(kind, text)`` runs of a word-level diff: kind is ``same``, ``del`` or ``ins``."""
    a, b = old.split(" "), new.split(" ")
    out: list[tuple[str, str]] = []
    for op, i1, i2, j1, j2 in difflib.SequenceMatcher(a=a, b=b, autojunk=False).get_opcodes():
        if op == "equal":
            out.append(("same", " ".join(a[i1:i2])))
        else:
            if i2 > i1:
                out.append(("del", " ".join(a[i1:i2])))
            if j2 > j1:
                out.append(("ins", " ".join(b[j1:j2])))
    return out


def _shown(value: Any) -> Any:
    """A context value as the templates show it: lists of strings, lists of objects, scalars."""
    if isinstance(value, float):
        return f"{value:.3g}"
    return value
