"""The ten constrained models of Celeux & Govaert (1995) that scikit-learn lacks.

EII, EEI, VEI, EVI, VEE, EVE, VVE, EEV, VEV and EVV, under mclust's names:
full (K, D, D) storage with a constrained M-step (:class:`ConstrainedModel`).
"""

from __future__ import annotations

import math

import numpy as np

from mixtures import _covariance_kernels as _ck
from mixtures import _covariance_linalg as _la
from mixtures._covariance_linalg import _is_float64, _moments_scatter
from mixtures._covariance_sklearn import Full
from mixtures._parallel import resolve_kernel

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
    # Callers run under np.errstate (see ConstrainedModel.covariances_from_moments).
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


def _volumes_and_common_shape(values, counts, shape, kernel):
    """Volumes ``lambda_k`` and a common shape ``A`` (det 1) for given axes.

    Minimises ``sum_k [n_k D log lambda_k + sum_d values_kd / (lambda_k A_d)]``
    by Celeux & Govaert's (1995) alternation, from ``shape``: ``values`` are
    the scatters' variances along each component's axes (the diagonals for
    VEI, the eigenvalues for VEV), shape (K, D). The iteration is
    :func:`_common_shape_iterations`, compiled, or with the compiled helpers
    off (``kernel="numpy"``) the same in NumPy.
    """
    if not _la._compiled(kernel):
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
    return _ck._kernels()["_common_shape_iterations"](
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


class ConstrainedModel(Full):
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

    def _constrained_step(self, scatter, counts, previous, kernel):
        """:meth:`constrained_step` on the fit's ``kernel``.

        Most steps have one form and ignore it; VEI and VEV, whose inner
        iteration is compiled on ``kernel="numba"``, override this.
        """
        return self.constrained_step(scatter, counts, previous)

    def covariances_from_moments(self, moments, reg_covar, previous=None, *, kernel):
        scatter = _moments_scatter(moments, reg_covar, per_mass=True, kernel=kernel)
        denominators = moments[-1]
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            covariances = self._constrained_step(
                scatter, denominators, previous, kernel
            )
        if (
            _la._compiled(kernel)  # bit-identical to the NumPy line below
            and _is_float64(scatter, covariances)
            and covariances.shape == scatter.shape
        ):
            return _ck._kernels()["_symmetrised"](covariances)
        return 0.5 * (covariances + np.swapaxes(covariances, 1, 2))

    def from_full(self, full_covariances, *, kernel):
        full = np.asarray(full_covariances, dtype=float)
        return self._constrained_step(full, np.ones(full.shape[0]), None, kernel)


class EII(ConstrainedModel):
    """Equal spherical covariances ``lambda I``."""

    name = "EII"
    single_covariance = True

    def n_parameters(self, n_components, n_features):
        return 1

    def constrained_step(self, scatter, counts, previous=None):
        _n_components, n_features = scatter.shape[0], scatter.shape[-1]
        volume = np.trace(scatter, axis1=1, axis2=2).sum() / (counts.sum() * n_features)
        return np.broadcast_to(volume * np.eye(n_features), scatter.shape).copy()


class EEI(ConstrainedModel):
    """Equal diagonal covariances ``lambda A``."""

    name = "EEI"
    single_covariance = True

    def n_parameters(self, n_components, n_features):
        return n_features

    def constrained_step(self, scatter, counts, previous=None):
        pooled = np.diagonal(scatter, axis1=1, axis2=2).sum(axis=0) / counts.sum()
        return np.broadcast_to(np.diag(pooled), scatter.shape).copy()


class VEI(ConstrainedModel):
    """Diagonal covariances ``lambda_k A`` with a common shape."""

    name = "VEI"
    iterative = True

    def n_parameters(self, n_components, n_features):
        return n_components + n_features - 1

    def constrained_step(self, scatter, counts, previous=None, *, kernel=None):
        if kernel is None:
            kernel = resolve_kernel(None)
        diagonals = np.diagonal(scatter, axis1=1, axis2=2)  # (K, D)
        if previous is not None and np.isfinite(previous).all():
            shape = np.diagonal(previous, axis1=1, axis2=2)[0]
        else:
            shape = diagonals.sum(axis=0)
        volumes, shape = _volumes_and_common_shape(diagonals, counts, shape, kernel)
        if _la._compiled(kernel):
            return _ck._kernels()["_scaled_diagonals"](volumes, shape)
        return _diagonal_matrices(volumes[:, None] * shape)

    def _constrained_step(self, scatter, counts, previous, kernel):
        return self.constrained_step(scatter, counts, previous, kernel=kernel)


class EVI(ConstrainedModel):
    """Diagonal covariances ``lambda A_k`` with a common volume."""

    name = "EVI"

    def n_parameters(self, n_components, n_features):
        return 1 + n_components * (n_features - 1)

    def constrained_step(self, scatter, counts, previous=None):
        diagonals = np.diagonal(scatter, axis1=1, axis2=2)
        sizes = _geometric_mean(diagonals)  # (K,)
        volume = sizes.sum() / counts.sum()
        return _diagonal_matrices(volume * diagonals / sizes[:, None])


class VEE(ConstrainedModel):
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


class _CommonOrientation(ConstrainedModel):
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
        return _ck._orientation_kernels()["_orientation_iterations"](
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


class EEV(ConstrainedModel):
    """Covariances ``lambda D_k A D_k^T``: common volume and shape."""

    name = "EEV"

    def n_parameters(self, n_components, n_features):
        return n_features + n_components * n_features * (n_features - 1) // 2

    def constrained_step(self, scatter, counts, previous=None):
        values, vectors = _sorted_eigh(scatter)
        pooled = values.sum(axis=0) / counts.sum()
        return np.einsum("kij,j,klj->kil", vectors, pooled, vectors)


class VEV(ConstrainedModel):
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

    def constrained_step(self, scatter, counts, previous=None, *, kernel=None):
        if kernel is None:
            kernel = resolve_kernel(None)
        values, vectors = _sorted_eigh(scatter)
        values = np.maximum(values, 0.0)
        if previous is not None and np.isfinite(previous).all():
            shape = np.linalg.eigvalsh(previous[0])[::-1]  # lambda_0 A, descending
        else:
            shape = values.sum(axis=0)
        volumes, shape = _volumes_and_common_shape(values, counts, shape, kernel)
        return np.einsum("kij,kj,klj->kil", vectors, volumes[:, None] * shape, vectors)

    def _constrained_step(self, scatter, counts, previous, kernel):
        return self.constrained_step(scatter, counts, previous, kernel=kernel)


class EVV(ConstrainedModel):
    """Covariances ``lambda C_k``, det C_k = 1: common volume only."""

    name = "EVV"

    def n_parameters(self, n_components, n_features):
        return 1 + n_components * (n_features * (n_features + 1) // 2 - 1)

    def constrained_step(self, scatter, counts, previous=None):
        n_features = scatter.shape[-1]
        sizes = np.abs(np.linalg.det(scatter)) ** (1.0 / n_features)
        volume = sizes.sum() / counts.sum()
        return volume * scatter / sizes[:, None, None]


#: (the name the M-step tests and older code know)
_Constrained = ConstrainedModel
