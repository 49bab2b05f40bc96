"""The two NUTS samplers: nutpie (compiled, cached per shape) and PyMC's own.

Each takes the chain starts of :mod:`.starts` and returns the draws of the
free variables (:data:`~.model.FREE_VARIABLES`) as sampled, with the
divergences and the compile and sampling times.
"""

from __future__ import annotations

import dataclasses
import time
import warnings
from typing import Any

import numpy as np

from mixtures.backends.pymc.model import (
    INSTALL_HINT,
    _data_values,
    _free_shapes,
    _hyperparameters,
    _import_pymc,
    build_model,
    params_to_free,
)
from mixtures.backends.pymc.starts import _random_params

# ---------------------------------------------------------------------------
# Compiled models, cached


_COMPILED: dict[tuple, Any] = {}


def _compiled_nutpie(X: np.ndarray, n_components: int, covariance_type: str):
    """Nutpie's compiled model for this shape, built once per process.

    Returns ``(compiled, compile_seconds)``; ``compile_seconds`` is 0 when
    the model came from the cache. Data with missing values have their own
    model (each row's marginal over its observed values), cached beside it.
    """
    try:
        import nutpie
    except ImportError as error:
        raise ImportError(
            f"nuts_sampler='nutpie' needs nutpie: {INSTALL_HINT}; or pass "
            "nuts_sampler='pymc'."
        ) from error
    marginal = bool(np.isnan(X).any())
    key = ("nutpie", X.shape[1], n_components, covariance_type, marginal)
    if key in _COMPILED:
        return _COMPILED[key], 0.0
    start = time.perf_counter()
    model = build_model(X, n_components, covariance_type)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        compiled = nutpie.compile_pymc_model(
            model,
            var_names=list(_free_shapes(X.shape[1], n_components, covariance_type)),
        )
    _COMPILED[key] = compiled
    return compiled, time.perf_counter() - start


def _flatten(start: dict[str, np.ndarray], shapes: dict[str, tuple]) -> np.ndarray:
    return np.concatenate([np.ravel(start[name]) for name in shapes])


# ---------------------------------------------------------------------------
# Sampling


def _chain_seed(value) -> int:
    """The seed nutpie passes a start function, as an int."""
    return int(np.asarray(value).ravel()[0])


def _nutpie_chain_seeds(compiled, chains: int, seed: int, point) -> list[int]:
    """The seed nutpie hands each chain's start function, in chain order.

    nutpie derives every chain's seed from ``seed`` and the chain's index,
    but calls the start function from its worker threads in whatever order
    they run, so a start chosen by call order would change from run to run
    (it did, with four cores). One draw on one core, where the chains run in
    index order, reads the seeds off; each chain's start is then chosen by
    its seed.
    """
    import nutpie

    seen: list[int] = []

    def record(chain_seed) -> np.ndarray:
        seen.append(_chain_seed(chain_seed))
        return point

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        nutpie.sample(
            dataclasses.replace(compiled, initial_point_func=record),
            draws=1,
            tune=1,
            chains=chains,
            cores=1,
            seed=seed,
            progress_bar=False,
        )
    return seen


def _sampled(idata, shapes, compile_seconds, start):
    """What a sampler returns, given its ``idata`` and when sampling ``start``-ed.

    ``(idata, draws, divergences, compile_seconds, sampling_seconds)``, the
    draws of each free variable in ``shapes`` of shape (chain, draw, ...).
    """
    sampling_seconds = time.perf_counter() - start
    draws = {name: np.asarray(idata.posterior[name].values) for name in shapes}
    divergences = int(np.asarray(idata.sample_stats["diverging"]).sum())
    return idata, draws, divergences, compile_seconds, sampling_seconds


def _sample_nutpie(X, n_components, covariance_type, settings, seed, starts):
    import nutpie

    compiled, compile_seconds = _compiled_nutpie(X, n_components, covariance_type)
    shapes = _free_shapes(X.shape[1], n_components, covariance_type)
    # The chain starts are flattened in this order: nutpie's must be the same.
    names, _, layout = compiled.shape_info
    if list(names) != list(shapes) or [tuple(s) for s in layout] != list(
        shapes.values()
    ):
        raise RuntimeError(
            "nutpie lays out the free variables as "
            f"{dict(zip(names, map(tuple, layout), strict=False))}, not {shapes}: "
            "the chain starts would be scrambled. Please report this with your "
            "nutpie version."
        )
    values = _data_values(X, _hyperparameters(X, n_components))
    # Only the containers this covariance type's graph uses are shared.
    compiled = compiled.with_data(
        **{
            name: value
            for name, value in values.items()
            if name in compiled.shared_data
        }
    )
    flat = [_flatten(start, shapes) for start in starts.starts]
    chain_of = {
        chain_seed: chain
        for chain, chain_seed in enumerate(
            _nutpie_chain_seeds(compiled, settings["chains"], seed, flat[0])
        )
    }

    def initial_point(chain_seed) -> np.ndarray:
        chain_seed = _chain_seed(chain_seed)
        if chain_seed in chain_of:
            return flat[chain_of[chain_seed]]
        # nutpie retries a start whose density is not finite with a new seed.
        rng = np.random.default_rng(chain_seed % 2**63)
        random = _random_params(X, n_components, covariance_type, rng)
        return _flatten(params_to_free(random, covariance_type), shapes)

    compiled = dataclasses.replace(compiled, initial_point_func=initial_point)
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        idata = nutpie.sample(
            compiled,
            draws=settings["draws"],
            tune=settings["tune"],
            chains=settings["chains"],
            cores=settings["cores"],
            seed=seed,
            target_accept=settings["target_accept"],
            progress_bar=False,
            save_warmup=False,
        )
    return _sampled(idata, shapes, compile_seconds, start)


def _sample_pymc(X, n_components, covariance_type, settings, seed, starts):
    pm, _ = _import_pymc()
    shapes = _free_shapes(X.shape[1], n_components, covariance_type)
    model = build_model(X, n_components, covariance_type)
    # pm.sample compiles inside the call: its compile time cannot be told
    # apart and is part of sampling_seconds.
    compile_seconds = float("nan")
    start = time.perf_counter()
    with model, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        idata = pm.sample(
            draws=settings["draws"],
            tune=settings["tune"],
            chains=settings["chains"],
            cores=1 if settings["cores"] is None else settings["cores"],
            target_accept=settings["target_accept"],
            nuts_sampler=settings["nuts_sampler"],
            random_seed=seed,
            initvals=list(starts.starts),
            init="adapt_diag",
            progressbar=False,
            compute_convergence_checks=False,
        )
    return _sampled(idata, shapes, compile_seconds, start)
