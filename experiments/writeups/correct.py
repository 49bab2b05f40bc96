"""A correct textbook EM for Gaussian mixtures (full covariances).

``em(X, n_components, weights, means, covariances, max_iter)`` returns
``(weights, means, covariances, loglik_trace)``. The pieces are separate
functions so the buggy variants next to this file can replace one each.
"""

import numpy as np
from scipy.special import logsumexp
from scipy.stats import multivariate_normal

#: Added to every variance so a component on identical points stays finite.
REG = 1e-9


def log_densities(X, means, covariances):
    """Log N(x_n | mu_k, Sigma_k), shape (n, K)."""
    return np.column_stack(
        [
            multivariate_normal(m, c, allow_singular=True).logpdf(X).reshape(-1)
            for m, c in zip(means, covariances, strict=True)
        ]
    )


def responsibilities(X, weights, means, covariances):
    """E-step: (responsibilities (n, K), mean log-likelihood)."""
    joint = log_densities(X, means, covariances) + np.log(weights)
    norm = logsumexp(joint, axis=1, keepdims=True)
    return np.exp(joint - norm), float(norm.mean())


def m_step(X, resp, old_means):
    """M-step: new weights, means and covariances."""
    n, d = X.shape
    mass = resp.sum(axis=0)
    weights = mass / n
    means = resp.T @ X / mass[:, None]
    covariances = np.stack(
        [
            (resp[:, k, None] * (X - means[k])).T @ (X - means[k]) / mass[k]
            + REG * np.eye(d)
            for k in range(resp.shape[1])
        ]
    )
    return weights, means, covariances


def em_loop(
    X,
    weights,
    means,
    covariances,
    max_iter,
    e_step=responsibilities,
    m_step=m_step,
    tol=1e-10,
):
    X = np.asarray(X, dtype=float)
    trace = []
    for _ in range(max_iter):
        resp, loglik = e_step(X, weights, means, covariances)
        trace.append(loglik)
        weights, means, covariances = m_step(X, resp, means)
        if len(trace) > 1 and abs(trace[-1] - trace[-2]) < tol:
            break
    return weights, means, covariances, np.array(trace)


def em(X, n_components, weights, means, covariances, max_iter):
    return em_loop(X, weights, means, covariances, max_iter)
