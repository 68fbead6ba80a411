"""Login, logout, the language switch and the pages' error page; ``register`` wires the
page blueprints into the app."""

from __future__ import annotations

from functools import partial
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from flask import Blueprint, Flask, current_app, redirect, render_template, request, url_for
from werkzeug.exceptions import HTTPException

from service.auth import DatabaseUnavailable, KeyExpired, KeyRevoked, TooManyFailures, allowed
from service.config import Settings
from service.ratelimit import RateLimiter
from service.state import state
from service.web import content, dashboard, desk, session
from service.web.headers import add_page_headers

LANG_COOKIE_DAYS = 365
# Why a sign-in failed when the key itself may be fine: an agent told "not valid" for a
# lockout or an outage thinks their key was revoked.
LOGIN_MESSAGES: dict[str, dict[str, str]] = {
    "en": {
        "locked": "Too many failed sign-ins from this address: try again in {seconds} s.",
        "down": "Keys cannot be checked right now (database unavailable): try again in a minute.",
        "expired": "This key has expired: ask your administrator for a new one.",
        "revoked": "This key was revoked: ask your administrator for the new one.",
    },
    "ja": {
        "locked": "このアドレスからのサインインの失敗が多すぎます。{seconds}秒後にもう一度"
        "お試しください。",
        "down": "データベースに接続できないため、今はキーを確認できません。1分ほどしてから"
        "もう一度お試しください。",
        "expired": "このキーは有効期限が切れています。管理者に新しいキーを依頼してください。",
        "revoked": "このキーは無効化されています。管理者に新しいキーを依頼してください。",
    },
}


def _language() -> str:
    return content.pick_language(
        request.args.get("lang"), request.cookies.get("vea_lang"), request.accept_languages
    )


def without_lang(target: str) -> str:
    """``target`` (a same-site path and query) without its ``lang=``, every other parameter
    kept in order: a link that names a language wins over the switch's cookie, so a switch
    that led back to it would change nothing (as the top bar, ``_topbar.html``)."""
    parts = urlsplit(target)
    kept = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k != "lang"]
    return urlunsplit(("", "", parts.path, urlencode(kept), parts.fragment))


def blueprint() -> Blueprint:
    blp = Blueprint("pages", __name__)

    @blp.route("/login", methods=["GET", "POST"])
    def login():
        language = _language()
        labels = content.LABELS[language]
        target = session.safe_next(request.values.get("next"), "")
        error = None
        status = 200
        headers: dict[str, str] = {}
        if request.method == "POST":
            session.check_csrf()
            key = request.form.get("key", "")
            try:
                found = session.verify_key(key) if key.strip() else None
            except DatabaseUnavailable:
                found, error, status = None, LOGIN_MESSAGES[language]["down"], 503
                headers["Retry-After"] = str(state().settings.retry_after_s)
            except KeyExpired:
                found, error, status = None, LOGIN_MESSAGES[language]["expired"], 401
            except KeyRevoked:
                found, error, status = None, LOGIN_MESSAGES[language]["revoked"], 401
            except TooManyFailures as exc:  # brute force: this address guessed too often
                wait = RateLimiter.retry_after_header(exc.retry_after_s)
                found, status = None, 429
                error = LOGIN_MESSAGES[language]["locked"].format(seconds=wait)
                headers["Retry-After"] = wait
            if found is not None:
                try:
                    session.log_in(*found)  # the session is stored: it can be ended
                except DatabaseUnavailable:
                    error, status = LOGIN_MESSAGES[language]["down"], 503
                    headers["Retry-After"] = str(state().settings.retry_after_s)
                else:
                    return redirect(target or _home(found[1]))
            if error is None:
                error, status = labels["bad_key"], 401
        # The language links come back to this page without its lang= and send the agent
        # on without the next page's (a desk link may name one): the switch must win. Built
        # from the target, not the request's path: after a refused post it has no query.
        switch_to = url_for("pages.login", next=without_lang(target)) if target else "/login"
        page = render_template(
            "login.html",
            language=language,
            labels=labels,
            next=target,
            switch_to=switch_to,
            error=error,
            csrf=session.csrf_token(),
        )
        return page, status, headers

    @blp.route("/logout", methods=["POST"])
    def logout():
        """Ends the session on the server too: a copy of the cookie stops working."""
        session.check_csrf()
        session.log_out()
        return redirect(url_for("pages.login"))

    @blp.route("/favicon.ico", methods=["GET"])
    def favicon():
        """Pages name their icon (``base.html``: ``static/favicon.svg``); what names none (the
        API's docs page, a JSON answer opened in a tab) still makes the browser ask here:
        answered empty, not with a 404 in its console."""
        return "", 204, {"Cache-Control": "public, max-age=86400"}

    @blp.route("/language/<code>", methods=["GET"])
    def switch_language(code: str):
        """Remember the agent's language; back to the page they were on. A GET changes
        only a preference cookie, so it needs no CSRF token."""
        target = session.safe_next(request.args.get("next"), "/login")
        response = redirect(target)
        if code in content.LANGUAGES:
            response.set_cookie(
                "vea_lang",
                code,
                max_age=LANG_COOKIE_DAYS * 86400,
                samesite="Lax",
                httponly=True,
                secure=current_app.session_interface.get_cookie_secure(current_app),
            )
        return response

    return blp


def _home(role: str) -> str:
    return "/dashboard" if allowed(role, "reports") else "/desk"


def _error_page(exc: HTTPException):
    language = _language()
    labels = content.LABELS[language]
    title = labels["forbidden"] if exc.code == 403 else labels["error"]
    page = render_template(
        "problem.html",
        language=language,
        labels=labels,
        title=title,
        messages=[exc.description or exc.name],
    )
    # A 429 keeps its Retry-After (the page's own Content-Type stays).
    headers = {name: value for name, value in exc.get_headers() if name == "Retry-After"}
    return page, exc.code or 500, headers


def register(app: Flask, settings: Settings) -> None:
    session.configure(app, settings)

    @app.context_processor
    def _globals():
        return {"csrf_token": session.csrf_token}

    frame_ancestors = settings.frame_ancestor_sources()
    for blp in (blueprint(), desk.blueprint(), dashboard.blueprint()):
        # Pages answer errors as HTML pages, the API keeps its JSON errors.
        blp.register_error_handler(HTTPException, _error_page)
        blp.after_request(partial(add_page_headers, frame_ancestors=frame_ancestors))
        app.register_blueprint(blp)
