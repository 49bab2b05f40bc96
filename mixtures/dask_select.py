"""The model search on a Dask array: starts from a sample, EM on every row.

mclust's answer to large data (``Mclust(x, initialization = list(subset =
...))``, Fraley, Raftery & Wehrens 2005) is to run the costly part of the
search, the hierarchical start, on a random subset of rows and then EM on
all of them. :func:`search_dask` does the same with the whole search:

1. **On a sample** (a seeded draw of ``sample_size`` rows, in memory):
   :func:`mixtures.select.search` with every start it uses in memory (the
   six hierarchical ones, k-means, random responsibilities, the second
   pass's moves), so every cell starts from the best maximum the sample has.
2. **On all rows** (the Dask array, block by block on whatever scheduler or
   cluster is active): every cell's sample fit is the start of one EM run
   to convergence (:func:`mixtures.dask_em.fit_dask`), whose statistics are
   summed across blocks. Only (K, D, D) sums reach the client.
3. **The table** holds each cell's log-likelihood over all rows, BIC with
   n the number of rows, and ICL from a pass of classification entropies;
   the status is :func:`mixtures.diagnostics.classify`'s verdict on the
   final parameters, judged against the sample's rows (the rule that no
   flagged cell is chosen holds as in memory).

The cells run one after another; each one's passes are spread over the
workers. The sample, its per-feature moments and its distinct-row count
are read once for every cell (:func:`mixtures.dask_em.read_rows`).

References
----------
Fraley, C., Raftery, A. E. and Wehrens, R. (2005). Incremental model-based
clustering for large datasets with small clusters. J. Comput. Graph. Stat.
14:529-546.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Iterable

import numpy as np
import pandas as pd
from sklearn.exceptions import ConvergenceWarning

from mixtures.dask_em import DEFAULT_SAMPLE_ROWS, _checked, fit_dask
from mixtures.dask_rows import per_block, read_rows
from mixtures.diagnostics import bic, classification_entropy, classify, in_force
from mixtures.fitting import DegenerateComponentWarning, EMOptions
from mixtures.select import _COLUMNS, SearchResult, _estimator, search

__all__ = ["search_dask"]


def search_dask(
    X,
    models: Iterable[str] | str | None = None,
    n_components: Iterable[int] | int = range(1, 10),
    *,
    sample_size: int = DEFAULT_SAMPLE_ROWS,
    random_state: int | None = None,
    n_jobs: int | None = None,
    tol: float = 1e-8,
    max_iter: int = 2000,
    reg_covar: float = 1e-6,
    reg_covar_relative: bool = False,
    prior=None,
    missing: str = "error",
    progress: bool = False,
    checkpoint=None,
) -> SearchResult:
    """:func:`mixtures.select.search` on a Dask array ``X`` (n_samples, n_features).

    Parameters
    ----------
    X : dask.array.Array of shape (n_samples, n_features)
        Rows in chunks (any number), columns in one chunk (rechunked if not).
    models, n_components, random_state, tol, max_iter, reg_covar, reg_covar_relative
        As in :func:`mixtures.select.search`; ``random_state`` (None: 0) also
        draws the sample.
    prior, missing
        As in :func:`mixtures.select.search`: MAP-EM's prior (resolved from
        the whole array on all rows, from the sample in its search), and
        ``"em"`` to fit over each row's observed values.
    sample_size : int, default=50_000
        Rows of the sample searched in memory (all rows when fewer).
    n_jobs : int or None, default=None
        Processes of the sample's search (joblib); the passes over all
        rows run on Dask's active scheduler.
    progress : bool, default=False
        tqdm bars over the sample's cells and then over the cells on all rows.
    checkpoint : path-like or None
        The sample search's cell store (:func:`mixtures.select.search`).

    Returns
    -------
    SearchResult
        Its ``table`` and ``fits`` are the fits over all rows; ``X`` is the
        Dask array.
    """
    seed = 0 if random_state is None else random_state
    if int(sample_size) < 1:
        raise ValueError(
            f"sample_size must be a positive number of rows; got {sample_size}."
        )
    # The EM settings, one dict for the sample's search and every cell.
    settings = {
        "tol": tol,
        "max_iter": max_iter,
        "reg_covar": reg_covar,
        "reg_covar_relative": reg_covar_relative,
        "prior": prior,
        "missing": missing,
    }
    # Validates the settings before any pass over the data.
    X, _ = _checked(X, None, EMOptions(n_components=1, **settings))
    rows = read_rows(
        X,
        None,
        int(sample_size),
        np.random.RandomState(seed),
        allow_nan=missing == "em",
    )
    on_sample = search(
        rows.sample,
        models,
        n_components,
        random_state=seed,
        n_jobs=n_jobs,
        progress=progress,
        checkpoint=checkpoint,
        **settings,
    )
    cells = list(on_sample.table.itertuples(index=False))
    if progress:
        from tqdm.auto import tqdm

        cells = tqdm(cells, desc="cells on all rows")
    table, fits = [], {}
    for cell in cells:
        row, fitted = _full_cell(X, rows, cell, on_sample, settings, seed)
        table.append(row)
        if fitted is not None:
            fits[(cell.model, cell.n_components)] = fitted
    frame = pd.DataFrame(table).reindex(columns=_COLUMNS)
    frame["n_components"] = frame["n_components"].astype(int)
    return SearchResult(frame, fits, X, on_sample.n_resumed)


def _full_cell(X, rows, cell, on_sample, settings: dict, seed: int):
    """One cell's row of the table over all rows, and its fitted estimator."""
    key = (cell.model, cell.n_components)
    row = cell._asdict()
    started = time.perf_counter()
    start = on_sample.fits.get(key)
    if start is None:  # failed on the sample: nothing to start from
        return row, None
    options = EMOptions(
        n_components=cell.n_components,
        covariance_type=cell.model,
        acceleration="squarem",
        **settings,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DegenerateComponentWarning)
        warnings.simplefilter("ignore", ConvergenceWarning)
        result = fit_dask(
            X, None, options, seed, initial_params=start.params_, rows=rows
        )
    run = result.restarts[result.best_restart]
    params = result.params
    n_parameters = params.n_parameters()
    entropy = _total(X, _block_entropy, params)
    reg = settings["reg_covar"]
    if settings["reg_covar_relative"]:
        reg = reg * rows.variances
    verdict = classify(
        params,
        rows.sample,
        reg_covar=reg,
        covariance_type=cell.model,
        converged=result.converged,
        n_iter=result.n_iter,
        in_force=in_force(run),
        log_likelihood=result.log_likelihood,
    )
    criterion = bic(result.log_likelihood, n_parameters, X.shape[0])
    row.update(
        log_likelihood=result.log_likelihood,
        n_parameters=n_parameters,
        bic=criterion,
        icl=criterion + 2.0 * entropy,
        status=verdict.status,
        reason=verdict.reason,
        start=f"sample:{cell.start}",
        n_iter=result.n_iter,
        n_iter_all=cell.n_iter_all + result.n_iter,
        seconds=cell.seconds + time.perf_counter() - started,
    )
    return row, _estimator(result, cell.model, settings, None)


def _total(X, function, params) -> float:
    """``sum`` over the blocks of ``function(block, None, None, params)``."""
    import dask

    return float(sum(dask.compute(*per_block(X, function, params))))


def _block_entropy(block, _weights, _item, params) -> float:
    """One block's ``-sum_n log max_k tau_nk`` (ICL's penalty, halved)."""
    return classification_entropy(block, params)
