"""Response headers every page carries: what the browser may load, who may frame the
page, and that nothing is cached.

The pages load only their own scripts and styles (Chart.js is served locally), so the
content security policy allows 'self' alone for scripts: an injected <script> or inline
handler does not run. Inline styles stay allowed for the openness meter's width. Images,
the pages' icon among them (``static/favicon.svg``), come from the service. The desk
and the dashboard show customer decisions and figures: ``no-store`` keeps them out of
the browser's cache and back button on a shared agent workstation.
"""

from __future__ import annotations

from flask import Response


def content_security_policy(frame_ancestors: str) -> str:
    return "; ".join(
        (
            "default-src 'self'",
            "script-src 'self'",
            "style-src 'self' 'unsafe-inline'",
            "img-src 'self' data:",  # the favicon is /static/favicon.svg
            "connect-src 'self'",
            "object-src 'none'",
            "base-uri 'none'",
            "form-action 'self'",
            f"frame-ancestors {frame_ancestors}",
        )
    )


def add_page_headers(response: Response, frame_ancestors: str = "'self'") -> Response:
    """Set the pages' security and caching headers on ``response`` (static files keep
    their own caching: they hold no customer data)."""
    headers = response.headers
    headers.setdefault("Content-Security-Policy", content_security_policy(frame_ancestors))
    headers.setdefault("X-Content-Type-Options", "nosniff")
    # Decision ids are in the desk's URLs: never sent to another site.
    headers.setdefault("Referrer-Policy", "same-origin")
    if frame_ancestors == "'self'":
        headers.setdefault("X-Frame-Options", "SAMEORIGIN")  # browsers without CSP 2
    headers.setdefault("Cache-Control", "no-store")
    return response
