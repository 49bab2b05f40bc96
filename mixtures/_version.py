"""The installed gmmlab version, the one place it is looked up."""

from __future__ import annotations

from functools import cache


@cache
def installed_version() -> str:
    """The gmmlab version as installed, or ``"unknown"`` when not installed."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("gmmlab")
    except PackageNotFoundError:  # pragma: no cover - running from a checkout
        return "unknown"
