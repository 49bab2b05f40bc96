"""The reference EM step, its mutants, and the diagnosis of a wrong step.

Each mutant of the reference step carries one classic bug (:data:`BUGS`); a
mutant that reproduces the user's step names the bug (:func:`_diagnose`).
"""

from __future__ import annotations

import math

import numpy as np
from scipy.special import logsumexp

from mixtures.align import sqrtm_psd
from mixtures.check.conventions import LooseParams, _unchecked
from mixtures.params import MixtureParams

#: The classic bugs the diagnosis can recognise, with their explanation.
BUGS = {
    "sd_for_variance": "the standard deviation is passed where the density expects "
    "the variance (e.g. pdf(x, mean, sqrt(var)) with a pdf that squares nothing)",
    "normalised_over_samples": "responsibilities are normalised over the samples "
    "(axis of n) instead of over the components, so they do not sum to one per point",
    "missing_weights": "the mixing weights are left out of the E-step",
    "unnormalised_densities": "component densities lack their normalising constant "
    "1/sqrt(det(2 pi Sigma))",
    "unnormalised_weights": "new weights are the responsibility sums, not divided by n",
    "old_means_in_covariance": "covariances are computed about the old means instead "
    "of the new ones",
}


def reference_step(
    X: np.ndarray, params: MixtureParams, bug: str | None = None
) -> LooseParams:
    """One textbook EM step from ``params`` (no regularisation), or a buggy one.

    ``bug`` is None or a key of :data:`BUGS`. Written plainly, independent of
    the engine; the tests check that it equals :func:`mixtures.em.em_step`.
    """
    n, d = X.shape
    covariances = params.full_covariances()
    used = sqrtm_psd(covariances) if bug == "sd_for_variance" else covariances
    log_density = np.empty((n, params.n_components))
    for k in range(params.n_components):
        diff = X - params.means[k]
        maha = np.einsum("ni,ij,nj->n", diff, np.linalg.inv(used[k]), diff)
        constant = (
            0.0
            if bug == "unnormalised_densities"
            else -0.5 * (d * math.log(2 * math.pi) + np.linalg.slogdet(used[k])[1])
        )
        log_density[:, k] = constant - 0.5 * maha
    log_weights = 0.0 if bug == "missing_weights" else np.log(params.weights)
    joint = log_density + log_weights
    axis = 0 if bug == "normalised_over_samples" else 1
    resp = np.exp(joint - logsumexp(joint, axis=axis, keepdims=True))
    mass = resp.sum(axis=0)
    weights = mass if bug == "unnormalised_weights" else mass / n
    means = resp.T @ X / mass[:, None]
    centres = params.means if bug == "old_means_in_covariance" else means
    new_cov = np.stack(
        [
            (resp[:, k, None] * (X - centres[k])).T @ (X - centres[k]) / mass[k]
            for k in range(params.n_components)
        ]
    )
    return _unchecked(weights, means, new_cov)


def _difference(a: LooseParams, b: LooseParams) -> dict[str, float]:
    """Largest absolute difference per parameter block (inf when shapes differ)."""
    out = {}
    for name in ("weights", "means", "covariances"):
        x, y = getattr(a, name), getattr(b, name)
        out[name] = (
            float(np.max(np.abs(x - y)))
            if x.shape == y.shape and np.all(np.isfinite(x))
            else float("inf")
        )
    return out


def _diagnose(
    X: np.ndarray, start: MixtureParams, step: LooseParams, wrong: list[str]
) -> str:
    """The bug whose mutant reproduces ``step`` from ``start``, or what is wrong.

    ``wrong`` names the parts of ``step`` that differ from the reference step.
    """
    matches = {
        bug: max(_difference(step, reference_step(X, start, bug)).values())
        for bug in BUGS
    }
    bug = min(matches, key=lambda key: matches[key])
    if matches[bug] <= 1e-6:
        return f"likely cause: {BUGS[bug]} ({bug})."
    return f"no known bug reproduces this step; wrong part: {', '.join(wrong)}."
