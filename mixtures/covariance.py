"""Covariance parameterisations: one small object per covariance model.

Each model owns everything that depends on how a covariance is stored: its
array shape, the Cholesky factor of the precision, the log-determinant and
Mahalanobis terms of the log-density, the second-moment statistic the M-step
needs, the M-step itself, and the parameter count. The EM loop only talks to
the :class:`CovarianceModel` protocol, so a new parameterisation (for example
one of mclust's constrained models) is added by registering one object.

Conventions shared with scikit-learn:

* ``precisions_cholesky`` is the upper-triangular ``P`` with ``P @ P.T`` equal
  to the precision matrix, so the squared Mahalanobis distance is
  ``|(x - mu) @ P|^2`` and ``log det(precision) = 2 * sum(log diag(P))``.
* Shapes by covariance type, with ``K`` components and ``D`` features::

      full       (K, D, D)
      tied       (D, D)
      diag       (K, D)
      spherical  (K,)

A covariance is *collapsed* when it is not positive definite or when some
feature's conditional variance (a squared Cholesky pivot) falls below the
per-feature floor passed in; collapsed covariances are reported, never
factorised blindly, so the caller can apply its degenerate-component policy.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable
from typing import Protocol

import numpy as np
from scipy import linalg

from mixtures._parallel import active_kernel

__all__ = [
    "ALIASES",
    "COVARIANCE_MODELS",
    "MCLUST_MODELS",
    "UNIVARIATE_MODELS",
    "CovarianceModel",
    "Diag",
    "Full",
    "Spherical",
    "Tied",
    "get_covariance_model",
    "mclust_name",
    "models_for",
    "rows_for",
]


class CovarianceModel(Protocol):
    """What the EM engine needs from a covariance parameterisation."""

    name: str
    #: True when one covariance is *stored* for all components ('tied').
    shared: bool
    #: True when every component has the same covariance (EII, EEI, EEE).
    single_covariance: bool
    #: True when the M-step iterates (the model search schedules these first).
    iterative: bool

    def shape(self, n_components: int, n_features: int) -> tuple[int, ...]:
        """Shape of the covariance (and precision) array."""
        ...

    def n_parameters(self, n_components: int, n_features: int) -> int:
        """Number of free covariance parameters."""
        ...

    def precision_cholesky(
        self, covariances: np.ndarray, floor: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """Cholesky factors of the precisions, and a mask of collapsed components.

        Collapsed entries of the returned factor are undefined; the caller must
        repair the covariance (see :meth:`add_floor`) and call again.
        """
        ...

    def add_floor(
        self, covariances: np.ndarray, floor: np.ndarray, mask: np.ndarray
    ) -> np.ndarray:
        """Return covariances with ``floor`` (D,) added to the masked components."""
        ...

    def log_det_precision_cholesky(
        self, precisions_cholesky: np.ndarray, n_features: int
    ) -> np.ndarray:
        """``sum(log diag(P))`` per component, shape (K,)."""
        ...

    #: Which compiled pass serves this model (:mod:`mixtures._kernel`):
    #: ``"full"`` for (K, D, D) factors, ``"diag"`` for (K, D) ones.
    kernel: str

    def kernel_factors(
        self, precisions_cholesky: np.ndarray, n_components: int, n_features: int
    ) -> np.ndarray:
        """The compiled pass's input: (K, D, D) factors or (K, D) precisions."""
        ...

    def moments_from_kernel(self, second: np.ndarray) -> np.ndarray:
        """The model's second-moment statistic from the pass's (K, D, D) or (K, D)."""
        ...

    def chunk_squared_mahalanobis(
        self, Xb: np.ndarray, means: np.ndarray, precisions_cholesky: np.ndarray
    ) -> tuple[np.ndarray, object]:
        """``|(x - mu_k) @ P_k|^2`` for a chunk of rows, shape (B, K).

        All arrays are in the chunk's dtype and the same coordinates (the
        caller subtracts a common origin first). The second value is a cache
        that :meth:`chunk_moments` may reuse when given the same ``means``.
        """
        ...

    def chunk_moments(
        self,
        Xb: np.ndarray,
        weighted_resp: np.ndarray,
        centres: np.ndarray,
        cache: object = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """First and second moments of a chunk about per-component ``centres``.

        Returns ``S1`` (K, D) and this model's second-moment statistic, both
        float64: (K, D, D) 'full', (D, D) 'tied', (K, D) 'diag', (K,)
        'spherical'. ``weighted_resp`` (B, K) holds ``w_n r_nk``.
        """
        ...

    def rows_per_chunk(
        self, n_components: int, n_features: int, itemsize: int = 8
    ) -> int:
        """Rows per chunk so that a chunk's working set stays in cache."""
        ...

    def covariances_from_moments(
        self,
        weight_sums: np.ndarray,
        first_moments: np.ndarray,
        offsets: np.ndarray,
        second_moments: np.ndarray,
        denominators: np.ndarray,
        reg_covar: float | np.ndarray,
        previous: np.ndarray | None = None,
    ) -> np.ndarray:
        """Covariances from centred moments (the M-step for this model).

        ``previous`` (this model's storage) warm-starts the iterative M-steps;
        the closed-form ones ignore it.
        """
        ...

    def moments_from_full(self, matrices: np.ndarray) -> np.ndarray:
        """(K, D, D) matrices in the form of this model's second-moment statistic."""
        ...

    def precisions_from_cholesky(self, precisions_cholesky: np.ndarray) -> np.ndarray:
        """Precision matrices (or vectors) from their Cholesky factors."""
        ...

    def precision_cholesky_from_precisions(self, precisions: np.ndarray) -> np.ndarray:
        """Cholesky factors from user-given precisions (validated beforehand)."""
        ...

    def covariances_from_precision_cholesky(
        self, precisions_cholesky: np.ndarray
    ) -> np.ndarray:
        """Covariances from Cholesky factors of the precisions."""
        ...

    def to_full(
        self, covariances: np.ndarray, n_components: int, n_features: int
    ) -> np.ndarray:
        """Covariances as a (K, D, D) stack of full matrices."""
        ...

    def from_full(self, full_covariances: np.ndarray) -> np.ndarray:
        """The model's covariances closest to a (K, D, D) stack (by moments)."""
        ...

    def check_precisions(self, precisions: np.ndarray) -> None:
        """Raise ValueError unless ``precisions`` are valid for this model."""
        ...


# ---------------------------------------------------------------------------
# Helpers shared by the matrix models (full, tied)


def _lapack(name: str, matrix: np.ndarray) -> Callable:
    """LAPACK's ``?<name>`` for ``matrix``'s type, looked up once per type.

    ``get_lapack_funcs`` costs about as much as a small factorisation, and
    scipy.linalg's wrappers (checks, batching) several times more: these are
    the very routines they call, with the same arguments.
    """
    key = (name, matrix.dtype.char)
    function = _LAPACK_FUNCTIONS.get(key)
    if function is None:
        (function,) = linalg.lapack.get_lapack_funcs((name,), (matrix,))
        _LAPACK_FUNCTIONS[key] = function
    return function


_LAPACK_FUNCTIONS: dict[tuple[str, str], Callable] = {}


def _cholesky_lower(matrix: np.ndarray, floor: np.ndarray) -> np.ndarray | None:
    """Lower Cholesky factor, or None if ``matrix`` is collapsed.

    Collapsed means not positive definite or a squared pivot (the variance of
    one feature given the preceding ones) below ``floor`` for that feature.
    The factor is LAPACK ``?potrf``'s, as ``scipy.linalg.cholesky(matrix,
    lower=True)`` computes it (the same call, without its overhead).
    """
    matrix = np.asarray(matrix)
    if matrix.ndim != 2 or matrix.shape[0] != matrix.shape[1] or not matrix.size:
        # Not what the models pass; scipy's checks and messages.
        if not np.all(np.isfinite(matrix)):
            return None
        try:
            lower = linalg.cholesky(matrix, lower=True, check_finite=False)
        except linalg.LinAlgError:
            return None
    else:
        if not np.isfinite(matrix).all():
            return None
        lower, info = _lapack("potrf", matrix)(matrix, lower=1, clean=1)
        if info > 0:  # not positive definite
            return None
        if info < 0:  # pragma: no cover - a square matrix is a legal argument
            raise ValueError(f"LAPACK potrf: illegal argument {-info}.")
    pivots = lower.diagonal() ** 2
    if (pivots < floor).any() or not np.isfinite(lower).all():
        return None
    return lower


def _triangular_inverse(matrix: np.ndarray, *, lower: bool) -> np.ndarray:
    """The inverse of one triangular matrix (LAPACK ``?trtri``).

    Called directly rather than through ``scipy.linalg.solve_triangular``,
    which in SciPy 1.17 costs milliseconds per small matrix when another
    process keeps the CPUs busy (its threading), against a microsecond here:
    an EM iteration on 272 rows calls it once per component.
    """
    inverse, info = _lapack("trtri", matrix)(matrix, lower=int(lower))
    if info != 0:
        raise np.linalg.LinAlgError(f"singular triangular matrix (LAPACK info {info}).")
    return np.tril(inverse) if lower else np.triu(inverse)


def _precision_cholesky_from_lower(lower: np.ndarray) -> np.ndarray:
    return _triangular_inverse(lower, lower=True).T


def _flip(matrix: np.ndarray) -> np.ndarray:
    return matrix[::-1, ::-1]


def _upper_cholesky_of_precision(precision: np.ndarray) -> np.ndarray:
    # Upper-triangular U with U @ U.T == precision: the lower Cholesky factor
    # of the row-and-column reversed matrix, reversed back.
    return _flip(linalg.cholesky(_flip(precision), lower=True))


def _covariance_from_precision_cholesky(prec_chol: np.ndarray) -> np.ndarray:
    # Sigma = (P P^T)^-1 = P^-T P^-1; one triangular solve, no general inverse.
    inv_p = _triangular_inverse(prec_chol, lower=False)
    return inv_p.T @ inv_p


def _check_symmetric_positive_definite(
    matrix: np.ndarray, what: str, model: str
) -> None:
    # scikit-learn's sentence first, so code matching its message keeps working.
    sentence = f"'{model} precision' should be symmetric, positive-definite"
    # np.allclose(matrix, matrix.T, rtol=1e-7, atol=1e-10), without its cost.
    if not np.all(np.abs(matrix - matrix.T) <= 1e-10 + 1e-7 * np.abs(matrix.T)):
        raise ValueError(
            f"{sentence}: {what} must be symmetric; got an asymmetric matrix."
        )
    if np.any(np.linalg.eigvalsh(matrix) <= 0.0):
        raise ValueError(
            f"{sentence}: {what} must be positive definite; got a matrix with a "
            "non-positive eigenvalue. Pass precisions (inverse covariances), "
            "not covariances or their square roots."
        )


def _scatter(weight_sums, first_moments, offsets, second_moments) -> np.ndarray:
    """Symmetric (K, D, D) scatter of each component about its new mean.

    ``sum_n r (x - c - d)(x - c - d)^T = S2 - S1 d^T - d S1^T + S0 d d^T``
    for moments about centres ``c`` and offsets ``d`` from ``c`` to the mean.
    """
    outer_first = np.einsum("ki,kj->kij", first_moments, offsets)
    scatter = (
        second_moments
        - outer_first
        - np.swapaxes(outer_first, 1, 2)
        + weight_sums[:, None, None] * np.einsum("ki,kj->kij", offsets, offsets)
    )
    return 0.5 * (scatter + np.swapaxes(scatter, 1, 2))


def _moments_scatter(
    weight_sums,
    first_moments,
    offsets,
    second_moments,
    denominators,
    reg_covar,
    *,
    per_mass: bool,
) -> np.ndarray:
    """The scatter with an M-step's ``reg_covar``: compiled where it can be.

    ``per_mass`` False: the covariances ``scatter / denominators + reg``
    (:meth:`Full.covariances_from_moments`); True: the scatter plus
    ``denominators * reg`` on its diagonal (the constrained models). The
    compiled :func:`_regularised_scatter` when :func:`_compiled_moments`
    accepts the arrays, else the same NumPy expressions.
    """
    reg = _compiled_moments(
        weight_sums, first_moments, offsets, second_moments, denominators, reg_covar
    )
    if reg is not None:
        return _kernels()["_regularised_scatter"](
            weight_sums,
            first_moments,
            offsets,
            second_moments,
            denominators,
            reg,
            per_mass,
        )
    scatter = _scatter(weight_sums, first_moments, offsets, second_moments)
    diagonal = np.arange(scatter.shape[-1])
    if per_mass:
        scatter[:, diagonal, diagonal] += denominators[:, None] * reg_covar
        return scatter
    covariances = scatter / denominators[:, None, None]
    covariances[:, diagonal, diagonal] += reg_covar
    return covariances


def _regularised_scatter(
    weight_sums, first_moments, offsets, second_moments, denominators, reg, per_mass
):
    """:func:`_scatter` and the ``reg_covar`` rule of an M-step, compiled.

    Element by element the same operations in the same order as the NumPy
    expressions they replace, so the same numbers to the last bit: with
    ``per_mass`` False (:meth:`Full.covariances_from_moments`) the scatter
    over ``denominators`` plus ``reg`` (D,) on the diagonal; with it True
    (:meth:`_Constrained.covariances_from_moments`) the scatter plus
    ``denominators[k] * reg`` on the diagonal.
    """
    n_components, n_features = first_moments.shape
    out = np.empty((n_components, n_features, n_features))
    for k in range(n_components):
        mass = weight_sums[k]
        for i in range(n_features):
            first_i = first_moments[k, i]
            offset_i = offsets[k, i]
            for j in range(i, n_features):
                first_j = first_moments[k, j]
                offset_j = offsets[k, j]
                cross = mass * (offset_i * offset_j)
                upper = second_moments[k, i, j] - first_i * offset_j
                upper = upper - first_j * offset_i
                upper = upper + cross
                lower = second_moments[k, j, i] - first_j * offset_i
                lower = lower - first_i * offset_j
                lower = lower + cross
                value = 0.5 * (upper + lower)
                if not per_mass:
                    value = value / denominators[k]
                out[k, i, j] = value
                out[k, j, i] = value
            if per_mass:
                out[k, i, i] += denominators[k] * reg[i]
            else:
                out[k, i, i] += reg[i]
    return out


def _symmetrised(matrices):
    """``0.5 * (M + M^T)`` of each (D, D) matrix, compiled (the same numbers)."""
    n_components, n_features, _ = matrices.shape
    out = np.empty((n_components, n_features, n_features))
    for k in range(n_components):
        for i in range(n_features):
            for j in range(i, n_features):
                value = 0.5 * (matrices[k, i, j] + matrices[k, j, i])
                out[k, i, j] = value
                out[k, j, i] = value
    return out


def _diagonal_factors(variances, floor):
    """:meth:`Diag.precision_cholesky` compiled: ``(1 / sqrt(variances), mask)``.

    A row is collapsed when a variance is not finite or is below the floor
    (D,); its factors are then 1. The same numbers as the NumPy expressions.
    """
    n_components, n_features = variances.shape
    factors = np.empty((n_components, n_features))
    collapsed = np.zeros(n_components, dtype=np.bool_)
    for k in range(n_components):
        for d in range(n_features):
            variance = variances[k, d]
            if not (math.isfinite(variance) and variance >= floor[d]):
                collapsed[k] = True
            factors[k, d] = 1.0 / np.sqrt(variance)
        if collapsed[k]:
            for d in range(n_features):
                factors[k, d] = 1.0
    return factors, collapsed


_FLOAT64 = np.dtype(np.float64)


def _compiled_steps() -> bool:
    """True when the compiled helpers of this module's M-steps run.

    With the compiled pass (``kernel="numba"``, the default) only: with
    ``kernel="numpy"`` every model but EVE and VVE (whose orientation step is
    compiled only) runs its NumPy code, as it did before these helpers, and
    needs no numba. The helpers give that code's numbers to the last bit,
    except VEI's and VEV's inner iteration (:func:`_common_shape_iterations`),
    whose sums and logarithms round differently (~1e-15 relative).
    """
    return active_kernel() == "numba"


def _is_float64(*arrays) -> bool:
    """True when every argument is a float64 ndarray (the compiled paths' input)."""
    for array in arrays:
        if type(array) is not np.ndarray or array.dtype != _FLOAT64:
            return False
    return True


def _feature_vector(value, n_features: int) -> np.ndarray:
    """``value`` (a scalar or (D,)) as a contiguous float64 (D,) array."""
    if (
        type(value) is np.ndarray
        and value.shape == (n_features,)
        and value.dtype == _FLOAT64
        and value.flags.c_contiguous
    ):
        return value
    if isinstance(value, float):  # (np.float64 included)
        return np.full(n_features, value)
    return np.ascontiguousarray(
        np.broadcast_to(np.asarray(value, dtype=np.float64), (n_features,))
    )


def _compiled_moments(
    weight_sums, first_moments, offsets, second_moments, denominators, reg_covar
) -> np.ndarray | None:
    """``reg_covar`` as (D,) when :func:`_regularised_scatter` takes these.

    None (the NumPy expressions then run) unless the compiled helpers are on
    (:func:`_compiled_steps`), every array is float64 with the protocol's
    shapes, (K,), (K, D), (K, D), (K, D, D), (K,), and ``reg_covar`` is a
    scalar or (D,): the compiled loops index without broadcasting or bounds
    checks.
    """
    if not _compiled_steps() or not _is_float64(
        weight_sums, first_moments, offsets, second_moments, denominators
    ):
        return None
    shape = first_moments.shape
    if (
        len(shape) != 2
        or offsets.shape != shape
        or second_moments.shape != (*shape, shape[1])
        or weight_sums.shape != shape[:1]
        or denominators.shape != shape[:1]
        or (not isinstance(reg_covar, float) and np.ndim(reg_covar) > 1)
    ):
        return None
    return _feature_vector(reg_covar, shape[1])


#: Up to this many features the compiled factorisation is used (beyond it
#: LAPACK's blocked one is faster).
_COMPILED_FACTOR_MAX_D = 32

# Bytes of a chunk's largest temporary: 2 MiB measured best on 2-core
# machines for N = 200,000, D = K = 16, in float64 and float32 (benchmarks/).
_CHUNK_BYTES = 2**21


def rows_for(elements_per_row: int, itemsize: int) -> int:
    """Rows per chunk whose largest temporary has this many elements per row.

    The one home of the chunk size: about :data:`_CHUNK_BYTES`, at least 256.
    """
    return int(max(256, _CHUNK_BYTES // (max(1, elements_per_row) * itemsize)))


# ---------------------------------------------------------------------------
# The four scikit-learn parameterisations


class Full:
    """Each component has its own general covariance matrix, shape (K, D, D)."""

    name = "full"
    shared = False
    single_covariance = False
    #: True when the M-step iterates (the search schedules these first).
    iterative = False
    kernel = "full"

    def moments_from_full(self, matrices):
        return matrices

    def kernel_factors(self, precisions_cholesky, n_components, n_features):
        return precisions_cholesky

    def moments_from_kernel(self, second):
        return second

    def shape(self, n_components, n_features):
        return (n_components, n_features, n_features)

    def n_parameters(self, n_components, n_features):
        return n_components * n_features * (n_features + 1) // 2

    def precision_cholesky(self, covariances, floor):
        n_features = covariances.shape[-1]
        if active_kernel() == "numba" and n_features <= _COMPILED_FACTOR_MAX_D:
            # The usual case compiled: one call instead of a dozen NumPy ones
            # (most of an iteration's cost on small data).
            from mixtures._kernel import precision_factors

            factors, ok = precision_factors(
                np.ascontiguousarray(covariances, dtype=np.float64),
                _feature_vector(floor, n_features),
            )
            if ok:
                return factors, np.zeros(covariances.shape[0], dtype=bool)
        # One reduction decides the usual case: all finite (a sum that
        # overflows only sends it to the careful path below).
        if np.isfinite(covariances.sum()):
            try:  # the usual case: one batched factorisation, no copies
                lower = np.linalg.cholesky(covariances)
            except np.linalg.LinAlgError:
                pass
            else:
                pivots = np.diagonal(lower, axis1=1, axis2=2) ** 2
                collapsed = np.any(pivots < floor, axis=1)
                if not collapsed.any():
                    return np.swapaxes(np.linalg.inv(lower), 1, 2), collapsed
        collapsed = ~np.all(np.isfinite(covariances), axis=(1, 2))
        lower = np.broadcast_to(np.eye(n_features), covariances.shape).copy()
        try:  # one batched factorisation of the finite ones
            lower[~collapsed] = np.linalg.cholesky(covariances[~collapsed])
        except np.linalg.LinAlgError:
            for k in np.flatnonzero(~collapsed):
                factor = _cholesky_lower(covariances[k], np.zeros(n_features))
                if factor is None:
                    collapsed[k] = True
                else:
                    lower[k] = factor
        pivots = np.diagonal(lower, axis1=1, axis2=2) ** 2
        collapsed |= np.any(pivots < floor, axis=1)
        lower[collapsed] = np.eye(n_features)
        # P = L^-T; the batched inverse of a triangular factor stays triangular.
        return np.swapaxes(np.linalg.inv(lower), 1, 2), collapsed

    def add_floor(self, covariances, floor, mask):
        repaired = covariances.copy()
        diagonal = np.arange(covariances.shape[-1])
        for k in np.flatnonzero(mask):
            repaired[k][diagonal, diagonal] += floor
            if not np.all(np.isfinite(repaired[k])):
                repaired[k] = np.diag(floor)
        return repaired

    def log_det_precision_cholesky(self, precisions_cholesky, n_features):
        return np.sum(
            np.log(np.diagonal(precisions_cholesky, axis1=1, axis2=2)), axis=1
        )

    def chunk_squared_mahalanobis(self, Xb, means, precisions_cholesky):
        # Centring on each component before the product keeps float32 exact
        # to rounding: no |x|^2 - 2 x.mu + |mu|^2 cancellation.
        centred = Xb[np.newaxis, :, :] - means[:, np.newaxis, :]  # (K, B, D)
        y = np.matmul(centred, precisions_cholesky)
        return np.einsum("kbd,kbd->bk", y, y), (means, centred)

    def chunk_moments(self, Xb, weighted_resp, centres, cache=None):
        if cache is not None and cache[0] is centres:
            centred = cache[1]
        else:
            centred = Xb[np.newaxis, :, :] - centres[:, np.newaxis, :]
        resp_t = np.ascontiguousarray(weighted_resp.T)  # (K, B)
        first = np.matmul(resp_t[:, np.newaxis, :], centred)[:, 0, :]
        second = np.matmul(
            centred.transpose(0, 2, 1), centred * resp_t[:, :, np.newaxis]
        )
        return first.astype(np.float64), second.astype(np.float64)

    def rows_per_chunk(self, n_components, n_features, itemsize=8):
        return rows_for(n_components * n_features, itemsize)

    def covariances_from_moments(
        self,
        weight_sums,
        first_moments,
        offsets,
        second_moments,
        denominators,
        reg_covar,
        previous=None,
    ):
        return _moments_scatter(
            weight_sums,
            first_moments,
            offsets,
            second_moments,
            denominators,
            reg_covar,
            per_mass=False,
        )

    def precisions_from_cholesky(self, precisions_cholesky):
        return precisions_cholesky @ np.swapaxes(precisions_cholesky, 1, 2)

    def precision_cholesky_from_precisions(self, precisions):
        return np.stack([_upper_cholesky_of_precision(p) for p in precisions])

    def covariances_from_precision_cholesky(self, precisions_cholesky):
        return np.stack(
            [_covariance_from_precision_cholesky(p) for p in precisions_cholesky]
        )

    def to_full(self, covariances, n_components, n_features):
        return np.array(covariances, dtype=float, copy=True)

    def from_full(self, full_covariances):
        return np.array(full_covariances, dtype=float, copy=True)

    def check_precisions(self, precisions):
        for k, precision in enumerate(precisions):
            _check_symmetric_positive_definite(
                precision, f"precisions_init[{k}]", self.name
            )


class Tied(Full):
    """All components share one general covariance matrix, shape (D, D)."""

    name = "tied"
    shared = True
    single_covariance = True

    def moments_from_full(self, matrices):
        return matrices.sum(axis=0)

    def kernel_factors(self, precisions_cholesky, n_components, n_features):
        return np.broadcast_to(
            precisions_cholesky, (n_components, *precisions_cholesky.shape)
        )

    def moments_from_kernel(self, second):
        return second.sum(axis=0)

    def shape(self, n_components, n_features):
        return (n_features, n_features)

    def n_parameters(self, n_components, n_features):
        return n_features * (n_features + 1) // 2

    def precision_cholesky(self, covariances, floor):
        lower = _cholesky_lower(covariances, floor)
        if lower is None:
            return np.eye(covariances.shape[0]), np.ones(1, dtype=bool)
        inverse, info = _lapack("trtri", lower)(lower, lower=1)
        if info != 0:  # pragma: no cover - the factor's pivots are positive
            raise np.linalg.LinAlgError(
                f"singular triangular matrix (LAPACK info {info})."
            )
        # _precision_cholesky_from_lower without np.tril (a third of the
        # cost): ?trtri writes the lower triangle only, and the strict upper
        # one is the clean factor's zeros. The copy keeps its layout.
        return np.ascontiguousarray(inverse).T, np.zeros(1, dtype=bool)

    def add_floor(self, covariances, floor, mask):
        if not np.any(mask):
            return covariances
        return super().add_floor(covariances[np.newaxis], floor, mask[:1])[0]

    def log_det_precision_cholesky(self, precisions_cholesky, n_features):
        return np.sum(np.log(np.diagonal(precisions_cholesky)))

    def chunk_moments(self, Xb, weighted_resp, centres, cache=None):
        first, second = super().chunk_moments(Xb, weighted_resp, centres, cache)
        return first, second.sum(axis=0)

    def covariances_from_moments(
        self,
        weight_sums,
        first_moments,
        offsets,
        second_moments,
        denominators,
        reg_covar,
        previous=None,
    ):
        outer_first = np.einsum("ki,kj->ij", first_moments, offsets)
        covariance = (
            second_moments
            - outer_first
            - outer_first.T
            + np.einsum("k,ki,kj->ij", weight_sums, offsets, offsets)
        ) / denominators.sum()
        covariance = 0.5 * (covariance + covariance.T)
        # (the diagonal through .flat: np.diag_indices_from costs 7 us)
        covariance.flat[:: covariance.shape[0] + 1] += reg_covar
        return covariance

    def precisions_from_cholesky(self, precisions_cholesky):
        return precisions_cholesky @ precisions_cholesky.T

    def precision_cholesky_from_precisions(self, precisions):
        return _upper_cholesky_of_precision(precisions)

    def covariances_from_precision_cholesky(self, precisions_cholesky):
        return _covariance_from_precision_cholesky(precisions_cholesky)

    def to_full(self, covariances, n_components, n_features):
        return np.repeat(
            np.asarray(covariances, dtype=float)[np.newaxis], n_components, 0
        )

    def from_full(self, full_covariances):
        return np.mean(full_covariances, axis=0)

    def check_precisions(self, precisions):
        _check_symmetric_positive_definite(precisions, "precisions_init", self.name)


class Diag:
    """Each component has its own diagonal covariance, stored as (K, D) variances."""

    name = "diag"
    shared = False
    single_covariance = False
    iterative = False

    kernel = "diag"

    def moments_from_full(self, matrices):
        return np.diagonal(matrices, axis1=1, axis2=2).copy()

    def kernel_factors(self, precisions_cholesky, n_components, n_features):
        return precisions_cholesky**2

    def moments_from_kernel(self, second):
        return second

    def shape(self, n_components, n_features):
        return (n_components, n_features)

    def n_parameters(self, n_components, n_features):
        return n_components * n_features

    def precision_cholesky(self, covariances, floor):
        if (
            _is_float64(covariances)
            and covariances.ndim == 2
            and covariances.flags.writeable  # (a read-only one: another compile)
            and _compiled_steps()
        ):
            return _kernels()["_diagonal_factors"](
                covariances, _feature_vector(floor, covariances.shape[1])
            )
        collapsed = ~np.all(np.isfinite(covariances) & (covariances >= floor), axis=1)
        with np.errstate(divide="ignore", invalid="ignore"):
            prec_chol = 1.0 / np.sqrt(covariances)
        prec_chol[collapsed] = 1.0
        return prec_chol, collapsed

    def add_floor(self, covariances, floor, mask):
        repaired = covariances.copy()
        repaired[mask] = (
            np.where(np.isfinite(repaired[mask]), np.maximum(repaired[mask], 0.0), 0.0)
            + floor
        )
        return repaired

    def log_det_precision_cholesky(self, precisions_cholesky, n_features):
        return np.sum(np.log(precisions_cholesky), axis=1)

    def chunk_squared_mahalanobis(self, Xb, means, precisions_cholesky):
        # Two matrix products instead of a (K, B, D) temporary: the data are
        # centred on their mean, so the expansion loses little to cancellation.
        precisions = precisions_cholesky**2
        squares = Xb * Xb
        maha = squares @ precisions.T
        maha -= 2.0 * (Xb @ (means * precisions).T)
        maha += np.sum(means**2 * precisions, axis=1)
        return maha, squares

    def _moments_about_origin(self, Xb, weighted_resp, squares):
        if squares is None:
            squares = Xb * Xb
        return weighted_resp.T @ Xb, weighted_resp.T @ squares

    def chunk_moments(self, Xb, weighted_resp, centres, cache=None):
        # Moments about the chunk's origin, then moved to the centres exactly
        # in float64: S1(c) = S1 - S0 c, S2(c) = S2 - 2 c S1 + S0 c^2.
        first_o, second_o = self._moments_about_origin(Xb, weighted_resp, cache)
        mass = weighted_resp.sum(axis=0, dtype=np.float64)[:, np.newaxis]
        first_o = first_o.astype(np.float64)
        second_o = np.asarray(second_o, dtype=np.float64)
        c = centres.astype(np.float64)
        return first_o - mass * c, self._shift_second(second_o, first_o, mass, c)

    def _shift_second(self, second_o, first_o, mass, c):
        return second_o - 2.0 * c * first_o + mass * c**2

    def rows_per_chunk(self, n_components, n_features, itemsize=8):
        return rows_for(2 * n_features + 4 * n_components, itemsize)

    def covariances_from_moments(
        self,
        weight_sums,
        first_moments,
        offsets,
        second_moments,
        denominators,
        reg_covar,
        previous=None,
    ):
        variances = (
            second_moments
            - 2.0 * first_moments * offsets
            + weight_sums[:, np.newaxis] * offsets**2
        ) / denominators[:, np.newaxis]
        return variances + reg_covar

    def precisions_from_cholesky(self, precisions_cholesky):
        return precisions_cholesky**2

    def precision_cholesky_from_precisions(self, precisions):
        return np.sqrt(precisions)

    def covariances_from_precision_cholesky(self, precisions_cholesky):
        return 1.0 / precisions_cholesky**2

    def to_full(self, covariances, n_components, n_features):
        full = np.zeros((n_components, n_features, n_features))
        diagonal = np.arange(n_features)
        full[:, diagonal, diagonal] = covariances
        return full

    def from_full(self, full_covariances):
        return np.diagonal(full_covariances, axis1=1, axis2=2).copy()

    def check_precisions(self, precisions):
        if np.any(precisions <= 0.0):
            raise ValueError(
                f"'{self.name} precision' should be positive: precisions_init "
                f"for {self.name!r} must be strictly positive."
            )


class Spherical(Diag):
    """Each component has one variance shared by all features, shape (K,)."""

    name = "spherical"

    def moments_from_full(self, matrices):
        return np.trace(matrices, axis1=1, axis2=2)

    def kernel_factors(self, precisions_cholesky, n_components, n_features):
        return np.repeat((precisions_cholesky**2)[:, np.newaxis], n_features, 1)

    def moments_from_kernel(self, second):
        return second.sum(axis=1)

    def shape(self, n_components, n_features):
        return (n_components,)

    def n_parameters(self, n_components, n_features):
        return n_components

    def precision_cholesky(self, covariances, floor):
        # The floor of a spherical variance is the mean per-feature floor.
        if _is_float64(floor) and floor.ndim == 1 and floor.size:
            # np.mean's own arithmetic (a pairwise sum over the count).
            mean_floor = np.full(1, np.add.reduce(floor) / floor.size)
        else:
            mean_floor = np.atleast_1d(np.mean(floor))
        prec_chol, collapsed = super().precision_cholesky(
            covariances[:, np.newaxis], mean_floor
        )
        return prec_chol[:, 0], collapsed

    def add_floor(self, covariances, floor, mask):
        return super().add_floor(
            covariances[:, np.newaxis], np.atleast_1d(np.mean(floor)), mask
        )[:, 0]

    def log_det_precision_cholesky(self, precisions_cholesky, n_features):
        return n_features * np.log(precisions_cholesky)

    def chunk_squared_mahalanobis(self, Xb, means, precisions_cholesky):
        norms = np.einsum("bd,bd->b", Xb, Xb)
        maha = norms[:, np.newaxis] - 2.0 * (Xb @ means.T)
        maha += np.einsum("kd,kd->k", means, means)
        maha *= precisions_cholesky**2
        return maha, norms

    def _moments_about_origin(self, Xb, weighted_resp, norms):
        if norms is None:
            norms = np.einsum("bd,bd->b", Xb, Xb)
        return weighted_resp.T @ Xb, norms @ weighted_resp

    def _shift_second(self, second_o, first_o, mass, c):
        mass = mass[:, 0]
        return second_o - 2.0 * np.sum(c * first_o, axis=1) + mass * np.sum(c**2, 1)

    def covariances_from_moments(
        self,
        weight_sums,
        first_moments,
        offsets,
        second_moments,
        denominators,
        reg_covar,
        previous=None,
    ):
        n_features = offsets.shape[1]
        variances = (
            second_moments
            - 2.0 * (first_moments * offsets).sum(axis=1)
            + weight_sums * (offsets**2).sum(axis=1)
        ) / (denominators * n_features)
        # A per-feature reg_covar (relative mode) enters through its mean.
        if not isinstance(reg_covar, float):  # (np.mean of a float is itself)
            reg_covar = np.mean(reg_covar)
        return variances + reg_covar

    def to_full(self, covariances, n_components, n_features):
        return np.asarray(covariances, dtype=float)[:, None, None] * np.eye(n_features)

    def from_full(self, full_covariances):
        return np.mean(np.diagonal(full_covariances, axis1=1, axis2=2), axis=1)

    def check_precisions(self, precisions):
        if np.any(precisions <= 0.0):
            raise ValueError(
                f"'{self.name} precision' should be positive: precisions_init "
                f"for {self.name!r} must be strictly positive."
            )


# ---------------------------------------------------------------------------
# The parsimonious models of Celeux & Govaert (1995)
#
# Every component covariance is written Sigma_k = lambda_k D_k A_k D_k^T with
# volume lambda_k, orientation D_k (orthogonal) and shape A_k (diagonal,
# det A_k = 1). Each of the three letters of a model's name says whether the
# volume, shape and orientation are Equal across components, Variable, or
# (shape and orientation only) the Identity. Writing W_k for the scatter
# matrix of component k about its mean and n_k for its mass, the M-step
# minimises over the model's parameter set
#
#     Q(Sigma) = sum_k [ n_k log det Sigma_k + tr(W_k Sigma_k^{-1}) ].
#
# The four models scikit-learn has (VII, VVI, EEE, VVV) are the classes above
# under their scikit-learn names. The other ten store full (K, D, D)
# covariances, share the 'full' E-step and fused pass, and differ only in the
# small (K, D, D) -> (K, D, D) step below: a closed form where Celeux &
# Govaert give one, otherwise the published iteration run to convergence from
# the previous M-step's solution (each sub-step decreases Q, so the iteration
# is monotone):
#
# * VEI, VEE, VEV: alternate volumes and the shared shape (or shape-and-
#   orientation), Celeux & Govaert (1995), sections 3.2-3.3;
# * EVE, VVE: the shapes (and volume) in closed form given the common
#   orientation, and the orientation by the majorisation-minimisation step of
#   Browne & McNicholas (2014), "Estimating common principal components in
#   high dimensions", Adv. Data Anal. Classif. 8:217-226: since
#   sum_k tr(D^T (W_k - a_k I) D Omega_k) is concave in D for a_k the largest
#   eigenvalue of W_k, its tangent majorises it, and the tangent plane is
#   minimised over orthogonal matrices by the polar factor of
#   G = sum_k (a_k I - W_k) D Omega_k.
#
# Regularisation: ``reg_covar`` is added to every scatter as n_k * reg * I
# before the constrained step, which is scikit-learn's rule for its four models
# and keeps every other model inside its constraint.

_INNER_TOL = 1e-11
_INNER_MAX_ITER = 500
#: Plane-rotation sweeps per M-step inside EM for a common orientation (EVE,
#: VVE), warm-started from the previous M-step's orientation. Every sweep
#: lowers Q, so a capped step is a generalised EM step (Dempster, Laird &
#: Rubin 1977): the likelihood still never decreases, and the orientation goes
#: on improving at the next iteration instead of being solved to 1e-11 each
#: time. With components near singularity the uncapped solve ran 100-500
#: sweeps per iteration (EVE, K = 6 on wine: 55 s a cell).
_WARM_MAX_SWEEPS = 20
#: Tolerances of the common orientation's iteration (EVE, VVE): it stops when
#: a step lowers Q by at most ``tol * max(1, |Q|)``, or at once when a step
#: does not lower Q (that step is dropped, so Q never rises, rounding
#: included), within the caps above. A cold solve (the first M-step from a
#: start, and ``from_full``) stops at sqrt(machine epsilon), mclust's
#: tolerance for its inner iterations (``emControl(tol = c(1e-5,
#: sqrt(.Machine$double.eps)))``): EM goes on from that orientation, so it
#: need not be exact. A warm solve (every later M-step) keeps _INNER_TOL: its
#: progress is what EM's stopping rule sees, and the search's rule (a gain
#: below 1e-8 per observation, much tighter than mclust's 1e-5 relative) is
#: tighter than sqrt(eps) |Q|, so with sqrt(eps) warm steps of one sweep made
#: EM stop early (wine, standardised, reg_covar_relative: EVE K = 6 ended
#: 3.8e-3 and VVE K = 6 1.9e-4 lower in log-likelihood, for 6 % less time).
_COLD_TOL = math.sqrt(np.finfo(np.float64).eps)
_WARM_TOL = _INNER_TOL
#: A cold solve starts from K + 1 orientations (the eigenvectors of the pooled
#: and of every component's scatter); each gets this many iterations and only
#: the best goes on to the cap (the short-runs-then-best scheme the model
#: search uses for EM itself). From components of 4 or 5 points in 13
#: dimensions every start ran the full 500 (wine, EVE, K = 6: 0.21 s a step,
#: paid by every start of every cell).
_COLD_SCREEN_ITER = 10


def _geometric_mean(values: np.ndarray, axis: int = -1) -> np.ndarray:
    # Callers run under np.errstate (see _Constrained.covariances_from_moments).
    return np.exp(np.mean(np.log(values), axis=axis))


def _objective(scatter, counts, covariances) -> float:
    """Q(Sigma) above; +inf when a covariance is not positive definite."""
    sign, logdet = np.linalg.slogdet(covariances)
    if np.any(sign <= 0):
        return np.inf
    traces = np.einsum("kij,kji->k", scatter, np.linalg.inv(covariances))
    return float(np.sum(counts * logdet + traces))


def _converged(previous: float, current: float) -> bool:
    return abs(previous - current) <= _INNER_TOL * max(1.0, abs(current))


def _diagonal_matrices(diagonals: np.ndarray) -> np.ndarray:
    n = diagonals.shape[-1]
    out = np.zeros((*diagonals.shape, n))
    index = np.arange(n)
    out[..., index, index] = diagonals
    return out


def _sorted_eigh(matrices: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Eigenvalues (descending) and eigenvectors of symmetric matrices."""
    values, vectors = np.linalg.eigh(matrices)
    return values[..., ::-1], vectors[..., ::-1]


def _volumes_and_common_shape(values, counts, shape):
    """Volumes ``lambda_k`` and a common shape ``A`` (det 1) for given axes.

    Minimises ``sum_k [n_k D log lambda_k + sum_d values_kd / (lambda_k A_d)]``
    by Celeux & Govaert's (1995) alternation, from ``shape``: ``values`` are
    the scatters' variances along each component's axes (the diagonals for
    VEI, the eigenvalues for VEV), shape (K, D). The iteration is
    :func:`_common_shape_iterations`, compiled, or with the compiled helpers
    off (:func:`_compiled_steps`) the same in NumPy.
    """
    if not _compiled_steps():
        return _volumes_and_common_shape_numpy(values, counts, shape)
    # Fresh C-ordered copies: one compiled signature (not one more for a
    # read-only or strided view of the caller's arrays).
    values = np.array(values, dtype=np.float64, order="C")
    counts = np.array(counts, dtype=np.float64, order="C")
    shape = np.array(shape, dtype=np.float64, order="C")
    if (
        values.ndim != 2
        or counts.shape != values.shape[:1]
        or shape.shape != values.shape[1:]
    ):
        raise ValueError(
            f"values (K, D), counts (K,) and shape (D,) expected; got shapes "
            f"{values.shape}, {counts.shape} and {shape.shape}."
        )
    return _kernels()["_common_shape_iterations"](
        values, counts, shape, _INNER_MAX_ITER, _INNER_TOL
    )


def _volumes_and_common_shape_numpy(values, counts, shape):
    """:func:`_volumes_and_common_shape` in NumPy (``kernel="numpy"``)."""
    n_features = values.shape[1]
    shape = shape / _geometric_mean(shape)
    value = np.inf
    for _ in range(_INNER_MAX_ITER):
        volumes = (values / shape).sum(axis=1) / (n_features * counts)
        shape = (values / volumes[:, None]).sum(axis=0)
        shape = shape / _geometric_mean(shape)
        previous_value, value = (
            value,
            float(
                np.sum(counts * n_features * np.log(volumes))
                + np.sum(values / (volumes[:, None] * shape))
            ),
        )
        if _converged(previous_value, value):
            break
    return (values / shape).sum(axis=1) / (n_features * counts), shape


def _scaled_diagonals(volumes, shape):
    """``_diagonal_matrices(volumes[:, None] * shape)``, compiled: VEI's output."""
    n_components = volumes.shape[0]
    n_features = shape.shape[0]
    out = np.zeros((n_components, n_features, n_features))
    for k in range(n_components):
        for d in range(n_features):
            out[k, d, d] = volumes[k] * shape[d]
    return out


def _unit_determinant(shape, out):
    """``out = shape / exp(mean(log(shape)))``: the shape scaled to det 1."""
    n_features = shape.shape[0]
    log_sum = 0.0
    for d in range(n_features):
        log_sum += np.log(shape[d])
    scale = np.exp(log_sum / n_features)
    for d in range(n_features):
        out[d] = shape[d] / scale


def _volumes_given_shape(values, counts, shape, out):
    """``out[k] = sum_d values_kd / shape_d / (D n_k)``: the best volumes."""
    n_components, n_features = values.shape
    for k in range(n_components):
        total = 0.0
        for d in range(n_features):
            total += values[k, d] / shape[d]
        out[k] = total / (n_features * counts[k])


def _common_shape_iterations(values, counts, start, max_iter, tol):
    """Celeux & Govaert's alternation for VEI and VEV: ``(volumes, shape)``.

    From ``start`` scaled to det 1, alternates the volumes given the shape
    (:func:`_volumes_given_shape`) and the shape given the volumes,
    ``A ∝ sum_k values_k / lambda_k`` scaled to det 1, until the objective
    ``sum_k n_k D log lambda_k + sum_kd values_kd / (lambda_k A_d)`` changes
    by at most ``tol * max(1, |Q|)`` (:func:`_converged`) or after
    ``max_iter`` steps; then returns the volumes for the final shape. The
    loops are NumPy's expressions element by element (sums in index order),
    written out so that numba compiles them in a fraction of a second.
    """
    n_components, n_features = values.shape
    shape = np.empty(n_features)
    volumes = np.empty(n_components)
    _unit_determinant(start, shape)
    value = np.inf
    for _ in range(max_iter):
        _volumes_given_shape(values, counts, shape, volumes)
        for d in range(n_features):
            total = 0.0
            for k in range(n_components):
                total += values[k, d] / volumes[k]
            shape[d] = total
        _unit_determinant(shape, shape)
        log_part = 0.0
        for k in range(n_components):
            log_part += counts[k] * n_features * np.log(volumes[k])
        trace_part = 0.0
        for k in range(n_components):
            for d in range(n_features):
                trace_part += values[k, d] / (volumes[k] * shape[d])
        previous_value = value
        value = log_part + trace_part
        if abs(previous_value - value) <= tol * max(1.0, abs(value)):
            break
    _volumes_given_shape(values, counts, shape, volumes)
    return volumes, shape


class _Constrained(Full):
    """A Celeux & Govaert model stored as full (K, D, D) covariances."""

    shared = False
    iterative = False

    def constrained_step(
        self,
        scatter: np.ndarray,
        counts: np.ndarray,
        previous: np.ndarray | None = None,
    ) -> np.ndarray:
        """Minimise Q over this model's set: (K, D, D) scatters -> covariances."""
        raise NotImplementedError

    def covariances_from_moments(
        self,
        weight_sums,
        first_moments,
        offsets,
        second_moments,
        denominators,
        reg_covar,
        previous=None,
    ):
        scatter = _moments_scatter(
            weight_sums,
            first_moments,
            offsets,
            second_moments,
            denominators,
            reg_covar,
            per_mass=True,
        )
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            covariances = self.constrained_step(scatter, denominators, previous)
        if (
            _compiled_steps()  # bit-identical to the NumPy line below
            and _is_float64(scatter, covariances)
            and covariances.shape == scatter.shape
        ):
            return _kernels()["_symmetrised"](covariances)
        return 0.5 * (covariances + np.swapaxes(covariances, 1, 2))

    def from_full(self, full_covariances):
        full = np.asarray(full_covariances, dtype=float)
        return self.constrained_step(full, np.ones(full.shape[0]))


class EII(_Constrained):
    """Equal spherical covariances ``lambda I``."""

    name = "EII"
    single_covariance = True

    def n_parameters(self, n_components, n_features):
        return 1

    def constrained_step(self, scatter, counts, previous=None):
        _n_components, n_features = scatter.shape[0], scatter.shape[-1]
        volume = np.trace(scatter, axis1=1, axis2=2).sum() / (counts.sum() * n_features)
        return np.broadcast_to(volume * np.eye(n_features), scatter.shape).copy()


class EEI(_Constrained):
    """Equal diagonal covariances ``lambda A``."""

    name = "EEI"
    single_covariance = True

    def n_parameters(self, n_components, n_features):
        return n_features

    def constrained_step(self, scatter, counts, previous=None):
        pooled = np.diagonal(scatter, axis1=1, axis2=2).sum(axis=0) / counts.sum()
        return np.broadcast_to(np.diag(pooled), scatter.shape).copy()


class VEI(_Constrained):
    """Diagonal covariances ``lambda_k A`` with a common shape."""

    name = "VEI"
    iterative = True

    def n_parameters(self, n_components, n_features):
        return n_components + n_features - 1

    def constrained_step(self, scatter, counts, previous=None):
        diagonals = np.diagonal(scatter, axis1=1, axis2=2)  # (K, D)
        if previous is not None and np.isfinite(previous).all():
            shape = np.diagonal(previous, axis1=1, axis2=2)[0]
        else:
            shape = diagonals.sum(axis=0)
        volumes, shape = _volumes_and_common_shape(diagonals, counts, shape)
        if _compiled_steps():
            return _kernels()["_scaled_diagonals"](volumes, shape)
        return _diagonal_matrices(volumes[:, None] * shape)


class EVI(_Constrained):
    """Diagonal covariances ``lambda A_k`` with a common volume."""

    name = "EVI"

    def n_parameters(self, n_components, n_features):
        return 1 + n_components * (n_features - 1)

    def constrained_step(self, scatter, counts, previous=None):
        diagonals = np.diagonal(scatter, axis1=1, axis2=2)
        sizes = _geometric_mean(diagonals)  # (K,)
        volume = sizes.sum() / counts.sum()
        return _diagonal_matrices(volume * diagonals / sizes[:, None])


class VEE(_Constrained):
    """Covariances ``lambda_k C`` with a common shape and orientation, det C = 1."""

    name = "VEE"
    iterative = True

    def n_parameters(self, n_components, n_features):
        return n_components + n_features * (n_features + 1) // 2 - 1

    def constrained_step(self, scatter, counts, previous=None):
        n_features = scatter.shape[-1]
        if previous is not None and np.isfinite(previous).all():
            common = previous[0]
        else:
            common = scatter.sum(axis=0)
        common = common / np.linalg.det(common) ** (1.0 / n_features)
        value = np.inf
        for _ in range(_INNER_MAX_ITER):
            traces = np.einsum("kij,ji->k", scatter, np.linalg.inv(common))
            volumes = traces / (n_features * counts)
            weighted = np.einsum("kij,k->ij", scatter, 1.0 / volumes)
            common = weighted / np.linalg.det(weighted) ** (1.0 / n_features)
            traces = np.einsum("kij,ji->k", scatter, np.linalg.inv(common))
            previous_value, value = (
                value,
                float(np.sum(counts * n_features * np.log(volumes) + traces / volumes)),
            )
            if _converged(previous_value, value):
                break
        volumes = traces / (n_features * counts)
        return volumes[:, None, None] * common


def _product(left, right, out):
    """``out = left @ right`` for square matrices.

    Loops: numba compiles them in a fraction of the time its BLAS ``@``
    takes, and D is small.
    """
    n = left.shape[0]
    for row in range(n):
        for col in range(n):
            out[row, col] = 0.0
        for m in range(n):
            factor = left[row, m]
            for col in range(n):
                out[row, col] += factor * right[m, col]


def _project(scatter, orientation, out):
    """``out[k] = D^T W_k D`` for every component, exactly symmetric."""
    n_components = scatter.shape[0]
    n_features = orientation.shape[0]
    product = np.empty((n_features, n_features))
    for k in range(n_components):
        _product(scatter[k], orientation, product)
        for row in range(n_features):
            for col in range(row, n_features):
                out[k, row, col] = 0.0
        for m in range(n_features):
            for row in range(n_features):
                factor = orientation[m, row]
                for col in range(row, n_features):
                    out[k, row, col] += factor * product[m, col]
        for row in range(n_features):
            for col in range(row + 1, n_features):
                out[k, col, row] = out[k, row, col]


def _shapes(rotated, counts, equal_volume, out):
    """Best diagonals of ``D^T Sigma_k D`` given ``D``, into ``out``; returns Q.

    With ``p_k = diag(D^T W_k D)`` (the diagonals of ``rotated``): VVE's are
    ``p_k / n_k``; EVE's (``equal_volume``) are ``lambda p_k / s_k`` with
    ``s_k`` the geometric mean of ``p_k`` and ``lambda = sum_k s_k / sum_k
    n_k``. Q is ``sum_kd [n_k log out_kd + p_kd / out_kd]``: NaN or infinite
    when a diagonal is not positive.
    """
    n_components = rotated.shape[0]
    n_features = rotated.shape[1]
    if equal_volume:
        sizes = np.empty(n_components)
        total_size = 0.0
        total_count = 0.0
        for k in range(n_components):
            log_sum = 0.0
            for d in range(n_features):
                log_sum += np.log(rotated[k, d, d])
            sizes[k] = np.exp(log_sum / n_features)
            total_size += sizes[k]
            total_count += counts[k]
        volume = total_size / total_count
        for k in range(n_components):
            for d in range(n_features):
                out[k, d] = volume * rotated[k, d, d] / sizes[k]
    else:
        for k in range(n_components):
            for d in range(n_features):
                out[k, d] = rotated[k, d, d] / counts[k]
    value = 0.0
    for k in range(n_components):
        for d in range(n_features):
            value += counts[k] * np.log(out[k, d]) + rotated[k, d, d] / out[k, d]
    return value


def _majorisation_step(scatter, orientation, inverse_diagonals, largest, out):
    """One Browne & McNicholas (2014) majorisation step, into ``out``.

    Minimises ``sum_k tr(W_k D Omega_k D^T)`` over orthogonal ``D`` given
    ``Omega_k = diag(inverse_diagonals[k])`` and never increases it:
    ``out`` is the polar factor of ``G = sum_k (a_k I - W_k) D Omega_k``,
    ``a_k = largest[k]`` the largest eigenvalue of ``W_k``. Returns False
    (``out`` untouched) when ``G`` is not finite.
    """
    n_components = scatter.shape[0]
    n_features = orientation.shape[0]
    gradient = np.zeros((n_features, n_features))
    product = np.empty((n_features, n_features))
    for k in range(n_components):
        _product(scatter[k], orientation, product)
        for row in range(n_features):
            for col in range(n_features):
                gradient[row, col] += (
                    largest[k] * orientation[row, col] - product[row, col]
                ) * inverse_diagonals[k, col]
    if not np.all(np.isfinite(gradient)):
        return False
    left, _, right_t = np.linalg.svd(gradient)
    _product(left, right_t, out)
    return True


def _rotation_sweep(rotated, orientation, inverse_diagonals):
    """One sweep of exact plane rotations for a common orientation, in place.

    Minimises ``f(D) = sum_k tr(W_k D Omega_k D^T)`` over orthogonal ``D``
    with ``Omega_k = diag(inverse_diagonals[k])`` fixed, one pair of axes at
    a time, and never increases it. ``orientation`` is ``D`` (D, D) and
    ``rotated`` holds ``B_k = D^T W_k D`` (K, D, D) on entry; both are updated
    in place, so on return ``rotated`` holds the new ``D^T W_k D`` (up to
    rounding).

    Rotating columns i and j of ``D`` by an angle t, ``d_i <- c d_i + s d_j``
    and ``d_j <- -s d_i + c d_j`` (c = cos t, s = sin t), changes ``f`` by
    ``P cos 2t + Q sin 2t`` plus a constant, where with ``a_k, b_k, e_k`` the
    entries (i, i), (j, j), (i, j) of ``B_k`` and
    ``g_k = Omega_k[i] - Omega_k[j]``::

        P = 1/2 sum_k g_k (a_k - b_k),    Q = sum_k g_k e_k,

    so the best angle has a closed form, ``cos 2t = -P/r``, ``sin 2t = -Q/r``
    with ``r = hypot(P, Q)``: the pairwise rotations of Flury & Gautschi
    (1986), "An algorithm for simultaneous orthogonal transformation of
    several positive definite symmetric matrices to nearly diagonal form",
    SIAM J. Sci. Stat. Comput. 7:169-184. Each rotation is then applied to
    every ``B_k`` as the Jacobi method applies its rotations to a symmetric
    matrix (``B <- G^T B G`` changes rows and columns i and j only; Golub &
    Van Loan, *Matrix Computations*, 4th ed., sec. 8.5), instead of
    projecting ``W_k`` on the rotated axes again: O(K D) per pair and
    O(K D^3) per sweep, where projecting was O(K D^2) per pair.
    """
    n_components = rotated.shape[0]
    n_features = orientation.shape[0]
    for i in range(n_features - 1):
        for j in range(i + 1, n_features):
            p_coef = 0.0
            q_coef = 0.0
            for k in range(n_components):
                gap = inverse_diagonals[k, i] - inverse_diagonals[k, j]
                p_coef += gap * (rotated[k, i, i] - rotated[k, j, j])
                q_coef += gap * rotated[k, i, j]
            p_coef *= 0.5
            if p_coef == 0.0 and q_coef == 0.0:
                continue
            # minimise P cos 2t + Q sin 2t: cos 2t = -P/r, sin 2t = -Q/r.
            angle = 0.5 * math.atan2(-q_coef, -p_coef)
            c = math.cos(angle)
            s = math.sin(angle)
            for row in range(n_features):
                di = orientation[row, i]
                dj = orientation[row, j]
                orientation[row, i] = c * di + s * dj
                orientation[row, j] = c * dj - s * di
            cc = c * c
            ss = s * s
            cs = c * s
            for k in range(n_components):
                a = rotated[k, i, i]
                b = rotated[k, j, j]
                e = rotated[k, i, j]
                for m in range(n_features):
                    if m in (i, j):
                        continue
                    bi = rotated[k, m, i]
                    bj = rotated[k, m, j]
                    new_i = c * bi + s * bj
                    new_j = c * bj - s * bi
                    rotated[k, m, i] = new_i
                    rotated[k, i, m] = new_i
                    rotated[k, m, j] = new_j
                    rotated[k, j, m] = new_j
                rotated[k, i, i] = cc * a + 2.0 * cs * e + ss * b
                rotated[k, j, j] = ss * a - 2.0 * cs * e + cc * b
                off = cs * (b - a) + (cc - ss) * e
                rotated[k, i, j] = off
                rotated[k, j, i] = off


def _orientation_iterations(
    scatter, counts, start, largest, equal_volume, max_sweeps, tol
):
    """Minimise Q over a common orientation from ``start``: (Q, D, diagonals).

    Alternates the shapes in closed form (:func:`_shapes`) and the
    orientation: on a cold start (``largest`` holds the K largest
    eigenvalues) a majorisation step then a sweep of plane rotations, on a
    warm one (``largest`` empty) a sweep only. A step is kept only if it
    lowers Q, so Q never exceeds its value at ``start`` (rounding included);
    the iteration stops when a step lowers Q by at most ``tol * max(1, |Q|)``
    or after ``max_sweeps`` steps, or at once when Q is not finite.
    """
    n_components = scatter.shape[0]
    n_features = start.shape[0]
    cold = largest.shape[0] > 0
    orientation = start.copy()
    candidate = np.empty_like(orientation)
    rotated = np.empty((n_components, n_features, n_features))
    diagonals = np.empty((n_components, n_features))
    new_diagonals = np.empty_like(diagonals)
    inverse_diagonals = np.empty_like(diagonals)
    _project(scatter, orientation, rotated)
    value = _shapes(rotated, counts, equal_volume, diagonals)
    for _ in range(max_sweeps):
        if not np.isfinite(value):
            break
        for k in range(n_components):
            for d in range(n_features):
                inverse_diagonals[k, d] = 1.0 / diagonals[k, d]
        if cold:
            if not _majorisation_step(
                scatter, orientation, inverse_diagonals, largest, candidate
            ):
                break
            _project(scatter, candidate, rotated)
        else:
            # (element by element: numba takes seconds to compile ``[:, :] =``)
            for row in range(n_features):
                for col in range(n_features):
                    candidate[row, col] = orientation[row, col]
        _rotation_sweep(rotated, candidate, inverse_diagonals)
        # Q from a fresh projection, so that rounding in the rotated
        # scatters does not build up over the sweeps.
        _project(scatter, candidate, rotated)
        new_value = _shapes(rotated, counts, equal_volume, new_diagonals)
        if not new_value < value:
            break
        decrease = value - new_value
        value = new_value
        orientation, candidate = candidate, orientation
        diagonals, new_diagonals = new_diagonals, diagonals
        if decrease <= tol * max(1.0, abs(value)):
            break
    return value, orientation, diagonals


#: The functions above are plain Python that numba compiles: numba is
#: imported, and they are compiled, on first use (as :mod:`mixtures._kernel`
#: is), so importing this module does not import numba.
_ORIENTATION_KERNELS = (
    "_product",
    "_project",
    "_shapes",
    "_majorisation_step",
    "_rotation_sweep",
    "_orientation_iterations",
)
#: The same for the small loops of the other M-steps and factorisations.
_STEP_KERNELS = (
    "_regularised_scatter",
    "_symmetrised",
    "_diagonal_factors",
    "_unit_determinant",
    "_volumes_given_shape",
    "_common_shape_iterations",
    "_scaled_diagonals",
)
_orientation_lock = threading.Lock()
_compiled_kernels: dict[str, Callable] = {}
_kernels_ready = False


def _kernels() -> dict[str, Callable]:
    """The compiled kernels of this module, by name.

    On first call each is wrapped in ``numba.njit(cache=True)`` and rebound
    under its name in this module, so that they call one another compiled;
    numba compiles each at its first call and keeps the machine code in
    ``__pycache__``, so a later process only loads it. Later calls cost one
    global lookup (they run once or twice per EM iteration).
    """
    global _kernels_ready
    if _kernels_ready:
        return _compiled_kernels
    with _orientation_lock:
        if not _compiled_kernels:
            import numba

            jit = numba.njit(cache=True, nogil=True, error_model="numpy")
            namespace = globals()
            for name in _ORIENTATION_KERNELS + _STEP_KERNELS:
                _compiled_kernels[name] = namespace[name] = jit(namespace[name])
            _kernels_ready = True
        return _compiled_kernels


#: (the name the orientation step and its tests know)
_orientation_kernels = _kernels


class _CommonOrientation(_Constrained):
    """Shared orientation ``D``; shapes in closed form given ``D``.

    The orientation problem is not convex, so without a previous solution
    the iteration starts from the eigenvectors of the pooled scatter and of
    every component's scatter and keeps the best; inside EM it continues from
    the previous M-step's orientation, which is enough for the likelihood
    never to decrease.
    """

    iterative = True
    #: EVE: one volume for all components; VVE: one per component.
    equal_volume: bool

    def _solve(self, scatter, counts, orientation, largest, max_iter=None):
        # Warm (largest is None): plane rotations only, which are exact for
        # D = 2 and converge from a nearby orientation; cold: the
        # majorisation step first, which moves far in one step.
        cold = largest is not None
        if max_iter is None:
            max_iter = _INNER_MAX_ITER if cold else _WARM_MAX_SWEEPS
        return _orientation_kernels()["_orientation_iterations"](
            np.ascontiguousarray(scatter, dtype=np.float64),
            np.ascontiguousarray(counts, dtype=np.float64),
            np.ascontiguousarray(orientation, dtype=np.float64),
            np.ascontiguousarray(largest if cold else np.empty(0), dtype=np.float64),
            self.equal_volume,
            max_iter,
            _COLD_TOL if cold else _WARM_TOL,
        )

    def constrained_step(self, scatter, counts, previous=None):
        if previous is not None and np.isfinite(previous).all():
            starts = [_sorted_eigh(previous.sum(axis=0))[1]]
            largest = None
        else:
            starts = [_sorted_eigh(m)[1] for m in (scatter.sum(axis=0), *scatter)]
            largest = np.linalg.eigvalsh(scatter)[:, -1]
        screen = _COLD_SCREEN_ITER if len(starts) > 1 else None
        best = None
        for start in starts:
            value, orientation, diagonals = self._solve(
                scatter, counts, start, largest, screen
            )
            if best is None or value < best[0]:
                best = (value, orientation, diagonals)
        if screen is not None:
            best = self._solve(scatter, counts, best[1], largest)
        _, orientation, diagonals = best
        return np.einsum("ij,kj,lj->kil", orientation, diagonals, orientation)


class EVE(_CommonOrientation):
    """Covariances ``lambda D A_k D^T``: common volume and orientation."""

    name = "EVE"
    equal_volume = True

    def n_parameters(self, n_components, n_features):
        return 1 + n_components * (n_features - 1) + n_features * (n_features - 1) // 2


class VVE(_CommonOrientation):
    """Covariances ``lambda_k D A_k D^T``: common orientation only."""

    name = "VVE"
    equal_volume = False

    def n_parameters(self, n_components, n_features):
        return n_components * n_features + n_features * (n_features - 1) // 2


class EEV(_Constrained):
    """Covariances ``lambda D_k A D_k^T``: common volume and shape."""

    name = "EEV"

    def n_parameters(self, n_components, n_features):
        return n_features + n_components * n_features * (n_features - 1) // 2

    def constrained_step(self, scatter, counts, previous=None):
        values, vectors = _sorted_eigh(scatter)
        pooled = values.sum(axis=0) / counts.sum()
        return np.einsum("kij,j,klj->kil", vectors, pooled, vectors)


class VEV(_Constrained):
    """Covariances ``lambda_k D_k A D_k^T``: common shape only."""

    name = "VEV"
    iterative = True

    def n_parameters(self, n_components, n_features):
        return (
            n_components
            + n_features
            - 1
            + n_components * n_features * (n_features - 1) // 2
        )

    def constrained_step(self, scatter, counts, previous=None):
        values, vectors = _sorted_eigh(scatter)
        values = np.maximum(values, 0.0)
        if previous is not None and np.isfinite(previous).all():
            shape = np.linalg.eigvalsh(previous[0])[::-1]  # lambda_0 A, descending
        else:
            shape = values.sum(axis=0)
        volumes, shape = _volumes_and_common_shape(values, counts, shape)
        return np.einsum("kij,kj,klj->kil", vectors, volumes[:, None] * shape, vectors)


class EVV(_Constrained):
    """Covariances ``lambda C_k``, det C_k = 1: common volume only."""

    name = "EVV"

    def n_parameters(self, n_components, n_features):
        return 1 + n_components * (n_features * (n_features + 1) // 2 - 1)

    def constrained_step(self, scatter, counts, previous=None):
        n_features = scatter.shape[-1]
        sizes = np.abs(np.linalg.det(scatter)) ** (1.0 / n_features)
        volume = sizes.sum() / counts.sum()
        return volume * scatter / sizes[:, None, None]


# ---------------------------------------------------------------------------
# Univariate models: mclust's E (equal variance) and V (variable variance)


def _univariate(name: str, n_features: int) -> None:
    if n_features != 1:
        raise ValueError(
            f"covariance model {name!r} is univariate but the data have "
            f"{n_features} features; use a multivariate model such as "
            f"{'EII' if name == 'E' else 'VII'!r} or 'VVV'."
        )


class E(Tied):
    """Univariate, one variance shared by all components; stored (1, 1)."""

    name = "E"

    def shape(self, n_components, n_features):
        _univariate(self.name, n_features)
        return super().shape(n_components, n_features)


class V(Spherical):
    """Univariate, one variance per component; stored (K,)."""

    name = "V"

    def shape(self, n_components, n_features):
        _univariate(self.name, n_features)
        return super().shape(n_components, n_features)


#: Models by name; the scikit-learn names and mclust's names of the same model
#: are the same object, so a fit under either name is identical.
COVARIANCE_MODELS: dict[str, CovarianceModel] = {
    model.name: model
    for model in (
        Full(),
        Tied(),
        Diag(),
        Spherical(),
        EII(),
        EEI(),
        VEI(),
        EVI(),
        VEE(),
        EVE(),
        VVE(),
        EEV(),
        VEV(),
        EVV(),
        E(),
        V(),
    )
}
ALIASES = {"VII": "spherical", "VVI": "diag", "EEE": "tied", "VVV": "full"}
COVARIANCE_MODELS.update(
    {alias: COVARIANCE_MODELS[name] for alias, name in ALIASES.items()}
)

#: mclust's names in its own order: the 14 multivariate models, then the two
#: univariate ones.
MCLUST_MODELS = (
    "EII", "VII", "EEI", "VEI", "EVI", "VVI", "EEE",
    "VEE", "EVE", "VVE", "EEV", "VEV", "EVV", "VVV",
)  # fmt: skip
UNIVARIATE_MODELS = ("E", "V")


def models_for(n_features: int) -> tuple[str, ...]:
    """Mclust's model names that apply to data with ``n_features`` features."""
    return UNIVARIATE_MODELS if n_features == 1 else MCLUST_MODELS


def mclust_name(covariance_type: str) -> str:
    """Mclust's name of a model ('full' -> 'VVV'); mclust names map to themselves."""
    for alias, name in ALIASES.items():
        if covariance_type == name:
            return alias
    return covariance_type


def get_covariance_model(covariance_type: str) -> CovarianceModel:
    """The registered model for ``covariance_type``, or a ValueError naming them."""
    try:
        return COVARIANCE_MODELS[covariance_type]
    except (KeyError, TypeError):
        allowed = ", ".join(repr(name) for name in COVARIANCE_MODELS)
        raise ValueError(
            f"covariance_type must be one of {allowed}; got {covariance_type!r}."
        ) from None
