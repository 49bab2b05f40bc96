"""The mixing weights are left out of the E-step."""

import numpy as np
from scipy.special import logsumexp

from experiments.writeups.correct import em_loop, log_densities


def unweighted_responsibilities(X, weights, means, covariances):
    joint = log_densities(X, means, covariances)  # BUG: + np.log(weights) missing
    resp = np.exp(joint - logsumexp(joint, axis=1, keepdims=True))
    return resp, float(logsumexp(joint + np.log(weights), axis=1).mean())


def em(X, n_components, weights, means, covariances, max_iter):
    return em_loop(
        X, weights, means, covariances, max_iter, e_step=unweighted_responsibilities
    )
