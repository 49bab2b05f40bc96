"""The ``pymc`` (NUTS) and ``pymc-advi`` backends: options, set-up and fitting.

Each backend validates its options, chooses the chain starts, samples (or
fits ADVI), and hands the draws to :func:`.posterior._posterior_fit`.
"""

from __future__ import annotations

import dataclasses
import os
import warnings
from typing import Any, ClassVar

import numpy as np

from mixtures.backends import pymc as _package
from mixtures.backends.base import (
    MixtureFit,
    Stopwatch,
    check_backend_input,
    reject_unknown_options,
    seed_from,
)
from mixtures.backends.pymc.incomplete import check_missing, relabelling_rows
from mixtures.backends.pymc.model import (
    _free_shapes,
    _import_pymc,
    _subsample,
    build_model,
    draws_to_params,
)
from mixtures.backends.pymc.posterior import _chain_traces, _posterior_fit, _relabel
from mixtures.backends.pymc.sampling import _sample_nutpie, _sample_pymc
from mixtures.backends.pymc.starts import _chain_starts
from mixtures.diagnostics import sampler_findings

#: Default options of each backend; the keys are the options it accepts.
_NUTS_DEFAULTS = {
    "draws": 1000,
    "max_draws": 4000,
    "tune": 1000,
    "chains": 4,
    "cores": None,
    "target_accept": 0.8,
    "nuts_sampler": "nutpie",
    "init": "em",
    "jitter": 1.0,
    "max_trace_draws": 1000,
    "pointwise_draws": 1000,
    "max_samples": None,
    "missing": "error",
}
_ADVI_DEFAULTS = {
    "n_iter": 10_000,
    "learning_rate": 0.01,
    "tolerance": 1e-2,
    "draws": 1000,
    "init": "em",
    "max_trace_draws": 1000,
    "pointwise_draws": 1000,
    "max_samples": None,
    "missing": "error",
}


def _begin(name, X, n_components, covariance_type, random_state, options, defaults):
    """Validation and set-up shared by both PyMC backends.

    Returns ``(data, settings, seed, sample)``: all rows, the merged options,
    an int seed, and the rows the posterior is conditioned on. NaN (a
    missing value) is refused unless ``missing="marginal"``
    (:func:`.incomplete.check_missing`).
    """
    data = check_backend_input(X, n_components, covariance_type, allow_nan=True).astype(
        np.float64
    )
    _free_shapes(data.shape[1], n_components, covariance_type)
    reject_unknown_options(name, options, set(defaults))
    settings = {**defaults, **options}
    check_missing(name, data, settings["missing"])
    if settings["init"] not in ("em", "random"):
        raise ValueError(f"init must be 'em' or 'random'; got {settings['init']!r}.")
    for key in ("draws", "pointwise_draws", "max_trace_draws"):
        if (
            isinstance(settings[key], bool)
            or not isinstance(settings[key], int)
            or settings[key] < 1
        ):
            raise ValueError(f"{key} must be an integer >= 1; got {settings[key]!r}.")
    seed = seed_from(random_state)
    seed = 0 if seed is None else seed
    return data, settings, seed, _subsample(data, settings["max_samples"], seed)


def _nuts_settings(settings: dict[str, Any]) -> None:
    """Check NUTS's options; ``cores`` None becomes one per chain, up to the CPUs."""
    if (
        isinstance(settings["max_draws"], bool)
        or not isinstance(settings["max_draws"], int)
        or settings["max_draws"] < 1
    ):
        raise ValueError(
            f"max_draws must be an integer >= 1; got {settings['max_draws']!r}."
        )
    if settings["cores"] is None:
        settings["cores"] = max(1, min(settings["chains"], os.cpu_count() or 1))


@dataclasses.dataclass(frozen=True)
class _CheckedDraws:
    """The relabelled draws of NUTS's last attempt, and every attempt's record.

    ``settings`` are the options with the last attempt's ``draws``;
    ``compile_seconds`` and ``sampling_seconds`` are totals over attempts.
    """

    idata: Any
    weights: np.ndarray
    means: np.ndarray
    covariances: np.ndarray
    relabelling: dict[str, Any]
    summary: dict[str, Any]
    divergences: int
    settings: dict[str, Any]
    attempts: list[dict[str, Any]]
    compile_seconds: float
    sampling_seconds: float

    def diagnostics(self) -> dict[str, Any]:
        """The sampler's diagnostics of the fit, before the chain starts'."""
        return {
            "divergences": self.divergences,
            "compile_seconds": self.compile_seconds,
            "sampling_seconds": self.sampling_seconds,
            "nuts_sampler": self.settings["nuts_sampler"],
            "chains": self.settings["chains"],
            "draws": self.settings["draws"],
            "tune": self.settings["tune"],
            "draw_attempts": self.attempts,
            "sampling_attempts": len(self.attempts),
        }


def _sample_checked(
    sampler, sample, n_components, covariance_type, settings, seed, starts
) -> _CheckedDraws:
    """Sample and relabel; sample again with twice the draws while checks fail.

    When the relabelled draws fail r-hat or ESS (and nothing diverged), the
    chains are sampled afresh from the same starts with twice the draws, up
    to ``max_draws`` per chain. Rows with missing values are filled for the
    relabelling only (:func:`.incomplete.relabelling_rows`).
    """
    relabelling_data = relabelling_rows(sample, starts.modes[0].params)
    attempts = []
    total_sampling = total_compile = 0.0
    while True:
        idata, free, divergences, compile_seconds, sampling_seconds = sampler(
            sample, n_components, covariance_type, settings, seed, starts
        )
        total_sampling += sampling_seconds
        total_compile += compile_seconds
        weights, means, covariances, relabelling = _relabel(
            relabelling_data, *draws_to_params(free, covariance_type), seed
        )
        # Looked up on the package, where the tests replace it.
        summary = _package._summaries(
            {"weights": weights, "means": means, "covariances": covariances}
        )
        r_hat, ess = summary["r_hat_max"], summary["ess_bulk_min"]
        attempts.append(
            {
                "draws": settings["draws"],
                "r_hat_max": r_hat,
                "ess_bulk_min": ess,
            }
        )
        passed = not sampler_findings({"r_hat_max": r_hat, "ess_bulk_min": ess})
        if passed or divergences:
            break
        if 2 * settings["draws"] > settings["max_draws"]:
            break
        settings = {**settings, "draws": 2 * settings["draws"]}
    return _CheckedDraws(
        idata=idata,
        weights=weights,
        means=means,
        covariances=covariances,
        relabelling=relabelling,
        summary=summary,
        divergences=divergences,
        settings=settings,
        attempts=attempts,
        compile_seconds=total_compile,
        sampling_seconds=total_sampling,
    )


# ---------------------------------------------------------------------------
# Backends


class _PyMCBase:
    """What the two PyMC backends share: :meth:`fit`'s checks and set-up.

    A subclass names its ``_defaults`` (its options are their keys) and fits
    in ``_fit``, given all rows, the rows conditioned on, the merged
    options and the int seed that :func:`_begin` returns.
    """

    name: ClassVar[str]
    is_posterior = True
    #: Default options; the keys are the options :meth:`fit` accepts.
    _defaults: ClassVar[dict[str, Any]]
    #: Options :meth:`fit` accepts, for configuration checks.
    options: ClassVar[frozenset[str]]

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls.options = frozenset(cls._defaults)

    def fit(
        self, X, n_components, *, covariance_type="full", random_state=None, **options
    ) -> MixtureFit:
        """Fit the Bayesian mixture (the class's docstring); see ``Backend.fit``."""
        data, settings, seed, sample = _begin(
            self.name,
            X,
            n_components,
            covariance_type,
            random_state,
            options,
            self._defaults,
        )
        _import_pymc()  # without PyMC, fail before any costly work
        return self._fit(data, sample, n_components, covariance_type, settings, seed)

    def _fit(
        self, data, sample, n_components, covariance_type, settings, seed
    ) -> MixtureFit:
        """The backend's own fitting, on the checked input and options."""
        raise NotImplementedError


class PyMCBackend(_PyMCBase):
    """Bayesian mixture sampled with NUTS (module docstring).

    Options: ``draws`` (1000 per chain), ``tune`` (1000), ``chains`` (4),
    ``cores`` (None: as many as the machine has, up to ``chains``),
    ``target_accept`` (0.8), ``nuts_sampler`` ("nutpie"; "pymc" or any
    sampler PyMC's ``pm.sample`` accepts), ``init`` ("em": chains dealt
    round the distinct MAP-EM modes, each scattered about its mode;
    "random": every chain from a random point; see :func:`_chain_starts`),
    ``jitter`` (1.0: the scatter, in component standard deviations of each
    mean; :func:`_dispersed`), ``max_draws`` (4000:
    when the relabelled draws fail r-hat or ESS, the chains are sampled
    afresh with twice the draws, up to this many per chain; every attempt is
    in ``draw_attempts``, and a fit that still fails is unconverged),
    ``max_trace_draws`` (1000 draws scored for ``loglik_trace``),
    ``pointwise_draws`` (1000 draws for LOO, WAIC, responsibilities and the
    predictive checks), ``max_samples`` (None: all rows; an integer
    conditions on a random subsample of that many rows, and
    ``n_conditioned`` says so), ``missing`` ("error": NaN is refused;
    "marginal": each row's likelihood is over its observed values and the
    missing cells are imputed from the posterior, in ``imputation``; see
    :mod:`.incomplete`).

    ``converged`` means no finding of
    :func:`mixtures.diagnostics.sampler_findings` (r-hat at most
    :data:`~mixtures.diagnostics.MAX_R_HAT`, bulk ESS at least
    :data:`~mixtures.diagnostics.MIN_ESS_BULK`, no divergence), after
    relabelling. What that certifies: the chains, started about
    ``chain_start_modes`` distinct MAP-EM modes (or at
    ``chain_random_starts`` random points; ``chain_starts`` says which chain
    started where), sample one distribution. Modes that no start led to are
    not certified absent.

    Times in ``diagnostics``: ``compile_seconds`` (nutpie: building and
    compiling the model, 0 when it came from this process's cache; NaN for
    PyMC's sampler, which compiles inside ``pm.sample``) and
    ``sampling_seconds`` (the sampler's calls; the MAP-EM restarts that
    choose the chain starts come before them).
    """

    name = "pymc"
    _defaults = _NUTS_DEFAULTS

    def _fit(
        self, data, sample, n_components, covariance_type, settings, seed
    ) -> MixtureFit:
        """Sample by NUTS, after :meth:`fit`'s checks and set-up."""
        _nuts_settings(settings)
        sampler = (
            _sample_nutpie if settings["nuts_sampler"] == "nutpie" else _sample_pymc
        )
        with Stopwatch() as clock:
            starts = _chain_starts(
                sample,
                n_components,
                covariance_type,
                seed,
                settings["chains"],
                init=settings["init"],
                jitter=settings["jitter"],
            )
            drawn = _sample_checked(
                sampler, sample, n_components, covariance_type, settings, seed, starts
            )
            settings = drawn.settings
            fit = _posterior_fit(
                self.name,
                data,
                sample,
                covariance_type,
                drawn.weights,
                drawn.means,
                drawn.covariances,
                settings,
                seed,
                relabelling=drawn.relabelling,
                summary=drawn.summary,
                idata=drawn.idata,
                trace=np.array([]),
                trace_kind="draw_mean_loglik",
                n_iter=settings["draws"] * settings["chains"],
                seconds=0.0,
                extra={**drawn.diagnostics(), **starts.diagnostics()},
                modes=starts.modes,
            )
            # The log-likelihood does not depend on the labels: the draws as
            # sampled give the per-chain traces.
            chain_traces = _chain_traces(
                data,
                drawn.weights,
                drawn.means,
                drawn.covariances,
                settings["max_trace_draws"],
            )
        diagnostics = fit.diagnostics
        reasons = sampler_findings(diagnostics)
        diagnostics["unconverged_reason"] = "; ".join(reasons)
        return dataclasses.replace(
            fit,
            loglik_trace=np.concatenate(chain_traces),
            restart_traces=chain_traces,
            converged=not reasons,
            seconds=clock.seconds,
        )


class PyMCAdviBackend(_PyMCBase):
    """The same Bayesian mixture fitted by mean-field ADVI.

    Options: ``n_iter`` (10,000 at most), ``learning_rate`` (0.01, Adam),
    ``tolerance`` (0.01: stop when the parameters' relative change over 100
    iterations is below it; stochastic gradients never settle much lower),
    ``draws`` (1000 from the fitted approximation), ``init`` ("em": start at
    the best MAP-EM mode; "random": at a random point), ``max_trace_draws``,
    ``pointwise_draws``, ``max_samples``, ``missing`` (as for NUTS; the
    imputation then comes from the approximation's draws). The trace is the
    ELBO per sample, up to an additive constant: the potentials omit the
    priors' normalising constants, so it compares iterations of one fit, not
    fits of different data, K or covariance types (nor with sklearn-vb's
    bound).
    ``converged``: the parameters met ``tolerance`` before ``n_iter``, or the
    ELBO is stationary over its last 2,000 iterations (:func:`_elbo_stationary`).
    A mean-field Gaussian approximation has one mode, so its draws need no
    relabelling. Its draws are not posterior draws, so PSIS-LOO and WAIC
    (which treat them as such) are not computed.
    """

    name = "pymc-advi"
    _defaults = _ADVI_DEFAULTS

    def _fit(
        self, data, sample, n_components, covariance_type, settings, seed
    ) -> MixtureFit:
        """Fit ADVI, after :meth:`fit`'s checks and set-up."""
        pm, _ = _import_pymc()
        with Stopwatch() as clock:
            model = build_model(sample, n_components, covariance_type)
            starts = _chain_starts(
                sample,
                n_components,
                covariance_type,
                seed,
                1,
                init=settings["init"],
                jitter=0.0,
            )
            with model, warnings.catch_warnings():
                warnings.simplefilter("ignore")
                convergence = pm.callbacks.CheckParametersConvergence(
                    tolerance=settings["tolerance"], diff="relative", every=100
                )
                approximation = pm.fit(
                    n=settings["n_iter"],
                    method="advi",
                    random_seed=seed,
                    start=starts.starts[0],
                    obj_optimizer=pm.adam(learning_rate=settings["learning_rate"]),
                    callbacks=[convergence],
                    progressbar=False,
                )
                idata = approximation.sample(settings["draws"], random_seed=seed)
            shapes = _free_shapes(data.shape[1], n_components, covariance_type)
            free = {name: np.asarray(idata.posterior[name].values) for name in shapes}
            weights, means, covariances = draws_to_params(free, covariance_type)
            losses = np.asarray(approximation.hist, dtype=np.float64)
            fit = _posterior_fit(
                self.name,
                data,
                sample,
                covariance_type,
                weights,
                means,
                covariances,
                settings,
                seed,
                relabelling={},
                idata=idata,
                trace=-losses / sample.shape[0],
                trace_kind="advi_mean_elbo",
                n_iter=int(losses.size),
                seconds=0.0,
                extra={"final_elbo": float(-losses[-1]), "draws": settings["draws"]},
                modes=starts.modes,
                loo=False,
            )
        stationary, change = _elbo_stationary(-losses)
        fit.diagnostics["elbo_window_change"] = change
        # Independent draws from one approximation: r-hat and ESS say nothing.
        fit.diagnostics.pop("r_hat_max")
        fit.diagnostics.pop("ess_bulk_min")
        converged = bool(losses.size < settings["n_iter"]) or stationary
        return dataclasses.replace(fit, converged=converged, seconds=clock.seconds)


#: ADVI's ELBO is compared over two windows of this many iterations.
ELBO_WINDOW = 1000


def _elbo_stationary(elbo: np.ndarray, window: int = ELBO_WINDOW) -> tuple[bool, float]:
    """Has ADVI's stochastic ELBO stopped rising? ``(stationary, change)``.

    ``change`` is the mean ELBO of the last ``window`` iterations minus that
    of the ``window`` before (nats). Each iteration's ELBO is a fresh Monte
    Carlo estimate, so the two window means have standard errors from their
    own spread; the ELBO is stationary when the change is within two standard
    errors of zero (no trend the noise cannot explain). Parameter-change
    rules (PyMC's ``CheckParametersConvergence``) rarely fire under
    stochastic gradients, so this is the test of ``converged`` when the
    iteration budget is spent.
    """
    if elbo.size < 2 * window:
        return False, float("nan")
    last, before = elbo[-window:], elbo[-2 * window : -window]
    change = float(last.mean() - before.mean())
    error = float(np.sqrt(last.var() / window + before.var() / window))
    return abs(change) <= 2 * error, change
