"""Shared fixtures and helpers: reference mixtures with known truth."""

from __future__ import annotations

import os

import numpy as np
import pytest
from hypothesis import HealthCheck, settings

from mixtures import MixtureParams

settings.register_profile(
    "default", deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.register_profile(
    "ci", deadline=None, suppress_health_check=[HealthCheck.too_slow], derandomize=True
)
settings.load_profile("ci" if os.environ.get("CI") else "default")


def random_mixture(
    rng: np.random.Generator,
    n_components: int,
    n_features: int,
    *,
    separation: float = 6.0,
    covariance_type: str = "full",
) -> MixtureParams:
    """A random mixture with well-separated means and moderate conditioning."""
    weights = rng.dirichlet(np.full(n_components, 5.0))
    means = rng.normal(scale=separation, size=(n_components, n_features))
    full = []
    for _ in range(n_components):
        a = rng.normal(size=(n_features, n_features)) / np.sqrt(n_features)
        full.append(a @ a.T + 0.5 * np.eye(n_features))
    params = MixtureParams(weights, means, np.array(full), "full")
    return params.as_covariance_type(covariance_type)


def sample_mixture(
    params: MixtureParams, n_samples: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Draw ``n_samples`` points and their component labels."""
    labels = rng.choice(params.n_components, size=n_samples, p=params.weights)
    full = params.full_covariances()
    X = np.empty((n_samples, params.n_features))
    for k in range(params.n_components):
        idx = labels == k
        X[idx] = rng.multivariate_normal(params.means[k], full[k], size=idx.sum())
    return X, labels


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(12345)


@pytest.fixture(scope="session")
def blobs() -> tuple[np.ndarray, MixtureParams]:
    """600 points from a well-separated 2-D, 3-component mixture."""
    generator = np.random.default_rng(7)
    params = random_mixture(generator, 3, 2, separation=5.0)
    X, _ = sample_mixture(params, 600, generator)
    return X, params
