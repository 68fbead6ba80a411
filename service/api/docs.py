"""The interactive docs page (``/docs``), with Swagger UI's assets served by the app
itself (no CDN): they come from the ``swagger-ui-bundle`` package."""

from __future__ import annotations

from flask import Blueprint, Flask, send_from_directory

ASSETS_URL = "/docs/assets/"


def _assets_dir() -> str | None:
    try:
        import swagger_ui_bundle
    except ImportError:  # pragma: no cover - a declared dependency
        return None
    return swagger_ui_bundle.swagger_ui_path


def configure(app: Flask) -> None:
    if _assets_dir() is not None:
        app.config["OPENAPI_SWAGGER_UI_PATH"] = "docs"
        app.config["OPENAPI_SWAGGER_UI_URL"] = ASSETS_URL


def assets_blueprint() -> Blueprint:
    blp = Blueprint("docs_assets", __name__)
    directory = _assets_dir()

    @blp.route(ASSETS_URL + "<path:filename>")
    def asset(filename: str):
        if directory is None:
            return ("swagger-ui-bundle is not installed", 404)
        return send_from_directory(directory, filename, max_age=86400)

    return blp
