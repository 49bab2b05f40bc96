"""Starting points: the engines' initialisation methods and the write-ups' own.

A sweep's ``[grid] init_params`` may name an engine method ("kmeans",
"random_from_data", ...) or one of the write-ups' recipes below. A recipe
turns the data, K and the run's fit seed into explicit starting parameters,
which every engine of the run receives (scikit-learn and gmmlab's EM as
``weights_init``/``means_init``/``precisions_init``, an EM implementation
run by the ``function`` backend as its arguments), so all start from one
point.

Recipes (``shared/scenarios.md``):

``homework`` (S2)
    means drawn from random integers in {0, 1}, identity covariances, equal
    weights;
``lecture`` (S4)
    random weights normalised to sum to one, means uniform in [0, 1),
    identity covariances;
``blog`` (S5)
    means uniform in [0, 1), identity covariances, weights 1/K.

The fair start of an EM function (:func:`fair_start`). A write-up's code
run by the ``function`` backend gets the start its own recipe describes,
unchanged. From an engine method it gets the engines' start (the same
weights and means, drawn from the same seed) with one change: a component
whose start covariance is degenerate gets the data's covariance instead.
Degenerate means what it means for a fit (:mod:`mixtures.diagnostics`): its
covariance, less the engines' ``reg_covar``, has a variance below
``MIN_RELATIVE_VARIANCE`` of the data's in some direction. That is every
component of 'random_from_data' and 'k-means++' (one data point each, so
covariance ``reg_covar * I``) and a k-means cluster of identical values;
every other k-means cluster keeps its own scatter. Why: the engines survive
a ``reg_covar * I`` start because they compute the E-step in log space and
re-seed or floor what collapses. A write-up's code is a plain EM, and
S1's computes densities, not their logarithms: from variances of
``reg_covar`` its first E-step underflows to 0/0 for every point not next to
a start mean, and every such seed ended in NaN, S1's fixed code included,
which says nothing about the code. S1's fix itself draws its means from the data
and takes its variances from the data, as this start does. The engines
(gmmlab's EM, scikit-learn) keep their own start unchanged.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from mixtures.diagnostics import MIN_RELATIVE_VARIANCE, degeneracy_findings
from mixtures.fitting import EMOptions, initial_parameters
from mixtures.initialization import INIT_METHODS
from mixtures.params import MixtureParams

__all__ = [
    "ENGINE_REG_COVAR",
    "START_NAMES",
    "START_RECIPES",
    "fair_start",
    "starting_parameters",
]

#: The regularisation in the engines' starts: both engines' default reg_covar.
ENGINE_REG_COVAR = EMOptions.reg_covar


def _identity_covariances(n_components: int, n_features: int) -> np.ndarray:
    return np.broadcast_to(np.eye(n_features), (n_components, n_features, n_features))


def homework(X: np.ndarray, n_components: int, rng: np.random.Generator):
    """S2's homework: means in {0, 1}^D, identity covariances, equal weights."""
    d = X.shape[1]
    # As the homework did: means may coincide (in 2-D with K = 4, all four
    # differ with probability 4!/4^4 = 9.4%), and coinciding means with one
    # covariance make components that EM can never separate.
    means = rng.integers(0, 2, size=(n_components, d)).astype(float)
    return (
        np.full(n_components, 1.0 / n_components),
        means,
        _identity_covariances(n_components, d),
    )


def lecture(X: np.ndarray, n_components: int, rng: np.random.Generator):
    """S4's lecture: random weights normalised, means U[0, 1)^D, identity."""
    weights = rng.random(n_components)
    return (
        weights / weights.sum(),
        rng.random((n_components, X.shape[1])),
        _identity_covariances(n_components, X.shape[1]),
    )


def blog(X: np.ndarray, n_components: int, rng: np.random.Generator):
    """S5's blog: means U[0, 1)^D, identity covariances, weights 1/K."""
    return (
        np.full(n_components, 1.0 / n_components),
        rng.random((n_components, X.shape[1])),
        _identity_covariances(n_components, X.shape[1]),
    )


START_RECIPES: dict[str, Callable] = {
    "homework": homework,
    "lecture": lecture,
    "blog": blog,
}
#: Every name ``[grid] init_params`` accepts.
START_NAMES = (*INIT_METHODS, *START_RECIPES)


def starting_parameters(
    name: str,
    X: np.ndarray,
    n_components: int,
    *,
    covariance_type: str = "full",
    random_state: int | None = None,
) -> MixtureParams:
    """The explicit start of a run: a recipe's, or an engine method's.

    For an engine method the result is what both EM engines compute from the
    same ``random_state`` (:func:`mixtures.fitting.initial_parameters`).
    Recipes are full-covariance starts.
    """
    if name in START_RECIPES:
        rng = np.random.default_rng(random_state)
        weights, means, covariances = START_RECIPES[name](X, n_components, rng)
        return MixtureParams(weights, means, np.array(covariances))
    if name in INIT_METHODS:
        return initial_parameters(
            X,
            n_components,
            covariance_type=covariance_type,
            init_params=name,
            random_state=random_state,
            reg_covar=ENGINE_REG_COVAR,
        )
    raise ValueError(f"unknown start {name!r}; known: {', '.join(START_NAMES)}.")


def _is_degenerate(mean: np.ndarray, covariance: np.ndarray, X: np.ndarray) -> bool:
    """Whether one component's covariance is no spread (mixtures.diagnostics' rule)."""
    alone = MixtureParams(np.ones(1), mean[None], covariance[None])
    findings = degeneracy_findings(alone, X, reg_covar=ENGINE_REG_COVAR)
    return findings["min_relative_variance"] < MIN_RELATIVE_VARIANCE


def fair_start(
    name: str,
    X: np.ndarray,
    n_components: int,
    *,
    covariance_type: str = "full",
    random_state: int | None = None,
) -> MixtureParams:
    """The start an EM function (the ``function`` backend) gets for ``name``.

    A recipe's start as :func:`starting_parameters` draws it. An engine
    method's start with every degenerate component's covariance (see the
    module docstring) replaced by the data's covariance; its weights and
    means, and every other component's covariance, are the engines'.

    Parameters
    ----------
    name : str
        A recipe or an engine method, as for :func:`starting_parameters`.
    X : ndarray of shape (n_samples, n_features)
    n_components : int
    covariance_type : str
    random_state : int or None

    Returns
    -------
    MixtureParams of ``covariance_type``
    """
    start = starting_parameters(
        name,
        X,
        n_components,
        covariance_type=covariance_type,
        random_state=random_state,
    )
    if name in START_RECIPES:
        return start
    X = np.asarray(X, dtype=float).reshape(X.shape[0], -1)
    data_covariance = np.atleast_2d(np.cov(X, rowvar=False, bias=True))
    covariances = np.array(
        [
            data_covariance if _is_degenerate(mean, covariance, X) else covariance
            for mean, covariance in zip(
                start.means, start.full_covariances(), strict=True
            )
        ]
    )
    return MixtureParams(start.weights, start.means, covariances).as_covariance_type(
        start.covariance_type
    )
