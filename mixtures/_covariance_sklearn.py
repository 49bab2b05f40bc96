"""scikit-learn's four storages (full, tied, diag, spherical) and mclust's E, V.

Each class stores its covariances as scikit-learn does and owns their
factors, log-density terms, M-step statistics and parameter count (see the
:class:`mixtures.covariance.CovarianceModel` protocol).
"""

from __future__ import annotations

import numpy as np

from mixtures import _covariance_kernels as _ck
from mixtures import _covariance_linalg as _la
from mixtures._covariance_linalg import (
    _COMPILED_FACTOR_MAX_D,
    _check_symmetric_positive_definite,
    _cholesky_lower,
    _covariance_from_precision_cholesky,
    _feature_vector,
    _is_float64,
    _lapack,
    _moments_scatter,
    _upper_cholesky_of_precision,
    rows_for,
)

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

    def precision_cholesky(self, covariances, floor, *, kernel):
        n_features = covariances.shape[-1]
        if kernel == "numba" and n_features <= _COMPILED_FACTOR_MAX_D:
            # The usual case on the compiled pass's own factorisation: one
            # call instead of a dozen NumPy ones (most of an iteration's cost
            # on small data).
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

    def covariances_from_moments(self, moments, reg_covar, previous=None, *, kernel):
        return _moments_scatter(moments, reg_covar, per_mass=False, kernel=kernel)

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

    def from_full(self, full_covariances, *, kernel):
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

    def precision_cholesky(self, covariances, floor, *, kernel):
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

    def covariances_from_moments(self, moments, reg_covar, previous=None, *, kernel):
        weight_sums, first_moments, offsets, second_moments, denominators = moments
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

    def from_full(self, full_covariances, *, kernel):
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

    def precision_cholesky(self, covariances, floor, *, kernel):
        if (
            _is_float64(covariances)
            and covariances.ndim == 2
            and covariances.flags.writeable  # (a read-only one: another compile)
            and _la._compiled(kernel)
        ):
            return _ck._kernels()["_diagonal_factors"](
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

    def covariances_from_moments(self, moments, reg_covar, previous=None, *, kernel):
        weight_sums, first_moments, offsets, second_moments, denominators = moments
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

    def from_full(self, full_covariances, *, kernel):
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

    def precision_cholesky(self, covariances, floor, *, kernel):
        # The floor of a spherical variance is the mean per-feature floor.
        if _is_float64(floor) and floor.ndim == 1 and floor.size:
            # np.mean's own arithmetic (a pairwise sum over the count).
            mean_floor = np.full(1, np.add.reduce(floor) / floor.size)
        else:
            mean_floor = np.atleast_1d(np.mean(floor))
        prec_chol, collapsed = super().precision_cholesky(
            covariances[:, np.newaxis], mean_floor, kernel=kernel
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

    def covariances_from_moments(self, moments, reg_covar, previous=None, *, kernel):
        weight_sums, first_moments, offsets, second_moments, denominators = moments
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

    def from_full(self, full_covariances, *, kernel):
        return np.mean(np.diagonal(full_covariances, axis1=1, axis2=2), axis=1)


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
