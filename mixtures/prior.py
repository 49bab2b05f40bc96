"""The conjugate prior of Fraley & Raftery (2007) for MAP-EM.

Fraley, C. and Raftery, A. E. (2007), "Bayesian regularization for normal
mixture estimation and model-based clustering", *Journal of Classification*
24:155-181. A normal prior on each mean given its covariance and an inverse
Wishart prior on the covariance,

    mu_k | Sigma_k ~ N(mu_P, Sigma_k / kappa_P),    Sigma_k ~ IW(nu_P, Lambda_P),

keeps every posterior mode inside the parameter space, so MAP-EM cannot
converge to a component collapsed onto a few points (a *spurious* maximum of
the likelihood). The defaults are the paper's (and R mclust's
``defaultPrior``): ``mu_P`` the data mean, ``kappa_P = 0.01``,
``nu_P = D + 2``, ``Lambda_P = cov(X) / K^(2/D)``.

The posterior mode is found by the usual M-step applied to modified
statistics (the paper's Table 2, derived here for every model at once):

* means ``(n_k xbar_k + kappa_P mu_P) / (n_k + kappa_P)``;
* covariances: the model's maximum-likelihood step with each scatter ``W_k``
  replaced by ``W_k + Lambda_P + kappa_P n_k / (n_k + kappa_P)
  (xbar_k - mu_P)(xbar_k - mu_P)^T`` and each mass ``n_k`` by
  ``n_k + nu_P + D + 2``.

For models with one covariance shared by every component (EII, EEI, EEE/tied,
univariate E) the inverse Wishart is put on that one matrix, so ``Lambda_P``
enters once and the masses grow by ``1 + (nu_P + D + 1) / K`` each; this is
exactly the paper's EEE step. For VVV it is exactly the paper's VVV step.
For the other constrained models it is the same prior density restricted to
the model's parameter set (the paper gives a different prior for some of
them, e.g. an inverse gamma on a spherical variance), so MAP estimates of
those models can differ slightly from mclust's.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["ConjugatePrior", "ResolvedPrior"]


@dataclass(frozen=True)
class ConjugatePrior:
    """Hyperparameters of the conjugate prior; None means the data default.

    Parameters
    ----------
    shrinkage : float, default=0.01
        ``kappa_P``, the prior's weight on ``mean`` in units of samples.
    mean : array-like of shape (n_features,), default=None
        ``mu_P``; the (weighted) data mean when None.
    dof : float, default=None
        ``nu_P`` > D - 1; ``D + 2`` when None.
    scale : array-like of shape (n_features, n_features), default=None
        ``Lambda_P``; ``cov(X) / K^(2/D)`` when None (the unbiased sample
        covariance, as in mclust).
    """

    shrinkage: float = 0.01
    mean: object = None
    dof: float | None = None
    scale: object = None

    def __post_init__(self) -> None:
        if not np.isfinite(self.shrinkage) or self.shrinkage < 0:
            raise ValueError(
                f"prior shrinkage must be a finite number >= 0; got {self.shrinkage!r}."
            )

    def resolve(
        self, X: np.ndarray, sample_weight: np.ndarray, n_components: int
    ) -> ResolvedPrior:
        """The hyperparameters for data ``X`` (n_samples, n_features) and K."""
        total = float(np.sum(sample_weight))
        data_mean = (sample_weight @ X.astype(np.float64)) / total
        covariance = None
        if self.scale is None:
            centred = X.astype(np.float64) - data_mean
            covariance = (centred.T * sample_weight) @ centred / max(total - 1.0, 1.0)
        return self.resolve_moments(data_mean, covariance, n_components)

    def resolve_moments(
        self, data_mean: np.ndarray, covariance: np.ndarray | None, n_components: int
    ) -> ResolvedPrior:
        """The hyperparameters from the data's weighted mean (D,) and covariance.

        ``covariance`` (D, D), with denominator ``max(total weight - 1, 1)``,
        is needed only without an explicit ``scale``; :meth:`resolve` computes
        both from rows, a fit out of core (:mod:`mixtures.dask_em`) from sums.
        """
        n_features = data_mean.shape[0]
        mean = data_mean if self.mean is None else np.asarray(self.mean, float)
        if mean.shape != (n_features,):
            raise ValueError(
                f"prior mean must have shape ({n_features},); got {mean.shape}."
            )
        dof = float(n_features + 2 if self.dof is None else self.dof)
        if not dof > n_features - 1:
            raise ValueError(
                f"prior dof must exceed n_features - 1 = {n_features - 1}; got {dof}."
            )
        if self.scale is None:
            assert covariance is not None
            scale = covariance / n_components ** (2.0 / n_features)
        else:
            scale = np.asarray(self.scale, dtype=float)
            if scale.shape != (n_features, n_features):
                raise ValueError(
                    f"prior scale must have shape ({n_features}, {n_features}); "
                    f"got {scale.shape}."
                )
        if not np.all(np.isfinite(scale)) or np.any(np.linalg.eigvalsh(scale) <= 0):
            raise ValueError(
                "prior scale must be a positive definite matrix; the data's "
                "covariance is singular (a constant feature?). Remove constant "
                "features or pass scale= explicitly."
            )
        return ResolvedPrior(float(self.shrinkage), mean, dof, scale)


@dataclass(frozen=True, eq=False)
class ResolvedPrior:
    """Hyperparameters for one data set and K (see :class:`ConjugatePrior`)."""

    shrinkage: float
    mean: np.ndarray  # (D,)
    dof: float
    scale: np.ndarray  # (D, D)

    def adjust(
        self,
        weight_sums: np.ndarray,
        ml_means: np.ndarray,
        single_covariance: bool,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """What the prior adds to the M-step.

        Returns ``(means, extra_scatter, extra_mass)``: the posterior-mode
        means (K, D), the matrices added to each component's scatter
        (K, D, D) and the amounts added to each mass (K,).
        """
        n_components, n_features = ml_means.shape
        kappa = self.shrinkage
        offset = ml_means - self.mean
        factor = kappa * weight_sums / (weight_sums + kappa)
        extra_scatter = factor[:, None, None] * np.einsum("ki,kj->kij", offset, offset)
        if single_covariance:
            extra_scatter += self.scale / n_components
            extra_mass = np.full(
                n_components, 1.0 + (self.dof + n_features + 1.0) / n_components
            )
        else:
            extra_scatter += self.scale
            extra_mass = np.full(n_components, self.dof + n_features + 2.0)
        means = (weight_sums[:, None] * ml_means + kappa * self.mean) / (
            weight_sums[:, None] + kappa
        )
        return means, extra_scatter, extra_mass

    def log_density(self, params) -> float:
        """Log prior density of a mixture's means and covariances.

        ``sum_k log N(mu_k | mu_P, Sigma_k / kappa_P)`` plus ``log IW(Sigma |
        nu_P, Lambda_P)`` once for a model with one covariance for all
        components, once per component otherwise. MAP-EM increases the
        log-likelihood plus this; restarts are compared on that sum.
        """
        from scipy import stats

        covariances = params.full_covariances()
        total = 0.0
        if self.shrinkage > 0:
            for mean, covariance in zip(params.means, covariances, strict=True):
                total += stats.multivariate_normal.logpdf(
                    mean, self.mean, covariance / self.shrinkage
                )
        wishart = stats.invwishart(df=self.dof, scale=self.scale)
        shared = params.model.single_covariance
        for covariance in covariances[:1] if shared else covariances:
            total += wishart.logpdf(covariance)
        return float(total)


def as_prior(prior) -> ConjugatePrior | None:
    """None, True / 'default' (the data defaults), a dict of overrides, or a prior."""
    if prior is None or prior is False:
        return None
    if prior is True or (isinstance(prior, str) and prior == "default"):
        return ConjugatePrior()
    if isinstance(prior, dict):
        return ConjugatePrior(**prior)
    if isinstance(prior, ConjugatePrior):
        return prior
    raise ValueError(
        "prior must be None, 'default', a dict of ConjugatePrior fields "
        f"(shrinkage, mean, dof, scale) or a ConjugatePrior; got {prior!r}."
    )
