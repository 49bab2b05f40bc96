r"""Model-based agglomerative hierarchical clustering.

Agglomerative clustering in which each merge is the one that least worsens
the Gaussian *classification* likelihood of the partition (Banfield &
Raftery 1993; Fraley 1998). It is the default initialisation of EM in R's
mclust (``hc()``), and here it supplies the initial partitions for
``init_params="hc"``.

Criteria
--------
Every cluster :math:`C_k` carries its size :math:`n_k`, mean :math:`m_k` and
scatter (within-cluster cross-product) matrix
:math:`W_k = \sum_{x \in C_k} (x - m_k)(x - m_k)^T`. Each model below gives
a per-cluster term :math:`T(n_k, W_k)`; the criterion of a partition is
:math:`\sum_k T(n_k, W_k)` (minus twice the maximised classification
log-likelihood, up to constants), and the cost of merging clusters *i* and
*j* is :math:`T(n_{ij}, W_{ij}) - T(n_i, W_i) - T(n_j, W_j)`, where the
merged scatter is exact:

.. math::

    W_{ij} = W_i + W_j + \frac{n_i n_j}{n_i + n_j} (m_i - m_j)(m_i - m_j)^T.

``model="EII"`` (spherical, equal volume)
    The criterion is :math:`\operatorname{tr} \sum_k W_k`, so the merge cost
    is Ward's :math:`\frac{n_i n_j}{n_i + n_j} \lVert m_i - m_j \rVert^2`
    (Ward 1963; Banfield & Raftery 1993).

``model="VVV"`` (ellipsoidal, varying volume, shape and orientation)
    Banfield & Raftery's criterion is :math:`\sum_k n_k \log|W_k / n_k|`,
    undefined while a cluster has at most D points (its scatter is
    singular). Fraley (1998) regularises it with two tuning constants,
    ``alpha`` and ``beta``; we use the regularised term that mclust's
    ``hcVVV`` evaluates (read from mclust's documentation and source to
    obtain the formula; the implementation here is our own):

    .. math::

        T(n, W) = n \log\Bigl( [n > D]\,\bigl|W / n\bigr|
                  + \beta \, \frac{\operatorname{tr} W + \alpha'}{n} \Bigr),
        \qquad
        \alpha' = \alpha \, \frac{\operatorname{tr} W_{\mathrm{all}}}{n D},

    where :math:`W_{\mathrm{all}}` is the scatter of all the data about its
    mean (mclust: "alpha times the trace of the sample crossproduct matrix of
    all the observations divided by the product of the data dimensions") and
    ``alpha = beta = 1`` are mclust's defaults. A singleton has
    :math:`T = \log(\beta \alpha')`. The trace term keeps every argument of
    the logarithm positive, so tied or collinear points (zero determinants)
    give finite costs. Note that the determinant and trace terms are added
    although they scale differently (:math:`s^{2D}` against :math:`s^2` when
    the data are multiplied by *s*), so the criterion is not scale invariant.
    In particular the determinant only matters where cluster variances are
    not small against 1 in the units clustered: after ``transform="svd"``
    the column variances are about n^(-1/2) (0.08 and 0.02 for Old
    Faithful), the trace term dominates, and the criterion behaves much like
    a spherical, varying-volume one; on data whose clusters have variances
    well above 1 (``transform="none"``) it is shape-sensitive.

Univariate data (D = 1)
    ``model="VVV"`` falls back to mclust's univariate "V" criterion (its
    ``hcV``), :math:`T(n, W) = n \log((W + \alpha') / n)` with singleton
    term :math:`\log \alpha'`; this is the D = 1 analogue of the regularised
    VVV term without the separate determinant term. (In the mclust source
    we read, the R wrapper ``hcV`` takes ``min(alpha', machine epsilon)``,
    which with the Fortran's floor makes alpha' equal machine epsilon; we
    use the scaled alpha' defined above, as ``hcVVV`` does.)
    ``model="EII"`` in one dimension is Ward's criterion. The same fallback
    applies when a transformation leaves a single informative column.

Transformations
---------------
``transform="svd"`` (mclust's default ``hcUse = "SVD"``)
    Centre each column and scale it to unit standard deviation (divisor
    n - 1, as R's ``scale``), take the thin SVD :math:`X_s = U D V^T` and
    cluster :math:`Z = X_s V D^{-1/2} = U D^{1/2}`: the principal-component
    scores shrunk by the square roots of the singular values ("scaled SVD").
    Constant columns are dropped (mclust drops the non-finite columns that
    scaling them produces), and so are directions whose singular value is
    zero to working precision (rank-deficient data; mclust would divide by
    a near-zero value there).
``transform="var"`` (mclust's ``"STD"``)
    Centre and scale each column to unit standard deviation; constant
    columns are dropped.
``transform="none"`` (mclust's ``"VARS"``)
    Cluster X as given.

All three are invariant to translating X; "svd" and "var" are also
invariant to rescaling (or sign-flipping) individual columns. Reflections of
the SVD's singular vectors do not change any criterion.

Algorithm and complexity
------------------------
The stored-matrix algorithm: a table of the merge cost of every pair of
current clusters, plus each cluster's best (cheapest) partner. A merge puts
the new cluster in the slot of the lower of the two merged slots,
recomputes that slot's costs against every other cluster in one batched
evaluation, and rescans only the rows whose best partner was one of the two
merged clusters. Each merge therefore costs O(m) cost evaluations for m
current clusters (O(m D^2) arithmetic, plus an O(D^3) determinant per pair
for "VVV" once the merged cluster has more than D points) and the table
costs O(n^2) memory (8 n^2 bytes: 32 MB for n = 2000; mclust runs ``hc``
on a subsample of 2000 points of larger data, ``mclust.options("subset")``).
All n - 2 merges are needed even for few partitions (the k-cluster
partition is the state after n - k merges), so the whole run costs O(n^2)
cost evaluations.

Because each slot holds the cluster whose lowest row index is the slot
number, "ties broken by the lowest (i, j) slot pair" is a rule on the data's
row order, and slots sorted ascending list the clusters in order of first
appearance, which gives canonical labels. Costs are rounded to 36
significant bits (relative 1.5e-11) before they are compared, so that costs
equal in exact arithmetic but computed along different floating-point paths
(tied data, a translated copy) count as ties and the index rule, not
rounding noise, decides between them.

References
----------
J. D. Banfield and A. E. Raftery (1993). Model-based Gaussian and
non-Gaussian clustering. Biometrics 49(3):803-821.

C. Fraley (1998). Algorithms for model-based Gaussian hierarchical
clustering. SIAM Journal on Scientific Computing 20(1):270-281.

J. H. Ward (1963). Hierarchical grouping to optimize an objective function.
Journal of the American Statistical Association 58(301):236-244.

L. Scrucca and A. E. Raftery (2015). Improved initialisation of
model-based clustering using Gaussian hierarchical partitions. Advances in
Data Analysis and Classification 9(4):447-460 (the transformations, among
them ``hcUse = "SVD"``).
"""

from __future__ import annotations

import numbers

import numpy as np
from scipy.spatial.distance import cdist

__all__ = ["HC_MODELS", "HC_TRANSFORMS", "hierarchical_partitions"]

HC_MODELS = ("VVV", "EII")
HC_TRANSFORMS = ("svd", "var", "none")


def hierarchical_partitions(
    X,
    max_components,
    *,
    model: str = "VVV",
    transform: str = "svd",
    alpha: float = 1.0,
    beta: float = 1.0,
) -> np.ndarray:
    """Partitions of the model-based agglomerative merge tree.

    Parameters
    ----------
    X : array-like of shape (n_samples, n_features)
        Finite real data, at least two rows.
    max_components : int
        Largest number of clusters wanted, ``1 <= max_components <= n_samples``.
    model : {'VVV', 'EII'}, default='VVV'
        Merge criterion: 'VVV' is the regularised unconstrained-covariance
        classification likelihood of Fraley (1998) as mclust's ``hcVVV``
        evaluates it (mclust's univariate 'V' criterion when one column is
        left); 'EII' is Ward's criterion. See the module docstring.
    transform : {'svd', 'var', 'none'}, default='svd'
        Data the tree is built on: 'svd' is mclust's default scaled SVD
        (``hcUse = "SVD"``), 'var' standardised columns, 'none' X as is.
    alpha, beta : float, default=1.0
        Positive regularisation constants of the 'VVV' criterion (mclust's
        ``hcVVV`` defaults); ``alpha`` also regularises the univariate 'V'
        criterion. Ignored by 'EII'.

    Returns
    -------
    partitions : ndarray of shape (max_components, n_samples), dtype int
        Row ``k - 1`` labels the k-cluster partition with ``0 .. k - 1``,
        numbered in order of first appearance along the rows of X. Each row
        refines the one before it (the partitions are cuts of one tree).
        Deterministic: no random numbers are used, and ties in merge cost
        (after rounding costs to 36 significant bits) are broken in favour of
        the pair of clusters with the lowest (i, j) pair of lowest member row
        indices, compared lexicographically.

    Raises
    ------
    ValueError
        If X is not a 2-D array of finite real numbers with at least two
        rows, if ``max_components`` is outside ``1 .. n_samples``, or if
        ``model``, ``transform``, ``alpha`` or ``beta`` is invalid.
    TypeError
        If ``max_components`` is not an integer.

    Notes
    -----
    Time O(n_samples^2) merge-cost evaluations, memory O(n_samples^2) (one
    float64 table of pair costs); see the module docstring.

    Examples
    --------
    >>> import numpy as np
    >>> X = np.array([[0.0, 0.0], [0.1, 0.0], [5.0, 5.0], [5.0, 5.2]])
    >>> hierarchical_partitions(X, 3, model="EII", transform="none")
    array([[0, 0, 0, 0],
           [0, 0, 1, 1],
           [0, 0, 1, 2]])
    """
    X = _check_data(X)
    n_samples = X.shape[0]
    max_components = _check_max_components(max_components, n_samples)
    model = _check_choice(model, HC_MODELS, "model")
    transform = _check_choice(transform, HC_TRANSFORMS, "transform")
    alpha = _check_positive(alpha, "alpha")
    beta = _check_positive(beta, "beta")

    if max_components == 1:
        return np.zeros((1, n_samples), dtype=np.intp)
    Z = _transform(X, transform)
    criterion: _Ward | _Univariate | _Unconstrained
    if model == "EII":
        criterion = _Ward(Z)
    elif Z.shape[1] == 1:
        criterion = _Univariate(Z, alpha)
    else:
        criterion = _Unconstrained(Z, alpha, beta)
    return _agglomerate(criterion, max_components)


# ---------------------------------------------------------------------------
# Validation


def _check_data(X) -> np.ndarray:
    try:
        array = np.asarray(X)
    except Exception as error:  # ragged nested lists and the like
        raise ValueError(
            f"X must be a 2-D array of real numbers; could not convert it: {error}"
        ) from None
    if array.dtype.kind == "c":
        raise ValueError("X must be real; got complex values.")
    if array.dtype.kind not in "biuf":
        try:
            array = array.astype(np.float64)
        except (TypeError, ValueError):
            raise ValueError(
                f"X must hold real numbers; got dtype {array.dtype}."
            ) from None
    if array.ndim != 2:
        hint = " Use X.reshape(-1, 1) for one feature." if array.ndim == 1 else ""
        raise ValueError(
            f"X must be 2-D of shape (n_samples, n_features); got {array.ndim} "
            f"dimension(s).{hint}"
        )
    n_samples, n_features = array.shape
    if n_features == 0:
        raise ValueError("X has no features (columns).")
    if n_samples < 2:
        raise ValueError(
            f"hierarchical clustering needs at least 2 samples; got {n_samples}."
        )
    array = array.astype(np.float64, copy=False)
    if not np.all(np.isfinite(array)):
        bad = int(np.count_nonzero(~np.isfinite(array)))
        raise ValueError(
            f"X contains {bad} NaN or infinite value(s); remove or impute them "
            "before clustering."
        )
    return array


def _check_max_components(max_components, n_samples: int) -> int:
    if isinstance(max_components, bool) or not isinstance(
        max_components, numbers.Integral
    ):
        raise TypeError(f"max_components must be an integer; got {max_components!r}.")
    max_components = int(max_components)
    if not 1 <= max_components <= n_samples:
        raise ValueError(
            f"max_components must satisfy 1 <= max_components <= n_samples = "
            f"{n_samples}; got {max_components}."
        )
    return max_components


def _check_choice(value, allowed: tuple[str, ...], name: str) -> str:
    if not isinstance(value, str) or value not in allowed:
        choices = ", ".join(repr(a) for a in allowed)
        raise ValueError(
            f"{name} must be one of {choices}; got {value!r}. "
            f"Pass one of those strings (they are case-sensitive)."
        )
    return value


def _check_positive(value, name: str) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a positive number; got {value!r}.") from None
    if not (np.isfinite(number) and number > 0.0):
        raise ValueError(f"{name} must be positive and finite; got {value!r}.")
    return number


# ---------------------------------------------------------------------------
# Transformations


def _standardise(X: np.ndarray) -> np.ndarray:
    """Centre, drop constant columns, scale to unit sd (divisor n - 1)."""
    centred = X - X.mean(axis=0)
    sd = np.sqrt(np.sum(centred**2, axis=0) / (X.shape[0] - 1))
    # A column is constant when its sd is negligible against its magnitude
    # (centring a constant column can leave rounding noise).
    scale = np.maximum(np.max(np.abs(X), axis=0), np.finfo(float).tiny)
    keep = sd > 8.0 * np.finfo(float).eps * scale
    if not np.any(keep):
        return np.zeros((X.shape[0], 1))
    return centred[:, keep] / sd[keep]


def _transform(X: np.ndarray, transform: str) -> np.ndarray:
    if transform == "none":
        return X.copy()
    standardised = _standardise(X)
    if transform == "var":
        return standardised
    U, singular, _ = np.linalg.svd(standardised, full_matrices=False)
    rank_tol = max(standardised.shape) * np.finfo(float).eps * singular[0]
    keep = singular > rank_tol
    if not np.any(keep):
        return np.zeros((X.shape[0], 1))
    # X_s V D^{-1/2} = U D V^T V D^{-1/2} = U D^{1/2}
    return U[:, keep] * np.sqrt(singular[keep])


# ---------------------------------------------------------------------------
# Criteria: per-cluster sufficient statistics and batched merge costs


class _Ward:
    """Ward / EII: cost n_i n_j / (n_i + n_j) ||m_i - m_j||^2."""

    def __init__(self, Z: np.ndarray) -> None:
        self.n_samples = Z.shape[0]
        self.counts = np.ones(self.n_samples)
        self.means = Z.copy()

    def initial_costs(self) -> np.ndarray:
        """Costs of merging every pair of singletons, shape (n, n)."""
        return 0.5 * cdist(self.means, self.means, "sqeuclidean")

    def merge(self, a: int, b: int) -> None:
        n_a, n_b = self.counts[a], self.counts[b]
        total = n_a + n_b
        self.means[a] = (n_a * self.means[a] + n_b * self.means[b]) / total
        self.counts[a] = total

    def costs(self, a: int, others: np.ndarray) -> np.ndarray:
        """Costs of merging cluster ``a`` with each of ``others``, shape (m,)."""
        n_a, n_o = self.counts[a], self.counts[others]
        diff = self.means[others] - self.means[a]
        return (n_a * n_o / (n_a + n_o)) * np.einsum("ij,ij->i", diff, diff)


class _Scatter:
    """Shared bookkeeping: counts, means, scatter traces and cluster terms."""

    def __init__(self, Z: np.ndarray, alpha: float) -> None:
        self.n_samples, self.n_features = Z.shape
        self.counts = np.ones(self.n_samples)
        self.means = Z.copy()
        self.traces = np.zeros(self.n_samples)
        total_trace = float(np.sum((Z - Z.mean(axis=0)) ** 2))
        alpha_eff = alpha * total_trace / (self.n_samples * self.n_features)
        # All points identical: every pair merges at the same cost whatever
        # alpha' is, so any positive value does.
        self.alpha = alpha_eff if alpha_eff > 0.0 else 1.0

    def _merged(self, a: int, others: np.ndarray):
        n_a, n_o = self.counts[a], self.counts[others]
        total = n_a + n_o
        weight = n_a * n_o / total
        diff = self.means[others] - self.means[a]
        traces = (
            self.traces[a]
            + self.traces[others]
            + weight * np.einsum("ij,ij->i", diff, diff)
        )
        return total, weight, diff, traces


class _Univariate(_Scatter):
    """mclust's univariate 'V': T(n, W) = n log((W + alpha') / n)."""

    def __init__(self, Z: np.ndarray, alpha: float) -> None:
        super().__init__(Z, alpha)
        self.terms = np.full(self.n_samples, np.log(self.alpha))

    def _term(self, counts, traces):
        return counts * np.log((traces + self.alpha) / counts)

    def initial_costs(self) -> np.ndarray:
        pair_traces = 0.5 * cdist(self.means, self.means, "sqeuclidean")
        return self._term(2.0, pair_traces) - 2.0 * self.terms[0]

    def merge(self, a: int, b: int) -> None:
        total, _, _, traces = self._merged(a, np.array([b]))
        n_a, n_b = self.counts[a], self.counts[b]
        self.means[a] = (n_a * self.means[a] + n_b * self.means[b]) / total[0]
        self.counts[a] = total[0]
        self.traces[a] = traces[0]
        self.terms[a] = self._term(total[0], traces[0])

    def costs(self, a: int, others: np.ndarray) -> np.ndarray:
        total, _, _, traces = self._merged(a, others)
        return self._term(total, traces) - self.terms[a] - self.terms[others]


class _Unconstrained(_Scatter):
    """Regularised VVV: T(n, W) = n log([n > D] |W/n| + beta (tr W + alpha')/n)."""

    def __init__(self, Z: np.ndarray, alpha: float, beta: float) -> None:
        super().__init__(Z, alpha)
        self.beta = beta
        d = self.n_features
        self.scatters = np.zeros((self.n_samples, d, d))
        self.terms = np.full(self.n_samples, np.log(beta * self.alpha))

    def _term(self, counts, scatters, traces):
        """Cluster terms, shape (m,), for counts (m,), scatters (m, D, D)."""
        determinant = np.zeros(counts.shape)
        big = counts > self.n_features  # |W| = 0 exactly when n <= D
        if np.any(big):
            covariances = scatters[big] / counts[big, None, None]
            # Rounding can make the determinant of a singular PSD matrix
            # slightly negative; it is zero then.
            determinant[big] = np.maximum(np.linalg.det(covariances), 0.0)
        return counts * np.log(determinant + self.beta * (traces + self.alpha) / counts)

    def initial_costs(self) -> np.ndarray:
        # Two singletons: n = 2 <= D, so only the trace term enters;
        # tr W = ||x_i - x_j||^2 / 2.
        pair_traces = 0.5 * cdist(self.means, self.means, "sqeuclidean")
        pair_terms = 2.0 * np.log(self.beta * (pair_traces + self.alpha) / 2.0)
        return pair_terms - 2.0 * self.terms[0]

    def _merged_scatters(self, a, others, weight, diff):
        return (
            self.scatters[a]
            + self.scatters[others]
            + weight[:, None, None] * diff[:, :, None] * diff[:, None, :]
        )

    def merge(self, a: int, b: int) -> None:
        pair = np.array([b])
        total, weight, diff, traces = self._merged(a, pair)
        scatter = self._merged_scatters(a, pair, weight, diff)
        n_a, n_b = self.counts[a], self.counts[b]
        self.means[a] = (n_a * self.means[a] + n_b * self.means[b]) / total[0]
        self.counts[a] = total[0]
        self.scatters[a] = scatter[0]
        self.traces[a] = traces[0]
        self.terms[a] = self._term(total, scatter, traces)[0]

    def costs(self, a: int, others: np.ndarray) -> np.ndarray:
        total, weight, diff, traces = self._merged(a, others)
        scatters = self._merged_scatters(a, others, weight, diff)
        return self._term(total, scatters, traces) - self.terms[a] - self.terms[others]


# ---------------------------------------------------------------------------
# The agglomeration


_TIE_BITS = 36


def _snap(costs: np.ndarray) -> np.ndarray:
    """Round costs to ``_TIE_BITS`` significant bits (relative 2**-36, ~1.5e-11).

    Costs that are equal in exact arithmetic but reach the table by different
    floating-point paths (a translated copy of a configuration, a cluster
    merged in another order) then compare equal, so the lowest-index tie rule
    decides between them rather than rounding noise. Rounding to nearest on
    this grid is monotone: it never reverses the order of two costs, it only
    turns near-ties into ties. Infinite costs pass through unchanged.
    """
    mantissa, exponent = np.frexp(costs)
    return np.ldexp(np.round(mantissa * 2.0**_TIE_BITS) / 2.0**_TIE_BITS, exponent)


def _agglomerate(criterion, max_components: int) -> np.ndarray:
    """Greedy merges with a stored cost table and per-row best partners."""
    n = criterion.n_samples
    partitions = np.zeros((max_components, n), dtype=np.intp)
    rows = np.arange(n)
    owner = np.arange(n)  # slot of each row's cluster = its lowest row index
    active = np.ones(n, dtype=bool)

    cost = _snap(criterion.initial_costs())
    np.fill_diagonal(cost, np.inf)
    best = np.argmin(cost, axis=1)  # first minimum: lowest partner on ties
    best_cost = cost[rows, best]

    def record(n_clusters: int) -> None:
        rank = np.cumsum(active) - 1  # slots ascending = order of first appearance
        partitions[n_clusters - 1] = rank[owner]

    n_clusters = n
    if n_clusters <= max_components:
        record(n_clusters)
    while n_clusters > 2:
        # Lowest row with the global minimum, then its lowest best partner:
        # that is the lexicographically lowest (i, j) pair of minimum cost.
        i = int(np.argmin(best_cost))
        j = int(best[i])
        a, b = (i, j) if i < j else (j, i)

        criterion.merge(a, b)
        active[b] = False
        owner[owner == b] = a
        cost[b, :] = np.inf
        cost[:, b] = np.inf
        best_cost[b] = np.inf
        n_clusters -= 1

        others = np.flatnonzero(active)
        others = others[others != a]
        new = _snap(criterion.costs(a, others))
        cost[a, others] = new
        cost[others, a] = new
        best[a] = others[np.argmin(new)]
        best_cost[a] = cost[a, best[a]]

        stale = (best[others] == a) | (best[others] == b)
        better = (new < best_cost[others]) | (
            (new == best_cost[others]) & (a < best[others])
        )
        improved = others[better & ~stale]
        best[improved] = a
        best_cost[improved] = new[better & ~stale]
        rescan = others[stale]
        if rescan.size:
            best[rescan] = np.argmin(cost[rescan], axis=1)
            best_cost[rescan] = cost[rescan, best[rescan]]

        if n_clusters <= max_components:
            record(n_clusters)
    return partitions
