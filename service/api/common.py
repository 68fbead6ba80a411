"""What every protected endpoint shares in the OpenAPI document."""

from __future__ import annotations

from flask_smorest import Blueprint

from service.errors import ErrorSchema

SECURITY = [{"bearerAuth": []}, {"apiKeyHeader": []}]
COMMON_ERRORS = {
    401: "missing, invalid or revoked API key",
    403: "the key's role may not use this endpoint",
    413: "request body over the size limit",
    429: "rate limit of this key exceeded (see Retry-After)",
    503: "database unavailable for a write or a key check: retry after Retry-After",
}


def protected(blp: Blueprint):
    """Document the security schemes and the shared error answers of a view."""

    def decorate(view):
        for status, description in COMMON_ERRORS.items():
            view = blp.alt_response(status, schema=ErrorSchema, description=description)(view)
        return blp.doc(security=SECURITY)(view)

    return decorate
