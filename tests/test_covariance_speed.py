"""The fast paths of :mod:`mixtures.covariance` against the code they replaced.

On small data an EM iteration costs tens of microseconds, most of it Python
and NumPy call overhead in the covariance models, so several of their steps
have a compiled or leaner form:

* the scatter and ``reg_covar`` of the M-step (every model but 'tied',
  'diag' and 'spherical') and the final symmetrisation of the constrained
  models are compiled loops doing NumPy's operations in NumPy's order: the
  same numbers to the last bit;
* Diag and Spherical ``precision_cholesky`` are compiled the same way;
* Tied ``precision_cholesky`` calls LAPACK ``?potrf`` and ``?trtri``
  directly, as scipy.linalg did for it: the same numbers;
* the inner iteration of VEI and VEV (volumes and a common shape) is
  compiled; its sums and logarithms may round differently, so it must reach
  the NumPy iteration's solution to ~1e-12 and fits their likelihoods to
  1e-9.

Each is checked here against a NumPy reference written out below (the code
as it was) or against the NumPy fallback the method still has, on random
problems of several sizes including near-singular ones. Behaviour only: no
timings are asserted.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from scipy import linalg

import mixtures._covariance_kernels as covariance_kernels
import mixtures._covariance_linalg as covariance_linalg
import mixtures._covariance_mclust as covariance_mclust
import mixtures.covariance as covariance
from mixtures import fit_em
from mixtures.covariance import MCLUST_MODELS, get_covariance_model
from mixtures.data import load_faithful

FAITHFUL = np.asarray(load_faithful(), dtype=float)
#: The models stored as full covariances with a constrained M-step.
CONSTRAINED = [
    name
    for name in MCLUST_MODELS
    if isinstance(get_covariance_model(name), covariance_mclust._Constrained)
]
SIZES = [(1, 1), (1, 3), (2, 2), (3, 2), (3, 5), (4, 9), (6, 13)]


#: The kernel of the fast paths: the methods below take it explicitly, and
#: the fits name it, so they run even when the suite runs with
#: GMMLAB_KERNEL=numpy.
NUMBA = "numba"


# ---------------------------------------------------------------------------
# NumPy references: the code the fast paths replaced


def _reference_scatter(weight_sums, first_moments, offsets, second_moments):
    outer_first = np.einsum("ki,kj->kij", first_moments, offsets)
    scatter = (
        second_moments
        - outer_first
        - np.swapaxes(outer_first, 1, 2)
        + weight_sums[:, None, None] * np.einsum("ki,kj->kij", offsets, offsets)
    )
    return 0.5 * (scatter + np.swapaxes(scatter, 1, 2))


def _reference_full_covariances(
    weight_sums, first_moments, offsets, second_moments, denominators, reg_covar
):
    covariances = (
        _reference_scatter(weight_sums, first_moments, offsets, second_moments)
        / denominators[:, None, None]
    )
    diagonal = np.arange(covariances.shape[-1])
    covariances[:, diagonal, diagonal] += reg_covar
    return covariances


def _reference_regularised_scatter(
    weight_sums, first_moments, offsets, second_moments, denominators, reg_covar
):
    scatter = _reference_scatter(weight_sums, first_moments, offsets, second_moments)
    diagonal = np.arange(scatter.shape[-1])
    scatter[:, diagonal, diagonal] += denominators[:, None] * reg_covar
    return scatter


def _reference_common_shape(values, counts, shape, max_iter=None, tol=None):
    """Celeux & Govaert's alternation as NumPy expressions (the old code)."""
    max_iter = covariance_mclust._INNER_MAX_ITER if max_iter is None else max_iter
    tol = covariance_mclust._INNER_TOL if tol is None else tol
    n_features = values.shape[1]

    def geometric_mean(x):
        return np.exp(np.mean(np.log(x)))

    shape = shape / geometric_mean(shape)
    value = np.inf
    for _ in range(max_iter):
        volumes = (values / shape).sum(axis=1) / (n_features * counts)
        shape = (values / volumes[:, None]).sum(axis=0)
        shape = shape / geometric_mean(shape)
        previous_value, value = (
            value,
            float(
                np.sum(counts * n_features * np.log(volumes))
                + np.sum(values / (volumes[:, None] * shape))
            ),
        )
        if abs(previous_value - value) <= tol * max(1.0, abs(value)):
            break
    return (values / shape).sum(axis=1) / (n_features * counts), shape


def _reference_common_shape_step(values, counts, shape, kernel):
    """:func:`_reference_common_shape` in place of the module's, any kernel."""
    return _reference_common_shape(values, counts, shape)


def _compiled_common_shape(values, counts, shape):
    """The compiled inner iteration of VEI and VEV, called directly."""
    return covariance_kernels._kernels()["_common_shape_iterations"](
        np.array(values, dtype=np.float64, order="C"),
        np.array(counts, dtype=np.float64, order="C"),
        np.array(shape, dtype=np.float64, order="C"),
        covariance_mclust._INNER_MAX_ITER,
        covariance_mclust._INNER_TOL,
    )


def _reference_diag_factors(covariances, floor):
    collapsed = ~np.all(np.isfinite(covariances) & (covariances >= floor), axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        prec_chol = 1.0 / np.sqrt(covariances)
    prec_chol[collapsed] = 1.0
    return prec_chol, collapsed


def _reference_tied_factor(matrix, floor):
    """scipy.linalg.cholesky, then get_lapack_funcs' trtri and np.tril."""
    if not np.all(np.isfinite(matrix)):
        return np.eye(matrix.shape[0]), np.ones(1, dtype=bool)
    try:
        lower = linalg.cholesky(matrix, lower=True, check_finite=False)
    except linalg.LinAlgError:
        return np.eye(matrix.shape[0]), np.ones(1, dtype=bool)
    pivots = np.diagonal(lower) ** 2
    if np.any(pivots < floor) or not np.all(np.isfinite(lower)):
        return np.eye(matrix.shape[0]), np.ones(1, dtype=bool)
    (trtri,) = linalg.lapack.get_lapack_funcs(("trtri",), (lower,))
    inverse, info = trtri(lower, lower=1)
    assert info == 0
    return np.tril(inverse).T, np.zeros(1, dtype=bool)


# ---------------------------------------------------------------------------
# Random problems


def _moments(rng, n_components, n_features, near_singular=False):
    """M-step inputs as the EM loop makes them: moments about centres."""
    weight_sums = rng.uniform(0.5, 80.0, n_components)
    first = rng.normal(size=(n_components, n_features)) * weight_sums[:, None]
    second = np.empty((n_components, n_features, n_features))
    scales = np.exp(rng.normal(size=n_features) * 3.0)  # features' units differ
    for k in range(n_components):
        rank = 1 if near_singular else n_features + 3
        y = rng.normal(size=(rank, n_features)) * scales
        if near_singular:  # rank one plus a rounding-sized rest
            y = np.vstack([y, 1e-9 * rng.normal(size=(n_features, n_features))])
        centred = y + first[k] / weight_sums[k]
        second[k] = centred.T @ centred * (weight_sums[k] / len(centred))
    # The kernel mirrors its upper triangles; the NumPy pass need not be
    # exactly symmetric: a last-bit asymmetry exercises both halves.
    second *= 1.0 + 1e-16 * rng.normal(size=second.shape)
    offsets = first / (weight_sums + 1e-10)[:, None]
    denominators = weight_sums + 1e-10
    return weight_sums, first, offsets, second, denominators


def _reg_values(n_features):
    return [0.0, 1e-6, np.float64(3e-4), np.linspace(1e-7, 1e-5, n_features)]


# ---------------------------------------------------------------------------
# The compiled M-step scatter: the same numbers


def test_step_kernels_are_compiled_and_rebound():
    kernels = covariance_kernels._kernels()
    for name in (
        covariance_kernels._STEP_KERNELS + covariance_kernels._ORIENTATION_KERNELS
    ):
        assert hasattr(kernels[name], "py_func")  # a numba dispatcher
        assert getattr(covariance_kernels, name) is kernels[name]
    assert covariance_kernels._orientation_kernels() is kernels


@pytest.mark.parametrize("near_singular", [False, True])
@pytest.mark.parametrize(("n_components", "n_features"), SIZES)
def test_full_m_step_is_the_numpy_m_step(n_components, n_features, near_singular):
    rng = np.random.default_rng([n_components, n_features, near_singular])
    moments = _moments(rng, n_components, n_features, near_singular)
    model = get_covariance_model("full")
    for reg_covar in _reg_values(n_features):
        ours = model.covariances_from_moments(moments, reg_covar, kernel=NUMBA)
        np.testing.assert_array_equal(
            ours, _reference_full_covariances(*moments, reg_covar)
        )
        assert ours.dtype == np.float64
        assert ours.flags.c_contiguous


@pytest.mark.parametrize("near_singular", [False, True])
@pytest.mark.parametrize(("n_components", "n_features"), SIZES)
def test_regularised_scatter_is_the_numpy_scatter(
    n_components, n_features, near_singular
):
    rng = np.random.default_rng([n_components, n_features, near_singular, 1])
    moments = _moments(rng, n_components, n_features, near_singular)
    kernel = covariance_kernels._kernels()["_regularised_scatter"]
    for reg_covar in _reg_values(n_features):
        reg = covariance_linalg._feature_vector(reg_covar, n_features)
        np.testing.assert_array_equal(
            kernel(*moments, reg, True),
            _reference_regularised_scatter(*moments, reg_covar),
        )
        np.testing.assert_array_equal(
            kernel(*moments, reg, False),
            _reference_full_covariances(*moments, reg_covar),
        )


@pytest.mark.parametrize("name", CONSTRAINED)
@pytest.mark.parametrize(("n_components", "n_features"), [(3, 2), (4, 5)])
def test_constrained_m_steps_match_their_numpy_fallback(
    monkeypatch, name, n_components, n_features
):
    """Compiled scatter and symmetrisation against the NumPy ones they skip."""
    rng = np.random.default_rng([n_components, n_features, 2])
    moments = _moments(rng, n_components, n_features)
    model = get_covariance_model(name)
    for reg_covar in (1e-6, np.linspace(1e-7, 1e-5, n_features)):
        ours = model.covariances_from_moments(moments, reg_covar, kernel=NUMBA)
        with monkeypatch.context() as patch:
            # VEI and VEV: the compiled inner iteration in both (it is
            # compared with the NumPy one below).
            patch.setattr(
                covariance_mclust,
                "_volumes_and_common_shape_numpy",
                _compiled_common_shape,
            )
            reference = model.covariances_from_moments(
                moments, reg_covar, kernel="numpy"
            )
        np.testing.assert_array_equal(ours, reference, err_msg=name)


def test_symmetrised_is_half_the_sum_with_the_transpose():
    rng = np.random.default_rng(4)
    for n_components, n_features in SIZES:
        matrices = rng.normal(size=(n_components, n_features, n_features))
        matrices[0, 0, -1] = np.inf  # inf and NaN propagate as in NumPy
        np.testing.assert_array_equal(
            covariance_kernels._kernels()["_symmetrised"](matrices),
            0.5 * (matrices + np.swapaxes(matrices, 1, 2)),
        )


def test_unusual_inputs_take_the_numpy_path():
    """Other dtypes, shapes or a per-component reg_covar: NumPy, as before."""
    rng = np.random.default_rng(5)
    moments = _moments(rng, 3, 4)
    weight_sums, first, offsets, second, denominators = moments
    model = get_covariance_model("full")
    per_component = rng.uniform(1e-7, 1e-5, size=(3, 4))
    np.testing.assert_array_equal(
        model.covariances_from_moments(moments, per_component, kernel=NUMBA),
        _reference_full_covariances(*moments, per_component),
    )
    compiled_moments = covariance_linalg._compiled_moments
    assert compiled_moments(moments, per_component, NUMBA) is None
    as_float32 = [a.astype(np.float32) for a in (first, offsets, second)]
    assert (
        compiled_moments((weight_sums, *as_float32, denominators), 1e-6, NUMBA) is None
    )
    # second moments of another shape (a broadcasting NumPy expression)
    assert (
        compiled_moments(
            (weight_sums, first, offsets, second[0], denominators), 1e-6, NUMBA
        )
        is None
    )
    # and on the NumPy kernel, never
    assert compiled_moments(moments, 1e-6, "numpy") is None
    assert compiled_moments(moments, 1e-6, NUMBA) is not None


# ---------------------------------------------------------------------------
# Precision factors: the same numbers and the same collapsed components


def _variances(rng, n_components, n_features):
    variances = np.exp(rng.normal(size=(n_components, n_features)) * 3.0)
    floor = np.full(n_features, 1e-3)
    if n_components > 1:
        variances[1, 0] = 1e-3  # exactly at the floor: kept
        variances[-1, -1] = 0.999e-3  # below it: collapsed
    return variances, floor


@pytest.mark.parametrize(("n_components", "n_features"), SIZES)
def test_diag_factors_are_the_numpy_factors(n_components, n_features):
    rng = np.random.default_rng([n_components, n_features, 6])
    variances, floor = _variances(rng, n_components, n_features)
    model = get_covariance_model("diag")
    cases = [variances]
    for bad in (np.nan, np.inf, -1.0, 0.0):
        broken = variances.copy()
        broken[0, -1] = bad
        cases.append(broken)
    for case in cases:
        for floor_value in (floor, 1e-3, np.zeros(n_features), floor[:1]):
            factors, collapsed = model.precision_cholesky(
                case, floor_value, kernel=NUMBA
            )
            expected_factors, expected_collapsed = _reference_diag_factors(
                case, floor_value
            )
            np.testing.assert_array_equal(factors, expected_factors)
            np.testing.assert_array_equal(collapsed, expected_collapsed)
    # A read-only array (a MixtureParams' covariances) takes the NumPy path.
    frozen = variances.copy()
    frozen.flags.writeable = False
    np.testing.assert_array_equal(
        model.precision_cholesky(frozen, floor, kernel=NUMBA)[0],
        _reference_diag_factors(variances, floor)[0],
    )


@pytest.mark.parametrize("n_features", [1, 2, 7, 8, 13, 40])
def test_spherical_factors_are_the_numpy_factors(n_features):
    rng = np.random.default_rng([n_features, 7])
    # A floor whose mean rounds differently with a sequential sum (D >= 8):
    # the mean must be np.mean's.
    floor = rng.uniform(0.0, 1.0, n_features) * 10.0 ** rng.integers(-8, 3, n_features)
    mean_floor = np.mean(floor)
    variances = np.array(
        [mean_floor, np.nextafter(mean_floor, 0.0), 2.0 * mean_floor, np.nan, 1e3]
    )
    model = get_covariance_model("spherical")
    factors, collapsed = model.precision_cholesky(variances, floor, kernel=NUMBA)
    expected, expected_collapsed = _reference_diag_factors(
        variances[:, None], np.atleast_1d(mean_floor)
    )
    np.testing.assert_array_equal(factors, expected[:, 0])
    np.testing.assert_array_equal(collapsed, expected_collapsed)
    np.testing.assert_array_equal(collapsed, [False, True, False, True, False])


def _spd(rng, n_features, condition=1.0):
    q = np.linalg.qr(rng.normal(size=(n_features, n_features)))[0]
    values = np.geomspace(1.0, 1.0 / condition, n_features)
    return (q * values) @ q.T


@pytest.mark.parametrize("n_features", [1, 2, 3, 5, 13, 40])
def test_tied_factor_is_scipys_factor(n_features):
    rng = np.random.default_rng([n_features, 8])
    model = get_covariance_model("tied")
    floor = np.full(n_features, 1e-12)
    matrices = [
        _spd(rng, n_features),
        _spd(rng, n_features, condition=1e12),  # near-singular, still kept
        _spd(rng, n_features, condition=1e20),  # pivots below the floor
        -_spd(rng, n_features),  # not positive definite
        np.full((n_features, n_features), np.nan),
    ]
    matrices[0][0, 0] *= 1e6  # features in different units
    if n_features > 1:
        broken = _spd(rng, n_features)
        broken[0, -1] = np.inf  # the upper triangle, which potrf never reads
        matrices.append(broken)
    for matrix in matrices:
        for dtype in (np.float64, np.float32):
            case = matrix.astype(dtype)
            factor, collapsed = model.precision_cholesky(case, floor, kernel=NUMBA)
            expected, expected_collapsed = _reference_tied_factor(case, floor)
            np.testing.assert_array_equal(collapsed, expected_collapsed)
            np.testing.assert_array_equal(factor, expected)
            assert factor.dtype == expected.dtype
            if not collapsed[0]:  # the same memory layout as before, too
                assert factor.flags.f_contiguous == expected.flags.f_contiguous


def test_full_factor_takes_any_form_of_floor():
    rng = np.random.default_rng(9)
    model = get_covariance_model("full")
    covariances = np.stack([_spd(rng, 4, condition=10.0**k) for k in (0, 3, 5)])
    reference = model.precision_cholesky(covariances, np.full(4, 1e-6), kernel=NUMBA)
    strided = np.full(8, 1e-6)[::2]
    for floor in (1e-6, np.float64(1e-6), np.array([1e-6]), strided, [1e-6] * 4):
        factors, collapsed = model.precision_cholesky(covariances, floor, kernel=NUMBA)
        np.testing.assert_array_equal(factors, reference[0])
        np.testing.assert_array_equal(collapsed, reference[1])
    assert model.precision_cholesky(covariances, 1e-6, kernel=NUMBA)[1].tolist() == [
        False,
        False,
        False,
    ]
    assert model.precision_cholesky(covariances, 1e-2, kernel=NUMBA)[1].tolist() == [
        False,
        True,
        True,
    ]


# ---------------------------------------------------------------------------
# The compiled VEI / VEV inner iteration: the NumPy iteration's solution


def _shape_problem(seed):
    rng = np.random.default_rng(seed)
    n_components = int(rng.integers(1, 9))
    n_features = int(rng.integers(1, 16))
    values = (
        rng.gamma(rng.uniform(0.3, 3.0), size=(n_components, n_features))
        * rng.uniform(0.01, 100.0, size=(n_components, 1))
        * np.exp(2.0 * rng.normal(size=n_features))
    )
    if seed % 3 == 0:  # near-singular: one direction almost without variance
        values[rng.integers(n_components), rng.integers(n_features)] *= 1e-13
    counts = rng.uniform(2.0, 200.0, n_components)
    start = values.sum(axis=0) if seed % 2 else np.exp(rng.normal(size=n_features))
    return values, counts, start


@pytest.mark.parametrize("seed", range(60))
def test_common_shape_reaches_the_numpy_solution(seed):
    values, counts, start = _shape_problem(seed)
    volumes, shape = covariance_mclust._volumes_and_common_shape(
        values, counts, start, NUMBA
    )
    expected_volumes, expected_shape = _reference_common_shape(values, counts, start)
    np.testing.assert_allclose(volumes, expected_volumes, rtol=1e-12, atol=0)
    np.testing.assert_allclose(shape, expected_shape, rtol=1e-12, atol=0)
    assert np.prod(shape) == pytest.approx(1.0, rel=1e-12)


@pytest.mark.parametrize("seed", range(0, 60, 7))
def test_common_shape_numpy_fallback_is_the_numpy_iteration(seed):
    values, counts, start = _shape_problem(seed)
    ours = covariance_mclust._volumes_and_common_shape(values, counts, start, "numpy")
    for got, want in zip(
        ours, _reference_common_shape(values, counts, start), strict=True
    ):
        np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("seed", range(10))
def test_common_shape_steps_are_the_numpy_steps(seed):
    """A fixed number of steps (no stopping rule): step for step the same."""
    values, counts, start = _shape_problem(seed)
    kernel = covariance_kernels._kernels()["_common_shape_iterations"]
    for steps in (1, 2, 7):
        volumes, shape = kernel(values, counts, start, steps, 0.0)
        expected = _reference_common_shape(values, counts, start, steps, 0.0)
        np.testing.assert_allclose(volumes, expected[0], rtol=1e-13, atol=0)
        np.testing.assert_allclose(shape, expected[1], rtol=1e-13, atol=0)


def test_common_shape_degenerate_values_behave_as_numpy():
    """Zero or non-finite variances give NumPy's NaN and inf, not an error."""
    counts = np.array([10.0, 20.0, 30.0])
    rng = np.random.default_rng(10)
    for bad in (0.0, np.inf, np.nan):
        values = rng.uniform(0.5, 2.0, size=(3, 4))
        values[1, 2] = bad
        start = values.sum(axis=0)
        with np.errstate(all="ignore"):
            ours = covariance_mclust._volumes_and_common_shape(
                values, counts, start, NUMBA
            )
            expected = _reference_common_shape(values, counts, start)
        for got, want in zip(ours, expected, strict=True):
            np.testing.assert_array_equal(np.isnan(got), np.isnan(want))
            np.testing.assert_allclose(got, want, rtol=1e-12, equal_nan=True)


def test_common_shape_checks_shapes():
    with pytest.raises(ValueError, match="shape"):
        covariance_mclust._volumes_and_common_shape(
            np.ones((3, 2)), np.ones(2), np.ones(2), NUMBA
        )


@pytest.mark.parametrize("name", ["VEI", "VEV"])
@pytest.mark.parametrize(("n_components", "n_features"), [(2, 2), (3, 5), (5, 13)])
def test_vei_vev_m_steps_reach_the_numpy_m_step(
    monkeypatch, name, n_components, n_features
):
    rng = np.random.default_rng([n_components, n_features, 11])
    model = get_covariance_model(name)
    for near_singular in (False, True):
        moments = _moments(rng, n_components, n_features, near_singular)
        cold = model.covariances_from_moments(moments, 1e-6, kernel=NUMBA)
        warm = model.covariances_from_moments(moments, 1e-6, cold * 1.1, kernel=NUMBA)
        with monkeypatch.context() as patch:
            patch.setattr(
                covariance_mclust,
                "_volumes_and_common_shape",
                _reference_common_shape_step,
            )
            expected_cold = model.covariances_from_moments(moments, 1e-6, kernel=NUMBA)
            expected_warm = model.covariances_from_moments(
                moments, 1e-6, cold * 1.1, kernel=NUMBA
            )
        for got, want in ((cold, expected_cold), (warm, expected_warm)):
            scale = np.abs(want).max(axis=(1, 2), keepdims=True)
            np.testing.assert_allclose(got / scale, want / scale, rtol=0, atol=1e-12)


# ---------------------------------------------------------------------------
# Whole fits: the same fits as with the NumPy code


def _fit(X, name, **options):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        options.setdefault("kernel", NUMBA)
        result = fit_em(X, 3, covariance_type=name, tol=0, random_state=0, **options)
    return result, sorted({(w.category.__name__, str(w.message)) for w in caught})


def _reference_code(patch):
    """Every fast path of this module replaced by the NumPy code.

    The compiled pass (and its factorisation of 'full') stays: the fit still
    runs on kernel='numba', only the covariance models' helpers are off.
    """
    patch.setattr(covariance_linalg, "_compiled", lambda kernel: False)
    patch.setattr(
        covariance_mclust, "_volumes_and_common_shape", _reference_common_shape_step
    )
    patch.setattr(
        covariance.Tied,
        "precision_cholesky",
        lambda self, covariances, floor, *, kernel: _reference_tied_factor(
            covariances, floor
        ),
    )


def _degenerate_data(kind):
    """Data on which the covariance floor acts (reg_covar=0): its events too.

    'duplicates': a cluster of identical rows (floors for the models whose
    components may shrink to it); 'constant': a constant feature (floors
    for every model but EII and VII).
    """
    rng = np.random.default_rng(12)
    X = np.vstack([rng.normal(size=(40, 3)), rng.normal(size=(30, 3)) + 6.0])
    if kind == "duplicates":
        X = np.vstack([X, np.repeat([[5.0, -5.0, 5.0]], 12, 0)])
        X[:, 2] = np.round(X[:, 2], 1)
    else:
        X[:, 2] = 2.0
    return X


@pytest.mark.parametrize("name", MCLUST_MODELS)
@pytest.mark.parametrize("data", ["faithful", "relative", "duplicates", "constant"])
def test_fits_are_the_fits_of_the_numpy_code(monkeypatch, name, data):
    if data == "faithful":
        X, options = FAITHFUL, {}
    elif data == "relative":  # reg_covar (D,): a feature's variance times 1e-6
        X, options = FAITHFUL, {"reg_covar_relative": True}
    else:
        X, options = _degenerate_data(data), {"reg_covar": 0.0}
    ours, our_warnings = _fit(X, name, max_iter=60, **options)
    with monkeypatch.context() as patch:
        _reference_code(patch)
        reference, reference_warnings = _fit(X, name, max_iter=60, **options)
    assert our_warnings == reference_warnings
    assert ours.events == reference.events
    assert ours.n_iter == reference.n_iter
    if name in ("VEI", "VEV"):  # the compiled inner loop rounds differently
        assert ours.log_likelihood == pytest.approx(reference.log_likelihood, rel=1e-9)
        np.testing.assert_allclose(ours.lower_bounds, reference.lower_bounds, rtol=1e-9)
        return
    for field in ("weights", "means", "covariances", "precisions_cholesky"):
        np.testing.assert_array_equal(
            getattr(ours.params, field), getattr(reference.params, field), field
        )
    np.testing.assert_array_equal(ours.lower_bounds, reference.lower_bounds)
    assert ours.log_likelihood == reference.log_likelihood


@pytest.mark.parametrize("name", [m for m in MCLUST_MODELS if m not in ("EVE", "VVE")])
def test_numpy_kernel_runs_no_compiled_step(monkeypatch, name):
    """kernel='numpy' keeps these models on NumPy alone (no numba), as before."""

    def refuse():
        raise AssertionError("a compiled step ran under kernel='numpy'")

    monkeypatch.setattr(covariance_kernels, "_kernels", refuse)
    result, _ = _fit(FAITHFUL, name, max_iter=5, kernel="numpy")
    assert result.n_iter == 5
