"""The upload portal and API (Flask app factory, blueprints, templates, local static files)."""

from .app import create_app

__all__ = ["create_app"]
