"""The compiled fused kernel against the NumPy pass, and its own guarantees.

The NumPy pass (``kernel="numpy"``) is the reference: both must give the
same statistics, log-densities, labels and fits to 1e-10 in float64 on
every covariance model. The kernel must also give bit-for-bit the same
result on any number of threads, keep float32 accurate, and compute exp
to within one unit in the last place.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from numpy.testing import assert_allclose, assert_array_equal

from mixtures import GaussianMixture, fit_em
from mixtures import _kernel as kernel_module
from mixtures._parallel import resolve_kernel
from mixtures.covariance import COVARIANCE_MODELS
from mixtures.em import em_pass, predict_labels, score_and_label, score_samples

from gmm_helpers import random_mixture

# Short fits make the starting points and the compared fits; whether they
# converged is beside the point here.
pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")

#: Every registered model; the mclust aliases are the same objects.
MULTIVARIATE = [m for m in COVARIANCE_MODELS if m not in ("E", "V")]
UNIVARIATE = ["E", "V"]


def _data_and_params(covariance_type: str, n_samples: int, seed: int = 0):
    """Data and a mixture *different* from the one that drew them."""
    rng = np.random.default_rng(seed)
    n_features = 1 if covariance_type in UNIVARIATE else 3
    truth = random_mixture(rng, 3, n_features, separation=3.0)
    X, _ = truth.sample(n_samples, random_state=rng)
    X += 50.0  # far from the origin: the centring must be right
    start = fit_em(
        X, 3, covariance_type=covariance_type, max_iter=2, random_state=seed
    ).params
    return X, start


def _passes(X, weights, params):
    reference = em_pass(X, weights, params, kernel="numpy")
    compiled = em_pass(X, weights, params, kernel="numba")
    return reference, compiled


@pytest.mark.parametrize("covariance_type", MULTIVARIATE + UNIVARIATE)
def test_kernel_pass_equals_numpy_pass_on_every_model(covariance_type):
    X, params = _data_and_params(covariance_type, 9_000)
    weights = np.random.default_rng(1).uniform(0.0, 2.0, X.shape[0])
    weights[::7] = 0.0  # rows that must not count
    (stats0, logp0), (stats1, logp1) = _passes(X, weights, params)
    assert_allclose(stats1.centres, stats0.centres, rtol=1e-12)
    assert_allclose(stats1.weight_sums, stats0.weight_sums, rtol=1e-10)
    scale = np.abs(stats0.first_moments).max()
    assert_allclose(stats1.first_moments, stats0.first_moments, atol=1e-10 * scale)
    assert_allclose(stats1.second_moments, stats0.second_moments, rtol=1e-10)
    assert stats1.total_weight == pytest.approx(stats0.total_weight, rel=1e-12)
    assert_allclose(logp1, logp0, rtol=1e-10)


@pytest.mark.parametrize("covariance_type", ["full", "diag", "VEV", "EEI", "V"])
def test_fits_on_the_two_kernels_agree(covariance_type):
    X, start = _data_and_params(covariance_type, 3_000, seed=4)
    fits = {}
    for kernel in ("numpy", "numba"):
        fits[kernel] = fit_em(
            X, 3, covariance_type=covariance_type, initial_params=start,
            tol=1e-8, max_iter=50, kernel=kernel,
        )  # fmt: skip
    numpy_fit, numba_fit = fits["numpy"], fits["numba"]
    assert numba_fit.n_iter == numpy_fit.n_iter
    assert_allclose(numba_fit.lower_bounds, numpy_fit.lower_bounds, rtol=1e-10)
    assert_allclose(numba_fit.params.means, numpy_fit.params.means, rtol=1e-9)
    assert_allclose(
        numba_fit.params.covariances, numpy_fit.params.covariances, rtol=1e-8
    )
    assert_array_equal(numba_fit.labels, numpy_fit.labels)


@pytest.mark.parametrize("covariance_type", ["full", "spherical"])
def test_scoring_functions_agree(covariance_type):
    X, params = _data_and_params(covariance_type, 2_000)
    results = {}
    for kernel in ("numpy", "numba"):
        results[kernel] = (
            score_samples(X, params, kernel=kernel),
            predict_labels(X, params, kernel=kernel),
            *score_and_label(X, params, kernel=kernel),
        )
    for numpy_value, numba_value in zip(*results.values(), strict=True):
        assert numba_value.dtype == numpy_value.dtype
        assert_allclose(numba_value, numpy_value, rtol=1e-10)


@pytest.mark.parametrize("kind", ["full", "diag"])
def test_same_bits_on_any_number_of_threads(kind):
    covariance_type = "full" if kind == "full" else "diag"
    # Enough rows for several tasks and for the parallel kernel.
    X, params = _data_and_params(covariance_type, 40_000, seed=7)
    model = params.model
    factors = model.kernel_factors(
        params.precisions_cholesky, params.n_components, params.n_features
    )
    weights = np.ones(X.shape[0])
    assert kernel_module.n_tasks(X.shape[0], 3, 12) > 4
    results = [
        kernel_module.fused_pass(
            X, weights, params.weights, params.means, factors, kind, threads=threads
        )
        for threads in (1, 2, 3, 8)
    ]
    for other in results[1:]:
        for field in ("mass", "first", "second", "log_prob", "centres"):
            assert_array_equal(getattr(other, field), getattr(results[0], field))
        assert other.log_likelihood == results[0].log_likelihood


def test_concurrent_callers_get_the_same_result():
    X, params = _data_and_params("full", 40_000, seed=8)
    weights = np.ones(X.shape[0])
    expected = em_pass(X, weights, params, kernel="numba")[0].second_moments
    outputs: list[np.ndarray] = []

    def work():
        outputs.append(em_pass(X, weights, params, kernel="numba")[0].second_moments)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(outputs) == 4
    for output in outputs:
        assert_array_equal(output, expected)


@pytest.mark.parametrize("covariance_type", ["full", "diag", "tied", "spherical"])
def test_float32_kernel_is_accurate(covariance_type):
    X, params = _data_and_params(covariance_type, 20_000, seed=3)
    weights = np.ones(X.shape[0])
    double, logp64 = em_pass(X, weights, params, kernel="numba")
    single, logp32 = em_pass(X.astype(np.float32), weights, params, kernel="numba")
    assert logp32.dtype == np.float64  # accumulated in float64
    assert_allclose(single.weight_sums, double.weight_sums, rtol=1e-5)
    assert_allclose(single.second_moments, double.second_moments, rtol=1e-4)
    assert_allclose(logp32, logp64, rtol=1e-5, atol=1e-4)


def test_float32_fit_on_the_kernel_matches_float64():
    X, start = _data_and_params("full", 5_000, seed=5)
    double = fit_em(X, 3, initial_params=start, tol=1e-9, kernel="numba")
    single = fit_em(
        X.astype(np.float32), 3, initial_params=start, tol=1e-9, kernel="numba"
    )
    assert single.mean_log_likelihood == pytest.approx(
        double.mean_log_likelihood, rel=1e-5
    )
    assert_allclose(single.params.means, double.params.means, rtol=1e-4)


def test_partial_sums_are_bounded_in_memory():
    assert kernel_module.n_tasks(10**7, 4, 6) == kernel_module.MAX_TASKS
    # K D^2 of 20 x 1000^2 doubles is 160 MB: one task, not 64 copies.
    assert kernel_module.n_tasks(10**7, 20, 1000**2 + 1000) == 1
    assert kernel_module.n_tasks(100, 4, 6) == 1


def test_rows_of_zero_weight_do_not_count():
    X, params = _data_and_params("full", 3_000, seed=2)
    weights = np.ones(X.shape[0])
    weights[:1000] = 0.0
    with_zeros = em_pass(X, weights, params, kernel="numba")[0]
    without = em_pass(X[1000:], weights[1000:], params, kernel="numba")[0]
    assert_allclose(with_zeros.second_moments, without.second_moments, rtol=1e-12)
    assert with_zeros.total_weight == without.total_weight


def test_responsibility_that_underflows_is_exactly_zero():
    # Two components 100 standard deviations apart: the far one's
    # responsibilities are exp(-5000), which must be 0, not subnormal.
    X = (
        np.r_[np.zeros((200, 1)), np.full((200, 1), 100.0)]
        + np.linspace(-0.5, 0.5, 400)[:, None]
    )
    fit = fit_em(X, 2, kernel="numba", random_state=0)
    stats, _ = em_pass(X, np.ones(400), fit.params, kernel="numba")
    assert_allclose(np.sort(stats.weight_sums), [200.0, 200.0], rtol=1e-12)


# -- the vectorisable exponential ---------------------------------------------


def _ulps(values: np.ndarray, reference: np.ndarray) -> np.ndarray:
    return np.abs(values - reference) / np.spacing(reference)


def test_exp_within_one_ulp_on_its_whole_range():
    x = np.r_[np.linspace(-700.0, 0.0, 200_001), -np.logspace(-300, 2.8, 5_000), 0.0]
    values = kernel_module._exp_array(x)
    assert _ulps(values, np.exp(x)).max() <= 1.0
    assert kernel_module._exp_array(np.array([0.0]))[0] == 1.0


@given(st.floats(min_value=-700.0, max_value=0.0, allow_nan=False))
def test_exp_within_one_ulp_anywhere(x):
    value = kernel_module._exp_array(np.array([x]))[0]
    assert _ulps(np.array([value]), np.exp(np.array([x])))[0] <= 1.0


# -- choosing the kernel ---------------------------------------------------------


def test_the_option_and_the_environment_choose_the_kernel(monkeypatch):
    monkeypatch.delenv("GMMLAB_KERNEL", raising=False)
    assert resolve_kernel(None) == resolve_kernel("auto") == "numba"
    monkeypatch.setenv("GMMLAB_KERNEL", " NumPy ")  # the default, if set
    assert resolve_kernel(None) == resolve_kernel("auto") == "numpy"
    assert resolve_kernel("numba") == "numba"  # the option wins
    monkeypatch.setenv("GMMLAB_KERNEL", "cuda")
    with pytest.raises(ValueError, match="GMMLAB_KERNEL must be 'auto', 'numba'"):
        resolve_kernel("auto")
    assert resolve_kernel("numpy") == "numpy"  # an option never reads it


@pytest.fixture
def compiled_passes(monkeypatch) -> list:
    """A list that grows by one at every pass of the compiled kernel."""
    seen: list = []
    original = kernel_module.fused_pass

    def spy(*args, **kwargs):
        seen.append(True)
        return original(*args, **kwargs)

    monkeypatch.setattr(kernel_module, "fused_pass", spy)
    return seen


def test_the_environment_is_the_default_of_fits_and_scores(
    monkeypatch, compiled_passes
):
    X, params = _data_and_params("full", 500)
    seen = compiled_passes
    seen.clear()  # (the passes of the fit that made the parameters)
    monkeypatch.setenv("GMMLAB_KERNEL", "numpy")
    fit_em(X, 2, random_state=0)
    GaussianMixture(2, random_state=0).fit(X).score_samples(X)
    score_samples(X, params)
    assert not seen
    monkeypatch.setenv("GMMLAB_KERNEL", "numba")
    score_samples(X, params)
    assert seen
    monkeypatch.setenv("GMMLAB_KERNEL", "cuda")
    with pytest.raises(ValueError, match="GMMLAB_KERNEL must be"):
        fit_em(X, 2, random_state=0)
    with pytest.raises(ValueError, match="GMMLAB_KERNEL must be"):
        score_samples(X, params)


@pytest.mark.filterwarnings("ignore::mixtures.DegenerateComponentWarning")
@pytest.mark.parametrize("kernel", ["numba", "numpy"])
def test_a_named_kernel_is_passed_down_not_looked_up(monkeypatch, kernel):
    """With the option set, nothing in a fit or a score reads the default.

    An invalid GMMLAB_KERNEL raises wherever the default is looked up, so
    every step (initialisation, reseeding, floors, SQUAREM, the M-steps,
    the scores) must have been handed the fit's kernel. And the fits are
    the ones made without the variable.
    """
    X, _ = _data_and_params("VEV", 400)
    X = np.r_[X, np.repeat(X[:2], 20, axis=0)]  # repeated rows: floors
    means = X[[0, 0, 100, 200]]  # two equal means: a reseed at the start
    options = {
        "kernel": kernel, "max_iter": 30, "random_state": 0, "reg_covar": 0.0,
        "acceleration": "squarem", "prior": None,
    }  # fmt: skip
    cases = {
        (model, prior): {"covariance_type": model, "prior": prior}
        for model in ("full", "diag", "VEV")
        for prior in (None, "default")
    }
    cases["reseed"] = {
        "weights_init": np.full(4, 0.25),
        "means_init": means,
        "precisions_init": np.stack([np.eye(3)] * 4),
    }
    expected = {
        case: fit_em(X, 4, **{**options, **extra}) for case, extra in cases.items()
    }
    assert any(e.action == "reseed" for e in expected["reseed"].events)
    monkeypatch.setenv("GMMLAB_KERNEL", "cuda")
    for case, extra in cases.items():
        result = fit_em(X, 4, **{**options, **extra})
        assert result.events == expected[case].events
        assert_array_equal(result.lower_bounds, expected[case].lower_bounds)
        assert_array_equal(result.params.covariances, expected[case].params.covariances)
        estimator = GaussianMixture(4, **{**options, **extra}).fit(X)
        estimator.score_samples(X)
        estimator.predict(X)
        estimator.bic(X)
        em_pass(X, np.ones(len(X)), result.params, kernel=kernel)


def test_a_fit_runs_on_the_kernel_it_names(compiled_passes):
    X, _ = _data_and_params("full", 500)
    seen = compiled_passes
    seen.clear()  # (the passes of the fit that made the start)
    fit_em(X, 2, kernel="numpy", random_state=0)
    assert not seen
    fit_em(X, 2, kernel="numba", random_state=0)
    assert seen
    seen.clear()
    estimator = GaussianMixture(2, kernel="numpy", random_state=0).fit(X)
    estimator.predict(X)
    estimator.score_samples(X)
    assert not seen


@pytest.mark.parametrize("bad", ["cuda", "NUMBA", "", 3])
def test_bad_kernel_option_is_a_clear_error(bad):
    X = np.random.default_rng(0).normal(size=(50, 2))
    with pytest.raises(ValueError, match="kernel must be 'auto', 'numba'"):
        fit_em(X, 2, kernel=bad)
    with pytest.raises(ValueError, match="kernel"):
        GaussianMixture(2, kernel=bad).fit(X)


def test_resolve_kernel():
    assert resolve_kernel("numpy") == "numpy"
    assert resolve_kernel("numba") == "numba"
    for bad in ("cuda", "NUMBA", ""):
        with pytest.raises(ValueError, match="kernel must be 'auto', 'numba'"):
            resolve_kernel(bad)


#: The engine's test modules, in two halves of about equal time: each half
#: runs in its own child, the two at once (BLAS on one thread each).
_ENGINE_MODULES = (
    ["tests/test_covariance_models.py", "tests/test_degenerate.py",
     "tests/test_em_core.py"],
    ["tests/test_accelerate.py", "tests/test_fused_pass.py",
     "tests/test_sklearn_agreement.py", "tests/test_fit_em.py"],
)  # fmt: skip


@pytest.mark.slow
def test_engine_suite_passes_on_the_numpy_kernel():
    """The engine's tests with the kernel off (GMMLAB_KERNEL=numpy).

    The default run of the suite exercises the compiled kernel; this runs the
    modules that test the engine itself again on the NumPy fallback.
    """
    children = [
        subprocess.Popen(
            [sys.executable, "-m", "pytest", "-q", "-x", "-n", "0",
             "-p", "no:cacheprovider", "-m", "not slow", *modules],
            # BLAS on one thread: the NumPy kernel's many small matrix products
            # only wait on a second thread (on a busy machine, ten times
            # slower); the other core runs the other child.
            env={**os.environ, "GMMLAB_KERNEL": "numpy",
                 "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1",
                 "MKL_NUM_THREADS": "1"},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for modules in _ENGINE_MODULES
    ]  # fmt: skip
    try:
        outputs = [child.communicate(timeout=900) for child in children]
    finally:
        for child in children:
            if child.poll() is None:
                child.kill()
                child.communicate()
    for child, (out, err) in zip(children, outputs, strict=True):
        assert child.returncode == 0, out[-3000:] + err
