"""Model-based clustering: search covariance models x K by BIC and ICL.

:func:`search` fits every covariance model (by default all of those that
apply to the data's dimension: the 14 of Celeux & Govaert 1995, or E and V
for one feature) for every number of components, and tabulates the
log-likelihood, parameter count, BIC, ICL and a status for each *cell*
(model, K), as R mclust's ``mclustBIC`` does (Fraley & Raftery 2002;
Scrucca et al. 2016).

Starts
    Every cell is fitted from the K-cluster level of model-based
    hierarchical clustering (``hc``, Fraley 1998: mclust's start, computed
    once for the data) and from ``n_random_starts`` k-means partitions
    (seeded, computed once per K and shared by all models, so every model
    of a given K starts from the same partitions).
Statuses
    Each start's final fit is classified by
    :func:`mixtures.diagnostics.classify`, the one verdict every part of
    gmmlab uses (spikes, components too small or thin and small,
    duplicated components, repairs in force; ``reg_covar`` taken off first):
    ``degenerate``, ``unconverged`` when EM hit ``max_iter``, ``failed`` when
    it raised, ``ok`` otherwise. A cell reports its best ``ok`` start;
    when it has none, its best start of any status, under that status.
The rule
    **A search never returns a flagged solution**: :meth:`SearchResult.best`
    and :func:`best_model` choose among ``ok`` cells only, and raise if
    there is none. A spurious maximum (a component collapsed on a few tied
    values) has a higher likelihood, often a better BIC, and is exactly what
    an unguarded BIC search picks on data with ties, such as Old Faithful.

BIC is reported with scikit-learn's sign (``-2 loglik + p log n``, lower is
better), which is minus mclust's; so is ICL (``BIC + 2 * sum_n -log
max_k tau_nk``, Biernacki, Celeux & Govaert 2000, in mclust's form).

References
----------
Fraley, C. (1998). Algorithms for model-based Gaussian hierarchical
clustering. SIAM J. Sci. Comput. 20:270-281.
Fraley, C. and Raftery, A. E. (2002). Model-based clustering, discriminant
analysis, and density estimation. JASA 97:611-631.
Scrucca, L., Fop, M., Murphy, T. B. and Raftery, A. E. (2016). mclust 5.
The R Journal 8(1):289-317.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from joblib import Parallel, delayed
from sklearn.cluster import KMeans
from sklearn.exceptions import ConvergenceWarning

from mixtures.covariance import get_covariance_model, mclust_name, models_for
from mixtures.diagnostics import STATUSES, bic, classify, icl, in_force
from mixtures.em import score_samples
from mixtures.estimator import GaussianMixture
from mixtures.fitting import (
    DegenerateComponentWarning,
    EMOptions,
    _feature_variance,
    check_data,
    fit_validated,
)
from mixtures.initialization import initial_responsibilities
from mixtures.params import MixtureParams
from mixtures.prior import as_prior

__all__ = [
    "STATUSES",
    "SearchResult",
    "best_model",
    "bic_table",
    "search",
    "top_models",
]

CRITERIA = ("bic", "icl")
_COLUMNS = [
    "model",
    "n_components",
    "log_likelihood",
    "n_parameters",
    "bic",
    "icl",
    "status",
    "reason",
    "start",
    "n_iter",
    "n_starts_ok",
    "n_starts",
    "seconds",
]


@dataclass(frozen=True, eq=False)
class SearchResult:
    """The table of a model search and the fitted model of every cell.

    Attributes
    ----------
    table : pandas.DataFrame
        One row per (model, K), columns ``model, n_components,
        log_likelihood, n_parameters, bic, icl, status, reason, start,
        n_iter, n_starts_ok, n_starts, seconds``; sorted by model (mclust's order)
        then K.
    fits : dict of (model, K) -> GaussianMixture
        The fitted estimator of each cell that did not fail.
    X : ndarray of shape (n_samples, n_features)
        The data searched.
    """

    table: pd.DataFrame
    fits: dict[tuple[str, int], GaussianMixture] = field(repr=False)
    X: np.ndarray = field(repr=False)

    def top(self, n: int = 3, criterion: str = "bic") -> pd.DataFrame:
        """The ``n`` best ``ok`` cells by ``criterion`` (lower is better)."""
        return top_models(self.table, n, criterion)

    def best(self, criterion: str = "bic") -> GaussianMixture:
        """The fitted model of the best ``ok`` cell; never a flagged one."""
        top = self.top(1, criterion)
        if top.empty:
            counts = self.table["status"].value_counts().to_dict()
            reasons = self.table["reason"].dropna()
            common = reasons.mode().iloc[0] if not reasons.empty else "unknown"
            raise ValueError(
                f"no cell of the search is ok (statuses: {counts}); the most "
                f"common reason: {common}. Search fewer components, other "
                "models, or turn on the prior (prior='default'; gmmlab fit "
                "--prior)."
            )
        row = top.iloc[0]
        return self.fits[(row["model"], int(row["n_components"]))]

    def uncertainty(self, criterion: str = "bic") -> np.ndarray:
        """Classification uncertainty ``1 - max_k tau_nk`` of every row, (n,)."""
        fitted = self.best(criterion)
        return 1.0 - fitted.predict_proba(self.X).max(axis=1)


def top_models(table: pd.DataFrame, n: int = 3, criterion: str = "bic") -> pd.DataFrame:
    """The ``n`` best cells with status ``ok`` of a search table.

    Sorted by ``criterion`` (lower is better), ties by fewer parameters;
    flagged cells never appear, whatever their score.
    """
    _check_criterion(criterion)
    ok = table[table["status"] == "ok"]
    return ok.sort_values([criterion, "n_parameters"], kind="stable").head(n)


def _check_criterion(criterion: str) -> None:
    if criterion not in CRITERIA:
        raise ValueError(f"criterion must be one of {CRITERIA}; got {criterion!r}.")


def _check_models(models, n_features: int) -> tuple[str, ...]:
    if models is None:
        return models_for(n_features)
    if isinstance(models, str):
        models = [models]
    names = []
    for name in models:
        get_covariance_model(name)  # raises with the choices
        if n_features > 1 and name in ("E", "V"):
            raise ValueError(
                f"model {name!r} is univariate but the data have {n_features} "
                "features; leave models=None or use the 14 multivariate names."
            )
        canonical = mclust_name(name)
        if canonical not in names:
            names.append(canonical)
    if not names:
        raise ValueError("models must name at least one covariance model.")
    return tuple(names)


def _check_components(n_components, n_samples: int) -> tuple[int, ...]:
    if isinstance(n_components, int | np.integer):
        n_components = [n_components]
    try:
        given = list(n_components)
    except TypeError:
        given = [n_components]
    if any(isinstance(k, bool) or not isinstance(k, int | np.integer) for k in given):
        raise ValueError(
            f"n_components must be integers >= 1 (an int or a range); got {given!r}."
        )
    values = sorted({int(k) for k in given})
    if not values or values[0] < 1:
        raise ValueError(
            f"n_components must be integers >= 1; got {list(n_components)!r}."
        )
    if values[-1] > n_samples:
        raise ValueError(
            f"n_components goes up to {values[-1]} but there are only "
            f"{n_samples} samples; search fewer components."
        )
    return tuple(values)


def _kmeans_resp(X: np.ndarray, k: int, seed: int) -> np.ndarray:
    labels = KMeans(n_clusters=k, n_init=1, random_state=seed).fit(X).labels_
    resp = np.zeros((X.shape[0], k))
    resp[np.arange(X.shape[0]), labels] = 1.0
    return resp


def _starts(
    X: np.ndarray, k: int, n_random_starts: int, seeds: np.ndarray
) -> tuple[list[str], list[np.ndarray]]:
    hc = initial_responsibilities(X, k, "hc", np.random.RandomState(0))
    names, resp = ["hc"], [hc]
    seen = {_canonical(hc)}
    if k > 1:
        for i in range(n_random_starts):
            candidate = _kmeans_resp(X, k, int(seeds[i]))
            key = _canonical(candidate)
            if key not in seen:  # the same partition would give the same fit
                seen.add(key)
                names.append(f"kmeans-{i}")
                resp.append(candidate)
    return names, resp


def _canonical(resp: np.ndarray) -> bytes:
    """A partition's labels renumbered in order of first appearance."""
    labels = resp.argmax(axis=1)
    _, first = np.unique(labels, return_index=True)
    order = np.empty(resp.shape[1], dtype=np.intp)
    order[labels[np.sort(first)]] = np.arange(first.size)
    return order[labels].tobytes()


def _fit_cell(
    X: np.ndarray,
    model: str,
    k: int,
    names: Sequence[str],
    resp: Sequence[np.ndarray],
    options: dict,
) -> tuple[dict, MixtureParams | None, object]:
    """Fit one cell from every start; return its row and chosen parameters."""
    n_samples = X.shape[0]
    row = {"model": model, "n_components": k, "n_starts": len(names)}
    started = time.perf_counter()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DegenerateComponentWarning)
            warnings.simplefilter("ignore", ConvergenceWarning)
            result = fit_validated(
                X,
                None,
                EMOptions(n_components=k, covariance_type=model, **options),
                0,
                initial_resp=resp,
            )
    except (ValueError, FloatingPointError, np.linalg.LinAlgError) as error:
        row.update(
            status="failed",
            reason=f"{type(error).__name__}: {error}",
            seconds=time.perf_counter() - started,
        )
        return row, None, None
    reg_covar = options["reg_covar"]
    if options["reg_covar_relative"]:
        reg_covar = reg_covar * _feature_variance(X, np.ones(n_samples))
    prior = as_prior(options["prior"])
    resolved = None if prior is None else prior.resolve(X, np.ones(n_samples), k)
    candidates = []
    for name, run in zip(names, result.restarts, strict=True):
        log_likelihood = float(np.sum(score_samples(X, run.params)))
        status, reason, _ = classify(
            run.params,
            X,
            reg_covar=reg_covar,
            covariance_type=model,
            converged=run.converged,
            n_iter=run.n_iter,
            in_force=in_force(run),
            log_likelihood=log_likelihood,
        )
        # What EM maximised: the log-likelihood, or with a prior the
        # log-posterior.
        objective = log_likelihood
        if resolved is not None and status != "failed":
            objective += resolved.log_density(run.params)
        candidates.append(
            (STATUSES.index(status), -objective, name, run, reason, log_likelihood)
        )
    candidates.sort(key=lambda c: (c[0], c[1]))
    rank, _, name, run, reason, log_likelihood = candidates[0]
    params = run.params
    n_parameters = params.n_parameters()
    row.update(
        log_likelihood=log_likelihood,
        n_parameters=n_parameters,
        bic=bic(log_likelihood, n_parameters, n_samples),
        icl=icl(log_likelihood, n_parameters, X, params),
        status=STATUSES[rank],
        reason=reason,
        start=name,
        n_iter=run.n_iter,
        n_starts_ok=sum(c[0] == 0 for c in candidates),
        seconds=time.perf_counter() - started,
    )
    return row, params, run


def _estimator(params: MixtureParams, run, model: str, options: dict, X, feature_names):
    """A fitted GaussianMixture holding ``params`` (no refit)."""
    fitted = GaussianMixture(
        params.n_components,
        covariance_type=model,
        tol=options["tol"],
        reg_covar=options["reg_covar"],
        max_iter=options["max_iter"],
        prior=options["prior"],
        reg_covar_relative=options["reg_covar_relative"],
    )
    arrays = params.astype_arrays(np.dtype(np.float64))
    fitted.weights_ = arrays["weights"]
    fitted.means_ = arrays["means"]
    fitted.covariances_ = arrays["covariances"]
    fitted.precisions_ = arrays["precisions"]
    fitted.precisions_cholesky_ = arrays["precisions_cholesky"]
    fitted.converged_ = bool(run.converged)
    fitted.n_iter_ = int(run.n_iter)
    fitted.lower_bounds_ = run.lower_bounds.copy()
    fitted.lower_bound_ = run.lower_bound
    fitted.degenerate_events_ = list(run.events)
    fitted.init_lower_bounds_ = np.array([run.lower_bound])
    fitted.init_traces_ = [run.lower_bounds.copy()]
    fitted.best_init_ = 0
    fitted.n_features_in_ = X.shape[1]
    if feature_names is not None:
        fitted.feature_names_in_ = np.asarray(feature_names, dtype=object)
    return fitted


def search(
    X,
    models: Iterable[str] | str | None = None,
    n_components: Iterable[int] | int = range(1, 10),
    *,
    prior=None,
    n_random_starts: int = 2,
    random_state: int | None = None,
    n_jobs: int | None = None,
    tol: float = 1e-8,
    max_iter: int = 2000,
    reg_covar: float = 1e-6,
    reg_covar_relative: bool = False,
    progress: bool = False,
) -> SearchResult:
    """Fit every model x K and classify every fit (see the module docstring).

    Parameters
    ----------
    X : array-like of shape (n_samples, n_features) or (n_samples,)
    models : iterable of str, str or None, default=None
        Covariance models by mclust's (or scikit-learn's) names; None means
        every model for the data's dimension (:func:`models_for`).
    n_components : iterable of int or int, default=range(1, 10)
    prior : None, 'default', dict or ConjugatePrior, default=None
        None: maximum likelihood, comparable with mclust's defaults.
        Otherwise MAP-EM with the prior of Fraley & Raftery (2007).
    n_random_starts : int, default=2
        Seeded k-means starts per K in addition to the hierarchical one.
    random_state : int or None, default=None
        Seeds the k-means starts; None means 0, so a search is reproducible
        unless a seed is chosen.
    n_jobs : int or None, default=None
        Cells run in parallel in this many processes (joblib); None means 1.
    tol, max_iter, reg_covar : float, int, float
        EM settings per start; ``tol`` is on the mean log-likelihood, as in
        :class:`mixtures.GaussianMixture`, and is tight by default so that
        a fit stops at its maximum, not before it.
    reg_covar_relative : bool, default=False
        ``reg_covar`` in units of each feature's variance, so that the search
        does not depend on the data's units (``gmmlab fit`` sets it).
    progress : bool, default=False
        Show a tqdm progress bar over the cells.

    Returns
    -------
    SearchResult
    """
    feature_names = getattr(X, "columns", None)
    if feature_names is not None and not all(isinstance(c, str) for c in feature_names):
        feature_names = None  # scikit-learn records only string names
    # float64 always: the default tolerance is below float32's rounding.
    X = check_data(X, allow_1d=True).astype(np.float64, copy=False)
    n_samples, n_features = X.shape
    constant = np.flatnonzero(np.ptp(X, axis=0) == 0)
    if constant.size:
        which = (
            [str(feature_names[j]) for j in constant]
            if feature_names is not None
            else constant.tolist()
        )
        raise ValueError(
            f"column(s) {which} are constant: no mixture can model a feature "
            "without spread (every covariance would be singular). Remove them."
        )
    names = _check_models(models, n_features)
    ks = _check_components(n_components, n_samples)
    if isinstance(n_random_starts, bool) or not isinstance(
        n_random_starts, int | np.integer
    ):
        raise ValueError(
            f"n_random_starts must be an integer >= 0; got {n_random_starts!r}."
        )
    if n_random_starts < 0:
        raise ValueError(f"n_random_starts must be >= 0; got {n_random_starts}.")
    as_prior(prior)  # raises on a malformed prior
    options = {
        "tol": tol,
        "max_iter": max_iter,
        "reg_covar": reg_covar,
        "reg_covar_relative": reg_covar_relative,
        "prior": prior,
    }
    EMOptions(**options)  # validates the scalar options once, up front
    if random_state is not None and (
        isinstance(random_state, bool)
        or not isinstance(random_state, int | np.integer)
        or random_state < 0
    ):
        raise ValueError(
            f"random_state must be None or an integer >= 0; got {random_state!r}."
        )
    seed_sequence = np.random.SeedSequence(0 if random_state is None else random_state)
    seeds = {
        k: child.generate_state(max(1, n_random_starts))
        for k, child in zip(ks, seed_sequence.spawn(len(ks)), strict=True)
    }
    starts = {k: _starts(X, k, n_random_starts, seeds[k]) for k in ks}
    # Costliest cells first (large K, iterative M-steps), so that processes
    # finish together; the table is put back in model-then-K order below.
    cells = sorted(
        ((model, k) for model in names for k in ks),
        key=lambda cell: (
            -cell[1] * (2 if get_covariance_model(cell[0]).iterative else 1),
            names.index(cell[0]),
        ),
    )
    jobs = (delayed(_fit_cell)(X, model, k, *starts[k], options) for model, k in cells)
    outputs = Parallel(n_jobs=n_jobs, return_as="generator")(jobs)
    if progress:
        from tqdm.auto import tqdm

        outputs = tqdm(outputs, total=len(cells), desc="model search")
    rows, fits = [], {}
    for (model, k), (row, params, run) in zip(cells, outputs, strict=True):
        rows.append(row)
        if params is not None:
            fits[(model, k)] = _estimator(params, run, model, options, X, feature_names)
    table = pd.DataFrame(rows).reindex(columns=_COLUMNS)
    table["n_components"] = table["n_components"].astype(int)
    table["_order"] = table["model"].map(names.index)
    table = (
        table.sort_values(["_order", "n_components"], kind="stable")
        .drop(columns="_order")
        .reset_index(drop=True)
    )
    return SearchResult(table, fits, X)


def bic_table(
    X,
    models: Iterable[str] | str | None = None,
    n_components: Iterable[int] | int = range(1, 10),
    *,
    random_state: int | None = None,
    n_jobs: int | None = None,
    **options,
) -> pd.DataFrame:
    """The BIC/ICL table of :func:`search`: one row per model and K.

    Columns ``model, n_components, log_likelihood, n_parameters, bic, icl,
    status`` (and ``reason, start, n_iter, n_starts_ok, n_starts``); ``bic``
    and ``icl`` lower is better. Other keyword arguments go to
    :func:`search`.

    Examples
    --------
    >>> from mixtures.data import load_faithful
    >>> table = bic_table(load_faithful(), n_components=range(1, 4))
    >>> best = table[table.status == "ok"].sort_values("bic").iloc[0]
    >>> best.model, int(best.n_components), round(best.bic, 1)
    ('EEE', 3, 2314.3)
    """
    return search(
        X,
        models,
        n_components,
        random_state=random_state,
        n_jobs=n_jobs,
        **options,
    ).table


def best_model(
    X,
    models: Iterable[str] | str | None = None,
    n_components: Iterable[int] | int = range(1, 10),
    *,
    criterion: str = "bic",
    random_state: int | None = None,
    n_jobs: int | None = None,
    **options,
) -> GaussianMixture:
    """The fitted model of the best ``ok`` cell of :func:`search`.

    Never a degenerate, unconverged or failed fit; raises ValueError when
    every cell is flagged.
    """
    _check_criterion(criterion)
    return search(
        X,
        models,
        n_components,
        random_state=random_state,
        n_jobs=n_jobs,
        **options,
    ).best(criterion)
