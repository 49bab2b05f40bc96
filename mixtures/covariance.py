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

The methods whose arithmetic has a compiled form (the factorisation, the
M-step, the projection from full covariances) take the fit's resolved
``kernel``, ``"numba"`` or ``"numpy"`` (:func:`mixtures._parallel.resolve_kernel`),
as an argument: ``"numba"`` runs the compiled helpers, ``"numpy"`` the NumPy
code they replace. A model reads no ambient state.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np

from mixtures._covariance_linalg import MStepMoments, rows_for
from mixtures._covariance_mclust import (
    EEI,
    EEV,
    EII,
    EVE,
    EVI,
    EVV,
    VEE,
    VEI,
    VEV,
    VVE,
    ConstrainedModel,
)
from mixtures._covariance_sklearn import Diag, E, Full, Spherical, Tied, V

__all__ = [
    "ALIASES",
    "COVARIANCE_MODELS",
    "MCLUST_MODELS",
    "UNIVARIATE_MODELS",
    "ConstrainedModel",
    "CovarianceModel",
    "Diag",
    "Full",
    "MStepMoments",
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
        self, covariances: np.ndarray, floor: np.ndarray, *, kernel: str
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
        moments: MStepMoments,
        reg_covar: float | np.ndarray,
        previous: np.ndarray | None = None,
        *,
        kernel: str,
    ) -> np.ndarray:
        """Covariances from centred moments (the M-step for this model).

        ``moments`` is ``(weight_sums, first_moments, offsets, second_moments,
        denominators)`` (:data:`MStepMoments`). ``previous`` (this model's
        storage) warm-starts the iterative M-steps; the closed-form ones
        ignore it.
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

    def from_full(self, full_covariances: np.ndarray, *, kernel: str) -> np.ndarray:
        """The model's covariances closest to a (K, D, D) stack (by moments)."""
        ...

    def check_precisions(self, precisions: np.ndarray) -> None:
        """Raise ValueError unless ``precisions`` are valid for this model."""
        ...


# ---------------------------------------------------------------------------
# The registry


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
