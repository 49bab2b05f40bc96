"""Label switching in MCMC draws, resolved from the posterior itself.

The likelihood of a K-component mixture is invariant to permuting the
components, so a sampler may visit the K! symmetric copies of every mode and
the per-component marginals of its draws are then meaningless. This module
implements the Kullback-Leibler relabelling of

    M. Stephens (2000), "Dealing with label switching in mixture models",
    Journal of the Royal Statistical Society B 62(4), 795-809
    (Algorithm 2, section 4.1).

For every draw ``s`` the classification probabilities

    p_s[n, k] = w_k N(x_n | mu_k, Sigma_k) / sum_j w_j N(x_n | mu_j, Sigma_j)

are computed (in log space, with a Cholesky factor of every covariance). The
algorithm then alternates two steps, each of which can only lower the total
divergence ``sum_s KL(p_s permuted by nu_s || Q)``:

1. ``Q[n, k]``, the mean over draws of the permuted ``p_s[n, nu_s(k)]``;
2. for each draw, the permutation ``nu_s`` minimising
   ``sum_n sum_k p_s[n, nu_s(k)] log(p_s[n, nu_s(k)] / Q[n, k])``: the entropy
   term does not depend on ``nu_s``, so this is the linear assignment problem
   with the K x K cost ``-sum_n p_s[n, j] log Q[n, k]``
   (:func:`scipy.optimize.linear_sum_assignment`).

It stops when no permutation changes (a draw keeps its permutation unless
another one is strictly better, so ties cannot make it cycle) or after
``max_iter`` iterations, which :class:`RelabelResult` reports.

Why relabel to the posterior's own classification? The alternative, matching
every draw to a point estimate such as an EM fit, defines the labels by that
estimate: draws are pulled towards EM's components, so any later comparison
of the posterior with EM partly measures the agreement that the matching put
in. Here the reference ``Q`` is the posterior's own mean classification, so
the labelling depends only on the draws and the data.

The result is determined up to one global relabelling (permuting the labels
of every draw alike changes neither the objective nor the inference). It is
reported relative to the most frequent permutation, which becomes the
identity, so that ``n_changed`` counts the draws that were relabelled
relative to the sampler's dominant labelling.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from mixtures.align import hungarian

__all__ = [
    "RelabelResult",
    "apply_permutations",
    "label_switching_rate",
    "stephens_relabel",
]

# Bytes of the (rows, D, draws * K) temporary per chunk of draws when computing
# the classification probabilities.
_CHUNK_BYTES = 4 * 2**20


@dataclass(frozen=True)
class RelabelResult:
    """The outcome of :func:`stephens_relabel`.

    Attributes
    ----------
    permutations : ndarray of shape (S, K), int
        ``permutations[s]`` is the order to apply to draw ``s``: component
        ``k`` of the relabelled draw is component ``permutations[s, k]`` of
        the draw as sampled, e.g. ``weights[s, permutations[s]]``. See
        :func:`apply_permutations`.
    n_iter : int
        Iterations run (one iteration: update ``Q``, then every permutation).
    converged : bool
        True when the last iteration changed no permutation; False when
        ``max_iter`` was reached first.
    n_changed : int
        Number of draws whose permutation is not the identity.
    classification : ndarray of shape (N_used, K)
        The final mean classification probabilities ``Q`` on the rows used,
        in the relabelled order.
    rows : ndarray of shape (N_used,), int
        Indices of the rows of ``X`` the relabelling used, increasing.
    """

    permutations: np.ndarray
    n_iter: int
    converged: bool
    n_changed: int
    classification: np.ndarray
    rows: np.ndarray


# ---------------------------------------------------------------------------
# Validation


def _check_permutations(permutations, n_draws=None, n_components=None) -> np.ndarray:
    perms = np.asarray(permutations)
    if perms.ndim != 2:
        raise ValueError(
            f"permutations must have shape (S, K); got shape {perms.shape}."
        )
    if n_draws is not None and perms.shape != (n_draws, n_components):
        raise ValueError(
            f"permutations must have shape (S, K) = ({n_draws}, {n_components}); "
            f"got {perms.shape}."
        )
    if perms.size and not np.issubdtype(perms.dtype, np.integer):
        raise ValueError(f"permutations must be integers; got dtype {perms.dtype}.")
    k = perms.shape[1]
    wrong = np.any(np.sort(perms, axis=1) != np.arange(k), axis=1)
    if np.any(wrong):
        bad = int(np.flatnonzero(wrong)[0])
        raise ValueError(
            f"every row of permutations must be a permutation of 0..{k - 1}; "
            f"row {bad} is {perms[bad].tolist()}."
        )
    return perms.astype(np.intp)


def _check_inputs(X, weights, means, covariances):
    X = np.asarray(X, dtype=np.float64)
    weights = np.asarray(weights, dtype=np.float64)
    means = np.asarray(means, dtype=np.float64)
    covariances = np.asarray(covariances, dtype=np.float64)
    if X.ndim != 2 or X.shape[0] == 0 or X.shape[1] == 0:
        raise ValueError(
            "X must have shape (N, D) with N, D >= 1 (reshape one feature with "
            f"X.reshape(-1, 1)); got shape {X.shape}."
        )
    n_features = X.shape[1]
    if weights.ndim != 2 or weights.shape[0] == 0 or weights.shape[1] == 0:
        raise ValueError(
            "weights must have shape (S, K) with S, K >= 1 (flatten chains "
            f"and draws into S); got shape {weights.shape}."
        )
    n_draws, n_components = weights.shape
    expected = (n_draws, n_components, n_features)
    if means.shape != expected:
        raise ValueError(
            f"means must have shape (S, K, D) = {expected} to match weights "
            f"{weights.shape} and X {X.shape}; got {means.shape}."
        )
    expected = (n_draws, n_components, n_features, n_features)
    if covariances.shape != expected:
        raise ValueError(
            f"covariances must have shape (S, K, D, D) = {expected} to match "
            f"weights {weights.shape} and X {X.shape}; got {covariances.shape}."
        )
    for name, array in (
        ("X", X),
        ("weights", weights),
        ("means", means),
        ("covariances", covariances),
    ):
        if not np.all(np.isfinite(array)):
            raise ValueError(f"{name} contain NaN or infinity.")
    if np.any(weights < 0) or np.any(weights.sum(axis=1) <= 0):
        raise ValueError(
            "weights must be non-negative with a positive sum in every draw."
        )
    return X, weights, means, covariances


def _select_rows(n_samples: int, max_rows: int | None, seed) -> np.ndarray:
    if max_rows is not None and (
        isinstance(max_rows, bool)
        or not isinstance(max_rows, int | np.integer)
        or max_rows < 1
    ):
        raise ValueError(
            f"max_rows must be a positive integer or None; got {max_rows!r}."
        )
    if max_rows is None or n_samples <= max_rows:
        return np.arange(n_samples)
    rng = np.random.default_rng(seed)
    return np.sort(rng.choice(n_samples, size=int(max_rows), replace=False))


# ---------------------------------------------------------------------------
# Classification probabilities


def _classification_probabilities(
    X: np.ndarray, weights: np.ndarray, means: np.ndarray, covariances: np.ndarray
) -> np.ndarray:
    """``p_s[k, n]`` for every draw, shape (S, K, N), float64.

    The layout (component before row) makes both steps of the iteration one
    matrix product over the flattened (S * K, N) array.
    """
    n_samples, n_features = X.shape
    n_draws, n_components = weights.shape
    # A common origin keeps x - mu accurate for data far from zero.
    origin = X.mean(axis=0)
    Xc = X - origin
    out = np.empty((n_draws, n_components, n_samples))
    per_draw = n_components * n_samples * n_features * 8
    chunk = max(1, _CHUNK_BYTES // per_draw)
    log_2pi = n_features * math.log(2.0 * math.pi)
    for start in range(0, n_draws, chunk):
        stop = min(start + chunk, n_draws)
        try:
            chol = np.linalg.cholesky(covariances[start:stop])
        except np.linalg.LinAlgError:
            bad = _first_not_positive_definite(covariances[start:stop])
            raise ValueError(
                f"covariances[{start + bad[0]}, {bad[1]}] is not positive definite."
            ) from None
        # z = L^{-1} (x - mu) = L^{-1} x - L^{-1} mu for every (draw, component)
        # m of the chunk: one product (N, D) @ (D, D * count) gives all L^{-1} x.
        count = (stop - start) * n_components
        inv_chol = np.linalg.inv(chol).reshape(count, n_features, n_features)
        shift = np.einsum(
            "mij,mj->im",
            inv_chol,
            (means[start:stop] - origin).reshape(count, n_features),
        )  # (D, count)
        z = Xc @ inv_chol.transpose(2, 1, 0).reshape(n_features, n_features * count)
        z = z.reshape(n_samples, n_features, count)
        maha = np.zeros((n_samples, count))
        for i in range(n_features):
            zi = z[:, i, :]
            zi -= shift[i]
            zi *= zi
            maha += zi
        log_det = np.log(np.diagonal(chol, axis1=-2, axis2=-1)).sum(axis=-1)
        with np.errstate(divide="ignore"):
            log_norm = np.log(weights[start:stop]) - log_det - 0.5 * log_2pi
        # log w_k N(x_n | mu_k, Sigma_k), then normalised over k (log-sum-exp:
        # the largest term is subtracted before exponentiating; it is finite
        # because every draw has a positive weight).
        log_prob = (maha * -0.5 + log_norm.reshape(count)).reshape(
            n_samples, stop - start, n_components
        )
        log_prob -= log_prob.max(axis=2, keepdims=True)
        prob = np.exp(log_prob, out=log_prob)
        prob /= prob.sum(axis=2, keepdims=True)
        out[start:stop] = prob.transpose(1, 2, 0)
    return out


def _first_not_positive_definite(covariances: np.ndarray) -> tuple[int, int]:
    for index in np.ndindex(*covariances.shape[:2]):
        try:
            np.linalg.cholesky(covariances[index])
        except np.linalg.LinAlgError:
            return index
    return (0, 0)  # pragma: no cover - the batched call failed, so one fails


# ---------------------------------------------------------------------------
# The iteration


def _mean_classification(probs: np.ndarray, perms: np.ndarray) -> np.ndarray:
    """``Q[n, k] = mean_s p_s[n, perms[s, k]]``, shape (N, K).

    Written as one product ``M^T P`` with the (S * K, K) one-hot matrix ``M``
    of the permutations and ``P`` the (S * K, N) probabilities, which avoids
    copying the permuted probabilities.
    """
    n_draws, n_components, n_samples = probs.shape
    one_hot = np.zeros((n_draws, n_components, n_components))
    # one_hot[s, j, k] = 1 where perms[s, k] == j
    draw = np.arange(n_draws)[:, np.newaxis]
    one_hot[draw, perms, np.arange(n_components)] = 1.0
    flat = probs.reshape(n_draws * n_components, n_samples)
    total = one_hot.reshape(n_draws * n_components, n_components).T @ flat
    return (total / n_draws).T


def _assignment_costs(probs: np.ndarray, Q: np.ndarray) -> np.ndarray:
    """``cost[s, k, j] = -sum_n p_s[n, j] log Q[n, k]``, shape (S, K, K).

    Row ``k`` is the new label, column ``j`` the component as sampled. A
    ``Q`` that underflowed to zero is floored at the smallest normal double,
    so the cost stays finite (and ``0 * log 0`` counts as zero).
    """
    n_draws, n_components, n_samples = probs.shape
    log_q = np.log(np.maximum(Q, np.finfo(np.float64).tiny))
    flat = probs.reshape(n_draws * n_components, n_samples)
    cross = (flat @ log_q).reshape(n_draws, n_components, n_components)  # [s, j, k]
    return -np.swapaxes(cross, 1, 2)


def _canonical(perms: np.ndarray) -> np.ndarray:
    """The global relabelling that turns the most frequent permutation into 0..K-1."""
    unique, counts = np.unique(perms, axis=0, return_counts=True)
    # np.unique sorts rows, so ties go to the lexicographically first.
    mode = unique[np.argmax(counts)]
    return np.argsort(mode)


def stephens_relabel(
    X,
    weights,
    means,
    covariances,
    *,
    max_iter: int = 100,
    max_rows: int | None = 1000,
    seed=0,
    initial_permutations=None,
) -> RelabelResult:
    """Relabel mixture draws by Stephens' (2000) KL algorithm.

    Parameters
    ----------
    X : array-like of shape (N, D)
        The data the mixture was fitted to.
    weights : array-like of shape (S, K)
        Mixing weights of every draw. Draws of several chains are passed
        flattened: ``weights.reshape(-1, K)`` for a (chains, draws, K) array.
    means : array-like of shape (S, K, D)
    covariances : array-like of shape (S, K, D, D)
        Full covariance matrices, positive definite.
    max_iter : int, default=100
        Largest number of iterations; :attr:`RelabelResult.converged` says
        whether the algorithm stopped before it.
    max_rows : int or None, default=1000
        When ``N > max_rows``, the classification probabilities are computed
        only on a fixed subset of ``max_rows`` rows of ``X``, drawn without
        replacement by ``numpy.random.default_rng(seed)``, and the
        permutations are chosen on that subset (returned as
        :attr:`RelabelResult.rows`). ``None`` uses every row. The
        probabilities take ``S * min(N, max_rows) * K * 8`` bytes (128 MB for
        4000 draws, K = 4 and the default).
    seed : None, int or numpy.random.Generator, default=0
        Seed of the row subset; unused when every row is used.
    initial_permutations : array-like of shape (S, K), optional
        Permutations to start from, in the convention of
        :attr:`RelabelResult.permutations`; the identity by default.

    Returns
    -------
    RelabelResult
        ``permutations`` (S, K) to apply with :func:`apply_permutations`,
        ``n_iter``, ``converged``, ``n_changed``, ``classification``
        (N_used, K) and ``rows`` (N_used,).

    Raises
    ------
    ValueError
        If the shapes do not match (the message gives the expected shape), an
        input is not finite, a weight is negative, a covariance is not
        positive definite, or ``initial_permutations`` is not a (S, K) array
        of permutations.

    Notes
    -----
    Each iteration lowers (or keeps) the total divergence
    ``sum_s sum_n sum_k p_s[n, nu_s(k)] log(p_s[n, nu_s(k)] / Q[n, k])``; a
    draw's permutation changes only when another is strictly better. The
    labelling is unique only up to one permutation applied to every draw;
    it is reported with the most frequent permutation as the identity.
    """
    X, weights, means, covariances = _check_inputs(X, weights, means, covariances)
    if isinstance(max_iter, bool) or not isinstance(max_iter, int | np.integer):
        raise ValueError(f"max_iter must be a positive integer; got {max_iter!r}.")
    if max_iter < 1:
        raise ValueError(f"max_iter must be a positive integer; got {max_iter!r}.")
    n_draws, n_components = weights.shape
    if initial_permutations is None:
        perms = np.tile(np.arange(n_components, dtype=np.intp), (n_draws, 1))
    else:
        perms = _check_permutations(initial_permutations, n_draws, n_components).copy()
    rows = _select_rows(X.shape[0], max_rows, seed)

    probs = _classification_probabilities(X[rows], weights, means, covariances)
    draw = np.arange(n_draws)[:, np.newaxis]
    label = np.arange(n_components)
    converged = False
    n_iter = 0
    Q = _mean_classification(probs, perms)
    while n_iter < max_iter:
        n_iter += 1
        costs = _assignment_costs(probs, Q)
        current = costs[draw, label, perms].sum(axis=1)
        changed = False
        for s in range(n_draws):
            columns = hungarian(costs[s])
            best = costs[s, label, columns].sum()
            # Strictly better only: ties and rounding must not make it cycle.
            if best < current[s] - 1e-10 * (abs(current[s]) + 1.0):
                perms[s] = columns
                changed = True
        if not changed:
            converged = True
            break
        Q = _mean_classification(probs, perms)

    relabel = _canonical(perms)
    perms = perms[:, relabel]
    Q = Q[:, relabel]
    n_changed = int(np.count_nonzero(np.any(perms != label, axis=1)))
    return RelabelResult(
        permutations=perms,
        n_iter=n_iter,
        converged=converged,
        n_changed=n_changed,
        classification=Q,
        rows=rows,
    )


# ---------------------------------------------------------------------------
# Using the permutations


def apply_permutations(permutations, *arrays) -> tuple[np.ndarray, ...]:
    """Relabel arrays of draws.

    Parameters
    ----------
    permutations : array-like of shape (S, K), int
        As in :attr:`RelabelResult.permutations`.
    *arrays : array-like of shape (S, K, ...)
        Per-draw, per-component arrays, for example weights (S, K), means
        (S, K, D) and covariances (S, K, D, D).

    Returns
    -------
    tuple of ndarray
        One array per input, always a tuple (``(w,) = apply_permutations(p,
        w)`` for one array): ``out[s, k] = array[s, permutations[s, k]]``.

    Raises
    ------
    ValueError
        If ``permutations`` is not a (S, K) array of permutations or an array
        does not start with axes (S, K).
    """
    perms = _check_permutations(permutations)
    n_draws, n_components = perms.shape
    draw = np.arange(n_draws)[:, np.newaxis]
    out = []
    for position, array in enumerate(arrays):
        array = np.asarray(array)
        if array.shape[:2] != (n_draws, n_components):
            raise ValueError(
                f"array {position} must have shape (S, K, ...) = "
                f"({n_draws}, {n_components}, ...) to match permutations; "
                f"got {array.shape}."
            )
        out.append(array[draw, perms])
    return tuple(out)


def label_switching_rate(permutations) -> float:
    """Fraction of draws whose permutation is not the identity.

    Parameters
    ----------
    permutations : array-like of shape (S, K), int

    Returns
    -------
    float
        In [0, 1]; 0.0 for S = 0. Measured against the labelling as sampled
        (for :func:`stephens_relabel` output, against the most frequent one).
    """
    perms = _check_permutations(permutations)
    if perms.shape[0] == 0:
        return 0.0
    return float(np.mean(np.any(perms != np.arange(perms.shape[1]), axis=1)))
