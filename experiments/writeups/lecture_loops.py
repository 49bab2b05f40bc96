"""S4's lecture EM with Python loops, written in the lecture's style.

Per iteration: an E-step with a double loop over components j and points i,
each density ``pis[j] * multivariate_normal(mus[j], sigmas[j]).pdf(xs[i])``
built afresh, normalised over the components; an M-step of loops that
accumulate weights, means and outer-product covariances point by point; a
final loop computing the total log-likelihood; stop when it changes by less
than ``tol``. Like the original it reshapes points to (2, 1) columns, so it
only works in 2-D. Deliberately slow: it is what S4 timed (13.9 s on the
lecture's hardware).

``em_gmm_orig(xs, pis, mus, sigmas, tol=0.01, max_iter=100)`` returns
``(ll_new, pis, mus, sigmas)`` as in the lecture; ``history``, when given a
list, receives each iteration's total log-likelihood (it changes nothing
else). ``em`` is the "standard" convention of :mod:`mixtures.check`.
"""

import numpy as np
from scipy.stats import multivariate_normal


def em_gmm_orig(xs, pis, mus, sigmas, tol=0.01, max_iter=100, history=None):
    n, p = xs.shape
    k = len(pis)
    ll_old = 0
    for _ in range(max_iter):
        # E-step
        ws = np.zeros((k, n))
        for j in range(k):
            for i in range(n):
                ws[j, i] = pis[j] * multivariate_normal(mus[j], sigmas[j]).pdf(xs[i])
        ws /= ws.sum(0)

        # M-step
        pis = np.zeros(k)
        for j in range(k):
            for i in range(n):
                pis[j] += ws[j, i]
        pis /= n

        mus = np.zeros((k, p))
        for j in range(k):
            for i in range(n):
                mus[j] += ws[j, i] * xs[i]
            mus[j] /= ws[j, :].sum()

        sigmas = np.zeros((k, p, p))
        for j in range(k):
            for i in range(n):
                ys = np.reshape(xs[i] - mus[j], (2, 1))
                sigmas[j] += ws[j, i] * np.dot(ys, ys.T)
            sigmas[j] /= ws[j, :].sum()

        # the log-likelihood
        ll_new = 0.0
        for i in range(n):
            s = 0
            for j in range(k):
                s += pis[j] * multivariate_normal(mus[j], sigmas[j]).pdf(xs[i])
            ll_new += np.log(s)
        if history is not None:
            history.append(ll_new)

        if np.abs(ll_new - ll_old) < tol:
            break
        ll_old = ll_new
    return ll_new, pis, mus, sigmas


def em(X, n_components, weights, means, covariances, max_iter):
    history = []
    _, pis, mus, sigmas = em_gmm_orig(
        np.asarray(X, dtype=float),
        np.asarray(weights, dtype=float),
        np.asarray(means, dtype=float),
        np.asarray(covariances, dtype=float),
        max_iter=max_iter,
        history=history,
    )
    return pis, mus, sigmas, np.asarray(history) / len(X)
