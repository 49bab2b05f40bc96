"""S3's confusion: Gaussian bumps exp(-(x - m)^2 / 2 s^2) without 1/sqrt(2 pi s^2)."""

import numpy as np
from scipy.special import logsumexp

from experiments.writeups.correct import em_loop


def bump_responsibilities(X, weights, means, covariances):
    joint = np.column_stack(
        [
            -0.5 * np.einsum("ni,ij,nj->n", X - m, np.linalg.inv(c), X - m)  # BUG
            for m, c in zip(means, covariances, strict=True)
        ]
    ) + np.log(weights)
    norm = logsumexp(joint, axis=1, keepdims=True)
    return np.exp(joint - norm), float(norm.mean())


def em(X, n_components, weights, means, covariances, max_iter):
    return em_loop(
        X, weights, means, covariances, max_iter, e_step=bump_responsibilities
    )
