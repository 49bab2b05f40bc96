"""The parameters of a Gaussian mixture as one immutable value.

:class:`MixtureParams` holds weights, means and covariances in the storage of
its covariance type (see :mod:`mixtures.covariance`) together with the
Cholesky factors of the precisions that the log-density needs. Everything
else in the package (E-step, M-step, estimators, backends, alignment) passes
these objects around instead of loose arrays.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from numpy.typing import ArrayLike

from mixtures._parallel import resolve_kernel
from mixtures.covariance import CovarianceModel, get_covariance_model

__all__ = ["MixtureParams"]


_FLOAT64 = np.dtype(np.float64)


def _frozen(array: ArrayLike) -> np.ndarray:
    array = np.array(array, dtype=np.float64, copy=True)
    array.flags.writeable = False
    return array


@dataclass(frozen=True, eq=False, init=False)
class MixtureParams:
    """Weights, means and covariances of a Gaussian mixture.

    Parameters
    ----------
    weights : array-like of shape (n_components,)
        Mixing proportions, non-negative and summing to one.
    means : array-like of shape (n_components, n_features)
        Component means.
    covariances : array-like
        Component covariances in the storage of ``covariance_type``:
        (K, D, D) for 'full', (D, D) for 'tied', (K, D) for 'diag' and (K,)
        for 'spherical'.
    covariance_type : {'full', 'tied', 'diag', 'spherical'}, default='full'
    precisions_cholesky : array-like, optional
        Upper Cholesky factors of the precisions, same shape as
        ``covariances``. Computed from ``covariances`` when omitted; a
        ValueError is raised if a covariance is not positive definite.
    kernel : {'numba', 'numpy'} or None, default=None
        How the omitted factors are computed: compiled (``'numba'``) or by
        NumPy (the two may differ in the last bit). None means the default,
        the ``GMMLAB_KERNEL`` environment variable, else ``'numba'``; a fit
        passes its own kernel.

    Notes
    -----
    Arrays are copied to float64 and made read-only, so a ``MixtureParams``
    can be shared freely. Use :meth:`to_full` for the (K, D, D) form that
    every backend and metric compares in.
    """

    weights: np.ndarray
    means: np.ndarray
    covariances: np.ndarray
    covariance_type: str
    precisions_cholesky: np.ndarray = field(repr=False)

    def __init__(
        self,
        weights: ArrayLike,
        means: ArrayLike,
        covariances: ArrayLike,
        covariance_type: str = "full",
        precisions_cholesky: ArrayLike | None = None,
        *,
        kernel: str | None = None,
    ) -> None:
        object.__setattr__(self, "covariance_type", covariance_type)
        model = get_covariance_model(covariance_type)
        weights = _frozen(np.atleast_1d(weights))
        means = _frozen(means)
        if means.ndim == 1:
            means = _frozen(means[:, np.newaxis])
        covariances = _frozen(covariances)
        if weights.ndim != 1:
            raise ValueError(f"weights must be 1-D; got shape {weights.shape}.")
        n_components = weights.shape[0]
        if means.ndim != 2 or means.shape[0] != n_components:
            raise ValueError(
                f"means must have shape ({n_components}, n_features); "
                f"got {means.shape}."
            )
        expected = model.shape(n_components, means.shape[1])
        if covariances.shape != expected:
            raise ValueError(
                f"{self.covariance_type!r} covariances must have shape {expected}; "
                f"got {covariances.shape}."
            )
        for name, array in (
            ("weights", weights),
            ("means", means),
            ("covariances", covariances),
        ):
            if not np.all(np.isfinite(array)):
                raise ValueError(f"{name} contain NaN or infinity.")
        if np.any(weights < 0) or not np.isclose(weights.sum(), 1.0, atol=1e-8):
            raise ValueError(
                "weights must be non-negative and sum to one; got sum "
                f"{weights.sum():.6g} and minimum {weights.min():.3g}."
            )
        if precisions_cholesky is None:
            if kernel is None:
                kernel = resolve_kernel(None)
            prec_chol, collapsed = model.precision_cholesky(
                covariances, np.zeros(means.shape[1]), kernel=kernel
            )
            if np.any(collapsed):
                raise ValueError(
                    "covariances of components "
                    f"{np.flatnonzero(collapsed).tolist()} are not positive definite."
                )
        else:
            prec_chol = np.asarray(precisions_cholesky)
        object.__setattr__(self, "weights", weights)
        object.__setattr__(self, "means", means)
        object.__setattr__(self, "covariances", covariances)
        object.__setattr__(self, "precisions_cholesky", _frozen(prec_chol))

    @classmethod
    def _trusted(
        cls,
        weights: np.ndarray,
        means: np.ndarray,
        covariances: np.ndarray,
        covariance_type: str,
        precisions_cholesky: np.ndarray,
        owned: bool = False,
    ) -> MixtureParams:
        """Build without validation, for arrays the EM loop has just checked.

        The arrays are still copied to read-only float64, so the value stays
        immutable; only the shape, finiteness and weight checks are skipped
        (they cost more than an EM iteration on small data). ``owned=True``
        promises that nothing else holds the (float64) arrays: they are made
        read-only in place instead of copied.
        """
        params = object.__new__(cls)
        for name, array in (
            ("weights", weights),
            ("means", means),
            ("covariances", covariances),
            ("precisions_cholesky", precisions_cholesky),
        ):
            # Once per EM iteration, so written for small data: ``==`` with a
            # dtype object and setflags cost a fraction of ``==`` with the
            # type np.float64 and of assigning through the flags object.
            if owned and array.dtype == _FLOAT64:
                array.setflags(write=False)
            else:
                array = _frozen(array)
            object.__setattr__(params, name, array)
        object.__setattr__(params, "covariance_type", covariance_type)
        return params

    # -- derived quantities -------------------------------------------------

    @property
    def model(self) -> CovarianceModel:
        """The covariance model object of :attr:`covariance_type`."""
        return get_covariance_model(self.covariance_type)

    @property
    def n_components(self) -> int:
        """Number of components, K."""
        return self.weights.shape[0]

    @property
    def n_features(self) -> int:
        """Number of features, D."""
        return self.means.shape[1]

    @property
    def precisions(self) -> np.ndarray:
        """Precision matrices (inverse covariances), in the type's storage."""
        return self.model.precisions_from_cholesky(self.precisions_cholesky)

    def n_parameters(self) -> int:
        """Free parameters: covariances, means and K - 1 weights."""
        return (
            self.model.n_parameters(self.n_components, self.n_features)
            + self.n_components * self.n_features
            + self.n_components
            - 1
        )

    # -- conversions --------------------------------------------------------

    def full_covariances(self) -> np.ndarray:
        """Covariances as a (K, D, D) array whatever the covariance type."""
        return self.model.to_full(self.covariances, self.n_components, self.n_features)

    def to_full(self) -> MixtureParams:
        """The same mixture with 'full' covariances of shape (K, D, D)."""
        if self.covariance_type == "full":
            return self
        return MixtureParams(self.weights, self.means, self.full_covariances(), "full")

    def as_covariance_type(
        self, covariance_type: str, *, kernel: str | None = None
    ) -> MixtureParams:
        """Project onto another covariance type by matching second moments.

        Exact when going to a richer type; 'diag' keeps the variances,
        'spherical' their mean, 'tied' the mean covariance. ``kernel`` as
        in the constructor (the constrained models' projection iterates).
        """
        if covariance_type == self.covariance_type:
            return self
        if kernel is None:
            kernel = resolve_kernel(None)
        target = get_covariance_model(covariance_type)
        return MixtureParams(
            self.weights,
            self.means,
            target.from_full(self.full_covariances(), kernel=kernel),
            covariance_type,
            kernel=kernel,
        )

    def permute(self, order: np.ndarray) -> MixtureParams:
        """Components reordered: component ``k`` of the result is ``order[k]``."""
        order = np.asarray(order)
        if sorted(order.tolist()) != list(range(self.n_components)):
            raise ValueError(
                f"order must be a permutation of 0..{self.n_components - 1}."
            )
        if self.model.shared:
            covariances, prec_chol = self.covariances, self.precisions_cholesky
        else:
            covariances = self.covariances[order]
            prec_chol = self.precisions_cholesky[order]
        return MixtureParams(
            self.weights[order],
            self.means[order],
            covariances,
            self.covariance_type,
            prec_chol,
        )

    def sample(
        self, n_samples: int, random_state=None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Draw ``n_samples`` points and their components.

        Parameters
        ----------
        n_samples : int
        random_state : None, int, or numpy.random.Generator
            Passed to :func:`numpy.random.default_rng`. Labels and noise come
            from two independent child streams, so samples are *nested*: the
            first ``m`` rows of a sample of size ``n >= m`` are the sample of
            size ``m`` from the same seed.

        Returns
        -------
        X : ndarray of shape (n_samples, n_features)
        labels : ndarray of shape (n_samples,)
        """
        label_rng, noise_rng = np.random.default_rng(random_state).spawn(2)
        labels = label_rng.choice(self.n_components, size=n_samples, p=self.weights)
        factors = np.linalg.cholesky(self.full_covariances())
        noise = noise_rng.standard_normal((n_samples, self.n_features))
        # Component by component: O(n D) memory, never an (n, D, D) array of
        # the rows' factors; einsum's sums in the same order, so the draws
        # are bit for bit those of the per-row product.
        X = np.empty_like(noise)
        for k in range(self.n_components):
            rows = labels == k
            X[rows] = self.means[k] + np.einsum("ij,nj->ni", factors[k], noise[rows])
        return X, labels

    def astype_arrays(self, dtype: np.dtype) -> dict[str, np.ndarray]:
        """The fitted-attribute arrays cast to ``dtype`` (writeable copies)."""
        return {
            "weights": self.weights.astype(dtype),
            "means": self.means.astype(dtype),
            "covariances": self.covariances.astype(dtype),
            "precisions": self.precisions.astype(dtype),
            "precisions_cholesky": self.precisions_cholesky.astype(dtype),
        }

    def __repr__(self) -> str:
        return (
            f"MixtureParams(n_components={self.n_components}, "
            f"n_features={self.n_features}, "
            f"covariance_type={self.covariance_type!r})"
        )
