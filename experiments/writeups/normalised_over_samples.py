"""S1's bug: responsibilities normalised over the samples, not the components."""

import numpy as np
from scipy.special import logsumexp

from experiments.writeups.correct import em_loop, log_densities


def wrong_responsibilities(X, weights, means, covariances):
    joint = log_densities(X, means, covariances) + np.log(weights)
    resp = np.exp(joint - logsumexp(joint, axis=0, keepdims=True))  # BUG: axis 0
    return resp, float(logsumexp(joint, axis=1).mean())


def em(X, n_components, weights, means, covariances, max_iter):
    return em_loop(
        X, weights, means, covariances, max_iter, e_step=wrong_responsibilities
    )
