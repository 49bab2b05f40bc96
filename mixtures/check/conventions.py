"""Calling a user's EM function: loading it, its conventions, what it returns.

The calling conventions are those of :mod:`mixtures.check`'s docstring;
what the function returns is kept as :class:`LooseParams`, unchecked, so
that the checks can say what is wrong with it.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from mixtures.params import MixtureParams


@dataclass(frozen=True)
class LooseParams:
    """Parameters as a function returned them, possibly invalid.

    Unlike :class:`MixtureParams`, nothing is checked: weights may be off the
    simplex and any array may hold NaN.

    Attributes
    ----------
    weights : ndarray of shape (n_components,)
    means : ndarray of shape (n_components, n_features)
    covariances : ndarray of shape (n_components, n_features, n_features)
    """

    weights: np.ndarray
    means: np.ndarray
    covariances: np.ndarray


def _unchecked(weights, means, covariances) -> LooseParams:
    return LooseParams(
        np.asarray(weights, float),
        np.asarray(means, float),
        np.asarray(covariances, float),
    )


def _valid(loose: LooseParams) -> MixtureParams | None:
    try:
        return MixtureParams(loose.weights, loose.means, loose.covariances)
    except (ValueError, np.linalg.LinAlgError):
        return None


def _convention(fn: Callable, convention: str) -> str:
    if convention != "auto":
        return convention
    try:
        n_params = len(inspect.signature(fn).parameters)
    except (TypeError, ValueError):
        n_params = 6
    return "self-init" if n_params <= 3 else "standard"


def load_function(target: str) -> Callable:
    """``module:function`` or ``path/to/file.py:function`` to a callable.

    A module is imported with the working directory on the path; a file is
    loaded by its path. Raises ValueError with what to fix.
    """
    import importlib
    import importlib.util
    import os
    import sys
    from pathlib import Path

    if ":" not in target:
        raise ValueError(
            f"expected MODULE:FUNCTION or FILE.py:FUNCTION; got {target!r}."
        )
    where, name = target.rsplit(":", 1)
    if where.endswith(".py"):
        spec = importlib.util.spec_from_file_location(Path(where).stem, where)
        if spec is None or spec.loader is None or not Path(where).is_file():
            raise ValueError(f"no such file {where!r}.")
        module = importlib.util.module_from_spec(spec)
        try:
            spec.loader.exec_module(module)
        except SyntaxError as error:
            raise ValueError(
                f"cannot load {where!r}: syntax error on line {error.lineno}: "
                f"{error.msg}."
            ) from None
        except Exception as error:
            raise ValueError(
                f"cannot load {where!r}: importing it raised "
                f"{type(error).__name__}: {error}"
            ) from None
    else:
        if os.getcwd() not in sys.path:
            sys.path.insert(0, os.getcwd())
        try:
            module = importlib.import_module(where)
        except ImportError as error:
            raise ValueError(f"cannot import {where!r}: {error}") from None
        except SyntaxError as error:
            raise ValueError(
                f"cannot load {where!r}: syntax error in {error.filename} on line "
                f"{error.lineno}: {error.msg}."
            ) from None
        except Exception as error:
            raise ValueError(
                f"cannot load {where!r}: importing it raised "
                f"{type(error).__name__}: {error}"
            ) from None
    function = getattr(module, name, None)
    if not callable(function):
        raise ValueError(f"{where!r} has no function {name!r}.")
    return function


def call_em_function(
    fn: Callable,
    convention: str,
    X: np.ndarray,
    params: MixtureParams | None,
    max_iter: int,
    n_components: int | None = None,
) -> tuple[LooseParams, np.ndarray | None]:
    """Call someone's EM ``fn`` in its convention (module docstring).

    Parameters
    ----------
    fn : callable
    convention : {"standard", "1d", "column", "self-init"}
    X : ndarray of shape (n_samples, n_features)
    params : MixtureParams or None
        The starting parameters (None for "self-init").
    max_iter : int
    n_components : int, optional
        K; by default ``params.n_components``.

    Returns
    -------
    loose : the returned weights (K,), means (K, D) and covariances
        (K, D, D), as arrays that may be invalid (NaN, off the simplex)
    trace : ndarray or None, the function's own trace when it returns one
    """
    if params is None and (convention != "self-init" or n_components is None):
        raise ValueError(
            f"convention {convention!r} needs starting parameters (or, for "
            "'self-init', n_components)."
        )
    k = params.n_components if params is not None else n_components
    if convention == "self-init":
        out = fn(X if X.shape[1] > 1 else X[:, 0], k, max_iter)
    elif params is None:  # pragma: no cover - excluded above
        raise AssertionError
    elif convention == "standard":
        out = fn(
            X.copy(),
            k,
            params.weights.copy(),
            params.means.copy(),
            params.full_covariances().copy(),
            max_iter,
        )
    elif convention in ("1d", "column"):
        if X.shape[1] != 1:
            raise ValueError("a 1-D convention cannot take multi-dimensional data")
        variances = params.full_covariances()[:, 0, 0].copy()
        means = params.means[:, 0].copy()
        if convention == "column":
            variances, means = variances[:, None], means[:, None]
        out = fn(X[:, 0].copy(), k, params.weights.copy(), means, variances, max_iter)
    else:
        raise ValueError(
            f"unknown convention {convention!r}; use auto, standard, "
            "1d, column or self-init."
        )
    return _returned(out, k, X.shape[1])


def _returned(out, k, d: int) -> tuple[LooseParams, np.ndarray | None]:
    """What the function returned, as ``(loose, trace)`` (see call_em_function).

    Raises ValueError unless ``out`` is ``(weights, means, covariances[,
    loglik_trace])`` of sizes K, K*D and K*D*D (or K*D variances).
    """
    if not isinstance(out, tuple | list) or len(out) not in (3, 4):
        raise ValueError(
            "the function must return (weights, means, covariances[, loglik_trace])"
        )
    weights, means, covariances = (np.asarray(a, dtype=float) for a in out[:3])
    trace = None if len(out) == 3 else np.asarray(out[3], dtype=float).ravel()
    if (
        weights.size != k
        or means.size != k * d
        or covariances.size
        not in (
            k * d * d,
            k * d,
        )
    ):
        raise ValueError(
            "wrong output shapes: expected weights of size K = "
            f"{k}, means of size K*D = {k * d} and covariances of size K*D*D = "
            f"{k * d * d} (or K*D variances); got weights {weights.shape}, means "
            f"{means.shape}, covariances {covariances.shape}."
        )
    means = means.reshape(-1, d)
    kk = means.shape[0]
    if covariances.size == kk * d * d:
        covariances = covariances.reshape(kk, d, d)
    elif covariances.size == kk * d:  # variance vectors
        covariances = np.stack([np.diag(v) for v in covariances.reshape(kk, d)])
    return _unchecked(weights.ravel(), means, covariances), trace
