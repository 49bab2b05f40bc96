"""The model search with a uniform noise component (mclust's noise search).

mclust's ``Mclust(x, initialization = list(noise = ...))``.

:func:`search_noise` fits every covariance model x K (Gaussians plus the
noise of :mod:`mixtures.noise`) and chooses by BIC among ``ok`` cells, the
rule of :mod:`mixtures.select`: a flagged fit is never chosen. Every cell
starts from the same initial noise (:func:`mixtures.noise.nn_clean` once, or
the user's mask), as in mclust, and from several starts of its Gaussians on
the rows not flagged:

* ``hc``: mclust's hierarchical start (Fraley 1998), mclust's only one;
* ``kmeans-i``: ``n_random_starts`` seeded k-means partitions.

Each start runs to convergence with the noise column; the cell keeps its best
``ok`` fit (highest log-likelihood), or, when none is ok, its best of any
status under that status. So a cell can only end at or above mclust's start.

``K = 0`` in ``n_components`` adds mclust's noise-only model: every row
uniform over the volume, log-likelihood ``-n log V``, no free parameter
(``tau_0 = 1``). When it has the best BIC the data show no cluster above the
background, and :meth:`NoiseSearchResult.best` says so.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from joblib import Parallel, delayed

from mixtures.diagnostics import bic
from mixtures.noise import (
    _FIT_DEFAULTS,
    NoiseFit,
    _as_data,
    _check_noise,
    _check_volume,
    _fit,
)

__all__ = ["NoiseSearchResult", "search_noise"]

_COLUMNS = "model n_components log_likelihood n_parameters bic noise_weight"
_COLUMNS += " status reason start n_starts_ok n_starts n_iter seconds"


@dataclass(frozen=True, eq=False)
class NoiseSearchResult:
    """The table of :func:`search_noise` and the fit of every cell.

    Attributes
    ----------
    table : pandas.DataFrame
        One row per (model, K): ``model, n_components, log_likelihood,
        n_parameters, bic, noise_weight, status, reason, start,
        n_starts_ok, n_starts, n_iter, seconds`` (``bic`` lower is better,
        ``n_parameters`` counts the noise proportion; the noise-only row,
        K = 0, has ``model`` 'noise').
    fits : dict of (model, K) -> NoiseFit
        The fit of every cell with K >= 1 that did not fail.
    noise : ndarray of shape (n_samples,), bool
        The initial noise of every cell.
    log_volume : float
        ``log V`` of the uniform component.
    """

    table: pd.DataFrame
    fits: dict[tuple[str, int], NoiseFit] = field(repr=False)
    noise: np.ndarray = field(repr=False)
    log_volume: float

    def top(self, n: int = 3) -> pd.DataFrame:
        """The ``n`` best ``ok`` cells by BIC (ties: fewer parameters)."""
        ok = self.table[self.table["status"] == "ok"]
        return ok.sort_values(["bic", "n_parameters"], kind="stable").head(n)

    @property
    def noise_only(self) -> bool:
        """Whether the noise-only model (K = 0) has the best BIC of all."""
        top = self.top(1)
        return not top.empty and int(top.iloc[0]["n_components"]) == 0

    def best(self) -> NoiseFit:
        """The fit of the best ``ok`` cell by BIC.

        ValueError when no cell is ok, or when the noise-only model is best
        (there is then no Gaussian to return: the data show no cluster).
        """
        top = self.top(1)
        if top.empty:
            counts = self.table["status"].value_counts().to_dict()
            raise ValueError(f"no cell of the search is ok (statuses: {counts}).")
        if self.noise_only:
            raise ValueError(
                "the noise-only model (K = 0) has the best BIC: the data show no "
                "cluster above a uniform background."
            )
        row = top.iloc[0]
        return self.fits[(row["model"], int(row["n_components"]))]


def search_noise(
    X,
    models: Iterable[str] | str | None = None,
    n_components: Iterable[int] | int = range(1, 10),
    *,
    noise=None,
    volume: float | None = None,
    n_random_starts: int = 2,
    n_jobs: int | None = None,
    progress: bool = False,
    **options,
) -> NoiseSearchResult:
    """Fit every model x K with a noise component; choose by BIC among ``ok``.

    Parameters
    ----------
    X : array-like of shape (n_samples, n_features) or (n_samples,)
    models : iterable of str, str or None, default=None
        mclust's model names; None: every model for the data's dimension.
    n_components : iterable of int or int, default=range(1, 10)
        Numbers of Gaussians, each >= 0; 0 is the noise-only model.
    noise : array-like of shape (n_samples,), bool, optional
        The initial noise of every cell; None: :func:`mixtures.noise.nn_clean`
        (k = 5), computed once.
    volume : float, optional
        ``V``; None: :func:`mixtures.noise.hypervolume` of X.
    n_random_starts : int, default=2
        Seeded k-means starts of the Gaussians per cell, besides ``hc``.
    n_jobs : int or None, default=None
        Cells run in parallel in this many processes (joblib); None means 1.
    progress : bool, default=False
        A tqdm progress bar over the cells.
    **options
        The other keywords of :func:`mixtures.noise.fit_noise` (``tol,
        max_iter, reg_covar, reg_covar_relative, init_params,
        random_state``); ``init_params`` is the first start's method and
        ``random_state`` seeds the k-means starts.

    Returns
    -------
    NoiseSearchResult
    """
    from mixtures.select import _check_components, _check_models

    settings = {**_FIT_DEFAULTS, **options}
    unknown = sorted(set(settings) - set(_FIT_DEFAULTS))
    if unknown:
        raise TypeError(f"search_noise() got unexpected keyword argument(s) {unknown}.")
    if (
        isinstance(n_random_starts, bool)
        or not isinstance(n_random_starts, int | np.integer)
        or n_random_starts < 0
    ):
        raise ValueError(
            f"n_random_starts must be an integer >= 0; got {n_random_starts!r}."
        )
    X = _as_data(X)
    names = _check_models(models, X.shape[1])
    ks = list(_zero_or_more(n_components, X.shape[0], _check_components))
    log_volume = _check_volume(X, volume)
    mask = _check_noise(X, noise)
    rows = [_noise_only_row(X.shape[0], log_volume)] if 0 in ks else []
    cells = [(name, k) for name in names for k in ks if k > 0]
    seeds = _start_seeds(settings["random_state"], n_random_starts)
    jobs = (
        delayed(_search_cell)(X, name, k, mask, log_volume, settings, seeds)
        for name, k in cells
    )
    fits = {}
    with Parallel(n_jobs=n_jobs, return_as="generator") as parallel:
        results = parallel(jobs)
        if progress:
            from tqdm.auto import tqdm

            results = tqdm(results, total=len(cells), desc="noise search")
        for (name, k), (row, fit) in zip(cells, results, strict=True):
            rows.append(row)
            if fit is not None:
                fits[(name, k)] = fit
    table = pd.DataFrame(rows).reindex(columns=_COLUMNS.split())
    return NoiseSearchResult(table, fits, mask, log_volume)


def _zero_or_more(n_components, n_samples: int, check) -> tuple[int, ...]:
    """The checked K values, 0 allowed (the noise-only model)."""
    if isinstance(n_components, int | np.integer) and not isinstance(
        n_components, bool
    ):
        n_components = [n_components]
    try:
        given = list(n_components)
    except TypeError:
        given = [n_components]
    rest = [k for k in given if not (isinstance(k, int | np.integer) and k == 0)]
    zero = len(rest) < len(given)
    if zero and not rest:
        return (0,)
    return ((0,) if zero else ()) + check(rest, n_samples)


def _start_seeds(random_state, n_random_starts: int) -> list[int]:
    """One seed per k-means start, drawn from ``random_state`` (None: 0)."""
    seed = 0 if random_state is None else random_state
    rng = np.random.default_rng(seed) if isinstance(seed, int | np.integer) else seed
    if isinstance(rng, np.random.RandomState):
        return [int(s) for s in rng.randint(0, 2**31 - 1, size=n_random_starts)]
    return [int(s) for s in rng.integers(0, 2**31 - 1, size=n_random_starts)]


def _noise_only_row(n_samples: int, log_volume: float) -> dict:
    """The noise-only model (G = 0): every row uniform over V, no parameter."""
    log_likelihood = -n_samples * log_volume
    return {
        "model": "noise",
        "n_components": 0,
        "log_likelihood": log_likelihood,
        "n_parameters": 0,
        "bic": bic(log_likelihood, 0, n_samples),
        "noise_weight": 1.0,
        "status": "ok",
        "reason": "",
        "start": "",
        "n_starts_ok": 1,
        "n_starts": 1,
        "n_iter": 0,
        "seconds": 0.0,
    }


def _search_cell(
    X: np.ndarray,
    model: str,
    k: int,
    mask: np.ndarray,
    log_volume: float,
    settings: dict,
    seeds: list[int],
) -> tuple[dict, NoiseFit | None]:
    """Every start of one cell; its table row and best fit (None: all failed)."""
    began = time.perf_counter()
    starts = [(settings["init_params"], settings["random_state"], "")]
    starts += [("kmeans", seed, f"-{i}") for i, seed in enumerate(seeds)]
    best, best_key, best_start, errors, n_ok = None, None, "", [], 0
    for method, seed, suffix in starts:
        name = f"{method}{suffix}"
        try:
            fit = _fit(
                X,
                k,
                model,
                mask,
                log_volume,
                **{**settings, "init_params": method, "random_state": seed},
            )
        except (ValueError, np.linalg.LinAlgError, FloatingPointError) as error:
            errors.append(str(error))
            continue
        n_ok += fit.status == "ok"
        key = (fit.status == "ok", fit.log_likelihood)
        if best_key is None or key > best_key:
            best, best_key, best_start = fit, key, name
    row = {"model": model, "n_components": k, "n_starts": len(starts)}
    row["n_starts_ok"] = n_ok
    if best is None:
        row.update(status="failed", reason=errors[0], start="")
    else:
        row.update({c: getattr(best, c) for c in _COLUMNS.split()[2:8]})
        row.update(start=best_start, n_iter=best.n_iter)
    row["seconds"] = time.perf_counter() - began
    return row, best
