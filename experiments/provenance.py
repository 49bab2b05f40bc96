"""Provenance of a results folder: versions, commit, platform, the manifest."""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import platform
import subprocess
from pathlib import Path
from typing import Any

__all__ = ["git_commit", "new_manifest", "now", "package_versions"]

_PACKAGES = (
    "gmmlab",
    "numpy",
    "scipy",
    "scikit-learn",
    "pandas",
    "pyarrow",
    "pymc",
    "arviz",
    "dask",
    "distributed",
)


def package_versions() -> dict[str, str]:
    """Installed versions of gmmlab and the libraries its results depend on."""
    from importlib.metadata import PackageNotFoundError, version

    found = {}
    for package in _PACKAGES:
        with contextlib.suppress(PackageNotFoundError):
            found[package] = version(package)
    return found


def git_commit() -> str | None:
    """The commit of the checkout gmmlab runs from, or None outside git."""
    try:
        result = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            timeout=5,
            cwd=Path(__file__).resolve().parent,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return result.stdout.strip() or None


def now() -> str:
    """The current UTC time, ISO 8601 to the second."""
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


def new_manifest(config) -> dict[str, Any]:
    """The manifest of a sweep about to run (``finished_at`` still None)."""
    return {
        "config": config.raw,
        "config_hash": config.config_hash,
        "config_source": config.source,
        "stopping": {
            "tol": config.stopping.tol,
            "max_iter": config.stopping.max_iter,
            "rule": "|L_t - L_(t-1)| <= tol * max(|L_1|, n), total log-likelihood",
        },
        "same_optimum_nats": config.same_optimum_nats,
        "versions": package_versions(),
        "git_commit": git_commit(),
        "platform": {
            "python": platform.python_version(),
            "system": platform.platform(),
            "machine": platform.machine(),
            "cores": os.cpu_count(),
        },
        "started_at": now(),
        "finished_at": None,
    }
