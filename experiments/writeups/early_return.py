"""S5's bug: the `return` is indented inside the iteration loop."""

import numpy as np

from experiments.writeups.correct import m_step, responsibilities


def em(X, n_components, weights, means, covariances, max_iter):
    X = np.asarray(X, dtype=float)
    trace = []
    for _ in range(max_iter):
        resp, loglik = responsibilities(X, weights, means, covariances)
        trace.append(loglik)
        weights, means, covariances = m_step(X, resp, means)
        return weights, means, covariances, np.array(trace)  # BUG: inside the loop
    return weights, means, covariances, np.array(trace)
