"""The compiled orientation step of EVE and VVE against the NumPy algorithm.

The reference below is the pure NumPy implementation the compiled kernels
replaced: each pair of axes re-projects every scatter (an einsum over K) and
the solve stops at 1e-11 or at the caps. The compiled kernels keep the
rotated scatters and update them with each plane rotation instead; they must
find the same orientations, the same objective and, inside EM, the same
maxima.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import mixtures._covariance_kernels as covariance_kernels
import mixtures._covariance_mclust as covariance_mclust
import mixtures.covariance as covariance
from mixtures import fit_em


def _kernels():
    return covariance_kernels._orientation_kernels()


def _reference_sweep(scatter, orientation, inverse_diagonals):
    """One Flury & Gautschi sweep, re-projecting the scatters for every pair."""
    orientation = orientation.copy()
    n_features = orientation.shape[0]
    for i in range(n_features - 1):
        for j in range(i + 1, n_features):
            pair = orientation[:, [i, j]]
            projected = np.einsum("pi,kpq,qj->kij", pair, scatter, pair)
            a, b, e = projected[:, 0, 0], projected[:, 1, 1], projected[:, 0, 1]
            gap = inverse_diagonals[:, i] - inverse_diagonals[:, j]
            p_coef = 0.5 * float(gap @ (a - b))
            q_coef = float(gap @ e)
            if p_coef == 0.0 and q_coef == 0.0:
                continue
            angle = 0.5 * math.atan2(-q_coef, -p_coef)
            c, s = math.cos(angle), math.sin(angle)
            di, dj = pair[:, 0], pair[:, 1]
            orientation[:, i], orientation[:, j] = c * di + s * dj, -s * di + c * dj
    return orientation


def _reference_majorisation(scatter, orientation, inverse_diagonals, largest):
    n_features = scatter.shape[-1]
    shifted = largest[:, None, None] * np.eye(n_features) - scatter
    gradient = np.einsum("kij,jl,kl->il", shifted, orientation, inverse_diagonals)
    left, _, right_t = np.linalg.svd(gradient)
    return left @ right_t


def _reference_diagonals(equal_volume, projected, counts):
    if equal_volume:
        sizes = np.exp(np.mean(np.log(projected), axis=1))
        return sizes.sum() / counts.sum() * projected / sizes[:, None]
    return projected / counts[:, None]


def _reference_solve(self, scatter, counts, orientation, largest, max_iter=None):
    """The NumPy ``_CommonOrientation._solve`` the kernels replaced."""
    value = np.inf
    sweeps = max_iter or (
        covariance_mclust._INNER_MAX_ITER
        if largest is not None
        else covariance_mclust._WARM_MAX_SWEEPS
    )
    for _ in range(sweeps):
        projected = np.einsum("ji,kjl,li->ki", orientation, scatter, orientation)
        diagonals = _reference_diagonals(self.equal_volume, projected, counts)
        previous_value, value = (
            value,
            float(np.sum(counts[:, None] * np.log(diagonals) + projected / diagonals)),
        )
        if covariance_mclust._converged(previous_value, value) or not np.isfinite(
            value
        ):
            break
        if largest is not None:
            orientation = _reference_majorisation(
                scatter, orientation, 1.0 / diagonals, largest
            )
        orientation = _reference_sweep(scatter, orientation, 1.0 / diagonals)
    return value, orientation, diagonals


def _problem(seed, n_components, n_features):
    """Random SPD scatters, an orthogonal start and positive Omega_k."""
    rng = np.random.default_rng(seed)
    scales = rng.uniform(0.1, 3.0, size=(n_components, n_features, 1))
    factors = rng.normal(size=(n_components, n_features, n_features + 2)) * scales
    scatter = factors @ factors.transpose(0, 2, 1)
    start = np.ascontiguousarray(np.linalg.qr(rng.normal(size=(n_features,) * 2))[0])
    inverse_diagonals = rng.uniform(0.2, 5.0, size=(n_components, n_features))
    counts = rng.uniform(5.0, 50.0, size=n_components)
    return scatter, start, inverse_diagonals, counts


def _trace_objective(scatter, orientation, inverse_diagonals):
    """sum_k tr(W_k D Omega_k D^T): what one sweep minimises."""
    projected = np.einsum("ji,kjl,li->ki", orientation, scatter, orientation)
    return float(np.sum(projected * inverse_diagonals))


def _q_value(scatter, counts, orientation, equal_volume):
    """Q at ``orientation`` with the best shapes for it."""
    projected = np.einsum("ji,kjl,li->ki", orientation, scatter, orientation)
    diagonals = _reference_diagonals(equal_volume, projected, counts)
    return float(np.sum(counts[:, None] * np.log(diagonals) + projected / diagonals))


def test_kernels_are_compiled_and_rebound():
    kernels = _kernels()
    for name in covariance_kernels._ORIENTATION_KERNELS:
        assert hasattr(kernels[name], "py_func")  # a numba dispatcher
        assert getattr(covariance_kernels, name) is kernels[name]


@settings(max_examples=40)
@given(
    seed=st.integers(0, 2**32 - 1),
    n_components=st.integers(1, 7),
    n_features=st.integers(2, 9),
)
def test_compiled_sweep_matches_the_numpy_sweep(seed, n_components, n_features):
    scatter, start, inverse_diagonals, _ = _problem(seed, n_components, n_features)
    kernels = _kernels()
    expected = _reference_sweep(scatter, start, inverse_diagonals)

    orientation = start.copy()
    rotated = np.empty((n_components, n_features, n_features))
    kernels["_project"](scatter, orientation, rotated)
    np.testing.assert_allclose(
        rotated, start.T @ scatter @ start, rtol=1e-12, atol=1e-12 * scatter.max()
    )
    kernels["_rotation_sweep"](rotated, orientation, inverse_diagonals)

    # The same rotations (columns up to sign: an angle of +-pi/2 at a tie).
    signs = np.where(np.sum(orientation * expected, axis=0) < 0, -1.0, 1.0)
    np.testing.assert_allclose(orientation * signs, expected, atol=1e-9)
    np.testing.assert_allclose(
        orientation.T @ orientation, np.eye(n_features), atol=1e-12
    )
    # The scatters updated in place are the scatters on the new axes.
    np.testing.assert_allclose(
        rotated,
        orientation.T @ scatter @ orientation,
        rtol=1e-10,
        atol=1e-11 * np.abs(scatter).max(),
    )
    before = _trace_objective(scatter, start, inverse_diagonals)
    after = _trace_objective(scatter, orientation, inverse_diagonals)
    assert after == pytest.approx(
        _trace_objective(scatter, expected, inverse_diagonals), rel=1e-11
    )
    assert after <= before * (1 + 1e-12)


@settings(max_examples=25)
@given(
    seed=st.integers(0, 2**32 - 1),
    n_components=st.integers(1, 6),
    n_features=st.integers(2, 8),
    equal_volume=st.booleans(),
)
def test_objective_never_increases_across_sweeps(
    seed, n_components, n_features, equal_volume
):
    scatter, start, _, counts = _problem(seed, n_components, n_features)
    kernels = _kernels()
    orientation = start.copy()
    rotated = np.empty((n_components, n_features, n_features))
    diagonals = np.empty((n_components, n_features))
    kernels["_project"](scatter, orientation, rotated)
    values = [kernels["_shapes"](rotated, counts, equal_volume, diagonals)]
    assert values[0] == pytest.approx(
        _q_value(scatter, counts, start, equal_volume), rel=1e-12
    )
    for _ in range(15):
        kernels["_rotation_sweep"](rotated, orientation, 1.0 / diagonals)
        kernels["_project"](scatter, orientation, rotated)
        values.append(kernels["_shapes"](rotated, counts, equal_volume, diagonals))
    steps = np.diff(values)
    assert np.all(steps <= 1e-12 * np.abs(values[1:]))


@pytest.mark.parametrize("cold", [True, False])
@pytest.mark.parametrize("equal_volume", [True, False])
@pytest.mark.parametrize(("n_components", "n_features"), [(2, 2), (3, 5), (6, 13)])
def test_iteration_follows_the_numpy_path(
    cold, equal_volume, n_components, n_features, monkeypatch
):
    scatter, start, _, counts = _problem(7, n_components, n_features)
    largest = np.linalg.eigvalsh(scatter)[:, -1] if cold else np.empty(0)
    iterate = _kernels()["_orientation_iterations"]
    model = covariance.EVE() if equal_volume else covariance.VVE()
    start_value = _q_value(scatter, counts, start, equal_volume)

    unmoved = iterate(scatter, counts, start, largest, equal_volume, 0, 0.0)
    assert unmoved[0] == pytest.approx(start_value, rel=1e-12)
    np.testing.assert_array_equal(unmoved[1], start)

    for steps in (1, 3, 6):
        value, orientation, diagonals = iterate(
            scatter, counts, start, largest, equal_volume, steps, 0.0
        )
        # The value, the orientation and the shapes belong together.
        assert value == pytest.approx(
            _q_value(scatter, counts, orientation, equal_volume), rel=1e-12
        )
        projected = np.einsum("ji,kjl,li->ki", orientation, scatter, orientation)
        np.testing.assert_allclose(
            diagonals,
            _reference_diagonals(equal_volume, projected, counts),
            rtol=1e-12,
        )
        np.testing.assert_allclose(
            orientation.T @ orientation, np.eye(n_features), atol=1e-12
        )
        assert value <= start_value
        # The NumPy solve capped one step later reports Q after ``steps``
        # steps (it evaluates Q before each step).
        monkeypatch.setattr(covariance_mclust, "_INNER_MAX_ITER", steps + 1)
        monkeypatch.setattr(covariance_mclust, "_WARM_MAX_SWEEPS", steps + 1)
        reference, _, _ = _reference_solve(
            model, scatter, counts, start, largest if cold else None
        )
        assert value == pytest.approx(reference, rel=1e-10)


def _wine():
    from sklearn.datasets import load_wine

    X = load_wine().data
    return (X - X.mean(axis=0)) / X.std(axis=0)


@pytest.mark.parametrize("name", ["EVE", "VVE"])
def test_fits_reach_the_numpy_maximum(name, monkeypatch):
    """From the same start, EM with the compiled step and with the NumPy one
    (its old stopping rule) reach the same log-likelihood."""
    X = _wine()
    options = dict(
        covariance_type=name,
        tol=1e-10,
        max_iter=500,
        random_state=0,
        reg_covar_relative=True,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        compiled = fit_em(X, 3, **options)
        monkeypatch.setattr(
            covariance_mclust._CommonOrientation, "_solve", _reference_solve
        )
        reference = fit_em(X, 3, **options)
    assert np.all(np.diff(compiled.lower_bounds) >= -1e-12)  # never decreases
    assert compiled.log_likelihood == pytest.approx(reference.log_likelihood, rel=1e-6)
    assert compiled.log_likelihood >= reference.log_likelihood - 1e-6 * abs(
        reference.log_likelihood
    )
