"""Linear algebra shared by the covariance models: factors, scatters, chunks.

Cholesky factors through LAPACK (with the collapse test against a
per-feature floor), precision factors and their inverses, the scatter
matrices of the M-step from the fused pass's moments (compiled or NumPy, as
the ``kernel`` argument says), and the row chunking of the passes.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from scipy import linalg

from mixtures import _covariance_kernels as _ck


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


#: What a covariance model's M-step takes (:func:`mixtures.em.m_step` makes
#: it), the moments about the centres ``c_k``, in this order:
#:
#: * ``weight_sums``: ``S0_k = sum_n w_n r_nk``, (K,);
#: * ``first_moments``: ``S1_k = sum_n w_n r_nk (x_n - c_k)``, (K, D);
#: * ``offsets``: ``d_k``, from the centres to the new means, (K, D);
#: * ``second_moments``: the model's statistic about ``c_k``, (K, D, D),
#:   (D, D), (K, D) or (K,), a prior's scatter included;
#: * ``denominators``: the masses the covariances are divided by, (K,), a
#:   prior's included.
#:
#: A plain tuple, not a named one: it is made at every EM iteration.
MStepMoments = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]


def _compiled(kernel: str) -> bool:
    """True when the compiled helpers of the M-steps and factorisations run.

    With the compiled pass (``kernel="numba"``) only: with ``kernel="numpy"``
    every model but EVE and VVE (whose orientation step is compiled only)
    runs its NumPy code, as it did before these helpers, and needs no numba.
    The helpers give that code's numbers to the last bit, except VEI's and
    VEV's inner iteration (``_common_shape_iterations``), whose sums and
    logarithms round differently (~1e-15 relative).
    """
    return kernel == "numba"


def _moments_scatter(
    moments: MStepMoments, reg_covar, *, per_mass: bool, kernel: str
) -> np.ndarray:
    """The scatter with an M-step's ``reg_covar``: compiled where it can be.

    ``per_mass`` False: the covariances ``scatter / denominators + reg``
    (:meth:`Full.covariances_from_moments`); True: the scatter plus
    ``denominators * reg`` on its diagonal (the constrained models). The
    compiled :func:`_regularised_scatter` when :func:`_compiled_moments`
    accepts the arrays, else the same NumPy expressions.
    """
    reg = _compiled_moments(moments, reg_covar, kernel)
    if reg is not None:
        return _ck._kernels()["_regularised_scatter"](*moments, reg, per_mass)
    weight_sums, first_moments, offsets, second_moments, denominators = moments
    scatter = _scatter(weight_sums, first_moments, offsets, second_moments)
    diagonal = np.arange(scatter.shape[-1])
    if per_mass:
        scatter[:, diagonal, diagonal] += denominators[:, None] * reg_covar
        return scatter
    covariances = scatter / denominators[:, None, None]
    covariances[:, diagonal, diagonal] += reg_covar
    return covariances


_FLOAT64 = np.dtype(np.float64)


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
    moments: MStepMoments, reg_covar, kernel: str
) -> np.ndarray | None:
    """``reg_covar`` as (D,) when :func:`_regularised_scatter` takes these.

    None (the NumPy expressions then run) unless the compiled helpers are on
    (:func:`_compiled`), every array is float64 with the protocol's shapes,
    (K,), (K, D), (K, D), (K, D, D), (K,), and ``reg_covar`` is a scalar or
    (D,): the compiled loops index without broadcasting or bounds checks.
    """
    if not _compiled(kernel) or not _is_float64(*moments):
        return None
    weight_sums, first_moments, offsets, second_moments, denominators = moments
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
