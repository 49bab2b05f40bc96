"""How many components? The bootstrap likelihood-ratio test, K against K + 1.

The likelihood-ratio statistic ``LRTS = 2 (loglik_{K+1} - loglik_K)`` does
not have its textbook chi-squared distribution for the number of components
of a mixture (the null hypothesis sits on the boundary of the parameter
space), so McLachlan (1987) calibrates it by a parametric bootstrap: draw
data sets of n rows from the fitted K-component mixture, fit both K and
K + 1 components to each, and compare the observed statistic with the
replicates'. The p-value is ``(1 + #{LRTS_b >= LRTS_obs}) / (B + 1)``.
:func:`bootstrap_lrt` tests K = 1, 2, ... in sequence and stops at the
first K not rejected at ``level``, as R mclust's ``mclustBootstrapLRT``
does (Scrucca et al. 2016, section 2.4).

The observed fits are those of the model search
(:func:`mixtures.select.search`, every start it uses). Each replicate's
fits start, as mclust's do, from the observed fits' parameters, and also
from ``n_starts`` seeded k-means starts and, for K + 1, from the replicate's
K fit with its heaviest component split (Ueda et al. 2000): the replicate's
statistic uses the best fit of each K whose status is ok
(:func:`mixtures.diagnostics.classify`);
a replicate with no ok fit for one of its K is kept with its best fit of
any status and counted in :attr:`LRTResult.n_flagged`. mclust starts each
replicate from the observed fit only; more starts can only raise the
replicate's K + 1 fit, which makes the test a little more conservative. The
K + 1 model contains every K fit, so a statistic below 0 is a failed search
of K + 1 and is floored at 0.

Replicate ``b`` of step ``K`` draws its data and its starts from its own
child of ``SeedSequence(random_state)``, and every fit runs with BLAS held
to one thread, so the result is identical for any ``n_jobs``.

References
----------
McLachlan, G. J. (1987). On bootstrapping the likelihood ratio test
statistic for the number of components in a normal mixture. Appl. Statist.
36:318-324.
Scrucca, L., Fop, M., Murphy, T. B. and Raftery, A. E. (2016). mclust 5.
The R Journal 8(1):289-317.
Ueda, N., Nakano, R., Ghahramani, Z. and Hinton, G. E. (2000). SMEM
algorithm for mixture models. Neural Comput. 12:2109-2128.
"""

from __future__ import annotations

import dataclasses
import numbers
import time
from dataclasses import dataclass

import numpy as np
import pandas as pd
from joblib import Parallel, delayed

from mixtures.bootstrapping import _replicate_environment
from mixtures.diagnostics import classify, in_force
from mixtures.fitting import EMOptions, fit_validated
from mixtures.params import MixtureParams
from mixtures.select import _check_models, _checked_data, search

__all__ = ["LRTResult", "bootstrap_lrt"]

#: Replicates per task sent to a worker process.
_BATCH = 50
#: Statuses of the search's fits a test may use.
_USABLE = ("ok", "unconverged")
#: EM's iteration limit in a replicate's fits.
_MAX_ITER = 1000


@dataclass(frozen=True)
class LRTResult:
    """The sequence of bootstrap likelihood-ratio tests of one covariance model.

    Attributes
    ----------
    model : str
        The covariance model tested (mclust's name).
    n_components : ndarray of shape (n_steps,)
        K of each step's null hypothesis (K against K + 1).
    observed : ndarray of shape (n_steps,)
        The observed statistic ``2 (loglik_{K+1} - loglik_K)`` of each step.
    bootstrap : ndarray of shape (n_bootstrap, n_steps)
        The replicates' statistics.
    p_values : ndarray of shape (n_steps,)
    n_flagged : ndarray of shape (n_steps,)
        Replicates of each step with no ok fit for K or K + 1.
    level : float
    seconds : ndarray of shape (n_steps,)
        Wall time of each step's replicates.
    """

    model: str
    n_components: np.ndarray
    observed: np.ndarray
    bootstrap: np.ndarray
    p_values: np.ndarray
    n_flagged: np.ndarray
    level: float
    seconds: np.ndarray

    @property
    def selected(self) -> int:
        """The K the sequence keeps.

        The first K whose test against K + 1 is not rejected at ``level``;
        the last K + 1 when every step rejects.
        """
        for k, p in zip(self.n_components, self.p_values, strict=True):
            if p > self.level:
                return int(k)
        return int(self.n_components[-1]) + 1

    def table(self) -> pd.DataFrame:
        """The sequence as mclust prints it, one row per step.

        Columns ``test`` ("1 vs 2"), ``lrts``, ``p_value``, ``n_flagged``,
        ``seconds``.
        """
        return pd.DataFrame(
            {
                "test": [f"{k} vs {k + 1}" for k in self.n_components],
                "lrts": self.observed,
                "p_value": self.p_values,
                "n_flagged": self.n_flagged,
                "seconds": self.seconds,
            }
        )

    def to_frame(self) -> pd.DataFrame:
        """Everything, one row per step, for a Parquet table.

        Columns ``model, n_components, observed, p_value, n_flagged, level,
        seconds, bootstrap`` (the step's replicates, a list);
        :meth:`from_frame` reads it back.
        """
        return pd.DataFrame(
            {
                "model": self.model,
                "n_components": self.n_components,
                "observed": self.observed,
                "p_value": self.p_values,
                "n_flagged": self.n_flagged,
                "level": self.level,
                "seconds": self.seconds,
                "bootstrap": list(self.bootstrap.T),
            }
        )

    @classmethod
    def from_frame(cls, frame: pd.DataFrame) -> LRTResult:
        """The result :meth:`to_frame` wrote."""
        return cls(
            model=str(frame["model"].iloc[0]),
            n_components=frame["n_components"].to_numpy(dtype=int),
            observed=frame["observed"].to_numpy(dtype=float),
            bootstrap=np.column_stack(
                [np.asarray(v, dtype=float) for v in frame["bootstrap"]]
            ),
            p_values=frame["p_value"].to_numpy(dtype=float),
            n_flagged=frame["n_flagged"].to_numpy(dtype=int),
            level=float(frame["level"].iloc[0]),
            seconds=frame["seconds"].to_numpy(dtype=float),
        )


def bootstrap_lrt(
    X,
    model: str,
    *,
    max_components: int | None = None,
    n_bootstrap: int = 999,
    level: float = 0.05,
    n_starts: int = 1,
    random_state: int = 0,
    n_jobs: int | None = None,
    tol: float = 1e-8,
    reg_covar: float = 1e-6,
    reg_covar_relative: bool = True,
    progress: bool = False,
) -> LRTResult:
    """Test K against K + 1 components of ``model`` by the parametric bootstrap.

    Parameters
    ----------
    X : array-like of shape (n_samples, n_features)
    model : str
        A covariance model, by mclust's (or scikit-learn's) name.
    max_components : int or None, default=None
        None: test K = 1, 2, ... up to 8 and stop at the first K not
        rejected (mclust's default). An int: test every K up to it.
    n_bootstrap : int, default=999
        Replicates per step (at least 19).
    level : float, default=0.05
    n_starts : int, default=1
        Seeded k-means starts per replicate fit, besides the observed fit's
        parameters (mclust's only start).
    random_state : int, default=0
        Root of every replicate's seed.
    n_jobs : int or None
        Processes running the replicates (joblib); the result does not
        depend on it.
    tol, reg_covar, reg_covar_relative
        EM's settings for the search and every replicate fit (regularisation
        relative to each feature's variance by default, so that the units
        do not matter).
    progress : bool
        A tqdm bar over the replicates.

    Returns
    -------
    LRTResult
    """
    X, _ = _checked_data(X)
    (name,) = _check_models([model], X.shape[1])
    last = _check_settings(max_components, n_bootstrap, level, n_starts, random_state)
    found = search(
        X,
        [name],
        range(1, min(last + 1, X.shape[0]) + 1),
        tol=tol,
        reg_covar=reg_covar,
        reg_covar_relative=reg_covar_relative,
        n_jobs=n_jobs,
        random_state=random_state,
    )
    settings = {
        "tol": tol,
        "reg_covar": reg_covar,
        "reg_covar_relative": reg_covar_relative,
        "n_starts": n_starts,
    }
    steps = np.random.SeedSequence(random_state).spawn(last)
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=last * n_bootstrap, desc=f"bootstrap LRT ({name})")
    rows = []
    # A degenerate or failed fit ends the sequence; an unconverged one (EM
    # creeps when K + 1 over-fits) still bounds its maximum from below.
    usable = found.table.set_index("n_components")["status"].isin(_USABLE)
    for k in range(1, last + 1):
        if not (usable.get(k, False) and usable.get(k + 1, False)):
            break
        null, alternative = (found.fits[(name, j)] for j in (k, k + 1))
        rows.append(
            _step(X, null.params_, alternative.params_, n_bootstrap, steps[k - 1],
                  settings, n_jobs, bar)
        )  # fmt: skip
        if max_components is None and rows[-1][2] > level:
            break
    if bar is not None:
        bar.close()
    if not rows:
        raise ValueError(
            f"no test could run: {name} has no usable fit with K = 1 and 2 "
            f"(statuses: {dict(found.table.set_index('n_components')['status'])})."
        )
    observed, boot, p_values, flagged, seconds = (
        np.array([row[i] for row in rows]) for i in range(5)
    )
    return LRTResult(
        name,
        np.arange(1, len(rows) + 1),
        observed,
        boot.T,
        p_values,
        flagged,
        float(level),
        seconds,
    )


def _check_settings(max_components, n_bootstrap, level, n_starts, random_state) -> int:
    """The last K tested as the null hypothesis; ValueError on a bad setting."""

    def integer(value) -> bool:
        return isinstance(value, numbers.Integral) and not isinstance(value, bool)

    if not integer(n_bootstrap) or n_bootstrap < 19:
        raise ValueError(
            f"n_bootstrap must be an integer >= 19 (a p-value below 0.05 needs "
            f"19 replicates); got {n_bootstrap!r}. mclust uses 999."
        )
    if not isinstance(level, numbers.Real) or not 0.0 < float(level) < 1.0:
        raise ValueError(f"level must be strictly between 0 and 1; got {level!r}.")
    if not integer(n_starts) or n_starts < 0:
        raise ValueError(f"n_starts must be an integer >= 0; got {n_starts!r}.")
    if not integer(random_state) or random_state < 0:
        raise ValueError(
            f"random_state must be a non-negative int; got {random_state!r}."
        )
    if max_components is None:
        return 8
    if not integer(max_components) or max_components < 1:
        raise ValueError(
            f"max_components must be a positive int or None; got {max_components!r}."
        )
    return int(max_components)


def _step(X, null, alternative, n_bootstrap, seed, settings, n_jobs, bar):
    """One step's (observed, replicates (B,), p-value, flagged, seconds)."""
    started = time.perf_counter()
    observed = 2.0 * max(
        _log_likelihood(X, alternative) - _log_likelihood(X, null), 0.0
    )
    seeds = seed.spawn(n_bootstrap)
    batches = [seeds[i : i + _BATCH] for i in range(0, n_bootstrap, _BATCH)]
    with Parallel(n_jobs=n_jobs, return_as="generator") as parallel:
        results = []
        for batch in parallel(
            delayed(_replicates)(X.shape[0], null, alternative, chunk, settings)
            for chunk in batches
        ):
            results.extend(batch)
            if bar is not None:
                bar.update(len(batch))
    statistics = np.array([r[0] for r in results])
    flagged = int(sum(r[1] for r in results))
    p_value = (1.0 + np.sum(statistics >= observed)) / (n_bootstrap + 1.0)
    return observed, statistics, p_value, flagged, time.perf_counter() - started


def _log_likelihood(X: np.ndarray, params: MixtureParams) -> float:
    from mixtures.passes import score_samples

    return float(np.sum(score_samples(X, params)))


def _replicates(n_rows: int, null, alternative, seeds, settings) -> list:
    """``(LRTS, flagged)`` of each replicate seeded by ``seeds``.

    The K + 1 model contains every K-component fit (a duplicated component
    attains its likelihood), so its maximum is at least the K fit's: a K + 1
    fit below it is a failed search, and the statistic is floored at 0.
    """
    out = []
    with _replicate_environment():
        for seed in seeds:
            draw, fits = seed.spawn(2)
            X, _ = null.sample(n_rows, np.random.default_rng(draw))
            fit_seed = int(fits.generate_state(1)[0])
            ll0, ok0, fitted = _best_fit(X, null, settings, fit_seed)
            split = _split(X, fitted)
            ll1, ok1, _ = _best_fit(X, alternative, settings, fit_seed, split)
            out.append((2.0 * max(ll1 - ll0, 0.0), not (ok0 and ok1)))
    return out


def _split(X: np.ndarray, params: MixtureParams) -> np.ndarray:
    """K + 1 responsibilities (n, K + 1): ``params``' heaviest component split.

    Its rows go to one side or the other of its mean along its longest axis,
    the split move of split-and-merge EM (Ueda et al. 2000).
    """
    from mixtures.passes import e_step

    resp = np.exp(e_step(X, params)[1])
    k = int(np.argmax(resp.sum(axis=0)))
    axis = np.linalg.eigh(params.full_covariances()[k])[1][:, -1]
    side = (X - params.means[k]) @ axis > 0
    split = np.zeros((X.shape[0], params.n_components + 1))
    split[:, :-1] = resp
    split[side, -1] = resp[side, k]
    split[side, k] = 0.0
    return split


def _best_fit(
    X, start: MixtureParams, settings: dict, seed: int, resp=None
) -> tuple[float, bool, MixtureParams]:
    """The best fit of ``start``'s model on ``X``: log-likelihood, ok, parameters.

    EM from ``start``, from ``resp`` (responsibilities, if given) and from
    ``n_starts`` k-means starts; the best ok fit, or the best of any status
    when none is ok.
    """
    options = EMOptions(
        n_components=start.n_components,
        covariance_type=start.covariance_type,
        tol=settings["tol"],
        reg_covar=settings["reg_covar"],
        reg_covar_relative=settings["reg_covar_relative"],
        max_iter=_MAX_ITER,
        acceleration="squarem",
    )
    runs = list(fit_validated(X, None, options, seed, initial_params=start).restarts)
    if resp is not None:
        runs.extend(fit_validated(X, None, options, seed, initial_resp=[resp]).restarts)
    if settings["n_starts"] and start.n_components > 1:
        kmeans = dataclasses.replace(options, n_init=settings["n_starts"])
        runs.extend(fit_validated(X, None, kmeans, seed).restarts)
    scored = []
    for run in runs:
        status = classify(
            run.params,
            X,
            reg_covar=_absolute(settings, X),
            covariance_type=start.covariance_type,
            converged=run.converged,
            in_force=in_force(run),
        ).status
        scored.append((status == "ok", _log_likelihood(X, run.params), run.params))
    best = max(
        scored, key=lambda item: (item[0], item[1])
    )  # ok first, then the likelihood
    return best[1], best[0], best[2]


def _absolute(settings: dict, X: np.ndarray):
    """The absolute regularisation per feature a fit added (for classify)."""
    if settings["reg_covar_relative"]:
        return settings["reg_covar"] * np.var(X, axis=0)
    return settings["reg_covar"]
