"""S1's 1-D EM, fixed: variances where variances belong (convention "1d")."""

import numpy as np


def pdf(x, mean, variance):
    return np.exp(-((x - mean) ** 2) / (2 * variance)) / np.sqrt(2 * np.pi * variance)


def em(x, k, weights, means, variances, max_iter):
    x = np.asarray(x, dtype=float)
    weights, means, variances = (
        np.array(a, dtype=float) for a in (weights, means, variances)
    )
    for _ in range(max_iter):
        dens = np.column_stack(
            [weights[j] * pdf(x, means[j], variances[j]) for j in range(k)]
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
