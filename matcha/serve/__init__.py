"""The review web page (``matcha serve``): see :mod:`matcha.serve.app`."""

from matcha.serve.app import create_app

__all__ = ["create_app"]
