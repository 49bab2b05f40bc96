"""The engine's pass on any array-API library (issue 29), tested without a GPU.

The same code runs on NumPy and on ``array-api-strict`` (on its second,
non-default device, so that anything that silently moves data to the default
device fails) and must equal the compiled kernel to 1e-10 in float64 for
every covariance model, within float32 rounding in float32; whole fits with
``kernel="array-api"`` equal ``kernel="numba"``'s.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import sklearn
from numpy.testing import assert_allclose, assert_array_equal

from mixtures import GaussianMixture, fit_em
from mixtures._arrays import on_accelerator, to_numpy
from mixtures.array_api_pass import device_pass
from mixtures.covariance import COVARIANCE_MODELS
from mixtures.passes import _compiled_pass

from gmm_helpers import INNER_TOLERANCE_MODELS, INNER_TOLERANCE_RTOL, random_mixture

xps = pytest.importorskip("array_api_strict")

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")

MULTIVARIATE = [m for m in COVARIANCE_MODELS if m not in ("E", "V")]
DEVICE = xps.Device("device1")

#: scikit-learn's array_api_dispatch needs SCIPY_ARRAY_API=1 before SciPy is
#: imported: those tests run in a child pytest (as in test_array_api.py).
DISPATCH = os.environ.get("SCIPY_ARRAY_API") == "1"
NEEDS_DISPATCH = pytest.mark.skipif(
    not DISPATCH, reason="needs SCIPY_ARRAY_API=1 (run in a child)"
)


@pytest.mark.slow
@pytest.mark.skipif(DISPATCH, reason="this is the child")
def test_estimator_tests_pass_in_a_child_with_scipy_array_api():
    child = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-n", "0", "-p", "no:cacheprovider",
         "-k", "under_dispatch", __file__],
        capture_output=True,
        text=True,
        env={**os.environ, "SCIPY_ARRAY_API": "1"},
        cwd=Path(__file__).parents[1],
        check=False,
    )  # fmt: skip
    assert child.returncode == 0, child.stdout[-3000:]
    # The PyTorch test runs where PyTorch is installed (not a dependency).
    expected = 4 if importlib.util.find_spec("torch") else 3
    assert f"{expected} passed" in child.stdout, child.stdout[-3000:]


def _data_and_params(covariance_type: str, n_samples: int = 3_000, seed: int = 0):
    """Data far from the origin and a mixture different from the one that drew them."""
    rng = np.random.default_rng(seed)
    n_features = 1 if covariance_type in ("E", "V") else 3
    truth = random_mixture(rng, 3, n_features, separation=3.0)
    X, _ = truth.sample(n_samples, random_state=rng)
    X += 50.0
    start = fit_em(X, 3, covariance_type=covariance_type, max_iter=2, random_state=seed)
    weights = rng.uniform(0.0, 2.0, n_samples)
    weights[::7] = 0.0  # rows that must not count
    return X, weights, start.params


def _on_device(array: np.ndarray):
    return xps.asarray(array, device=DEVICE)


#: Both ways of scoring a full-covariance model ('auto' picks one by size).
METHODS = ["direct", "quadratic"]


#: The fast loop runs the strict namespace (the one that catches a silent
#: move to the default device); NumPy's and PyTorch's run in the full suite.
NAMESPACES = [
    pytest.param("numpy", marks=pytest.mark.slow),
    "array-api-strict",
    pytest.param("torch", marks=pytest.mark.slow),
]
#: Fits of a few models in the fast loop, of every model in the full suite.
FAST_FITS = {"VVV", "VVI", "EVE", "V"}


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("namespace", NAMESPACES)
@pytest.mark.parametrize("covariance_type", [*MULTIVARIATE, "E", "V"])
def test_pass_equals_the_compiled_kernel_on_every_model(
    covariance_type, namespace, method
):
    X, weights, params = _data_and_params(covariance_type)
    if method == "quadratic" and params.model.kernel != "full":
        pytest.skip("one way only for diagonal models")
    reference = _compiled_pass(X, weights, params)
    if namespace == "numpy":
        data, w = X, weights
    elif namespace == "torch":
        torch = pytest.importorskip("torch")
        data, w = torch.asarray(X), torch.asarray(weights)
    else:
        data, w = _on_device(X), _on_device(weights)
    # A small block budget: several blocks, so that the sums across them count.
    result = device_pass(data, w, params, block_bytes=40_000, full_method=method)
    assert_allclose(result.centres, reference.centres, rtol=1e-12)
    assert_allclose(result.mass, reference.mass, rtol=1e-10)
    scale = np.abs(reference.first).max()
    assert_allclose(result.first, reference.first, atol=1e-10 * scale)
    assert_allclose(result.second, reference.second, rtol=1e-10)
    assert result.log_likelihood == pytest.approx(reference.log_likelihood, rel=1e-12)
    assert result.weight_sum == pytest.approx(reference.weight_sum, rel=1e-12)
    if namespace == "array-api-strict":
        assert result.log_prob.device == DEVICE  # per-row values stay there
    assert_allclose(to_numpy(result.log_prob), reference.log_prob, rtol=1e-10)


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("covariance_type", ["VVV", "VVI", "EII"])
def test_float32_rows_stay_within_float32_rounding(covariance_type, method):
    X, weights, params = _data_and_params(covariance_type)
    X32 = X.astype(np.float32)
    reference = _compiled_pass(X32, weights, params)
    result = device_pass(
        _on_device(X32), _on_device(weights), params, full_method=method
    )
    assert_allclose(result.mass, reference.mass, rtol=1e-5)
    assert_allclose(result.second, reference.second, rtol=1e-4)
    assert result.log_likelihood == pytest.approx(reference.log_likelihood, rel=1e-6)


def test_scores_and_labels_are_the_first_maximum():
    X, _, params = _data_and_params("VVV")
    reference = _compiled_pass(X, np.ones(len(X)), params, with_moments=False)
    result = device_pass(_on_device(X), None, params, with_moments=False, labels=True)
    assert_array_equal(to_numpy(result.labels), reference.labels)
    assert_allclose(to_numpy(result.log_prob), reference.log_prob, rtol=1e-10)


@pytest.mark.parametrize(
    "covariance_type",
    [
        m if m in FAST_FITS else pytest.param(m, marks=pytest.mark.slow)
        for m in [*MULTIVARIATE, "E", "V"]
    ],
)
def test_fits_equal_the_compiled_kernels(covariance_type):
    X, weights, _ = _data_and_params(covariance_type, seed=3)
    for n_iter in (1, 30):
        fits = {
            kernel: fit_em(X, 3, covariance_type=covariance_type,
                           sample_weight=weights, max_iter=n_iter, tol=0.0,
                           random_state=0, kernel=kernel)
            for kernel in ("numba", "array-api")
        }  # fmt: skip
        ours, theirs = fits["array-api"], fits["numba"]
        rtol = (
            INNER_TOLERANCE_RTOL
            if n_iter > 1 and covariance_type in INNER_TOLERANCE_MODELS
            else 1e-10
        )
        assert ours.n_iter == theirs.n_iter
        assert_allclose(ours.lower_bounds, theirs.lower_bounds, rtol=1e-10)
        assert_allclose(ours.params.means, theirs.params.means, rtol=rtol)
        scale = np.abs(theirs.params.covariances).max()
        assert_allclose(
            ours.params.covariances, theirs.params.covariances, atol=rtol * scale
        )
        assert_array_equal(ours.labels, theirs.labels)


@NEEDS_DISPATCH
def test_estimator_on_another_device_returns_arrays_there_under_dispatch():
    X, _, _ = _data_and_params("VVV", seed=5)
    host = GaussianMixture(3, random_state=0, tol=1e-8, max_iter=200).fit(X)
    with sklearn.config_context(array_api_dispatch=True):
        model = GaussianMixture(3, random_state=0, tol=1e-8, max_iter=200,
                                kernel="array-api")  # fmt: skip
        data = _on_device(X)
        labels = model.fit_predict(data)
        assert labels.device == DEVICE
        assert model.means_.device == DEVICE
        assert model.predict(data).device == DEVICE
    assert model.n_iter_ == host.n_iter_
    assert_allclose(to_numpy(model.means_), host.means_, rtol=1e-10)
    assert model.lower_bound_ == pytest.approx(host.lower_bound_, rel=1e-12)


@NEEDS_DISPATCH
def test_float32_input_is_fitted_in_float32_on_its_device_under_dispatch():
    X, _, _ = _data_and_params("VVV", seed=6)
    data = xps.asarray(X.astype(np.float32), device=DEVICE)
    with sklearn.config_context(array_api_dispatch=True):
        model = GaussianMixture(3, random_state=0, kernel="array-api").fit(data)
    assert model.means_.dtype == xps.float32
    host = GaussianMixture(3, random_state=0).fit(X.astype(np.float32))
    assert_allclose(to_numpy(model.means_), host.means_, rtol=1e-4)


def test_auto_runs_on_an_accelerator_only():
    class Device:
        def __init__(self, kind):
            self.type = kind

    def tensor(kind):
        value = type("Tensor", (), {"__module__": "torch"})()
        value.device = Device(kind)
        return value

    assert on_accelerator(tensor("cuda"))
    assert not on_accelerator(tensor("cpu"))
    assert not on_accelerator(np.ones(3))
    assert not on_accelerator(xps.asarray([1.0], device=DEVICE))


def test_bad_input_is_refused_clearly():
    X, _, params = _data_and_params("VVV")
    with pytest.raises(ValueError, match="float64"):
        device_pass(xps.asarray(X.astype(np.float32), device=xps.Device("no_float64")),
                    None, params)  # fmt: skip
    holes = X.copy()
    holes[3, 1] = np.nan
    with pytest.raises(ValueError, match="missing values"):
        GaussianMixture(2, kernel="array-api", missing="em").fit(holes)
    with pytest.raises(ValueError, match="array-api"):
        GaussianMixture(2, kernel="gpu").fit(X)


@NEEDS_DISPATCH
def test_a_pytorch_tensor_comes_back_as_a_tensor_under_dispatch():
    torch = pytest.importorskip("torch")
    X, _, _ = _data_and_params("VVV", seed=7)
    data = torch.asarray(X.astype(np.float32))
    with sklearn.config_context(array_api_dispatch=True):
        model = GaussianMixture(3, random_state=0, kernel="array-api").fit(data)
    assert isinstance(model.means_, torch.Tensor)
    assert model.means_.dtype == torch.float32
    assert model.means_.device == data.device


@NEEDS_DISPATCH
def test_auto_takes_the_device_pass_on_an_accelerator_under_dispatch(monkeypatch):
    import mixtures.array_api_pass as module
    import mixtures.estimator as estimator

    calls = []
    real = module.device_pass

    def counted(*args, **kwargs):
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(module, "device_pass", counted)
    X, _, _ = _data_and_params("VVV", seed=8)
    data = _on_device(X)
    with sklearn.config_context(array_api_dispatch=True):
        GaussianMixture(3, random_state=0).fit(data)  # not on an accelerator
        assert not calls
        monkeypatch.setattr(estimator, "on_accelerator", lambda array: True)
        model = GaussianMixture(3, random_state=0).fit(data)
    assert calls  # every pass of the fit went through the device pass
    assert model.means_.device == DEVICE
    assert model.kernel == "auto"  # the parameter is left as the user set it
