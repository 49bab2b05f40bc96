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
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from mixtures.fitting import initial_parameters
from mixtures.initialization import INIT_METHODS
from mixtures.params import MixtureParams

__all__ = ["START_NAMES", "START_RECIPES", "starting_parameters"]


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
        )
    raise ValueError(f"unknown start {name!r}; known: {', '.join(START_NAMES)}.")
