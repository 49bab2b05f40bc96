"""One cell of a model search: the em-EM scheme from a cell's starts.

:func:`_fit_cell` runs every start briefly, continues mclust's start and
the best others to convergence and reports the best, classified
(Biernacki, Celeux & Govaert 2003; Varadhan & Roland 2008). See
:mod:`mixtures.select` for the whole search.
"""

from __future__ import annotations

import dataclasses
import time
import warnings
from collections.abc import Sequence

import numpy as np
from sklearn.exceptions import ConvergenceWarning

from mixtures._parallel import resolve_kernel
from mixtures.diagnostics import (
    STATUSES,
    bic,
    classify,
    icl,
    in_force,
    volume_is_free,
)
from mixtures.em import EMRun
from mixtures.fitting import (
    DegenerateComponentWarning,
    EMOptions,
    _feature_variance,
    fit_validated,
)
from mixtures.missing import (
    mean_filled,
    observed_score_and_label,
    observed_score_samples,
)
from mixtures.params import MixtureParams
from mixtures.prior import as_prior

#: The short runs of the em-EM scheme stop when Aitken's estimate of their
#: limit is within this much of the mean log-likelihood, or after
#: ``_SHORT_MAX_ITER`` E-steps (one E-step in the second pass, whose starts
#: are other models' maxima: one step ranks them).
_SHORT_TOL = 1e-3


_SHORT_MAX_ITER = 20


#: A continued run is checked for collapse every this many E-steps.
_CHUNK = 100


def _classified(X, model, run, reg_covar, resolved, *, final: bool, kernel=None):
    """``(status rank, -objective, status, reason, log-likelihood)`` of a run.

    ``final=False`` judges a short run as if it had converged, so that only
    its shape (spikes, thin or duplicated components) can flag it. The
    log-likelihood is computed on ``kernel`` (None: the default).
    """
    log_likelihood = float(np.sum(observed_score_samples(X, run.params, kernel=kernel)))
    status, reason, _ = classify(
        run.params,
        X,
        reg_covar=reg_covar,
        covariance_type=model,
        converged=run.converged if final else True,
        n_iter=run.n_iter,
        in_force=in_force(run),
        log_likelihood=log_likelihood,
    )
    # What EM maximises: the log-likelihood, or with a prior the log-posterior.
    objective = log_likelihood
    if resolved is not None and status != "failed":
        objective += resolved.log_density(run.params)
    return STATUSES.index(status), -objective, status, reason, log_likelihood


def _continued(short: EMRun, long: EMRun) -> EMRun:
    """One run: a short run followed by its continuation."""
    shift = short.n_iter
    return EMRun(
        long.params,
        np.concatenate([short.lower_bounds, long.lower_bounds]),
        short.n_iter + long.n_iter,
        long.converged,
        short.events
        + tuple(
            event._replace(iteration=event.iteration + shift) for event in long.events
        ),
    )


def _continue(X, run: EMRun, options: EMOptions, stop_if_collapsed) -> EMRun:
    """Run EM from the end of ``run`` to convergence, in chunks.

    Between chunks of ``_CHUNK`` E-steps, ``stop_if_collapsed(run)`` may end
    the run early (see :func:`_fit_cell`).
    """
    collapsed_before = False
    while not run.converged and run.n_iter < options.max_iter:
        chunk = dataclasses.replace(
            options,
            covariance_type=run.params.covariance_type,  # 'tied' for 'EEE'
            max_iter=min(_CHUNK, options.max_iter - run.n_iter),
        )
        more = fit_validated(
            X,
            None,
            chunk,
            0,
            initial_params=run.params,
            initial_lower_bound=run.lower_bound,
        ).restarts[0]
        run = _continued(run, more)
        collapsed = not run.converged and stop_if_collapsed(run)
        if collapsed and collapsed_before:
            break
        collapsed_before = collapsed
    return run


#: What a start can raise when EM fails on it (the cell reports the others).
_FAILURES = (ValueError, FloatingPointError, np.linalg.LinAlgError)


def _short_runs(X, options: EMOptions, names, resp) -> tuple[list[str], list[EMRun]]:
    """A short run from every start; a start that fails is dropped, not the cell.

    All starts go through one call; only when it raises are they run one by
    one, to keep those that do not fail (the error is raised when none is
    left).
    """
    try:
        return list(names), list(
            fit_validated(X, None, options, 0, initial_resp=resp).restarts
        )
    except _FAILURES as error:
        failure = error
    kept, runs = [], []
    for name, start in zip(names, resp, strict=True):
        try:
            runs.append(
                fit_validated(X, None, options, 0, initial_resp=[start]).restarts[0]
            )
        except _FAILURES as error:
            failure = error
            continue
        kept.append(name)
    if not runs:
        raise failure
    return kept, runs


def _best_shaped(order: list[int], is_ok, n: int) -> list[int]:
    """The first ``n`` of ``order`` whose shape is ok, else the first flagged.

    ``order`` runs from the highest objective down; ``is_ok`` (a
    classification, the costly part) is asked only until ``n`` are found.
    """
    chosen: list[int] = []
    flagged: list[int] = []
    for i in order:
        if len(chosen) == n:
            break
        (chosen if is_ok(i) else flagged).append(i)
    return chosen + flagged[: n - len(chosen)]


def _fit_cell(
    X: np.ndarray,
    model: str,
    k: int,
    names: Sequence[str],
    resp: Sequence[np.ndarray],
    options: dict,
    always: Sequence[str] = ("hc",),
    short_max_iter: int = _SHORT_MAX_ITER,
    kernel: str | None = None,
) -> tuple[dict, MixtureParams | None, object]:
    """Fit one cell from its starts; return its row, parameters and run.

    The em-EM scheme of Biernacki, Celeux & Govaert (2003): every start gets
    a short run (SQUAREM, Varadhan & Roland 2008, stopped by Aitken's rule
    at ``_SHORT_TOL`` or after ``_SHORT_MAX_ITER`` E-steps); the starts named
    in ``always`` (mclust's own) and the ``n_continue`` best of the others
    (ok shapes first, then the objective) are run to convergence, and the
    cell reports the best of those.

    A continued run of a model with free volumes (V**) is stopped early,
    with the status it has, when its shape is flagged degenerate
    (:func:`mixtures.diagnostics.classify`: a spike, a thin and small
    component, a duplicate) at two checks ``_CHUNK`` E-steps apart. This is
    a bound on wasted time, not a theorem: EM promises only that the
    likelihood never falls, not that a collapsing component stays
    collapsed. It costs nothing when the collapse persists (the run would
    end flagged, and a cell never reports a flagged start while it has an
    ok one). ``tests/test_select.py`` runs a start it stops on Old Faithful
    (VEV, K = 9) on to the end and checks that it ends flagged; the same
    check over the whole searches of Old Faithful, Iris and wine is in
    issue 24's closing note.

    Every pass runs on ``kernel`` (the search's, resolved once; None: the
    default, ``resolve_kernel(None)``).
    """
    if kernel is None:
        kernel = resolve_kernel(None)
    n_samples = X.shape[0]
    row = {"model": model, "n_components": k, "n_starts": len(names)}
    started = time.perf_counter()
    common = {
        "n_components": k,
        "covariance_type": model,
        "reg_covar": options["reg_covar"],
        "reg_covar_relative": options["reg_covar_relative"],
        "prior": options["prior"],
        "acceleration": "squarem",
        "kernel": kernel,
        "missing": options.get("missing", "error"),
    }
    short_options = EMOptions(
        max_iter=min(short_max_iter, options["max_iter"]),
        tol=_SHORT_TOL,
        stopping="aitken",
        **common,
    )
    reg_covar = options["reg_covar"]
    # What fit_validated sees of data with holes: them filled (mixtures.missing).
    holes = common["missing"] == "em" and bool(np.isnan(X).any())
    filled = mean_filled(X) if holes else X
    if options["reg_covar_relative"]:
        reg_covar = reg_covar * _feature_variance(filled, np.ones(n_samples))
    prior = as_prior(options["prior"])
    resolved = None if prior is None else prior.resolve(filled, np.ones(n_samples), k)

    def verdict(run: EMRun, *, final: bool):
        return _classified(
            X, model, run, reg_covar, resolved, final=final, kernel=kernel
        )

    def stop_if_collapsed(run: EMRun) -> bool:
        return volume_is_free(model) and verdict(run, final=False)[2] == "degenerate"

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DegenerateComponentWarning)
            warnings.simplefilter("ignore", ConvergenceWarning)
            names, short = _short_runs(X, short_options, names, resp)
            first = [i for i, name in enumerate(names) if name in always]
            others = _best_shaped(
                sorted(
                    (i for i in range(len(short)) if i not in first),
                    key=lambda i: -short[i].lower_bound,
                ),
                lambda i: verdict(short[i], final=False)[2] == "ok",
                options["n_continue"],
            )
            long_options = EMOptions(
                max_iter=options["max_iter"], tol=options["tol"], **common
            )
            candidates = []
            n_iter_all = sum(run.n_iter for run in short)
            failure: Exception | None = None
            for i in first + others:
                try:
                    run = _continue(
                        X,
                        dataclasses.replace(short[i], converged=False),
                        long_options,
                        stop_if_collapsed,
                    )
                except _FAILURES as error:  # this start only
                    failure = error
                    continue
                n_iter_all += run.n_iter - short[i].n_iter
                candidates.append((*verdict(run, final=True), names[i], run))
            if not candidates:
                assert failure is not None
                raise failure
    except _FAILURES as error:
        row.update(
            status="failed",
            reason=f"{type(error).__name__}: {error}",
            seconds=time.perf_counter() - started,
        )
        return row, None, None
    tie = _tie(options, n_samples)
    rank, objective = min((c[0], c[1]) for c in candidates)
    # The first start (hc before the others) within EM's own accuracy of the
    # best: the same maximum reached from two starts differs in rounding, and
    # rounding must not choose the start (and the components' order).
    _, negative, status, reason, log_likelihood, name, run = next(
        c for c in candidates if c[0] == rank and c[1] <= objective + tie
    )
    params = run.params
    n_parameters = params.n_parameters()
    row.update(
        log_likelihood=log_likelihood,
        n_parameters=n_parameters,
        bic=bic(log_likelihood, n_parameters, n_samples),
        icl=icl(log_likelihood, n_parameters, X, params),
        status=status,
        reason=reason,
        start=name,
        n_iter=run.n_iter,
        n_starts_ok=sum(c[0] == 0 for c in candidates),
        n_iter_all=n_iter_all,
        seconds=time.perf_counter() - started,
        _objective=-negative,
        # The classifications of every ok candidate: starts for other models.
        _partitions=[
            observed_score_and_label(X, c[-1].params, kernel=kernel)[1]
            for c in candidates
            if c[0] == 0
        ],
    )
    return row, params, run


def _tie(options: dict, n_samples: int) -> float:
    """Objectives closer than this are one maximum: EM's tolerance, in total."""
    return options["tol"] * n_samples


def _better(first: tuple, second: tuple, tie: float) -> tuple:
    """The better of two fits of one cell (ok first, then the objective)."""
    row_a, row_b = first[0], second[0]
    if second[1] is None:
        chosen = first
    elif first[1] is None:
        chosen = second
    else:
        rank_a, rank_b = (STATUSES.index(r["status"]) for r in (row_a, row_b))
        gain = row_b["_objective"] - row_a["_objective"]
        # The second pass wins only with a better maximum, not a rounding.
        chosen = second if (rank_b, -gain) < (rank_a, -tie) else first
    row = dict(chosen[0])
    for column in ("n_starts", "n_iter_all", "seconds"):
        row[column] = row_a.get(column, 0) + row_b.get(column, 0)
    row["n_starts_ok"] = row_a.get("n_starts_ok", 0) + row_b.get("n_starts_ok", 0)
    return row, chosen[1], chosen[2]
