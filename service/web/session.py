"""Page logins: an API key is exchanged once for a signed session cookie.

Why a session and not the key in the page: the key never appears in a URL, a log line
or the page's JavaScript. The cookie is HttpOnly and SameSite=Lax; every state-changing
request (login, logout, outcomes) carries a per-session CSRF token. SameSite=Lax still
comes with another site's top-level link: a desk link that would decide, from a site
that is not the desk's (``from_untrusted_site``), waits for the agent's confirmation.

Sessions are stored (``page_sessions``), not only signed: the cookie carries a random
session id, the table its SHA-256. Every page request reads that row with the key's
(one query, as the key check alone was), so sign-out, the session's expiry and a revoked
or expired key end it on every worker and instance: a copied cookie is useless after
the sign-out, where a signed cookie alone would have worked until it expired. A cookie
without a session id (signed before migration 0013) asks its holder to sign in again.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import secrets
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import timedelta
from functools import wraps
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

import sqlalchemy as sa
from flask import Flask, Request, abort, current_app, redirect, request, session, url_for
from flask.sessions import SecureCookieSessionInterface, SessionMixin
from itsdangerous import URLSafeTimedSerializer
from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from werkzeug.exceptions import TooManyRequests

from service.auth import DatabaseUnavailable, allowed
from service.config import Settings
from service.db import (
    READ_ONLY,
    api_keys,
    begin_write,
    is_unavailable,
    page_sessions,
    utcnow,
)
from service.errors import ApiError, error_response, key_rate_limited
from service.ratelimit import RateLimiter
from service.state import state

log = logging.getLogger("vea.pages")

# The session's random id in the cookie; the table holds only its hash.
SESSION_ID = "sid"
CSRF_HEADER = "X-CSRF-Token"
CSRF_FIELD = "csrf_token"
# Forms posted to a page while signed out, kept in the session until the sign-in that
# follows (``keep_posted_form``). A few: each is a contact a desktop opened meanwhile,
# and the session cookie must stay under the browsers' 4 kB.
POSTED_FORMS = "posted_forms"
POSTED_FORMS_KEPT = 3
# Bytes of kept forms (as JSON) in the cookie: a desk form within the desk's own field
# limits is well under 1 kB; a larger one cannot be a valid contact and is not kept (a
# cookie over 4 kB is dropped by the browser, and the session with it).
POSTED_FORM_BYTES = 1200
POSTED_FORMS_BYTES = 2000
POSTED_FORM_PARAMETER = "form"
# Contacts (hashes of their interaction ids) that a desk link from another site named:
# the desk asks the agent to confirm them before it decides (``needs_confirmation``),
# also when the link comes back same-origin: after the sign-in it led to, or through the
# language switch of the confirmation page. Kept over sign-ins and expired sessions (a
# mark only ever asks for one more click); at most this many, the oldest dropped.
UNCONFIRMED = "unconfirmed"
UNCONFIRMED_KEPT = 16
# Sec-Fetch-Site values of a request another site's page started.
OTHER_SITE = ("cross-site", "same-site")
DEFAULT_PORTS = {"http": 80, "https": 443}


class SignedCookieSessions(SecureCookieSessionInterface):
    """Flask's signed-cookie sessions, with the signer built once per key set.

    Flask builds it anew for every request, API calls included (about 15 us, a fortieth
    of a decision), although it only changes when the secret key does.
    """

    def __init__(self) -> None:
        self._signer: tuple[tuple, URLSafeTimedSerializer | None] | None = None

    def open_session(self, app: Flask, request: Request) -> SessionMixin | None:
        if "HTTP_COOKIE" not in request.environ:
            # API calls carry no cookie: the same empty session without parsing the
            # headers for one (Flask scans every header on each request).
            return self.session_class() if self.get_signing_serializer(app) else None
        return super().open_session(app, request)

    def get_cookie_secure(self, app: Flask) -> bool:
        # Over HTTPS (as the service sees it: behind a TLS terminator that takes
        # VEA_TRUSTED_PROXIES) the cookie is never sent back over plain HTTP.
        return bool(app.config["SESSION_COOKIE_SECURE"] or request.is_secure)

    def get_signing_serializer(self, app: Flask) -> URLSafeTimedSerializer | None:
        keys = (app.secret_key, tuple(app.config["SECRET_KEY_FALLBACKS"] or ()))
        cached = self._signer
        if cached is None or cached[0] != keys:
            cached = self._signer = (keys, super().get_signing_serializer(app))
        return cached[1]


def configure(app: Flask, settings: Settings) -> None:
    # Without a configured secret, a random one per app: sessions then last one process
    # lifetime (gunicorn's master sets one shared by its workers).
    app.secret_key = settings.secret_key or secrets.token_hex(32)
    app.session_interface = SignedCookieSessions()
    app.config.update(
        SESSION_COOKIE_NAME="vea_session",
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_SECURE=settings.secure_cookies,
        PERMANENT_SESSION_LIFETIME=timedelta(hours=settings.session_hours),
    )
    # Run for the pages blueprint's requests only (/login), not for every API call.
    app.before_request_funcs.setdefault("pages", []).append(_mark_login_from_another_site)


def _mark_login_from_another_site() -> None:
    """A sign-in page opened by another site's link, its ``next`` a desk link that would
    decide: the redirect after the sign-in is same-origin (the browser says nothing of
    the site that led there), so the contact is marked for the desk to confirm."""
    if request.endpoint != "pages.login" or request.method != "GET":
        return
    target = urlsplit(safe_next(request.args.get("next"), ""))
    # Whatever the path says: it reaches the desk spelt many ways (/%64esk, /./desk,
    # /x/../desk, a prefix the service is mounted under), and a mark only ever asks for
    # one more click.
    if from_untrusted_site() and _top_level():
        for name, value in parse_qsl(target.query):
            if name == "interaction_id":
                mark_unconfirmed(value)


def csrf_token() -> str:
    token = session.get("csrf")
    if not token:
        token = secrets.token_urlsafe(32)
        session["csrf"] = token
    return token


def csrf_ok() -> bool:
    """Whether a state-changing request carries the session's CSRF token."""
    sent = request.headers.get(CSRF_HEADER) or request.form.get(CSRF_FIELD) or ""
    expected = session.get("csrf") or ""
    return bool(expected) and hmac.compare_digest(sent, expected)


def check_csrf() -> None:
    """Refuse a state-changing form post without the session's CSRF token (403 page)."""
    if not csrf_ok():
        abort(403, description="missing or wrong CSRF token: reload the page")


def request_origin() -> str | None:
    """The origin of the page that made this request: its ``Origin`` header, else its
    ``Referer``'s scheme, host and port; None when neither says (or ``Origin: null``)."""
    origin = request.headers.get("Origin")
    if origin is not None:
        return None if origin == "null" else origin
    referer = urlsplit(request.headers.get("Referer", ""))
    if referer.scheme in DEFAULT_PORTS and referer.hostname:
        return f"{referer.scheme}://{referer.netloc.rpartition('@')[2]}"
    return None


def _scheme_host_port(url: str) -> tuple[str, str, int] | None:
    try:
        parts = urlsplit(url)
        scheme, host = parts.scheme.lower(), (parts.hostname or "").lower()
        port = parts.port or DEFAULT_PORTS.get(scheme)
    except ValueError:  # a port that is no number
        return None
    if scheme not in DEFAULT_PORTS or not host or port is None:
        return None
    return scheme, host, port


def origin_matches(origin: str, source: str) -> bool:
    """Whether ``origin`` is one ``source`` names, as CSP matches its host-sources
    (frame-ancestors): the scheme (an http source also admits https on the default
    port), the host (``*.example.com``: any subdomain, not example.com itself) and the
    port (the scheme's default when none is written)."""
    page, allowed = _scheme_host_port(origin), _scheme_host_port(source)
    if page is None or allowed is None:
        return False
    scheme, host, port = page
    allowed_scheme, allowed_host, allowed_port = allowed
    wildcard = allowed_host.startswith("*.")
    if not (host.endswith(allowed_host[1:]) if wildcard else host == allowed_host):
        return False
    if scheme == allowed_scheme:
        return port == allowed_port
    return (allowed_scheme, scheme) == ("http", "https") and (allowed_port, port) == (80, 443)


def from_other_site() -> bool:
    """Whether the browser says another site's page started this request (a link or form
    of another origin's page, framed or not). Without ``Sec-Fetch-Site`` (older browsers,
    programs) the request is taken as it always was."""
    return request.headers.get("Sec-Fetch-Site") in OTHER_SITE


def from_untrusted_site() -> bool:
    """Whether another site's page started this request and its origin is not one of the
    desk's trusted origins (``Settings.desk_link_sources``)."""
    if not from_other_site():
        return False
    origin = request_origin()
    if origin is None:
        return True
    return not any(origin_matches(origin, s) for s in state().settings.desk_link_sources())


def _top_level() -> bool:
    """A navigation of a whole window or tab: only its answer may start a session (a
    cross-site frame or fetch comes without the SameSite=Lax cookie, and a new cookie
    set by it would sign the agent out)."""
    return request.headers.get("Sec-Fetch-Dest") == "document"


def _mark_key(interaction_id: str) -> str:
    # A hash: the session cookie is signed, not encrypted, and an interaction id could
    # name the customer; 64 bits keep the cookie small.
    return hashlib.sha256(interaction_id.encode("utf-8")).hexdigest()[:16]


def mark_unconfirmed(interaction_id: str) -> None:
    """Remember that another site's link named this contact: the desk decides it only
    once the agent confirms (``is_unconfirmed``, ``confirmed``)."""
    key = _mark_key(interaction_id)
    marks = [m for m in session.get(UNCONFIRMED) or [] if m != key]
    session[UNCONFIRMED] = [*marks, key][-UNCONFIRMED_KEPT:]


def is_unconfirmed(interaction_id: str) -> bool:
    return _mark_key(interaction_id) in (session.get(UNCONFIRMED) or [])


def confirmed(interaction_id: str) -> None:
    """The agent confirmed the contact (or its desktop opened it): no longer marked."""
    marks = session.get(UNCONFIRMED)
    key = _mark_key(interaction_id)
    if marks and key in marks:
        kept = [m for m in marks if m != key]
        if kept:
            session[UNCONFIRMED] = kept
        else:
            session.pop(UNCONFIRMED)


def _clear_session() -> None:
    """Clear the session but for the contacts still to confirm (UNCONFIRMED)."""
    marks = session.get(UNCONFIRMED)
    session.clear()
    if marks:
        session[UNCONFIRMED] = marks


def _session_hash(session_id: str) -> str:
    # The id is 256 random bits: a fast hash is enough, and a leaked table (or backup)
    # holds no usable session.
    return hashlib.sha256(session_id.encode("utf-8")).hexdigest()


@contextmanager
def _database() -> Iterator[None]:
    """An outage (unreachable, not migrated, pool exhausted) as DatabaseUnavailable, which
    the pages answer as such (it was a 500); other driver errors are bugs and stay."""
    try:
        yield
    except (DBAPIError, PoolTimeout) as exc:
        if isinstance(exc, DBAPIError) and not is_unavailable(exc):
            raise
        raise DatabaseUnavailable(type(exc).__name__) from exc


def log_in(key_id: str, role: str) -> None:
    """Start a stored session for the key; DatabaseUnavailable when it cannot be stored
    (the cookie is then left as it was: no session the server cannot end)."""
    session_id = secrets.token_urlsafe(32)
    now = utcnow()
    # Expired rows go with the next sign-in (indexed, a handful at a time): no scheduled
    # job needed, and no page request pays for it.
    ended = page_sessions.c.expires_at <= now
    previous = session.get(SESSION_ID)
    if previous:  # a sign-in over a session (another key, say) ends that one
        ended = sa.or_(ended, page_sessions.c.session_hash == _session_hash(previous))
    with _database(), begin_write(state().engine) as conn:
        conn.execute(page_sessions.delete().where(ended))
        conn.execute(
            page_sessions.insert().values(
                session_hash=_session_hash(session_id),
                key_id=key_id,
                created_at=now,
                # From the sign-in, not sliding: the cookie is signed anew on every
                # response, and a session in use must still end after its hours.
                expires_at=now + current_app.permanent_session_lifetime,
            )
        )
    posted = session.get(POSTED_FORMS)
    _clear_session()
    if posted:  # the page the sign-in goes back to opens them
        session[POSTED_FORMS] = posted
    session.permanent = True
    session[SESSION_ID] = session_id
    session["key_id"] = key_id
    session["role"] = role
    csrf_token()


def log_out() -> None:
    """End the session: the browser's cookie and the stored row, so a copy of the cookie
    stops working too. While the database is down the row cannot be deleted: the browser
    is signed out all the same (the agent is leaving) and the row ends when it expires."""
    session_id = session.get(SESSION_ID)
    session.clear()
    if not session_id:
        return
    try:
        with _database(), begin_write(state().engine) as conn:
            conn.execute(
                page_sessions.delete().where(
                    page_sessions.c.session_hash == _session_hash(session_id)
                )
            )
    except DatabaseUnavailable:
        log.warning("sign-out while the database is unavailable: the session ends at its expiry")


def _stored_session_role(session_id: str, key_id: str) -> str | None:
    """The role of a live stored session: not signed out, not expired, its key neither
    revoked nor expired (an expired key's sessions end like a revoked one's); None
    otherwise. One primary-key read joined to the key's row. DatabaseUnavailable when the
    database cannot say."""
    now = utcnow()
    query = (
        sa.select(api_keys.c.role)
        .select_from(page_sessions.join(api_keys, api_keys.c.key_id == page_sessions.c.key_id))
        .where(
            page_sessions.c.session_hash == _session_hash(session_id),
            page_sessions.c.key_id == key_id,
            page_sessions.c.expires_at > now,
            api_keys.c.revoked_at.is_(None),
            sa.or_(api_keys.c.expires_at.is_(None), api_keys.c.expires_at > now),
        )
    )
    with _database(), state().engine.connect().execution_options(**{READ_ONLY: True}) as conn:
        row = conn.execute(query).first()
    return row.role if row is not None else None


def verify_key(key: str) -> tuple[str, str] | None:
    """``(key_id, role)`` of an active key, or None; DatabaseUnavailable, KeyRevoked and
    KeyExpired propagate."""
    info = state().keys.verify(key.strip(), client=request.remote_addr or "-")
    return (info.key_id, info.role) if info is not None else None


def current_role() -> str | None:
    """The role of the signed-in key, or None when nobody is in: never signed in, signed
    out (a copy of the cookie), expired, the key revoked, or a cookie from before stored
    sessions (no session id). DatabaseUnavailable only for a cookie with a session id."""
    session_id, key_id = session.get(SESSION_ID), session.get("key_id")
    if not key_id:
        return None
    role = _stored_session_role(session_id, key_id) if session_id else None
    if role is None:
        _clear_session()
    return role


def safe_next(target: str | None, default: str) -> str:
    """Only same-site paths: a crafted ``next`` must not send the agent elsewhere."""
    if not target:
        return default
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not target.startswith("/") or target.startswith("//"):
        return default
    return target


def keep_posted_form(fields: list[tuple[str, str]]) -> str | None:
    """Keep a posted form in the session until the sign-in; the token that names it, or
    None for a form too large to be a contact (not kept)."""
    form = [list(field) for field in fields]
    if len(json.dumps(form)) > POSTED_FORM_BYTES:
        return None
    token = secrets.token_urlsafe(12)
    kept = dict(session.get(POSTED_FORMS) or {})
    kept[token] = form
    while len(kept) > POSTED_FORMS_KEPT or len(json.dumps(kept)) > POSTED_FORMS_BYTES:
        kept.pop(next(iter(kept)))  # the oldest
    session[POSTED_FORMS] = kept
    return token


def take_posted_form(token: str) -> list[tuple[str, str]] | None:
    """The form ``keep_posted_form`` kept under ``token`` (once), or None."""
    kept = dict(session.get(POSTED_FORMS) or {})
    fields = kept.pop(token, None)
    if fields is None:
        return None
    if kept:
        session[POSTED_FORMS] = kept
    else:
        session.pop(POSTED_FORMS, None)
    return [(str(name), str(value)) for name, value in fields]


def _return_path(form_as_query: bool) -> str:
    """Where the login page sends the agent back to. The desktop may post the interaction
    to the desk (its form is not part of the path): without the fields the agent would
    sign in to a "missing: interaction_id" page and lose the contact. They are kept in the
    session, not written into the path: a desktop that posts keeps the customer's details
    out of URLs, and the login's ``next`` and the page it leads to are in the browser's
    history."""
    if not (form_as_query and request.method == "POST" and request.form):
        return request.full_path.rstrip("?")
    if request.headers.get("Sec-Fetch-Site") == "cross-site":
        # The browser sends no SameSite=Lax cookie with another site's post, so a signed-in
        # agent looks signed out: keeping the form would answer with a new session cookie
        # that signs the agent out and opens that site's contact after the next sign-in.
        return request.path
    fields = [(k, v) for k, v in request.form.items(multi=True) if k != CSRF_FIELD]
    token = keep_posted_form(fields)
    if token is None:
        return request.path
    query = [*request.args.items(multi=True), (POSTED_FORM_PARAMETER, token)]
    return f"{request.path}?{urlencode(query)}"


def _mark_from_untrusted_site() -> None:
    """A signed-out agent sent to the sign-in by another site's desk link or same-site
    post (kept, ``_return_path``): the contact waits for the agent's confirmation after
    the sign-in too. Not for a cross-site post, whose form is not kept."""
    interaction_id = request.values.get("interaction_id")
    if not interaction_id or not from_untrusted_site() or not _top_level():
        return
    if request.method == "POST" and request.headers.get("Sec-Fetch-Site") == "cross-site":
        return
    mark_unconfirmed(interaction_id)


def page_access(*permissions: str, api: bool = False, form_as_query: bool = False) -> Callable:
    """Guard a page view: not logged in -> the login page (or 401 JSON for ``api`` views);
    a role without every permission -> 403. ``form_as_query``: the view reads a posted
    form as it reads the same fields by GET, so a post while signed out comes back from
    the login page with its fields in the query string."""

    def decorate(view: Callable) -> Callable:
        @wraps(view)
        def guarded(*args: Any, **kwargs: Any):
            try:
                role = current_role()
            except DatabaseUnavailable:
                if api:  # nothing can be stored now anyway: say so, keep the page's input
                    return error_response(
                        ApiError(
                            503,
                            "database unavailable: nothing was stored; retry later",
                            headers={"Retry-After": str(state().settings.retry_after_s)},
                        )
                    )
                # Pages go on with the signed session's role (checked when it was
                # signed): the desk must still show its degraded hint while the database
                # is down, as the API still answers decisions. Only a cookie with a
                # session id gets here (current_role). A revoked key's or a signed-out
                # session ends once the database answers again.
                role = session.get("role")
            if role is None:
                if api:
                    return error_response(ApiError(401, "log in: the session has expired"))
                if form_as_query:
                    _mark_from_untrusted_site()
                return redirect(url_for("pages.login", next=_return_path(form_as_query)))
            if not all(allowed(role, p) for p in permissions):
                abort(403, description=f"role {role!r} may not open this page")
            # The key's request limit holds for its sessions too: a page opens decisions
            # and records outcomes as the API does, and must not be a way around it.
            wait = state().limiter.acquire(session["key_id"])
            if wait > 0:
                if api:
                    return error_response(key_rate_limited(wait))
                retry_after = RateLimiter.retry_after_header(wait)
                raise TooManyRequests(
                    "Too many requests for this key: wait a moment and reload the page.",
                    retry_after=int(retry_after),
                )
            return view(*args, **kwargs)

        guarded.vea_page_permissions = permissions
        return guarded

    return decorate
