"""Where the chains start: distinct MAP-EM modes, and starts scattered about them.

MAP-EM is restarted :data:`MODE_RESTARTS` times and its results grouped into
modes (:func:`_map_em_modes`); the chains are dealt round the modes near the
best, each start overdispersed about its mode (:func:`_chain_starts`), or
every chain starts at a random point.
"""

from __future__ import annotations

import dataclasses
import warnings
from typing import Any

import numpy as np

from mixtures.align import align
from mixtures.backends import pymc as _package
from mixtures.backends.base import total_log_likelihood
from mixtures.backends.pymc.model import _hyperparameters, params_to_free
from mixtures.fitting import fit_em
from mixtures.missing import mean_filled
from mixtures.params import MixtureParams

#: MAP-EM restarts (k-means++ seeds) searched for distinct posterior modes.
MODE_RESTARTS = 20
#: A mode more than this many nats of log posterior density below the best is
#: given no chain: its posterior mass is below about e^-10 of the best mode's
#: (unless it is e^10 times wider), so a chain stuck there would fail r-hat
#: over mass that does not matter.
MODE_GAP = 10.0
#: Two MAP-EM results are one mode when, components matched, their means are
#: within this Mahalanobis distance, their covariances this close (relative
#: Frobenius norm) and their weights this close.
_SAME_MODE = 0.05


@dataclasses.dataclass(frozen=True)
class _Mode:
    """A posterior mode found by MAP-EM, and how many restarts reached it."""

    params: MixtureParams
    log_posterior: float
    restarts: int


@dataclasses.dataclass(frozen=True)
class _ChainStarts:
    """Each chain's start (free coordinates) and where it came from.

    ``origins[c]`` is ``"mode i"`` (scattered about the i-th best MAP-EM
    mode) or ``"random"``; ``modes`` are every distinct mode the restarts
    found.
    """

    starts: tuple[dict[str, np.ndarray], ...]
    origins: tuple[str, ...]
    modes: tuple[_Mode, ...]

    def diagnostics(self) -> dict[str, Any]:
        """The ``chain_start*`` and ``map_em_modes`` diagnostics."""
        used = {origin for origin in self.origins if origin != "random"}
        return {
            "map_em_modes": len(self.modes),
            "map_em_mode_restarts": [mode.restarts for mode in self.modes],
            "map_em_mode_log_posteriors": [mode.log_posterior for mode in self.modes],
            "chain_starts": list(self.origins),
            "chain_start_modes": len(used),
            "chain_random_starts": sum(o == "random" for o in self.origins),
        }


def _map_em(X, n_components, covariance_type, seed, initial_params=None):
    """One MAP-EM fit: from k-means++ seeded by ``seed``, or from ``initial_params``.

    SQUAREM-accelerated, to ``tol=1e-8``: restarts that reach one mode then
    agree far within :data:`_SAME_MODE`. Data with missing values (NaN) are
    fitted over each row's observed values (``missing="em"``), so the modes
    are those of the posterior the model samples.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return fit_em(
            X,
            n_components,
            covariance_type=covariance_type,
            init_params="k-means++",
            random_state=seed,
            initial_params=initial_params,
            prior="default",
            reg_covar=0.0,  # the prior keeps covariances positive definite
            tol=1e-8,
            max_iter=1000,
            acceleration="squarem",
            missing="em" if np.isnan(X).any() else "error",
        ).params


def _same_mode(first: MixtureParams, second: MixtureParams) -> bool:
    """Whether two MAP-EM results are the same mode (:data:`_SAME_MODE`)."""
    second = align(second, first)
    covariances = first.full_covariances()
    others = second.full_covariances()
    for k in range(first.n_components):
        difference = second.means[k] - first.means[k]
        average = 0.5 * (covariances[k] + others[k])
        distance = np.sqrt(difference @ np.linalg.solve(average, difference))
        spread = np.linalg.norm(others[k] - covariances[k]) / np.linalg.norm(average)
        if (
            distance > _SAME_MODE
            or spread > _SAME_MODE
            or abs(second.weights[k] - first.weights[k]) > _SAME_MODE
        ):
            return False
    return True


def _map_em_modes(
    X: np.ndarray, n_components: int, covariance_type: str, seed: int
) -> tuple[_Mode, ...]:
    """The distinct modes :data:`MODE_RESTARTS` MAP-EM restarts reach, best first.

    Restart ``r`` is seeded by the ``r``-th state of ``SeedSequence(seed)``;
    modes are ranked by log posterior density (log-likelihood plus the log
    prior of :mod:`mixtures.prior`, in the ``Sigma`` parametrisation).
    """
    prior = _hyperparameters(X, n_components)
    modes: list[_Mode] = []
    for restart_seed in np.random.SeedSequence(seed).generate_state(MODE_RESTARTS):
        params = _map_em(X, n_components, covariance_type, int(restart_seed))
        value = total_log_likelihood(X, params) + prior.log_density(params)
        for index, mode in enumerate(modes):
            if _same_mode(mode.params, params):
                best = params if value > mode.log_posterior else mode.params
                modes[index] = _Mode(
                    best, max(value, mode.log_posterior), mode.restarts + 1
                )
                break
        else:
            modes.append(_Mode(params, value, 1))
    return tuple(sorted(modes, key=lambda mode: -mode.log_posterior))


def _random_params(
    X: np.ndarray, n_components: int, covariance_type: str, rng: np.random.Generator
) -> MixtureParams:
    """A start owing nothing to EM: means at distinct random rows of ``X``.

    Every covariance is the prior's scale ``Lambda_P`` (the data's covariance
    shrunk by ``K^(2/D)``, about one cluster's spread when K clusters tile the
    data) and the weights are equal. A row's missing values (NaN) are
    replaced by their features' observed means (a start needs no more).
    """
    d = X.shape[1]
    if np.isnan(X).any():
        X = mean_filled(X)
    rows = rng.choice(X.shape[0], size=n_components, replace=False)
    scale = _hyperparameters(X, n_components).scale
    return MixtureParams(
        np.full(n_components, 1.0 / n_components),
        X[rows],
        np.broadcast_to(scale, (n_components, d, d)),
    ).as_covariance_type(covariance_type)


def _dispersed(
    params: MixtureParams, covariance_type: str, jitter: float, rng
) -> dict[str, np.ndarray]:
    """The free coordinates of ``params``, scattered about it.

    Each mean moves by ``jitter`` times its component's standard deviation
    in each coordinate: ``sqrt(n_k)`` times the posterior standard deviation
    of that mean, so chains start well apart relative to the posterior
    (Gelman and Rubin's overdispersed starts) yet in the mode's basin. The
    log scales and weight logits move by ``jitter / 2`` (scales by a factor
    of about ``e^(jitter / 2)``), and the off-diagonal entries of a
    precision's Cholesky factor by ``jitter / 2`` times their row's diagonal
    entry, so the perturbation does not depend on the data's units.
    """
    free = params_to_free(params, covariance_type)
    spread = np.sqrt(np.diagonal(params.full_covariances(), axis1=1, axis2=2))
    start = {}
    for name, value in free.items():
        noise = rng.standard_normal(np.shape(value))
        if name == "mu":
            start[name] = value + jitter * spread * noise
        elif name == "offdiag":
            d = params.n_features
            rows, _ = np.tril_indices(d, -1)
            diagonal = np.exp(free["log_diag"])[..., rows]
            start[name] = value + 0.5 * jitter * diagonal * noise
        else:
            start[name] = value + 0.5 * jitter * noise
    return start


def _chain_starts(
    X: np.ndarray,
    n_components: int,
    covariance_type: str,
    seed: int,
    chains: int,
    *,
    init: str = "em",
    jitter: float = 1.0,
) -> _ChainStarts:
    """Where each chain starts: scattered about distinct MAP-EM modes.

    With ``init="em"``, chain ``c`` starts about the ``c % m``-th best of
    the ``m`` modes within :data:`MODE_GAP` of the best
    (:func:`_map_em_modes`), scattered by :func:`_dispersed`: every such
    mode gets a chain when there are at most ``chains``, and chains start
    apart even when there is one. With ``init="random"`` every chain starts
    at a random point (:func:`_random_params`) instead: the harder test, but
    a chain can then settle in a mode of negligible mass (on S2, a chain
    from a random point stayed 2,000 nats of log-likelihood below the
    others, with 261 divergent transitions), failing r-hat for a mode that
    does not matter. A function of ``seed`` alone.
    """
    # Looked up on the package, where the tests replace it.
    modes = _package._map_em_modes(X, n_components, covariance_type, seed)
    near = [m for m in modes if m.log_posterior >= modes[0].log_posterior - MODE_GAP]
    starts, origins = [], []
    for chain in range(chains):
        rng = np.random.default_rng([seed, 1, chain])
        if init == "random":
            random = _random_params(X, n_components, covariance_type, rng)
            starts.append(params_to_free(random, covariance_type))
            origins.append("random")
        else:
            mode = chain % len(near)
            starts.append(_dispersed(near[mode].params, covariance_type, jitter, rng))
            origins.append(f"mode {mode}")
    return _ChainStarts(tuple(starts), tuple(origins), modes)
