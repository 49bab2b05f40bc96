"""The parsimonious covariance models (Celeux & Govaert 1995) and MAP-EM.

Every model's M-step is checked against a general-purpose optimiser over an
independent parameterisation of that model's set (volume, shape and
orientation written out explicitly), its parameter count against the rank of
that parameterisation's Jacobian, EM against a decreasing log-likelihood,
and recovery against the truth of data drawn from the model.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from scipy import linalg, optimize

import mixtures._covariance_mclust as covariance_mclust
from mixtures import GaussianMixture
from mixtures._parallel import resolve_kernel
from mixtures.align import match_components
from mixtures.covariance import (
    MCLUST_MODELS,
    get_covariance_model,
    mclust_name,
    models_for,
)
from mixtures.em import SufficientStats, m_step
from mixtures.params import MixtureParams
from mixtures.prior import ConjugatePrior

# ---------------------------------------------------------------------------
# An independent parameterisation of each model: Sigma_k = lambda_k D_k A_k D_k^T


def _n_free(model: str, K: int, D: int) -> tuple[int, int, int]:
    volume, shape, orientation = model
    n_vol = K if volume == "V" else 1
    n_shape = {"V": K * (D - 1), "E": D - 1, "I": 0}[shape]
    n_orient = {"V": K * D * (D - 1) // 2, "E": D * (D - 1) // 2, "I": 0}[orientation]
    return n_vol, n_shape, n_orient


def _orthogonal(theta: np.ndarray, D: int) -> np.ndarray:
    skew = np.zeros((D, D))
    skew[np.triu_indices(D, 1)] = theta
    return linalg.expm(skew - skew.T)


def _covariances(model: str, theta: np.ndarray, K: int, D: int) -> np.ndarray:
    n_vol, n_shape, _n_orient = _n_free(model, K, D)
    vol = np.exp(theta[:n_vol]) * np.ones(K)
    shape_params = (
        theta[n_vol : n_vol + n_shape].reshape(-1, D - 1) if n_shape else None
    )
    orient = theta[n_vol + n_shape :]
    out = np.empty((K, D, D))
    for k in range(K):
        if shape_params is None:
            a = np.ones(D)
        else:
            row = shape_params[k if model[1] == "V" else 0]
            a = np.exp(np.r_[row, -row.sum()])  # det A = 1
        if model[2] == "I":
            rotation = np.eye(D)
        else:
            m = D * (D - 1) // 2
            start = k * m if model[2] == "V" else 0
            rotation = _orthogonal(orient[start : start + m], D)
        out[k] = vol[k] * rotation @ np.diag(a) @ rotation.T
    return out


def _objective(scatter, counts, covariances) -> float:
    """sum_k n_k log det Sigma_k + tr(W_k Sigma_k^-1); huge off the domain."""
    sign, logdet = np.linalg.slogdet(covariances)
    if not np.all(np.isfinite(covariances)) or np.any(sign <= 0):
        return 1e300
    traces = np.einsum("kij,kji->k", scatter, np.linalg.pinv(covariances))
    value = float(np.sum(counts * logdet + traces))
    return value if np.isfinite(value) else 1e300


def _model_step(name, scatter, counts):
    """The package's M-step for given scatters, as full (K, D, D) matrices."""
    model = get_covariance_model(name)
    K, D = counts.shape[0], scatter.shape[-1]
    zeros = np.zeros((K, D))
    moments = (counts, zeros, zeros, model.moments_from_full(scatter), counts)
    # The suite's kernel (GMMLAB_KERNEL, else numba): both run these tests.
    covariances = model.covariances_from_moments(
        moments, 0.0, kernel=resolve_kernel(None)
    )
    return model.to_full(covariances, K, D)


def _random_scatter(rng, K, D, counts):
    out = []
    for k in range(K):
        Y = rng.standard_normal((int(counts[k]), D)) @ rng.standard_normal((D, D))
        Y *= rng.uniform(0.3, 3.0)
        out.append(Y.T @ Y)
    return np.array(out)


@pytest.mark.parametrize("name", MCLUST_MODELS)
# D = 3 runs BFGS over up to 12 parameters from 4 starts: in the slow tier.
@pytest.mark.parametrize("D", [2, pytest.param(3, marks=pytest.mark.slow)])
def test_m_step_minimises_expected_complete_data_objective(name, D):
    rng = np.random.default_rng([sum(map(ord, name)), D])
    K = 3
    counts = rng.integers(8, 40, size=K).astype(float)
    scatter = _random_scatter(rng, K, D, counts)
    ours = _model_step(name, scatter, counts)
    ours_value = _objective(scatter, counts, ours)

    size = sum(_n_free(name, K, D))
    best = np.inf
    for _ in range(4):
        start = rng.normal(scale=0.5, size=size)
        with np.errstate(all="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            result = optimize.minimize(
                lambda t: _objective(scatter, counts, _covariances(name, t, K, D)),
                start,
                method="BFGS",
                options={"gtol": 1e-9, "maxiter": 2000},
            )
        best = min(best, result.fun)
    # No start of a general optimiser beats the M-step...
    assert ours_value <= best + 1e-7 * abs(best)
    # ...and the optimiser reaches it, so the M-step's answer is the optimum.
    assert best <= ours_value + 1e-4 * abs(ours_value)


@pytest.mark.parametrize("name", MCLUST_MODELS)
def test_m_step_stays_in_the_model_set(name):
    rng = np.random.default_rng(7)
    K, D = 4, 3
    counts = rng.integers(10, 50, size=K).astype(float)
    covariances = _model_step(name, _random_scatter(rng, K, D, counts), counts)
    values, vectors = np.linalg.eigh(covariances)
    values, vectors = values[:, ::-1], vectors[:, :, ::-1]
    volumes = np.prod(values, axis=1) ** (1 / D)
    shapes = values / volumes[:, None]
    volume, shape, orientation = name
    if volume == "E":
        np.testing.assert_allclose(volumes, volumes[0], rtol=1e-8)
    if shape == "I":
        np.testing.assert_allclose(shapes, 1.0, rtol=1e-8)
    if shape == "E":
        np.testing.assert_allclose(shapes, shapes[:1].repeat(K, 0), rtol=1e-7)
    if orientation == "I":
        off = covariances - np.einsum("kii->ki", covariances)[:, :, None] * np.eye(D)
        np.testing.assert_allclose(off, 0.0, atol=1e-12)
    if orientation == "E" and shape != "I":
        # One orthogonal matrix diagonalises every component.
        common = vectors[0]
        rotated = np.einsum("ji,kjl,lm->kim", common, covariances, common)
        diagonal = np.einsum("kii->ki", rotated)[:, :, None] * np.eye(D)
        np.testing.assert_allclose(rotated, diagonal, atol=1e-7 * values.max())


@pytest.mark.parametrize("name", MCLUST_MODELS)
@pytest.mark.parametrize("D", [2, 3])
def test_parameter_count_is_the_dimension_of_the_model_set(name, D):
    K = 3
    rng = np.random.default_rng(1)
    theta = rng.normal(scale=0.7, size=sum(_n_free(name, K, D)))
    step = 1e-6
    iu = np.triu_indices(D)
    columns = []
    for i in range(theta.size):
        up, down = theta.copy(), theta.copy()
        up[i] += step
        down[i] -= step
        diff = _covariances(name, up, K, D) - _covariances(name, down, K, D)
        columns.append(diff[:, iu[0], iu[1]].ravel() / (2 * step))
    rank = np.linalg.matrix_rank(np.array(columns).T, tol=1e-6)
    assert get_covariance_model(name).n_parameters(K, D) == rank


def _faithful():
    import pandas as pd

    from mixtures.data import DATA_FOLDER

    return pd.read_csv(DATA_FOLDER / "faithful.csv").to_numpy(float)


@pytest.mark.parametrize("name", MCLUST_MODELS)
def test_log_likelihood_never_decreases(name):
    X = _faithful()
    for seed in range(2):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            fit = GaussianMixture(
                4,
                covariance_type=name,
                tol=1e-10,
                max_iter=300,
                random_state=seed,
                init_params="random",
            ).fit(X)
        trace = fit.lower_bounds_
        assert np.all(np.diff(trace) >= -1e-11 * np.abs(trace[1:]))


def _truth(name: str, rng) -> MixtureParams:
    """Three well-separated components whose covariances lie in ``name``'s set."""
    K, D = 3, 2
    theta = rng.normal(scale=0.6, size=sum(_n_free(name, K, D)))
    covariances = _covariances(name, theta, K, D)
    means = np.array([[0.0, 0.0], [12.0, 0.0], [0.0, 12.0]])
    return MixtureParams(np.array([0.3, 0.3, 0.4]), means, covariances)


@pytest.mark.parametrize("name", MCLUST_MODELS)
def test_parameters_are_recovered_from_data_drawn_from_the_model(name):
    rng = np.random.default_rng(sum(map(ord, name)))
    truth = _truth(name, rng)
    X, _ = truth.sample(4000, rng)
    fit = GaussianMixture(3, covariance_type=name, random_state=0, n_init=2).fit(X)
    fitted = fit.params_
    order = match_components(fitted, truth)
    fitted = fitted.permute(order)
    np.testing.assert_allclose(fitted.weights, truth.weights, atol=0.03)
    np.testing.assert_allclose(fitted.means, truth.means, atol=0.15)
    full, true_full = fitted.full_covariances(), truth.full_covariances()
    scale = np.linalg.norm(true_full, axis=(1, 2))
    error = np.linalg.norm(full - true_full, axis=(1, 2)) / scale
    assert np.all(error < 0.12), error


# ---------------------------------------------------------------------------
# Names, aliases, shapes


@pytest.mark.parametrize(
    ("alias", "sklearn_name"),
    [("VII", "spherical"), ("VVI", "diag"), ("EEE", "tied"), ("VVV", "full")],
)
def test_mclust_names_of_scikit_learn_models_fit_identically(alias, sklearn_name):
    X = _faithful()
    a = GaussianMixture(3, covariance_type=alias, random_state=0).fit(X)
    b = GaussianMixture(3, covariance_type=sklearn_name, random_state=0).fit(X)
    np.testing.assert_array_equal(a.covariances_, b.covariances_)
    assert a.covariances_.shape == b.covariances_.shape
    assert mclust_name(sklearn_name) == alias


@pytest.mark.parametrize("name", ["EII", "EEI", "VEI", "EVI", "VEE", "EVE", "VVE"])
def test_constrained_models_store_full_covariances(name):
    X = _faithful()
    fit = GaussianMixture(2, covariance_type=name, random_state=0).fit(X)
    assert fit.covariances_.shape == (2, 2, 2)
    assert fit.precisions_.shape == (2, 2, 2)
    np.testing.assert_allclose(
        fit.precisions_ @ fit.covariances_,
        np.broadcast_to(np.eye(2), (2, 2, 2)),
        atol=1e-8,
    )
    Y, _labels = fit.sample(50)
    assert Y.shape == (50, 2)


def test_univariate_models():
    x = _faithful()[:, :1]
    assert models_for(1) == ("E", "V")
    e = GaussianMixture(2, covariance_type="E", random_state=0).fit(x)
    tied = GaussianMixture(2, covariance_type="tied", random_state=0).fit(x)
    v = GaussianMixture(2, covariance_type="V", random_state=0).fit(x)
    spherical = GaussianMixture(2, covariance_type="spherical", random_state=0).fit(x)
    np.testing.assert_allclose(e.covariances_, tied.covariances_)
    np.testing.assert_allclose(v.covariances_, spherical.covariances_)
    assert e.covariances_.shape == (1, 1)
    assert v.covariances_.shape == (2,)
    with pytest.raises(ValueError, match="univariate"):
        GaussianMixture(2, covariance_type="E").fit(_faithful())


def test_unknown_model_name_lists_the_choices():
    with pytest.raises(ValueError, match="EVE"):
        GaussianMixture(2, covariance_type="XYZ").fit(_faithful())


# ---------------------------------------------------------------------------
# MAP-EM with the prior of Fraley & Raftery (2007)


def _stats(X, resp):
    counts = resp.sum(axis=0)
    means = resp.T @ X / counts[:, None]
    centred = X[None] - means[:, None]
    second = np.einsum("nk,kni,knj->kij", resp, centred, centred)
    return (
        counts,
        means,
        SufficientStats(counts, means, np.zeros_like(means), second, float(X.shape[0])),
    )


def test_prior_m_step_matches_fraley_raftery_vvv_and_eee():
    rng = np.random.default_rng(3)
    X = rng.normal(size=(60, 2)) * [1.0, 3.0]
    resp = rng.dirichlet(np.ones(3), size=60)
    counts, xbar, stats = _stats(X, resp)
    K, D = 3, 2
    resolved = ConjugatePrior().resolve(X, np.ones(60), K)
    kappa, nu = 0.01, D + 2
    mu_p = X.mean(axis=0)
    scale = np.cov(X.T) / K ** (2 / D)
    np.testing.assert_allclose(resolved.scale, scale)

    # Fraley & Raftery (2007), Table 2, VVV and EEE, written out directly.
    vvv_means = (counts[:, None] * xbar + kappa * mu_p) / (counts[:, None] + kappa)
    shrink = [
        kappa * n / (n + kappa) * np.outer(m - mu_p, m - mu_p)
        for n, m in zip(counts, xbar, strict=True)
    ]
    W = stats.second_moments
    vvv = np.array(
        [(scale + W[k] + shrink[k]) / (nu + counts[k] + D + 2) for k in range(K)]
    )
    eee = (scale + W.sum(0) + sum(shrink)) / (nu + counts.sum() + D + 1 + K)

    _, means, covariances = m_step(stats, get_covariance_model("VVV"), 0.0, resolved)
    np.testing.assert_allclose(means, vvv_means, rtol=1e-12)
    np.testing.assert_allclose(covariances, vvv, rtol=1e-9)
    tied_model = get_covariance_model("EEE")
    tied_stats = SufficientStats(
        counts, xbar, np.zeros_like(xbar), W.sum(0), float(X.shape[0])
    )
    _, _, tied = m_step(tied_stats, tied_model, 0.0, resolved)
    np.testing.assert_allclose(tied, eee, rtol=1e-9)


def test_prior_removes_the_spike_on_tied_values():
    """Old Faithful's whole-minute waiting times attract a spike at K = 5."""
    X = _faithful()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fits = [
            GaussianMixture(
                6,
                covariance_type="VVV",
                random_state=s,
                prior="default",
                tol=1e-6,
                max_iter=1000,
            ).fit(X)
            for s in range(4)
        ]
    data_variance = X.var(axis=0)
    for fit in fits:
        smallest = np.linalg.eigvalsh(fit.covariances_)[:, 0]
        assert np.all(smallest > 1e-3 * data_variance.min())


def test_bad_prior_is_refused():
    with pytest.raises(ValueError, match="prior"):
        GaussianMixture(2, prior="yes").fit(_faithful())
    with pytest.raises(ValueError, match="dof"):
        GaussianMixture(2, prior={"dof": 0.5}).fit(_faithful())


@pytest.mark.parametrize("name", ["EVE", "VVE"])
def test_capped_orientation_sweeps_reach_the_same_maximum(name, monkeypatch):
    """Inside EM the common orientation takes at most a few sweeps per M-step
    (a generalised EM step); solving each M-step to 1e-11 reaches the same
    maximum, only more slowly."""
    from sklearn.datasets import load_wine

    X = load_wine().data[:, :6]
    options = dict(covariance_type=name, tol=1e-10, max_iter=3000, random_state=0)
    capped = GaussianMixture(3, **options).fit(X)
    monkeypatch.setattr(
        covariance_mclust, "_WARM_MAX_SWEEPS", covariance_mclust._INNER_MAX_ITER
    )
    solved = GaussianMixture(3, **options).fit(X)
    assert np.all(np.diff(capped.lower_bounds_) >= -1e-12)  # never decreases
    assert capped.score(X) == pytest.approx(solved.score(X), abs=1e-6)
