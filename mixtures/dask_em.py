"""EM on a Dask array: the engine's pass on every block, the sums across workers.

One EM iteration needs the data only through sufficient statistics: per
component the responsibility mass, the first and second moments about the
current means, and the log-likelihood. The engine's fused pass
(:func:`mixtures.passes.em_pass`, compiled or NumPy) computes exactly these
for any block of rows, about centres that depend on the parameters alone,
so the statistics of a Dask array are the sum of its blocks' ones.

Per iteration, :func:`dask_scored_pass` sends the current parameters to the
workers once (one task key), runs the pass on every row block, and adds the
blocks' statistics in a fixed binary tree (the same order on every run and
on any cluster); only the (K, D, D) sums reach the client, which runs the
M-step. The data are read once per iteration and never gathered.

What needs rows rather than sums is done on a seeded sample of rows, drawn
once (:func:`read_rows`): the starts (k-means, random rows, as in memory
but on the sample), the distinct-row count of the degenerate-component
policy, and the order in which a degenerate component is reseeded from
badly explained rows. The policy's per-feature scales come from the whole
array, in the same pass as the sample. With explicit starts
(``means_init``...) the fit equals the in-memory fit up to the order of
floating-point sums.

MAP-EM's prior is resolved from the whole array's moments (one more pass
for the data's covariance when the prior has no scale of its own). With
``missing="em"``, a block with holes is scored over each row's observed
values (:func:`mixtures.missing.missing_scored_pass`); the sample's holes
are filled by the whole array's observed means (:mod:`mixtures.dask_rows`).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from mixtures.dask_rows import (
    DaskRows,
    data_covariance,
    per_block,
    policy_for,
    read_rows,
)
from mixtures.em import EMRun, run_em
from mixtures.fit_checkpoint import FitCheckpoint, checkpointed_run
from mixtures.missing import (
    find_patterns,
    missing_scored_pass,
    observed_score_and_label,
)
from mixtures.passes import _scored_pass, score_and_label
from mixtures.prior import as_prior

__all__ = [
    "DEFAULT_SAMPLE_ROWS",
    "dask_scored_pass",
    "fit_dask",
    "is_dask_array",
]

#: Rows drawn for the starts and the policy's row-level rules.
DEFAULT_SAMPLE_ROWS = 50_000


def is_dask_array(X: Any) -> bool:
    """Whether ``X`` is a ``dask.array.Array`` (without importing Dask)."""
    return type(X).__module__.startswith("dask.array") and hasattr(X, "to_delayed")


def _block_sums(block, weights, _, params, kernel):
    """One block's statistics, its weighted log-likelihood and its weight.

    A block with missing values is scored over each row's observed values
    (:func:`mixtures.missing.missing_scored_pass`).
    """
    block = np.asarray(block)
    if weights is None:
        weights = np.ones(block.shape[0])
    if np.isnan(block).any():
        patterns = find_patterns(block, allow_empty_feature=True)
        stats, log_prob, _ = missing_scored_pass(block, patterns, kernel)(
            None, weights, params
        )
        return stats, float(np.sum(weights * log_prob)), stats.total_weight
    if not np.any(weights):  # a block of zero weights adds nothing
        stats = _scored_pass(block[:1], np.ones(1), params, kernel, threads=1)[0]
        zero = dataclasses.replace(
            stats,
            weight_sums=np.zeros_like(stats.weight_sums),
            first_moments=np.zeros_like(stats.first_moments),
            second_moments=np.zeros_like(stats.second_moments),
            total_weight=0.0,
        )
        return zero, 0.0, 0.0
    # One thread per block: Dask runs the blocks side by side.
    stats, _, mean = _scored_pass(block, weights, params, kernel, threads=1)
    # The pass's own sum (rows of weight 0 count for nothing): no BLAS call
    # over the rows, whose threads would spin against the other blocks'.
    return stats, mean * stats.total_weight, stats.total_weight


def _added(left, right):
    """Two blocks' sums added (statistics about the same centres)."""
    return left[0] + right[0], left[1] + right[1], left[2] + right[2]


def _tree_sum(parts: list):
    """``parts`` added pairwise in a fixed binary tree of delayed tasks."""
    from dask import delayed

    while len(parts) > 1:
        paired = [
            delayed(_added, pure=True)(parts[i], parts[i + 1])
            for i in range(0, len(parts) - 1, 2)
        ]
        parts = paired + ([parts[-1]] if len(parts) % 2 else [])
    return parts[0]


def dask_total(X, sample_weight, params, kernel: str):
    """``(stats, sum_n w_n log p(x_n), sum_n w_n)`` over a Dask array, summed."""
    import dask

    parts = per_block(X, _block_sums, params, kernel, weights=sample_weight)
    (total,) = dask.compute(_tree_sum(parts))
    return total


def dask_scored_pass(X, sample_weight, sample: np.ndarray, kernel: str):
    """The engine's scored pass over the Dask array ``X`` (n_samples, n_features).

    Returns a function ``(X_sample, w_sample, params) -> (stats, log p of
    the sample's rows, mean log-likelihood)`` for :func:`mixtures.em.em_step`:
    the statistics and the mean are the whole array's; the per-row
    log-densities are those of ``sample`` (the rows the policy reseeds
    from), computed here, never the whole array's.
    """

    def scored(_X, _w, params):
        stats, log_likelihood, weight = dask_total(X, sample_weight, params, kernel)
        log_prob = _score_and_label(sample, params, kernel)[0]
        return stats, log_prob, log_likelihood / weight

    return scored


def _checked(X, sample_weight, options):
    """``X`` as float rows with its columns in one chunk; the weights as Dask."""
    import dask.array as da

    if X.ndim == 1:
        X = X[:, None]
    if X.ndim != 2:
        raise ValueError(f"Expected a 2-D Dask array (rows, features); got {X.ndim}-D.")
    if X.dtype not in (np.float32, np.float64):
        X = X.astype(np.float64)
    if X.numblocks[1] != 1:
        X = X.rechunk({1: -1})  # a row block holds whole rows
    if X.shape[0] < options.n_components:
        raise ValueError(
            f"Expected n_samples >= n_components but got n_components = "
            f"{options.n_components}, n_samples = {X.shape[0]}."
        )
    if sample_weight is not None:
        sample_weight = da.asarray(sample_weight)
        if sample_weight.shape != (X.shape[0],):
            raise ValueError(
                f"sample_weight must have shape ({X.shape[0]},); "
                f"got {sample_weight.shape}."
            )
    return X, sample_weight


def fit_dask(
    X,
    sample_weight,
    options,
    random_state,
    *,
    sample_size=None,
    checkpoint=None,
    checkpoint_every: int = 10,
    initial_params=None,
    rows: DaskRows | None = None,
):
    """:func:`mixtures.fit_em` on a Dask array ``X`` (n_samples, n_features).

    Rows in chunks, any number; every iteration's statistics are summed
    across the blocks (module docstring). ``sample_weight`` is None or a
    Dask (or NumPy) array of shape (n_samples,). The starts use a seeded
    sample of ``sample_size`` rows (default :data:`DEFAULT_SAMPLE_ROWS`).
    With ``checkpoint`` (a file path), the state is saved every
    ``checkpoint_every`` iterations and a fit started again with the same
    inputs and file resumes from it (:mod:`mixtures.fit_checkpoint`).
    ``initial_params`` (a :class:`mixtures.MixtureParams`) starts one run
    from them, with no initialisation. ``rows`` (:func:`read_rows`, for the
    same ``X``, weights and sample size) saves reading the sample and the
    moments again. Returns an :class:`mixtures.fitting.EMResult` whose
    ``labels`` is a lazy Dask array (n_samples,): compute or store it block
    by block.
    """
    from mixtures._parallel import host_kernel
    from mixtures.fitting import EMResult, _initial_params, as_random_state

    X, sample_weight = _checked(X, sample_weight, options)
    options.check_initial_params(initial_params, X.shape[1])
    kernel = host_kernel(options.kernel)
    n_rows = DEFAULT_SAMPLE_ROWS if sample_size is None else int(sample_size)
    store = _store(checkpoint, X, sample_weight, options, random_state, n_rows)
    random_state = as_random_state(random_state)
    if rows is None:
        rows = read_rows(
            X, sample_weight, max(n_rows, options.n_components), random_state,
            allow_nan=options.missing == "em",
        )  # fmt: skip
    sample, sample_w = rows.filled_sample, rows.sample_weight
    policy = policy_for(
        rows,
        X.dtype,
        options,
        options.reg_covar,
        _prior(X, sample_weight, rows, options),
    )
    em = {
        "X": sample,
        "sample_weight": sample_w,
        "policy": policy,
        "tol": options.tol,
        "max_iter": options.max_iter,
        "acceleration": options.acceleration,
        "stopping": options.stopping,
        "kernel": kernel,
        "scored_pass": dask_scored_pass(X, sample_weight, rows.sample, kernel),
    }
    inits = options.initial_arrays(X.shape[1])
    restarts: list[EMRun] = []
    for restart in range(1 if initial_params is not None else options.n_init):
        if initial_params is not None:
            start, events = initial_params, list[Any]()
        else:  # every start is drawn, a finished one's too: the same stream
            start, events = _initial_params(
                sample, sample_w, sample_weight is None, options, inits,
                random_state, policy, restart, None, kernel,
            )  # fmt: skip
        restarts.append(_run(store, restart, start, events, checkpoint_every, em))
    bounds = [run.lower_bound for run in restarts]
    best_index = 0 if options.max_iter == 0 else int(np.argmax(bounds))
    best = restarts[best_index]
    _, total, weight = dask_total(X, sample_weight, best.params, kernel)
    labels = X.map_blocks(
        _block_labels, best.params, kernel, drop_axis=1, dtype=np.int64
    )
    return EMResult(
        params=best.params,
        lower_bounds=best.lower_bounds,
        n_iter=best.n_iter,
        converged=best.converged,
        lower_bound=best.lower_bound,
        log_likelihood=total,
        mean_log_likelihood=total / weight,
        labels=labels,
        best_restart=best_index,
        restarts=tuple(restarts),
    )


def _run(store, restart: int, start, events, checkpoint_every: int, em: dict):
    """One restart from ``start``: run, read back, or resumed and checkpointed."""
    if store is None:
        return run_em(
            initial_params=start, restart=restart, initial_events=tuple(events), **em
        )
    if restart < len(store.finished):
        return store.finished[restart]
    run = checkpointed_run(
        store, restart, start, checkpoint_every, initial_events=events, **em
    )
    store.finished.append(run)
    store.current = None
    store.save()
    return run


def _store(checkpoint, X, sample_weight, options, random_state, n_rows):
    """The checkpoint of this fit's inputs, or None without a path."""
    if checkpoint is None:
        return None
    seed = random_state if isinstance(random_state, int | np.integer) else None
    if seed is None:
        raise ValueError(
            "a checkpointed fit needs an integer random_state, so that a "
            "resumed fit draws the same starts."
        )
    weights = None if sample_weight is None else sample_weight.name
    key = (X.name, X.shape, X.chunks, weights, repr(options), int(seed), n_rows)
    return FitCheckpoint(checkpoint, key)


def _block_labels(block, params, kernel):
    """The most probable component of each row of one block (n_block,)."""
    return _score_and_label(np.asarray(block), params, kernel)[1]


def _score_and_label(rows: np.ndarray, params, kernel: str):
    """``log p`` of each row and its most probable component, holes or not."""
    if np.isnan(rows).any():
        return observed_score_and_label(rows, params, kernel=kernel)
    return score_and_label(rows, params, kernel=kernel)


def _prior(X, sample_weight, rows: DaskRows, options):
    """The prior resolved for the whole array, or None.

    Without its own scale, the prior takes the data's covariance: one more
    pass.
    """
    prior = as_prior(options.prior)
    if prior is None:
        return None
    covariance = None if prior.scale is not None else data_covariance(
        X, sample_weight, rows
    )  # fmt: skip
    return prior.resolve_moments(rows.mean, covariance, options.n_components)
