"""What a fit on a Dask array needs of its rows, read in one pass.

:func:`read_rows` draws the seeded sample of rows the starts and the
degenerate-component policy's row-level rules use, and sums the per-feature
moments the policy's scales (and the prior's mean) come from, one task per
block: only the sample and (D,) sums reach the client. With missing values
(``allow_nan``) the moments are those of the data with every hole filled by
its feature's observed mean, as in memory (:func:`mixtures.missing.mean_filled`).
:func:`data_covariance` is one more pass, for a prior without its own scale.
"""

from __future__ import annotations

import dataclasses
import warnings

import numpy as np

from mixtures.degenerate import DegeneracyPolicy, _count_distinct_rows
from mixtures.missing import mean_filled

__all__ = ["DaskRows", "data_covariance", "per_block", "read_rows"]


#: Shared arguments up to this size (pickled) travel inside every block's
#: task; larger ones are sent once, as a task of their own.
EMBED_BYTES = 1 << 20


def per_block(X, function, *shared, weights=None, items=None) -> list:
    """One delayed ``function(block, weights, item, *shared)`` per row block of ``X``.

    In block order: ``block`` (rows, D), ``weights`` its (rows,) block of
    ``weights`` (None without), ``item`` the block's entry of ``items`` (a
    sequence with one object per block; None without). When the ``shared``
    arguments are small (:data:`EMBED_BYTES`), each call is fused with the
    tasks that make its block (one task per block reads and reduces it:
    ``map_blocks``, whose graph Dask fuses), so no block is ever held in a
    worker's memory between two tasks, nor moved between workers. Larger
    ``shared`` arguments are sent once as their own task, and each call
    depends on its block's task.
    """
    import functools
    import pickle

    import dask.array as da
    from dask import delayed

    n_blocks = X.numblocks[0]
    arrays = [X]
    if weights is not None:
        arrays.append(weights.rechunk((X.chunks[0],))[:, None])
    if items is not None:
        holder = np.empty((n_blocks, 1), dtype=object)
        holder[:, 0] = list(items)
        arrays.append(da.from_array(holder, chunks=(1, 1)))
    size = len(pickle.dumps(shared, protocol=pickle.HIGHEST_PROTOCOL))
    if size > EMBED_BYTES:
        sent = tuple(delayed(value, pure=True) for value in shared)
        call = functools.partial(
            _call, function, weights is not None, items is not None
        )
        parts = [array.to_delayed().ravel() for array in arrays]
        return [
            delayed(call, pure=True)(*(part[i] for part in parts), *sent)
            for i in range(n_blocks)
        ]
    call = functools.partial(
        _boxed, function, weights is not None, items is not None, shared
    )
    results = da.map_blocks(
        call,
        *arrays,
        drop_axis=1,
        chunks=((1,) * n_blocks,),
        token=function.__name__.strip("_"),  # the tasks' name on a dashboard
        dtype=object,
        meta=np.empty((0,), dtype=object),
    )
    return [delayed(_unbox, pure=True)(part) for part in results.to_delayed()]


def _call(function, has_weights: bool, has_items: bool, block, *rest):
    """``function(block, weights, item, *shared)`` from map_blocks' blocks."""
    given = list(rest)
    weights = np.asarray(given.pop(0))[:, 0] if has_weights else None
    item = given.pop(0)[0, 0] if has_items else None
    return function(np.asarray(block), weights, item, *given)


def _boxed(function, has_weights, has_items, shared, *blocks):
    """:func:`_call`'s result in a one-element object array (a map_blocks block)."""
    box = np.empty((1,), dtype=object)
    box[0] = _call(function, has_weights, has_items, *blocks, *shared)
    return box


def _unbox(box):
    return box[0]


@dataclasses.dataclass(frozen=True)
class DaskRows:
    """The sample and moments of a Dask array's rows.

    Attributes
    ----------
    sample : ndarray of shape (n_sample, n_features)
        Seeded sample of rows, in memory, holes (NaN) kept.
    sample_weight : ndarray of shape (n_sample,)
    fill : ndarray of shape (n_features,)
        Each feature's mean over its observed values (unweighted, as
        :func:`mixtures.missing.mean_filled`): what fills the holes.
    mean : ndarray of shape (n_features,)
        The weighted mean of the array with its holes filled.
    variances : ndarray of shape (n_features,)
        The weighted per-feature variances of the array with its holes
        filled.
    total_weight : float
    mean_weight : float
        The mean positive weight.
    n_missing : int
        Missing cells in the whole array.
    covariances : dict
        :func:`data_covariance`'s results by array and weights, so that the
        cells of a search pass over the rows for it once.
    """

    sample: np.ndarray
    sample_weight: np.ndarray
    fill: np.ndarray
    mean: np.ndarray
    variances: np.ndarray
    total_weight: float
    mean_weight: float
    n_missing: int
    covariances: dict = dataclasses.field(
        default_factory=dict, repr=False, compare=False
    )

    @property
    def filled_sample(self) -> np.ndarray:
        """The sample with its holes filled by the whole array's means."""
        return mean_filled(self.sample, self.fill) if self.n_missing else self.sample


def read_rows(
    X, sample_weight, n_rows: int, random_state, *, allow_nan: bool = False
) -> DaskRows:
    """The sample and the per-feature moments of the Dask array ``X``, in one pass.

    Up to ``n_rows`` rows are drawn without replacement, seeded by
    ``random_state`` (all rows, and no draw, when there are no more); they
    keep their order in ``X``. The moments come from sums about a centre
    near the mean (the first block's), so that the squares lose no digits to
    the data's offset. A model search reads them once for all its cells
    (:mod:`mixtures.dask_select`).

    Raises
    ------
    ValueError
        On NaN unless ``allow_nan``; with it, on a row or a feature with
        every value missing (as :func:`mixtures.missing.find_patterns`).
    """
    import dask

    n_samples = X.shape[0]
    chosen = np.arange(n_samples)
    if n_samples > n_rows:
        chosen = np.sort(random_state.choice(n_samples, size=n_rows, replace=False))
    first = next(i for i, rows in enumerate(X.chunks[0]) if rows)
    head = np.asarray(X.blocks[first].compute(), np.float64)
    with warnings.catch_warnings():  # a feature missing in the whole block
        warnings.simplefilter("ignore", RuntimeWarning)
        centre = np.nan_to_num(np.nanmean(head, axis=0))
    ends = np.cumsum(X.chunks[0])
    cuts = np.searchsorted(chosen, np.concatenate([[0], ends]))
    local = [
        chosen[cuts[i] : cuts[i + 1]] - (ends[i] - X.chunks[0][i])
        for i in range(X.numblocks[0])
    ]
    parts = dask.compute(
        *per_block(X, _block_moments, centre, weights=sample_weight, items=local)
    )
    sums = [sum(part[j] for part in parts) for j in range(2, 11)]
    total, positive, count, plain, observed, linear, squares, n_missing, n_empty = sums
    _check_holes(int(n_missing), int(n_empty), count, allow_nan)
    shift = plain / count  # the fill, about the centre
    # The holes' weight at the fill, added to the observed values' sums.
    hole_weight = total - observed
    linear = linear + hole_weight * shift
    squares = squares + hole_weight * shift**2
    offset = linear / total
    variances = np.maximum(squares / total - offset**2, 0.0)
    return DaskRows(
        np.concatenate([part[0] for part in parts]),
        np.concatenate([part[1] for part in parts]),
        centre + shift,
        centre + offset,
        variances,
        float(total),
        float(total) / float(positive),
        int(n_missing),
    )


def _check_holes(n_missing: int, n_empty: int, observed, allow_nan: bool) -> None:
    if n_missing and not allow_nan:
        raise ValueError(
            f"Input X contains NaN ({n_missing} missing cells): pass "
            "missing='em' to fit over each row's observed values."
        )
    if n_empty:
        raise ValueError(
            f"{n_empty} row(s) have every feature missing: they carry no "
            "information about the mixture; drop them before fitting."
        )
    absent = np.flatnonzero(observed == 0)
    if absent.size:
        raise ValueError(
            f"feature(s) {', '.join(map(str, absent))} are missing in every row: "
            "nothing can be learned about them; drop those columns."
        )


def _block_moments(block, weights, chosen, centre):
    """One block's sample and sums.

    Its sampled rows and weights (at positions ``chosen`` in the block), its
    total and positive weight; per feature (D,) the count of its observed
    values and their sum of ``x - centre``, their weight and weighted sums
    of ``x - centre`` and of its squares; its missing cells and its rows
    with no value.
    """
    block = np.asarray(block)
    weights = np.ones(block.shape[0]) if weights is None else np.asarray(weights)
    weights = weights.astype(np.float64, copy=False)
    holes = np.isnan(block)
    n_holes = int(holes.sum())
    shifted = block.astype(np.float64) - centre  # one copy of the block
    total = float(weights.sum())
    if n_holes:
        shifted[holes] = 0.0
        observed = (~holes).astype(np.float64)
        count, observed_weight = observed.sum(axis=0), weights @ observed
    else:  # the common case: no second block-sized array
        count = np.full(block.shape[1], float(block.shape[0]))
        observed_weight = np.full(block.shape[1], total)
    # einsum, not a BLAS product over the rows: OpenBLAS's threads would
    # spin against the other blocks' tasks.
    return (
        block[chosen],
        weights[chosen],
        total,
        int(np.count_nonzero(weights > 0)),
        count,
        shifted.sum(axis=0),
        observed_weight,
        np.einsum("n,nd->d", weights, shifted),
        np.einsum("n,nd,nd->d", weights, shifted, shifted),
        n_holes,
        int(holes.all(axis=1).sum()) if n_holes else 0,
    )


def data_covariance(X, sample_weight, rows: DaskRows) -> np.ndarray:
    """The (D, D) weighted covariance of ``X`` with its holes filled.

    Denominator ``max(total weight - 1, 1)``, as :meth:`ConjugatePrior.resolve`;
    one pass over ``X``, once per array and weights (kept on ``rows``).
    """
    import dask

    key = (X.name, None if sample_weight is None else sample_weight.name)
    if key not in rows.covariances:
        parts = dask.compute(
            *per_block(X, _block_scatter, rows.mean, rows.fill, weights=sample_weight)
        )
        rows.covariances[key] = sum(parts) / max(rows.total_weight - 1.0, 1.0)
    return rows.covariances[key].copy()


def _block_scatter(block, weights, _, mean, fill) -> np.ndarray:
    """``sum_n w_n (y_n - mean)(y_n - mean)^T`` of one block, holes at ``fill``."""
    block = np.asarray(block, dtype=np.float64)
    weights = np.ones(block.shape[0]) if weights is None else np.asarray(weights)
    centred = np.where(np.isnan(block), fill, block) - mean
    return np.einsum("n,nd,ne->de", weights.astype(np.float64), centred, centred)


def policy_for(rows: DaskRows, dtype, options, reg_covar, prior) -> DegeneracyPolicy:
    """The degenerate policy of a fit on the array ``rows`` was read from.

    Its scales from the whole array, its distinct rows from the sample's
    rows of positive weight (holes filled); ``prior`` resolved, or None.
    """
    policy = DegeneracyPolicy.from_moments(
        rows.variances.copy(),  # from_moments replaces zeros in place
        dtype,
        rows.mean_weight,
        reg_covar,
        prior,
        n_distinct_rows=_count_distinct_rows(
            rows.filled_sample[rows.sample_weight > 0], enough=options.n_components
        ),
    )
    if options.reg_covar_relative:  # per feature, in units of its variance
        policy = dataclasses.replace(
            policy, reg_covar=reg_covar * policy.feature_scale**2
        )
    return policy
