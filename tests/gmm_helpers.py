"""Mixtures with known truth, shared by the tests.

A plain module (not ``conftest``), so test modules can import it by name:
pytest puts this folder on ``sys.path`` (the tests are not a package), which
also means the *installed* ``mixtures`` is the one under test when pytest is
run as ``pytest``. Data are drawn with :meth:`MixtureParams.sample`, the
library's one sampler.
"""

from __future__ import annotations

import numpy as np

from mixtures import MixtureParams

__all__ = ["BACKEND_TEST_OPTIONS", "CONTRACT_TRUTH", "random_mixture"]


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


CONTRACT_TRUTH = MixtureParams(
    weights=[0.3, 0.3, 0.4],
    means=[[0.0, 0.0], [5.0, 0.5], [0.5, 5.0]],
    covariances=[
        [[0.6, 0.15], [0.15, 0.4]],
        [[0.5, -0.1], [-0.1, 0.7]],
        [[0.4, 0.0], [0.0, 0.5]],
    ],
)

#: Small but adequate settings so the whole suite stays within minutes.
BACKEND_TEST_OPTIONS = {
    "em": {},
    "sklearn": {},
    "pymc": {"draws": 500, "tune": 500},
    "pymc-advi": {"n_iter": 6000, "draws": 400},
}
