"""Component matching and parameter-recovery metrics.

Mixture components have no intrinsic order (label switching), so every
comparison of two fits, or of a fit with the truth, first matches components:
a Hungarian assignment (:func:`scipy.optimize.linear_sum_assignment`) on the
squared 2-Wasserstein distance between the Gaussian components,

    W2^2(N1, N2) = |mu1 - mu2|^2 + B(Sigma1, Sigma2)^2,

whose Bures term ``B^2 = tr S1 + tr S2 - 2 tr (S1^1/2 S2 S1^1/2)^1/2`` uses the
covariances, so components with equal means but different shapes are told
apart. Everything else in gmmlab that compares labels goes through
:func:`match_components`.
"""

from __future__ import annotations

import numpy as np
from scipy.optimize import linear_sum_assignment
from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score

from mixtures.em import predict_labels, score_samples
from mixtures.params import MixtureParams

__all__ = [
    "align",
    "bures_distance",
    "component_distances",
    "hungarian",
    "label_agreement",
    "match_components",
    "mixture_kl",
    "pairwise_w2",
    "recovery_metrics",
    "sqrtm_psd",
]


def sqrtm_psd(matrices: np.ndarray) -> np.ndarray:
    """Symmetric square roots of positive semi-definite matrices (..., D, D)."""
    values, vectors = np.linalg.eigh(0.5 * (matrices + np.swapaxes(matrices, -1, -2)))
    scaled = vectors * np.sqrt(np.clip(values, 0.0, None))[..., np.newaxis, :]
    return scaled @ np.swapaxes(vectors, -1, -2)


def _bures_squared(cov_a: np.ndarray, cov_b: np.ndarray) -> np.ndarray:
    """Squared Bures distances, broadcasting over leading axes of (..., D, D)."""
    root_a = sqrtm_psd(cov_a)
    cross = sqrtm_psd(root_a @ cov_b @ root_a)
    trace = np.trace(cov_a, axis1=-2, axis2=-1) + np.trace(cov_b, axis1=-2, axis2=-1)
    return np.clip(trace - 2.0 * np.trace(cross, axis1=-2, axis2=-1), 0.0, None)


def bures_distance(cov_a: np.ndarray, cov_b: np.ndarray) -> float:
    """Bures distance between two covariance matrices (D, D)."""
    return float(np.sqrt(_bures_squared(cov_a, cov_b)))


def pairwise_w2(
    means_a: np.ndarray, covs_a: np.ndarray, means_b: np.ndarray, covs_b: np.ndarray
) -> np.ndarray:
    """Squared 2-Wasserstein distances between all component pairs.

    Shapes: means (..., K, D), covariances (..., K, D, D); returns
    (..., K_a, K_b). Leading axes (for example posterior draws) broadcast.
    """
    mean_term = np.sum(
        (means_a[..., :, np.newaxis, :] - means_b[..., np.newaxis, :, :]) ** 2, axis=-1
    )
    cov_term = _bures_squared(
        covs_a[..., :, np.newaxis, :, :], covs_b[..., np.newaxis, :, :, :]
    )
    return mean_term + cov_term


def component_distances(a: MixtureParams, b: MixtureParams) -> np.ndarray:
    """Squared 2-Wasserstein distances between components, shape (K_a, K_b)."""
    return pairwise_w2(a.means, a.full_covariances(), b.means, b.full_covariances())


def match_components(estimated: MixtureParams, reference: MixtureParams) -> np.ndarray:
    """Order of ``estimated``'s components that best matches ``reference``.

    Returns ``order`` of shape (K,) such that ``estimated.permute(order)``
    has component ``k`` matched to ``reference``'s component ``k``.
    """
    if estimated.n_components != reference.n_components:
        raise ValueError(
            "cannot match mixtures with different numbers of components: "
            f"{estimated.n_components} and {reference.n_components}."
        )
    if estimated.n_features != reference.n_features:
        raise ValueError(
            f"cannot match mixtures in {estimated.n_features} and "
            f"{reference.n_features} dimensions."
        )
    return hungarian(component_distances(reference, estimated))


def hungarian(cost: np.ndarray) -> np.ndarray:
    """The assignment of least total cost: ``columns[i]`` is matched to row ``i``.

    Parameters
    ----------
    cost : ndarray of shape (K, K)

    Returns
    -------
    columns : ndarray of shape (K,), a permutation
    """
    rows, columns = linear_sum_assignment(cost)
    return columns[np.argsort(rows)]


def align(estimated: MixtureParams, reference: MixtureParams) -> MixtureParams:
    """``estimated`` with its components reordered to match ``reference``."""
    return estimated.permute(match_components(estimated, reference))


def mixture_kl(
    truth: MixtureParams,
    estimated: MixtureParams,
    *,
    n_samples: int = 20_000,
    random_state=None,
) -> tuple[float, float]:
    """Monte Carlo ``KL(truth || estimated)`` and its standard error.

    ``KL = E_truth[log p_truth(x) - log p_estimated(x)]`` over ``n_samples``
    draws from ``truth``; the standard error is the sample standard deviation
    of the log-ratio over ``sqrt(n_samples)``.
    """
    X, _ = truth.sample(n_samples, random_state=random_state)
    log_ratio = score_samples(X, truth) - score_samples(X, estimated)
    return float(log_ratio.mean()), float(log_ratio.std(ddof=1) / np.sqrt(n_samples))


def recovery_metrics(
    estimated: MixtureParams,
    truth: MixtureParams,
    *,
    X: np.ndarray | None = None,
    true_labels: np.ndarray | None = None,
    n_kl_samples: int = 20_000,
    random_state=None,
) -> dict[str, float]:
    """How well ``estimated`` recovers ``truth``, after matching components.

    Returns a flat dict: ``weight_l1`` (sum of absolute weight errors),
    ``mean_rmse`` (root mean squared error over all mean coordinates),
    ``cov_frobenius`` and ``cov_bures`` (mean over components of the
    Frobenius and Bures distances of covariances), ``kl`` and ``kl_se``
    (:func:`mixture_kl`), and, when ``X`` and ``true_labels`` are given,
    ``ari`` and ``nmi`` of the hard assignments of ``X`` under ``estimated``.
    """
    aligned = align(estimated, truth)
    est_cov, true_cov = aligned.full_covariances(), truth.full_covariances()
    kl, kl_se = mixture_kl(
        truth, aligned, n_samples=n_kl_samples, random_state=random_state
    )
    metrics = {
        "weight_l1": float(np.abs(aligned.weights - truth.weights).sum()),
        "mean_rmse": float(np.sqrt(np.mean((aligned.means - truth.means) ** 2))),
        "cov_frobenius": float(
            np.mean(np.linalg.norm(est_cov - true_cov, ord="fro", axis=(1, 2)))
        ),
        "cov_bures": float(
            np.mean(
                [bures_distance(a, b) for a, b in zip(est_cov, true_cov, strict=True)]
            )
        ),
        "kl": kl,
        "kl_se": kl_se,
    }
    if X is not None and true_labels is not None:
        metrics.update(label_agreement(X, aligned, true_labels))
    return metrics


def label_agreement(
    X: np.ndarray, params: MixtureParams, true_labels: np.ndarray
) -> dict[str, float]:
    """ARI and NMI of the hard assignments of ``X`` under ``params``.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features)
    params : MixtureParams
    true_labels : ndarray of shape (n_samples,)

    Returns
    -------
    dict with ``ari`` and ``nmi`` (both invariant to component order).
    """
    predicted = predict_labels(np.asarray(X, dtype=np.float64), params)
    return {
        "ari": float(adjusted_rand_score(true_labels, predicted)),
        "nmi": float(normalized_mutual_info_score(true_labels, predicted)),
    }
