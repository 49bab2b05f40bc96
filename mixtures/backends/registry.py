"""Finding backends by name: the built-in ones and third-party plug-ins.

Built-in: "em" (gmmlab's EM), "sklearn" (scikit-learn), "sklearn-vb"
(scikit-learn's variational ``BayesianGaussianMixture``), "function" (someone's
own EM implementation, from a given start), "pymc" (NUTS) and
"pymc-advi" (ADVI); the PyMC ones need the optional extra ``bayes`` and are
listed as unavailable, with the install command, without it. Other packages
add backends through the entry-point group ``gmmlab.backends``: each entry
point names a class (or instance) implementing :class:`Backend`.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from functools import cache
from importlib.metadata import EntryPoint, entry_points

from mixtures.backends.base import Backend, is_posterior

__all__ = [
    "ENTRY_POINT_GROUP",
    "BackendStatus",
    "BackendUnavailableError",
    "available_backends",
    "backend_statuses",
    "get_backend",
    "is_posterior_backend",
    "reload_backends",
]

ENTRY_POINT_GROUP = "gmmlab.backends"

_BUILTIN = {
    "em": ("mixtures.backends.em", "EMBackend", None),
    "sklearn": ("mixtures.backends.sklearn", "SklearnBackend", None),
    "sklearn-vb": ("mixtures.backends.sklearn_vb", "SklearnVBBackend", None),
    "function": ("mixtures.backends.function", "FunctionBackend", None),
    "em-complete-case": ("mixtures.backends.imputed", "CompleteCaseBackend", None),
    "em-mean-imputed": ("mixtures.backends.imputed", "MeanImputedBackend", None),
    "em-iterative-imputed": (
        "mixtures.backends.imputed",
        "IterativeImputedBackend",
        None,
    ),
    "pymc": ("mixtures.backends.pymc", "PyMCBackend", ("pymc", "arviz")),
    "pymc-advi": ("mixtures.backends.pymc", "PyMCAdviBackend", ("pymc", "arviz")),
}


class BackendUnavailableError(ValueError):
    """A known backend whose dependencies are not installed."""


@dataclass(frozen=True)
class BackendStatus:
    """Whether a registered backend can be used here, and why not."""

    name: str
    available: bool
    detail: str  # where it comes from, or what to install


def _missing(modules) -> list[str]:
    missing = []
    for module in modules or ():
        try:
            importlib.import_module(module)
        except ImportError:
            missing.append(module)
    return missing


@cache
def _registry() -> dict[str, tuple[tuple[str, str] | EntryPoint, BackendStatus]]:
    """Name -> (loader, status); computed once, see :func:`reload_backends`."""
    registry: dict[str, tuple[tuple[str, str] | EntryPoint, BackendStatus]] = {}
    for name, (module, attribute, needs) in _BUILTIN.items():
        missing = _missing(needs)
        if missing:
            status = BackendStatus(
                name,
                False,
                f"needs {', '.join(missing)}: pip install 'gmmlab[bayes]'",
            )
        else:
            status = BackendStatus(name, True, f"built in ({module})")
        registry[name] = ((module, attribute), status)
    for point in entry_points(group=ENTRY_POINT_GROUP):
        if point.name in registry:
            continue  # built-ins cannot be shadowed by plug-ins
        registry[point.name] = (
            point,
            BackendStatus(point.name, True, f"plug-in ({point.value})"),
        )
    return registry


def reload_backends() -> None:
    """Forget the cached registry (after installing a plug-in or an extra)."""
    _registry.cache_clear()
    is_posterior_backend.cache_clear()


def backend_statuses() -> dict[str, BackendStatus]:
    """Every registered backend, available or not, by name."""
    return {name: status for name, (_, status) in _registry().items()}


def available_backends() -> list[str]:
    """Names of the backends that can be used here."""
    return [name for name, status in backend_statuses().items() if status.available]


def get_backend(name: str) -> Backend:
    """The backend registered as ``name``.

    Raises
    ------
    ValueError
        For an unknown name (the message lists the registered ones).
    BackendUnavailableError
        For a known backend whose dependencies are missing (with the
        install command).
    """
    registry = _registry()
    if name not in registry:
        raise ValueError(
            f"unknown backend {name!r}; registered backends: {', '.join(registry)}."
        )
    loader, status = registry[name]
    if not status.available:
        raise BackendUnavailableError(
            f"backend {name!r} is unavailable: {status.detail}"
        )
    if isinstance(loader, tuple):
        module, attribute = loader
        target = getattr(importlib.import_module(module), attribute)
    else:
        target = loader.load()
    backend = target() if isinstance(target, type) else target
    if not isinstance(backend, Backend):
        raise TypeError(f"backend {name!r} does not implement the Backend protocol.")
    return backend


@cache
def is_posterior_backend(name: str) -> bool:
    """Whether backend ``name`` declares ``is_posterior`` (see :class:`Backend`).

    Read from the backend's class without instantiating it, so it answers
    for a built-in whose optional dependencies are missing too; False for
    an unknown name.
    """
    entry = _registry().get(name)
    if entry is None:
        return False
    loader, _ = entry
    if isinstance(loader, tuple):
        module, attribute = loader
        target = getattr(importlib.import_module(module), attribute)
    else:
        try:
            target = loader.load()
        except Exception:  # a broken plug-in is reported by get_backend
            return False
    return is_posterior(target)
