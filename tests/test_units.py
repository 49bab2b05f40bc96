"""Units do not matter: relative regularisation (issue 13, part 2).

Scaling every feature by c multiplies the density by c^-D per row, so the
log-likelihood moves by exactly -n D log c and nothing else may change.
"""

from __future__ import annotations

import numpy as np
import pytest

from experiments.datasets import load_dataset
from mixtures import GaussianMixture
from mixtures.data import load_faithful
from mixtures.select import search

SCALES = [1e-6, 1e-3, 1.0, 1e3, 1e6]


@pytest.mark.parametrize("name", ["faithful", "s2"])
def test_scaled_copies_give_the_same_labels_and_shifted_log_likelihoods(name):
    X = load_faithful() if name == "faithful" else load_dataset("s2", seed=1).X[:600]
    n, d = X.shape
    reference = None
    for c in SCALES:
        result = search(
            X * c, ["EEE", "VVV", "VVE"], range(1, 4), reg_covar_relative=True
        )
        best = result.top(1).iloc[0]
        labels = result.best().predict(X * c)
        corrected = best["log_likelihood"] + n * d * np.log(c)
        if reference is None:
            reference = (best["model"], best["n_components"], labels, corrected)
        assert (best["model"], best["n_components"]) == reference[:2]
        np.testing.assert_array_equal(labels, reference[2])
        assert corrected == pytest.approx(reference[3], abs=1e-6)


def test_absolute_regularisation_swamps_small_units():
    """The failure relative regularisation fixes: 1e-6 absolute at 1e-3 units."""
    X = load_faithful() * 1e-3
    absolute = GaussianMixture(3, covariance_type="tied", random_state=0).fit(X)
    relative = GaussianMixture(
        3, covariance_type="tied", random_state=0, reg_covar_relative=True
    ).fit(X)
    assert relative.score(X) - absolute.score(X) > 0.5  # nats per row
    message = "The 'reg_covar_relative' parameter of GaussianMixture must be"
    with pytest.raises(ValueError, match=message):
        GaussianMixture(2, reg_covar_relative="yes").fit(X)


def test_relative_regularisation_is_per_feature_variance():
    X = load_faithful()
    fit = GaussianMixture(
        1, covariance_type="diag", reg_covar=0.5, reg_covar_relative=True
    ).fit(X)
    # One component: the covariance is the data's variance plus half of it.
    np.testing.assert_allclose(fit.covariances_[0], 1.5 * X.var(axis=0), rtol=1e-10)
