"""The Bayesian PyMC backend: convergence, agreement with EM, label switching."""

from __future__ import annotations

import numpy as np
import pytest
from numpy.testing import assert_array_less

pytest.importorskip("pymc")

from experiments.scenarios import s3_sample
from mixtures import fit_em
from mixtures.align import align
from mixtures.backends import get_backend
from mixtures.backends.pymc import _posterior_arrays, _summaries, relabel_draws

pytestmark = pytest.mark.slow


def _within_three_sd(fit, em_params):
    aligned_em = align(em_params, fit.params)
    sd = fit.diagnostics["posterior_sd"]
    for name, estimate, reference in (
        ("weights", fit.params.weights, aligned_em.weights),
        ("means", fit.params.means, aligned_em.means),
        ("covariances", fit.params.covariances, aligned_em.full_covariances()),
    ):
        spread = np.maximum(sd[name], 1e-9)
        assert_array_less(np.abs(estimate - reference), 3 * spread + 1e-9, err_msg=name)


def test_nuts_converges_on_the_contract_data(backend_fit, contract_data):
    fit = backend_fit("pymc")
    diagnostics = fit.diagnostics
    assert diagnostics["r_hat_max"] < 1.01
    assert diagnostics["divergences"] == 0
    assert diagnostics["ess_bulk_min"] > 100
    assert fit.converged
    assert fit.trace_kind == "draw_mean_loglik"
    assert fit.loglik_trace.size == 1000  # scored draws, capped at max_trace_draws
    em = fit_em(contract_data[0], 3, n_init=3, random_state=0).params
    _within_three_sd(fit, em)
    hdi = diagnostics["hdi_94"]["means"]
    assert hdi.shape == (3, 2, 2)
    assert np.all(hdi[..., 0] <= fit.params.means)
    assert np.all(fit.params.means <= hdi[..., 1])


def test_advi_agrees_with_em(backend_fit, contract_data):
    fit = backend_fit("pymc-advi")
    assert fit.trace_kind == "advi_mean_elbo"
    assert fit.diagnostics["final_elbo"] < 0
    em = fit_em(contract_data[0], 3, n_init=3, random_state=0).params
    aligned = align(fit.params, em)
    assert np.allclose(aligned.means, em.means, atol=0.15)


def test_label_switched_chain_is_repaired(backend_fit):
    """Swap two labels in one chain: r_hat explodes, relabelling repairs it."""
    fit = backend_fit("pymc")
    weights, means, covariances = _posterior_arrays(fit.idata)
    swap = np.array([1, 0, 2])
    weights[1] = weights[1][:, swap]
    means[1] = means[1][:, swap]
    covariances[1] = covariances[1][:, swap]
    broken = _summaries({"weights": weights, "means": means})
    assert broken["r_hat_max"] > 1.5
    repaired_w, repaired_m, _, orders = relabel_draws(
        weights, means, covariances, fit.params
    )
    repaired = _summaries({"weights": repaired_w, "means": repaired_m})
    assert repaired["r_hat_max"] < 1.01
    # The swapped chain needed a different permutation in every draw.
    assert np.all(np.any(orders[1] != orders[0], axis=-1))


def test_one_dimensional_s3_subsample():
    x, _ = s3_sample(random_state=3)
    subsample = np.random.default_rng(0).choice(x.size, 600, replace=False)
    data = x[subsample]
    fit = get_backend("pymc").fit(data, 3, random_state=0, draws=300, tune=300)
    assert fit.params.means.shape == (3, 1)
    assert fit.diagnostics["divergences"] == 0
    assert fit.diagnostics["r_hat_max"] < 1.05
    em = fit_em(data, 3, n_init=3, random_state=0).params
    _within_three_sd(fit, em)
    assert np.allclose(np.sort(fit.params.means[:, 0]), [-0.5, -0.1, 0.2], atol=0.12)
