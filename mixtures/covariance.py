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

from typing import Protocol

import numpy as np
from scipy import linalg

__all__ = [
    "COVARIANCE_MODELS",
    "CovarianceModel",
    "Diag",
    "Full",
    "Spherical",
    "Tied",
    "get_covariance_model",
]


class CovarianceModel(Protocol):
    """What the EM engine needs from a covariance parameterisation."""

    name: str
    #: True when one covariance is shared by every component.
    shared: bool

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
        reg_covar: float,
    ) -> np.ndarray:
        """Covariances from centred moments (the M-step for this model)."""
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
        """This model's covariances closest to a (K, D, D) stack (by moments)."""
        ...

    def check_precisions(self, precisions: np.ndarray) -> None:
        """Raise ValueError unless ``precisions`` are valid for this model."""
        ...


# ---------------------------------------------------------------------------
# Helpers shared by the matrix models (full, tied)


def _cholesky_lower(matrix: np.ndarray, floor: np.ndarray) -> np.ndarray | None:
    """Lower Cholesky factor, or None if ``matrix`` is collapsed.

    Collapsed means not positive definite or a squared pivot (the variance of
    one feature given the preceding ones) below ``floor`` for that feature.
    """
    if not np.all(np.isfinite(matrix)):
        return None
    try:
        lower = linalg.cholesky(matrix, lower=True, check_finite=False)
    except linalg.LinAlgError:
        return None
    pivots = np.diagonal(lower) ** 2
    if np.any(pivots < floor) or not np.all(np.isfinite(lower)):
        return None
    return lower


def _precision_cholesky_from_lower(lower: np.ndarray) -> np.ndarray:
    identity = np.eye(lower.shape[0], dtype=lower.dtype)
    return linalg.solve_triangular(lower, identity, lower=True, check_finite=False).T


def _flip(matrix: np.ndarray) -> np.ndarray:
    return matrix[::-1, ::-1]


def _upper_cholesky_of_precision(precision: np.ndarray) -> np.ndarray:
    # Upper-triangular U with U @ U.T == precision: the lower Cholesky factor
    # of the row-and-column reversed matrix, reversed back.
    return _flip(linalg.cholesky(_flip(precision), lower=True))


def _covariance_from_precision_cholesky(prec_chol: np.ndarray) -> np.ndarray:
    # Sigma = (P P^T)^-1 = P^-T P^-1; one triangular solve, no general inverse.
    identity = np.eye(prec_chol.shape[0], dtype=prec_chol.dtype)
    inv_p = linalg.solve_triangular(prec_chol, identity, lower=False)
    return inv_p.T @ inv_p


def _check_symmetric_positive_definite(matrix: np.ndarray, what: str) -> None:
    if not np.allclose(matrix, matrix.T, rtol=1e-7, atol=1e-10):
        raise ValueError(f"{what} must be symmetric; got an asymmetric matrix.")
    if np.any(np.linalg.eigvalsh(matrix) <= 0.0):
        raise ValueError(
            f"{what} must be positive definite; got a matrix with a "
            "non-positive eigenvalue. Pass precisions (inverse covariances), "
            "not covariances or their square roots."
        )


# Bytes of a chunk's largest temporary: 2 MiB measured best on 2-core
# machines for N = 200,000, D = K = 16, in float64 and float32 (benchmarks/).
_CHUNK_BYTES = 2**21


def _rows_for(elements_per_row: int, itemsize: int) -> int:
    return int(max(256, _CHUNK_BYTES // (max(1, elements_per_row) * itemsize)))


# ---------------------------------------------------------------------------
# The four scikit-learn parameterisations


class Full:
    """Each component has its own general covariance matrix, shape (K, D, D)."""

    name = "full"
    shared = False

    def shape(self, n_components, n_features):
        return (n_components, n_features, n_features)

    def n_parameters(self, n_components, n_features):
        return n_components * n_features * (n_features + 1) // 2

    def precision_cholesky(self, covariances, floor):
        n_features = covariances.shape[-1]
        collapsed = ~np.all(np.isfinite(covariances), axis=(1, 2))
        lower = np.broadcast_to(np.eye(n_features), covariances.shape).copy()
        try:  # one batched factorisation in the usual case
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
        return _rows_for(n_components * n_features, itemsize)

    def covariances_from_moments(
        self,
        weight_sums,
        first_moments,
        offsets,
        second_moments,
        denominators,
        reg_covar,
    ):
        # sum_n r (x - c - d)(x - c - d)^T = S2 - S1 d^T - d S1^T + S0 d d^T
        outer_first = np.einsum("ki,kj->kij", first_moments, offsets)
        covariances = (
            second_moments
            - outer_first
            - np.swapaxes(outer_first, 1, 2)
            + weight_sums[:, None, None] * np.einsum("ki,kj->kij", offsets, offsets)
        ) / denominators[:, None, None]
        covariances = 0.5 * (covariances + np.swapaxes(covariances, 1, 2))
        diagonal = np.arange(covariances.shape[-1])
        covariances[:, diagonal, diagonal] += reg_covar
        return covariances

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
            _check_symmetric_positive_definite(precision, f"precisions_init[{k}]")


class Tied(Full):
    """All components share one general covariance matrix, shape (D, D)."""

    name = "tied"
    shared = True

    def shape(self, n_components, n_features):
        return (n_features, n_features)

    def n_parameters(self, n_components, n_features):
        return n_features * (n_features + 1) // 2

    def precision_cholesky(self, covariances, floor):
        lower = _cholesky_lower(covariances, floor)
        if lower is None:
            return np.eye(covariances.shape[0]), np.ones(1, dtype=bool)
        return _precision_cholesky_from_lower(lower), np.zeros(1, dtype=bool)

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
    ):
        outer_first = np.einsum("ki,kj->ij", first_moments, offsets)
        covariance = (
            second_moments
            - outer_first
            - outer_first.T
            + np.einsum("k,ki,kj->ij", weight_sums, offsets, offsets)
        ) / denominators.sum()
        covariance = 0.5 * (covariance + covariance.T)
        covariance[np.diag_indices_from(covariance)] += reg_covar
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
        _check_symmetric_positive_definite(precisions, "precisions_init")


class Diag:
    """Each component has its own diagonal covariance, stored as (K, D) variances."""

    name = "diag"
    shared = False

    def shape(self, n_components, n_features):
        return (n_components, n_features)

    def n_parameters(self, n_components, n_features):
        return n_components * n_features

    def precision_cholesky(self, covariances, floor):
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
        return _rows_for(2 * n_features + 4 * n_components, itemsize)

    def covariances_from_moments(
        self,
        weight_sums,
        first_moments,
        offsets,
        second_moments,
        denominators,
        reg_covar,
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
            raise ValueError("precisions_init for 'diag' must be strictly positive.")


class Spherical(Diag):
    """Each component has one variance shared by all features, shape (K,)."""

    name = "spherical"

    def shape(self, n_components, n_features):
        return (n_components,)

    def n_parameters(self, n_components, n_features):
        return n_components

    def precision_cholesky(self, covariances, floor):
        # The floor of a spherical variance is the mean per-feature floor.
        prec_chol, collapsed = super().precision_cholesky(
            covariances[:, np.newaxis], np.atleast_1d(np.mean(floor))
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
    ):
        n_features = offsets.shape[1]
        variances = (
            second_moments
            - 2.0 * np.sum(first_moments * offsets, axis=1)
            + weight_sums * np.sum(offsets**2, axis=1)
        ) / (denominators * n_features)
        return variances + reg_covar

    def to_full(self, covariances, n_components, n_features):
        return np.asarray(covariances, dtype=float)[:, None, None] * np.eye(n_features)

    def from_full(self, full_covariances):
        return np.mean(np.diagonal(full_covariances, axis1=1, axis2=2), axis=1)

    def check_precisions(self, precisions):
        if np.any(precisions <= 0.0):
            raise ValueError(
                "precisions_init for 'spherical' must be strictly positive."
            )


COVARIANCE_MODELS: dict[str, CovarianceModel] = {
    model.name: model for model in (Full(), Tied(), Diag(), Spherical())
}


def get_covariance_model(covariance_type: str) -> CovarianceModel:
    """The registered model for ``covariance_type``, or a ValueError naming them."""
    try:
        return COVARIANCE_MODELS[covariance_type]
    except (KeyError, TypeError):
        allowed = ", ".join(repr(name) for name in COVARIANCE_MODELS)
        raise ValueError(
            f"covariance_type must be one of {allowed}; got {covariance_type!r}."
        ) from None
