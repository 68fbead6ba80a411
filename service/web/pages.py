"""Login, logout, the language switch and the pages' error page; ``register`` wires the
page blueprints into the app."""

from __future__ import annotations

from functools import partial
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from flask import Blueprint, Flask, current_app, redirect, render_template, request, url_for
from flask import session as cookie_session
from werkzeug.exceptions import HTTPException

from service.auth import (
    ROLES,
    DatabaseUnavailable,
    KeyExpired,
    KeyRevoked,
    TooManyFailures,
    allowed,
)
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


# The error pages' own words (``_error_page``): an error raised with English developer text
# (a refused role, a stale CSRF token, the key's request limit) is said in the page's
# language; the role names stay as the keys have them.
ERROR_MESSAGES: dict[str, dict[str, str]] = {
    "en": {
        "wait_title": "Please wait a moment",
        "rate_limited": "This key sent too many requests in a short time: wait {seconds} s "
        "and reload the page.",
        "reload": "Reload the page",
        "role": "You are signed in with a key of the role {role}: this page needs a key of "
        "the role {roles}.",
        "roles_or": " or ",
        "another_key": "Sign in with another key",
        "stale_title": "This page is out of date",
        "stale": "It was opened before a sign-in or sign-out in another tab: reload the page "
        "and try again.",
        "failed": "The page could not be shown (HTTP {code}).",
        # The sign-out of a page older than the session (logout_confirm.html).
        "logout_lead": "This page was opened before the latest sign-in in this browser (in "
        "another tab, say). Sign out of the session open now?",
    },
    "ja": {
        "wait_title": "少しお待ちください",
        "rate_limited": "このキーからのリクエストが短時間に多すぎます。{seconds}秒待ってから"
        "ページを再読み込みしてください。",
        "reload": "ページを再読み込み",
        "role": "サインイン中のキーのロールは {role} です。このページには {roles} のいずれかの"
        "ロールのキーが必要です。",
        "roles_or": "、",
        "another_key": "別のキーでサインイン",
        "stale_title": "このページは古くなっています",
        "stale": "別のタブでサインインまたはサインアウトする前に開いたページです。ページを"
        "再読み込みしてから、もう一度お試しください。",
        "failed": "ページを表示できませんでした（HTTP {code}）。",
        "logout_lead": "このページは、このブラウザーで最後にサインインする前（別のタブなど）に"
        "開かれたものです。いま開いているセッションからサインアウトしますか？",
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
        """Ends the session on the server too: a copy of the cookie stops working.

        A tab opened before the latest sign-in in the same browser posts an older CSRF
        token: it still signs out when the browser says the post came from one of this
        service's own pages (Sec-Fetch-Site, which no page can set); otherwise (an older
        browser, or another site's page) a page asks once more, its button carrying the
        session's token. Refused as a role problem, the agent left a shared workstation
        signed in."""
        if not (session.csrf_ok() or request.headers.get("Sec-Fetch-Site") == "same-origin"):
            if not cookie_session.get(session.SESSION_ID):
                # Nothing to end (another site's post comes without the SameSite=Lax
                # cookie): the browser's cookie is left as it is.
                return redirect(url_for("pages.login"))
            language = _language()
            page = render_template(
                "logout_confirm.html",
                language=language,
                labels=content.LABELS[language],
                lead=ERROR_MESSAGES[language]["logout_lead"],
            )
            return page, 200
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


def _signed_in() -> bool:
    """Whether the browser holds a session (checked by ``page_access`` when it let the
    request in): its error page offers no sign-in."""
    return bool(cookie_session.get(session.SESSION_ID) and cookie_session.get("role"))


def _in_language(text: str, language: str) -> bool:
    """Whether ``text`` is written in ``language`` (as ``_lang.html`` tells): Japanese has
    kana or kanji, the English the service writes is ASCII."""
    japanese = any(ord(ch) > 0x2E80 for ch in text)
    return japanese if language == "ja" else not japanese and text.isascii()


def _refused_role() -> tuple[str, list[str]] | None:
    """The signed-in role and the roles the page needs, when ``page_access`` refused that
    role for this view; None otherwise."""
    view = current_app.view_functions.get(request.endpoint or "")
    needed = getattr(view, "vea_page_permissions", ())
    role = cookie_session.get("role")
    if not needed or not role or all(allowed(role, p) for p in needed):
        return None
    return role, [r for r in ROLES if all(allowed(r, p) for p in needed)]


def _roles(roles: list[str], language: str) -> str:
    if language == "ja" or len(roles) < 2:
        return ERROR_MESSAGES[language]["roles_or"].join(roles)
    return ", ".join(roles[:-1]) + ERROR_MESSAGES[language]["roles_or"] + roles[-1]


def _error_page(exc: HTTPException):
    """An error of a page as a page in its language: the title, what happened and what to
    do, and the links that help (reload the page, sign in with another key; the sign-in
    page only when signed out). A description written in the page's language (the
    dashboard's busy reports) is shown as it is; English developer text is said in the
    page's own words, with the original marked as such on a Japanese page."""
    language = _language()
    labels, said = content.LABELS[language], ERROR_MESSAGES[language]
    code = exc.code or 500
    description = exc.description or exc.name
    # A 429 keeps its Retry-After (the page's own Content-Type stays).
    headers = {name: value for name, value in exc.get_headers() if name == "Retry-After"}
    sign_in = (url_for("pages.login"), labels["login_title"])
    here = (request.full_path.rstrip("?"), said["reload"])
    reload = here if request.method == "GET" else None
    refused = _refused_role() if code == 403 else None
    if code == 429:
        title = said["wait_title"]
        if _in_language(description, language):
            messages = [description]
        else:
            seconds = headers.get("Retry-After", "1")
            messages = [said["rate_limited"].format(seconds=seconds)]
        links = [reload]
    elif refused is not None:
        role, roles = refused
        title = labels["forbidden"]
        messages = [said["role"].format(role=role, roles=_roles(roles, language))]
        # Back here after signing in with a key of another role.
        links = [(url_for("pages.login", next=request.full_path.rstrip("?")), said["another_key"])]
    elif code == 403 and request.method == "POST" and not session.csrf_ok():
        # A form of a page older than the session (the sign-in page): that page again.
        title, messages, links = said["stale_title"], [said["stale"]], [here]
    else:
        title = labels["error"]
        messages = [description]
        if not _in_language(description, language):
            original = content.UNTRANSLATED.get(language, "") + description
            messages = [said["failed"].format(code=code), original]
        links = [reload]
    # Signed out: the way back in (the sign-in page's own error links to it already).
    if not _signed_in() and refused is None and request.endpoint != "pages.login":
        links.append(sign_in)
    page = render_template(
        "problem.html",
        language=language,
        labels=labels,
        title=title,
        messages=messages,
        links=[link for link in links if link is not None],
    )
    return page, code, headers


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
