"""S2's homework EM: a correct EM with the homework's stopping rule.

The homework stopped when the *total* log-likelihood changed by less than
0.01 after at least 5 iterations; its start (means from random integers in
{0, 1}, identity covariances) is the ``homework`` recipe of
:mod:`experiments.starts`. Convention "standard":
``em(X, n_components, weights, means, covariances, max_iter)`` returns
``(weights, means, covariances, mean_loglik_trace)``.
"""

import numpy as np

from experiments.writeups.correct import m_step, responsibilities

#: |change of the total log-likelihood| that ends the loop, and the minimum
#: number of iterations before it may.
TOL = 0.01
MIN_ITER = 5


def em(X, n_components, weights, means, covariances, max_iter):
    X = np.asarray(X, dtype=float)
    trace = []
    for _ in range(max_iter):
        resp, mean_loglik = responsibilities(X, weights, means, covariances)
        trace.append(mean_loglik)
        weights, means, covariances = m_step(X, resp, means)
        total_change = (
            (trace[-1] - trace[-2]) * X.shape[0] if len(trace) > 1 else np.inf
        )
        if len(trace) >= MIN_ITER and abs(total_change) < TOL:
            break
    return weights, means, covariances, np.array(trace)
