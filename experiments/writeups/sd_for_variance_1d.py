"""S1's 1-D EM with its first bug: the standard deviation passed as the variance.

Convention "1d": ``em(x, k, weights, means, variances, max_iter)`` with x (n,)
and means/variances (K,), like the original question's code.
"""

import numpy as np


def pdf(x, mean, variance):
    """A normal density that expects the variance (and squares nothing)."""
    return np.exp(-((x - mean) ** 2) / (2 * variance)) / np.sqrt(2 * np.pi * variance)


def em(x, k, weights, means, variances, max_iter):
    x = np.asarray(x, dtype=float)
    weights, means, variances = (
        np.array(a, dtype=float) for a in (weights, means, variances)
    )
    for _ in range(max_iter):
        dens = np.column_stack(
            [
                weights[j] * pdf(x, means[j], np.sqrt(variances[j]))  # BUG: sqrt
                for j in range(k)
            ]
        )
        resp = dens / dens.sum(axis=1, keepdims=True)
        mass = resp.sum(axis=0)
        weights = mass / x.size
        means = resp.T @ x / mass
        variances = (
            np.array([resp[:, j] @ (x - means[j]) ** 2 / mass[j] for j in range(k)])
            + 1e-9
        )
    return weights, means, variances
