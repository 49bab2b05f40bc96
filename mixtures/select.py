"""Model-based clustering: search covariance models x K by BIC and ICL.

:func:`search` fits every covariance model (by default all of those that
apply to the data's dimension: the 14 of Celeux & Govaert 1995, or E and V
for one feature) for every number of components, and tabulates the
log-likelihood, parameter count, BIC, ICL and a status for each *cell*
(model, K), as R mclust's ``mclustBIC`` does (Fraley & Raftery 2002;
Scrucca et al. 2016).

Starts (shared by every model of a given K)
    * ``hc``: the K-cluster level of model-based hierarchical clustering on
      mclust's default transformation (Fraley 1998; the scaled SVD of
      Scrucca & Raftery 2015): mclust's own start, always run to
      convergence, so that a cell can only end above what mclust's start
      gives;
    * ``hc-EII-svd`` ... ``hc-VVV-none``: the other five criterion x
      transformation pairs mclust offers (``hc(modelName=, use=)``);
    * ``kmeans-i``: ``n_random_starts`` seeded k-means partitions;
    * ``random-i``: ``n_soft_starts`` seeded random responsibilities.
The em-EM scheme (Biernacki, Celeux & Govaert 2003)
    Every start gets a short SQUAREM run (at most ``_SHORT_MAX_ITER``
    E-steps); ``hc`` and the ``n_continue`` best others are run to
    convergence (SQUAREM, Varadhan & Roland 2008, to ``tol``).
Second pass (``refine``)
    Each cell is started again from the classifications of the other
    models' ok fits with the same K (named ``VVV-fit`` and so on), and from
    its own model's fits with K - 1 and K + 1 components after a split or
    merge move (``split``, ``merge``; Ueda et al. 2000): one maximum is
    often a good start for its neighbours, and this is what lifts gmmlab
    above mclust's table on Old Faithful, cell by cell
    (``tests/test_select.py``). The cell keeps the better of its two passes.
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
Ueda, N., Nakano, R., Ghahramani, Z. and Hinton, G. E. (2000). SMEM
algorithm for mixture models. Neural Comput. 12:2109-2128.
Biernacki, C., Celeux, G. and Govaert, G. (2003). Choosing starting values
for the EM algorithm for getting the highest likelihood in multivariate
Gaussian mixture models. Comput. Stat. Data Anal. 41:561-575.
Fraley, C. (1998). Algorithms for model-based Gaussian hierarchical
clustering. SIAM J. Sci. Comput. 20:270-281.
Fraley, C. and Raftery, A. E. (2002). Model-based clustering, discriminant
analysis, and density estimation. JASA 97:611-631.
Scrucca, L., Fop, M., Murphy, T. B. and Raftery, A. E. (2016). mclust 5.
The R Journal 8(1):289-317.
Scrucca, L. and Raftery, A. E. (2015). Improved initialisation of
model-based clustering using Gaussian hierarchical partitions. Adv. Data
Anal. Classif. 9:447-460.
Varadhan, R. and Roland, C. (2008). Simple and globally convergent methods
for accelerating the convergence of any EM algorithm. Scand. J. Stat.
35:335-353.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from joblib import Parallel, delayed

from mixtures._parallel import resolve_kernel
from mixtures._version import installed_version
from mixtures.checkpoint import CellStore, fingerprint
from mixtures.covariance import (
    COVARIANCE_MODELS,
    MCLUST_MODELS,
    UNIVARIATE_MODELS,
    get_covariance_model,
    mclust_name,
    models_for,
)
from mixtures.diagnostics import (
    STATUSES,
)
from mixtures.estimator import GaussianMixture
from mixtures.fitting import (
    EMOptions,
    check_data,
)
from mixtures.missing import find_patterns, mean_filled
from mixtures.prior import as_prior
from mixtures.search_cell import _better, _fit_cell, _tie
from mixtures.search_starts import _all_starts, _shared_starts

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
    "n_iter_all",
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
        n_iter, n_starts_ok, n_starts, n_iter_all, seconds``; sorted by model
        (mclust's order) then K. ``start`` names the start of the reported
        fit, ``n_iter`` its E-steps (short run and continuation),
        ``n_starts`` the cell's starts over both passes, ``n_starts_ok`` how
        many of those run to convergence ended ok, ``n_iter_all`` the E-steps
        of all of them, and ``seconds`` the cell's time in both passes.
    fits : dict of (model, K) -> GaussianMixture
        The fitted estimator of each cell that did not fail.
    X : ndarray of shape (n_samples, n_features)
        The data searched.
    n_resumed : int
        How many cell fits (of both passes) were read back from the
        ``checkpoint`` folder instead of fitted.
    """

    table: pd.DataFrame
    fits: dict[tuple[str, int], GaussianMixture] = field(repr=False)
    X: np.ndarray = field(repr=False)
    n_resumed: int = 0

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


def _checked_data(X, *, allow_nan: bool = False) -> tuple[np.ndarray, object]:
    """The data as float64 (n_samples, n_features), and its string column names.

    NaN (missing values) only where ``allow_nan``.
    """
    feature_names = getattr(X, "columns", None)
    if feature_names is not None and not all(isinstance(c, str) for c in feature_names):
        feature_names = None  # scikit-learn records only string names
    # float64 always: the default tolerance is below float32's rounding.
    X = check_data(X, allow_1d=True, allow_nan=allow_nan).astype(np.float64, copy=False)
    if allow_nan and np.isnan(X).any():
        find_patterns(X, feature_names)  # raises on empty rows or features
    constant = np.flatnonzero(np.nanmax(X, axis=0) == np.nanmin(X, axis=0))
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
    return X, feature_names


def _check_search_settings(
    n_random_starts, n_soft_starts, n_continue, refine, random_state
) -> None:
    """ValueError for a start count, ``refine`` or seed a search cannot use."""
    for name, value, minimum in (
        ("n_random_starts", n_random_starts, 0),
        ("n_soft_starts", n_soft_starts, 0),
        ("n_continue", n_continue, 0),
    ):
        if isinstance(value, bool) or not isinstance(value, int | np.integer):
            raise ValueError(f"{name} must be an integer >= {minimum}; got {value!r}.")
        if value < minimum:
            raise ValueError(f"{name} must be >= {minimum}; got {value}.")
    if not isinstance(refine, bool | np.bool_):
        raise ValueError(f"refine must be True or False; got {refine!r}.")
    if random_state is not None and (
        isinstance(random_state, bool)
        or not isinstance(random_state, int | np.integer)
        or random_state < 0
    ):
        raise ValueError(
            f"random_state must be None or an integer >= 0; got {random_state!r}."
        )


def _check_criterion(criterion: str) -> None:
    if criterion not in CRITERIA:
        raise ValueError(f"criterion must be one of {CRITERIA}; got {criterion!r}.")


def _check_models(models, n_features: int) -> tuple[str, ...]:
    """The covariance models by mclust's names, without repeats."""
    if models is None:
        return models_for(n_features)
    given = [models] if isinstance(models, str) else models
    try:
        given = list(given)
    except TypeError:
        raise ValueError(
            f"models must be None, a model name or a list of names; got {models!r}."
        ) from None
    names: list[str] = []
    for name in given:
        if not isinstance(name, str) or name not in COVARIANCE_MODELS:
            raise ValueError(
                f"unknown covariance model {name!r}: covariance_type must be one "
                f"of mclust's names ({', '.join(MCLUST_MODELS)}; 'E' or 'V' for "
                "one feature) or scikit-learn's (full, tied, diag, spherical), "
                "or models=None for all of them."
            )
        if n_features > 1 and name in UNIVARIATE_MODELS:
            raise ValueError(
                f"model {name!r} is univariate but the data have {n_features} "
                "features; use the multivariate names or models=None."
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


def _estimator(run, model: str, options: dict, feature_names) -> GaussianMixture:
    """A fitted GaussianMixture holding the run's parameters (no refit)."""
    return GaussianMixture.from_result(
        run,
        feature_names_in=feature_names,
        covariance_type=model,
        tol=options["tol"],
        reg_covar=options["reg_covar"],
        max_iter=options["max_iter"],
        prior=options["prior"],
        reg_covar_relative=options["reg_covar_relative"],
        missing=options.get("missing", "error"),
    )


def search(
    X,
    models: Iterable[str] | str | None = None,
    n_components: Iterable[int] | int = range(1, 10),
    *,
    prior=None,
    n_random_starts: int = 2,
    n_soft_starts: int = 6,
    n_continue: int = 1,
    refine: bool = True,
    random_state: int | None = None,
    n_jobs: int | None = None,
    tol: float = 1e-8,
    max_iter: int = 2000,
    reg_covar: float = 1e-6,
    reg_covar_relative: bool = False,
    progress: bool = False,
    checkpoint: str | os.PathLike | None = None,
    missing: str = "error",
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
        Seeded k-means starts per K, besides the six hierarchical ones.
    n_soft_starts : int, default=6
        Seeded random-responsibility starts per K (rows drawn from the flat
        Dirichlet distribution).
    n_continue : int, default=1
        How many of a cell's starts, besides mclust's hierarchical one, are
        run to convergence after the short runs (the best of them).
    refine : bool, default=True
        A second pass starts every cell from the classifications of the
        other models' fits with the same K, and keeps a better maximum.
    random_state : int or None, default=None
        Seeds the k-means and random starts; None means 0, so a search is
        reproducible unless a seed is chosen.
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
        Show a tqdm progress bar over the cells (both passes).
    checkpoint : str, path-like or None, default=None
        A folder where every finished cell is written at once, and from
        which the same search (same data and options) reads back the cells
        it already has: interrupted and started again, it fits only the
        rest, and returns the same table. See :mod:`mixtures.checkpoint`
        (cells are pickles: use only a folder you trust).
    missing : {'error', 'em'}, default='error'
        NaN in ``X`` is refused, or with 'em' every fit maximises the
        likelihood of each row's observed values (:mod:`mixtures.missing`);
        BIC and ICL then use that observed-data log-likelihood, with n the
        number of rows. The starts (hierarchical, k-means) see the holes
        filled by the feature means.

    Returns
    -------
    SearchResult
    """
    X, feature_names = _checked_data(X, allow_nan=missing == "em")
    filled = mean_filled(X) if np.isnan(X).any() else X
    names = _check_models(models, X.shape[1])
    ks = _check_components(n_components, X.shape[0])
    _check_search_settings(
        n_random_starts, n_soft_starts, n_continue, refine, random_state
    )
    as_prior(prior)  # raises on a malformed prior
    # The kernel of every fit and score of the search: the default
    # (GMMLAB_KERNEL, else numba), resolved once and passed to every cell.
    kernel = resolve_kernel(None)
    options = {
        "tol": tol,
        "max_iter": max_iter,
        "reg_covar": reg_covar,
        "reg_covar_relative": reg_covar_relative,
        "prior": prior,
        "missing": missing,
    }
    EMOptions(**options)  # validates the scalar options once, up front
    options["n_continue"] = n_continue
    store = None
    if checkpoint is not None:
        store = CellStore(
            checkpoint,
            fingerprint(
                installed_version(),
                X,
                names,
                ks,
                options,
                n_random_starts,
                n_soft_starts,
                refine,
                random_state,
            ),
        )
    # Costliest cells first (large K, iterative M-steps), so that processes
    # finish together; the table is put back in model-then-K order below.
    cells = sorted(
        ((model, k) for model in names for k in ks),
        key=lambda cell: (
            -cell[1] * (2 if get_covariance_model(cell[0]).iterative else 1),
            names.index(cell[0]),
        ),
    )
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(cells) * (2 if refine else 1), desc="model search")
    with Parallel(n_jobs=n_jobs, return_as="generator") as parallel:

        def first(todo):
            starts = _all_starts(
                filled, ks, n_random_starts, n_soft_starts, random_state
            )
            return (
                delayed(_fit_cell)(X, *cell, *starts[cell[1]], options, kernel=kernel)
                for cell in todo
            )

        results, n_resumed = _run_pass(parallel, first, cells, store, 1, bar)
        # In the cells' order, however many were read back: the second
        # pass's starts (and so its ties) must not depend on a resume.
        results = {cell: results[cell] for cell in cells}
        if refine:
            second = _shared_starts(filled, results, cells, kernel)
            done = [cell for cell in cells if cell in second]
            if bar is not None:
                bar.update(len(cells) - len(done))

            def again(todo):
                return (
                    delayed(_fit_cell)(
                        X,
                        *cell,
                        *second[cell],
                        options,
                        always=("split", "merge"),
                        short_max_iter=1,
                        kernel=kernel,
                    )
                    for cell in todo
                )

            refined, n_read = _run_pass(parallel, again, done, store, 2, bar)
            n_resumed += n_read
            tie = _tie(options, X.shape[0])
            for cell in done:
                results[cell] = _better(results[cell], refined[cell], tie)
    if bar is not None:
        bar.close()
    table, fits = _assembled(results, cells, names, options, feature_names)
    return SearchResult(table, fits, X, n_resumed)


def _run_pass(parallel, jobs_for, cells, store, stage: int, bar):
    """One pass over ``cells``: read back the saved ones, fit the rest.

    ``jobs_for(todo)`` gives the delayed fits of the cells not read back;
    each finished cell is saved at once. Returns ``(results, n_read)``.
    """
    results = {}
    if store is not None:
        for cell in cells:
            if (saved := store.load(stage, cell)) is not None:
                results[cell] = saved
    n_read = len(results)
    todo = [cell for cell in cells if cell not in results]
    if bar is not None:
        bar.update(n_read)
    if todo:
        for cell, output in zip(todo, parallel(jobs_for(todo)), strict=True):
            results[cell] = output
            if store is not None:
                store.save(stage, cell, output)
            if bar is not None:
                bar.update()
    return results, n_read


def _assembled(results, cells, names, options, feature_names):
    """The search's table (model, then K) and the fitted estimator of each cell."""
    rows, fits = [], {}
    for model, k in cells:
        row, params, run = results[(model, k)]
        row.pop("_objective", None)
        row.pop("_partitions", None)
        rows.append(row)
        if params is not None:
            fits[(model, k)] = _estimator(run, model, options, feature_names)
    table = pd.DataFrame(rows).reindex(columns=_COLUMNS)
    table["n_components"] = table["n_components"].astype(int)
    table["_order"] = table["model"].map(names.index)
    table = (
        table.sort_values(["_order", "n_components"], kind="stable")
        .drop(columns="_order")
        .reset_index(drop=True)
    )
    return table, fits


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
    status`` (and ``reason, start, n_iter, n_starts_ok, n_starts,
    n_iter_all, seconds``); ``bic``
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
