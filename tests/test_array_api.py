"""Array-API input and scikit-learn's parameter validation at the estimator.

scikit-learn's ``array_api_dispatch`` needs ``SCIPY_ARRAY_API=1`` set before
SciPy is imported, which would change SciPy for the whole test session; the
dispatch tests therefore run in a child pytest that sets it.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import sklearn
from numpy.testing import assert_allclose, assert_array_equal
from sklearn.utils._param_validation import InvalidParameterError

from mixtures import GaussianMixture

xp = pytest.importorskip("array_api_strict")
pytest.importorskip("array_api_compat")


def _data(seed=0, dtype=np.float64):
    rng = np.random.default_rng(seed)
    X = np.vstack([rng.normal(0, 1, (60, 2)), rng.normal(5, 1, (40, 2))])
    return X.astype(dtype)


DISPATCH = os.environ.get("SCIPY_ARRAY_API") == "1"


@pytest.mark.slow
@pytest.mark.skipif(DISPATCH, reason="this is the child")
def test_dispatch_tests_pass_in_a_child_with_scipy_array_api():
    child = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-n",
            "0",
            "-p",
            "no:cacheprovider",
            "-k",
            "under_dispatch",
            __file__,
        ],
        capture_output=True,
        text=True,
        env={**os.environ, "SCIPY_ARRAY_API": "1"},
        cwd=Path(__file__).parents[1],
        check=False,
    )
    assert child.returncode == 0, child.stdout[-3000:]
    assert "4 passed" in child.stdout, child.stdout[-3000:]


@pytest.mark.skipif(not DISPATCH, reason="needs SCIPY_ARRAY_API=1 (run in a child)")
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("device_name", ["CPU_DEVICE", "device1"])
def test_array_api_input_under_dispatch_returns_its_namespace(dtype, device_name):
    X = _data(dtype=dtype)
    reference = GaussianMixture(2, random_state=0).fit(X)
    device = xp.Device(device_name)
    X_xp = xp.asarray(X, device=device)
    with sklearn.config_context(array_api_dispatch=True):
        model = GaussianMixture(
            2, random_state=0, means_init=xp.asarray(reference.means_)
        ).fit(X_xp)
        for name in ("weights_", "means_", "covariances_", "precisions_cholesky_"):
            value = getattr(model, name)
            assert value.__array_namespace__() is xp, name
            assert value.device == device, name
            assert value.dtype == (xp.float32 if dtype == np.float32 else xp.float64)
        labels = model.predict(X_xp)
        proba = model.predict_proba(X_xp)
        log_density = model.score_samples(X_xp)
        sample, sample_labels = model.sample(5)
        for result in (labels, proba, log_density, sample, sample_labels):
            assert result.__array_namespace__() is xp
            assert result.device == device
        assert isinstance(model.score(X_xp), float)
        assert isinstance(model.bic(X_xp), float)
    # The same numbers as the NumPy fit from the same start.
    again = GaussianMixture(2, random_state=0, means_init=reference.means_).fit(X)
    assert_allclose(np.from_dlpack(model.means_), again.means_)
    assert_array_equal(np.from_dlpack(labels), again.predict(X))
    assert_allclose(np.from_dlpack(proba), again.predict_proba(X))


def test_array_api_input_without_dispatch_gives_numpy():
    X = _data()
    model = GaussianMixture(2, random_state=0).fit(xp.asarray(X))
    assert isinstance(model.means_, np.ndarray)
    assert isinstance(model.predict(xp.asarray(X)), np.ndarray)
    assert_allclose(model.means_, GaussianMixture(2, random_state=0).fit(X).means_)


@pytest.mark.parametrize(
    ("params", "name"),
    [
        ({"n_components": 0}, "n_components"),
        ({"covariance_type": "banana"}, "covariance_type"),
        ({"tol": -1.0}, "tol"),
        ({"reg_covar": -1e-6}, "reg_covar"),
        ({"init_params": "nearest"}, "init_params"),
        ({"random_state": "seed"}, "random_state"),
        ({"warm_start": "yes"}, "warm_start"),
        ({"prior": "flat"}, "prior"),
        ({"max_iter": 2.5}, "max_iter"),
    ],
)
def test_invalid_hyper_parameters_raise_scikit_learns_error(params, name):
    with pytest.raises(InvalidParameterError) as caught:
        GaussianMixture(**params).fit(_data())
    assert str(caught.value).startswith(
        f"The '{name}' parameter of GaussianMixture must be"
    )
    assert isinstance(caught.value, ValueError)


def test_valid_extensions_pass_parameter_validation():
    X = _data()
    # A NumPy Generator, an mclust model name and a prior are ours to accept.
    GaussianMixture(
        2, covariance_type="VEV", random_state=np.random.default_rng(0)
    ).fit(X)
    GaussianMixture(2, prior="default", random_state=0).fit(X)
    GaussianMixture(2, prior={"shrinkage": 0.05}, random_state=0).fit(X)
