"""The compiled kernels of the covariance models' M-steps and factorisations.

Plain Python functions that numba compiles on first use (:func:`_kernels`):
the regularised scatter, the symmetrisation and diagonal factors of the
storages, the common-shape iterations of VEI/VEV, and the orientation step
of EVE/VVE (Flury & Gautschi 1986; Browne & McNicholas 2014). They live in
one module because compiled functions call one another through this
module's names. Importing it does not import numba.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable

import numpy as np


def _regularised_scatter(
    weight_sums, first_moments, offsets, second_moments, denominators, reg, per_mass
):
    """:func:`_scatter` and the ``reg_covar`` rule of an M-step, compiled.

    Element by element the same operations in the same order as the NumPy
    expressions they replace, so the same numbers to the last bit: with
    ``per_mass`` False (:meth:`Full.covariances_from_moments`) the scatter
    over ``denominators`` plus ``reg`` (D,) on the diagonal; with it True
    (:meth:`_Constrained.covariances_from_moments`) the scatter plus
    ``denominators[k] * reg`` on the diagonal.
    """
    n_components, n_features = first_moments.shape
    out = np.empty((n_components, n_features, n_features))
    for k in range(n_components):
        mass = weight_sums[k]
        for i in range(n_features):
            first_i = first_moments[k, i]
            offset_i = offsets[k, i]
            for j in range(i, n_features):
                first_j = first_moments[k, j]
                offset_j = offsets[k, j]
                cross = mass * (offset_i * offset_j)
                upper = second_moments[k, i, j] - first_i * offset_j
                upper = upper - first_j * offset_i
                upper = upper + cross
                lower = second_moments[k, j, i] - first_j * offset_i
                lower = lower - first_i * offset_j
                lower = lower + cross
                value = 0.5 * (upper + lower)
                if not per_mass:
                    value = value / denominators[k]
                out[k, i, j] = value
                out[k, j, i] = value
            if per_mass:
                out[k, i, i] += denominators[k] * reg[i]
            else:
                out[k, i, i] += reg[i]
    return out


def _symmetrised(matrices):
    """``0.5 * (M + M^T)`` of each (D, D) matrix, compiled (the same numbers)."""
    n_components, n_features, _ = matrices.shape
    out = np.empty((n_components, n_features, n_features))
    for k in range(n_components):
        for i in range(n_features):
            for j in range(i, n_features):
                value = 0.5 * (matrices[k, i, j] + matrices[k, j, i])
                out[k, i, j] = value
                out[k, j, i] = value
    return out


def _diagonal_factors(variances, floor):
    """:meth:`Diag.precision_cholesky` compiled: ``(1 / sqrt(variances), mask)``.

    A row is collapsed when a variance is not finite or is below the floor
    (D,); its factors are then 1. The same numbers as the NumPy expressions.
    """
    n_components, n_features = variances.shape
    factors = np.empty((n_components, n_features))
    collapsed = np.zeros(n_components, dtype=np.bool_)
    for k in range(n_components):
        for d in range(n_features):
            variance = variances[k, d]
            if not (math.isfinite(variance) and variance >= floor[d]):
                collapsed[k] = True
            factors[k, d] = 1.0 / np.sqrt(variance)
        if collapsed[k]:
            for d in range(n_features):
                factors[k, d] = 1.0
    return factors, collapsed


def _scaled_diagonals(volumes, shape):
    """``_diagonal_matrices(volumes[:, None] * shape)``, compiled: VEI's output."""
    n_components = volumes.shape[0]
    n_features = shape.shape[0]
    out = np.zeros((n_components, n_features, n_features))
    for k in range(n_components):
        for d in range(n_features):
            out[k, d, d] = volumes[k] * shape[d]
    return out


def _unit_determinant(shape, out):
    """``out = shape / exp(mean(log(shape)))``: the shape scaled to det 1."""
    n_features = shape.shape[0]
    log_sum = 0.0
    for d in range(n_features):
        log_sum += np.log(shape[d])
    scale = np.exp(log_sum / n_features)
    for d in range(n_features):
        out[d] = shape[d] / scale


def _volumes_given_shape(values, counts, shape, out):
    """``out[k] = sum_d values_kd / shape_d / (D n_k)``: the best volumes."""
    n_components, n_features = values.shape
    for k in range(n_components):
        total = 0.0
        for d in range(n_features):
            total += values[k, d] / shape[d]
        out[k] = total / (n_features * counts[k])


def _common_shape_iterations(values, counts, start, max_iter, tol):
    """Celeux & Govaert's alternation for VEI and VEV: ``(volumes, shape)``.

    From ``start`` scaled to det 1, alternates the volumes given the shape
    (:func:`_volumes_given_shape`) and the shape given the volumes,
    ``A ∝ sum_k values_k / lambda_k`` scaled to det 1, until the objective
    ``sum_k n_k D log lambda_k + sum_kd values_kd / (lambda_k A_d)`` changes
    by at most ``tol * max(1, |Q|)`` (:func:`_converged`) or after
    ``max_iter`` steps; then returns the volumes for the final shape. The
    loops are NumPy's expressions element by element (sums in index order),
    written out so that numba compiles them in a fraction of a second.
    """
    n_components, n_features = values.shape
    shape = np.empty(n_features)
    volumes = np.empty(n_components)
    _unit_determinant(start, shape)
    value = np.inf
    for _ in range(max_iter):
        _volumes_given_shape(values, counts, shape, volumes)
        for d in range(n_features):
            total = 0.0
            for k in range(n_components):
                total += values[k, d] / volumes[k]
            shape[d] = total
        _unit_determinant(shape, shape)
        log_part = 0.0
        for k in range(n_components):
            log_part += counts[k] * n_features * np.log(volumes[k])
        trace_part = 0.0
        for k in range(n_components):
            for d in range(n_features):
                trace_part += values[k, d] / (volumes[k] * shape[d])
        previous_value = value
        value = log_part + trace_part
        if abs(previous_value - value) <= tol * max(1.0, abs(value)):
            break
    _volumes_given_shape(values, counts, shape, volumes)
    return volumes, shape


def _product(left, right, out):
    """``out = left @ right`` for square matrices.

    Loops: numba compiles them in a fraction of the time its BLAS ``@``
    takes, and D is small.
    """
    n = left.shape[0]
    for row in range(n):
        for col in range(n):
            out[row, col] = 0.0
        for m in range(n):
            factor = left[row, m]
            for col in range(n):
                out[row, col] += factor * right[m, col]


def _project(scatter, orientation, out):
    """``out[k] = D^T W_k D`` for every component, exactly symmetric."""
    n_components = scatter.shape[0]
    n_features = orientation.shape[0]
    product = np.empty((n_features, n_features))
    for k in range(n_components):
        _product(scatter[k], orientation, product)
        for row in range(n_features):
            for col in range(row, n_features):
                out[k, row, col] = 0.0
        for m in range(n_features):
            for row in range(n_features):
                factor = orientation[m, row]
                for col in range(row, n_features):
                    out[k, row, col] += factor * product[m, col]
        for row in range(n_features):
            for col in range(row + 1, n_features):
                out[k, col, row] = out[k, row, col]


def _shapes(rotated, counts, equal_volume, out):
    """Best diagonals of ``D^T Sigma_k D`` given ``D``, into ``out``; returns Q.

    With ``p_k = diag(D^T W_k D)`` (the diagonals of ``rotated``): VVE's are
    ``p_k / n_k``; EVE's (``equal_volume``) are ``lambda p_k / s_k`` with
    ``s_k`` the geometric mean of ``p_k`` and ``lambda = sum_k s_k / sum_k
    n_k``. Q is ``sum_kd [n_k log out_kd + p_kd / out_kd]``: NaN or infinite
    when a diagonal is not positive.
    """
    n_components = rotated.shape[0]
    n_features = rotated.shape[1]
    if equal_volume:
        sizes = np.empty(n_components)
        total_size = 0.0
        total_count = 0.0
        for k in range(n_components):
            log_sum = 0.0
            for d in range(n_features):
                log_sum += np.log(rotated[k, d, d])
            sizes[k] = np.exp(log_sum / n_features)
            total_size += sizes[k]
            total_count += counts[k]
        volume = total_size / total_count
        for k in range(n_components):
            for d in range(n_features):
                out[k, d] = volume * rotated[k, d, d] / sizes[k]
    else:
        for k in range(n_components):
            for d in range(n_features):
                out[k, d] = rotated[k, d, d] / counts[k]
    value = 0.0
    for k in range(n_components):
        for d in range(n_features):
            value += counts[k] * np.log(out[k, d]) + rotated[k, d, d] / out[k, d]
    return value


def _majorisation_step(scatter, orientation, inverse_diagonals, largest, out):
    """One Browne & McNicholas (2014) majorisation step, into ``out``.

    Minimises ``sum_k tr(W_k D Omega_k D^T)`` over orthogonal ``D`` given
    ``Omega_k = diag(inverse_diagonals[k])`` and never increases it:
    ``out`` is the polar factor of ``G = sum_k (a_k I - W_k) D Omega_k``,
    ``a_k = largest[k]`` the largest eigenvalue of ``W_k``. Returns False
    (``out`` untouched) when ``G`` is not finite.
    """
    n_components = scatter.shape[0]
    n_features = orientation.shape[0]
    gradient = np.zeros((n_features, n_features))
    product = np.empty((n_features, n_features))
    for k in range(n_components):
        _product(scatter[k], orientation, product)
        for row in range(n_features):
            for col in range(n_features):
                gradient[row, col] += (
                    largest[k] * orientation[row, col] - product[row, col]
                ) * inverse_diagonals[k, col]
    if not np.all(np.isfinite(gradient)):
        return False
    left, _, right_t = np.linalg.svd(gradient)
    _product(left, right_t, out)
    return True


def _rotation_sweep(rotated, orientation, inverse_diagonals):
    """One sweep of exact plane rotations for a common orientation, in place.

    Minimises ``f(D) = sum_k tr(W_k D Omega_k D^T)`` over orthogonal ``D``
    with ``Omega_k = diag(inverse_diagonals[k])`` fixed, one pair of axes at
    a time, and never increases it. ``orientation`` is ``D`` (D, D) and
    ``rotated`` holds ``B_k = D^T W_k D`` (K, D, D) on entry; both are updated
    in place, so on return ``rotated`` holds the new ``D^T W_k D`` (up to
    rounding).

    Rotating columns i and j of ``D`` by an angle t, ``d_i <- c d_i + s d_j``
    and ``d_j <- -s d_i + c d_j`` (c = cos t, s = sin t), changes ``f`` by
    ``P cos 2t + Q sin 2t`` plus a constant, where with ``a_k, b_k, e_k`` the
    entries (i, i), (j, j), (i, j) of ``B_k`` and
    ``g_k = Omega_k[i] - Omega_k[j]``::

        P = 1/2 sum_k g_k (a_k - b_k),    Q = sum_k g_k e_k,

    so the best angle has a closed form, ``cos 2t = -P/r``, ``sin 2t = -Q/r``
    with ``r = hypot(P, Q)``: the pairwise rotations of Flury & Gautschi
    (1986), "An algorithm for simultaneous orthogonal transformation of
    several positive definite symmetric matrices to nearly diagonal form",
    SIAM J. Sci. Stat. Comput. 7:169-184. Each rotation is then applied to
    every ``B_k`` as the Jacobi method applies its rotations to a symmetric
    matrix (``B <- G^T B G`` changes rows and columns i and j only; Golub &
    Van Loan, *Matrix Computations*, 4th ed., sec. 8.5), instead of
    projecting ``W_k`` on the rotated axes again: O(K D) per pair and
    O(K D^3) per sweep, where projecting was O(K D^2) per pair.
    """
    n_components = rotated.shape[0]
    n_features = orientation.shape[0]
    for i in range(n_features - 1):
        for j in range(i + 1, n_features):
            p_coef = 0.0
            q_coef = 0.0
            for k in range(n_components):
                gap = inverse_diagonals[k, i] - inverse_diagonals[k, j]
                p_coef += gap * (rotated[k, i, i] - rotated[k, j, j])
                q_coef += gap * rotated[k, i, j]
            p_coef *= 0.5
            if p_coef == 0.0 and q_coef == 0.0:
                continue
            # minimise P cos 2t + Q sin 2t: cos 2t = -P/r, sin 2t = -Q/r.
            angle = 0.5 * math.atan2(-q_coef, -p_coef)
            c = math.cos(angle)
            s = math.sin(angle)
            for row in range(n_features):
                di = orientation[row, i]
                dj = orientation[row, j]
                orientation[row, i] = c * di + s * dj
                orientation[row, j] = c * dj - s * di
            cc = c * c
            ss = s * s
            cs = c * s
            for k in range(n_components):
                a = rotated[k, i, i]
                b = rotated[k, j, j]
                e = rotated[k, i, j]
                for m in range(n_features):
                    if m in (i, j):
                        continue
                    bi = rotated[k, m, i]
                    bj = rotated[k, m, j]
                    new_i = c * bi + s * bj
                    new_j = c * bj - s * bi
                    rotated[k, m, i] = new_i
                    rotated[k, i, m] = new_i
                    rotated[k, m, j] = new_j
                    rotated[k, j, m] = new_j
                rotated[k, i, i] = cc * a + 2.0 * cs * e + ss * b
                rotated[k, j, j] = ss * a - 2.0 * cs * e + cc * b
                off = cs * (b - a) + (cc - ss) * e
                rotated[k, i, j] = off
                rotated[k, j, i] = off


def _orientation_iterations(
    scatter, counts, start, largest, equal_volume, max_sweeps, tol
):
    """Minimise Q over a common orientation from ``start``: (Q, D, diagonals).

    Alternates the shapes in closed form (:func:`_shapes`) and the
    orientation: on a cold start (``largest`` holds the K largest
    eigenvalues) a majorisation step then a sweep of plane rotations, on a
    warm one (``largest`` empty) a sweep only. A step is kept only if it
    lowers Q, so Q never exceeds its value at ``start`` (rounding included);
    the iteration stops when a step lowers Q by at most ``tol * max(1, |Q|)``
    or after ``max_sweeps`` steps, or at once when Q is not finite.
    """
    n_components = scatter.shape[0]
    n_features = start.shape[0]
    cold = largest.shape[0] > 0
    orientation = start.copy()
    candidate = np.empty_like(orientation)
    rotated = np.empty((n_components, n_features, n_features))
    diagonals = np.empty((n_components, n_features))
    new_diagonals = np.empty_like(diagonals)
    inverse_diagonals = np.empty_like(diagonals)
    _project(scatter, orientation, rotated)
    value = _shapes(rotated, counts, equal_volume, diagonals)
    for _ in range(max_sweeps):
        if not np.isfinite(value):
            break
        for k in range(n_components):
            for d in range(n_features):
                inverse_diagonals[k, d] = 1.0 / diagonals[k, d]
        if cold:
            if not _majorisation_step(
                scatter, orientation, inverse_diagonals, largest, candidate
            ):
                break
            _project(scatter, candidate, rotated)
        else:
            # (element by element: numba takes seconds to compile ``[:, :] =``)
            for row in range(n_features):
                for col in range(n_features):
                    candidate[row, col] = orientation[row, col]
        _rotation_sweep(rotated, candidate, inverse_diagonals)
        # Q from a fresh projection, so that rounding in the rotated
        # scatters does not build up over the sweeps.
        _project(scatter, candidate, rotated)
        new_value = _shapes(rotated, counts, equal_volume, new_diagonals)
        if not new_value < value:
            break
        decrease = value - new_value
        value = new_value
        orientation, candidate = candidate, orientation
        diagonals, new_diagonals = new_diagonals, diagonals
        if decrease <= tol * max(1.0, abs(value)):
            break
    return value, orientation, diagonals


#: The functions above are plain Python that numba compiles: numba is
#: imported, and they are compiled, on first use (as :mod:`mixtures._kernel`
#: is), so importing this module does not import numba.
_ORIENTATION_KERNELS = (
    "_product",
    "_project",
    "_shapes",
    "_majorisation_step",
    "_rotation_sweep",
    "_orientation_iterations",
)


#: The same for the small loops of the other M-steps and factorisations.
_STEP_KERNELS = (
    "_regularised_scatter",
    "_symmetrised",
    "_diagonal_factors",
    "_unit_determinant",
    "_volumes_given_shape",
    "_common_shape_iterations",
    "_scaled_diagonals",
)


_orientation_lock = threading.Lock()


_compiled_kernels: dict[str, Callable] = {}


_kernels_ready = False


def _kernels() -> dict[str, Callable]:
    """The compiled kernels of this module, by name.

    On first call each is wrapped in ``numba.njit(cache=True)`` and rebound
    under its name in this module, so that they call one another compiled;
    numba compiles each at its first call and keeps the machine code in
    ``__pycache__``, so a later process only loads it. Later calls cost one
    global lookup (they run once or twice per EM iteration).
    """
    global _kernels_ready
    if _kernels_ready:
        return _compiled_kernels
    with _orientation_lock:
        if not _compiled_kernels:
            import numba

            jit = numba.njit(cache=True, nogil=True, error_model="numpy")
            namespace = globals()
            for name in _ORIENTATION_KERNELS + _STEP_KERNELS:
                _compiled_kernels[name] = namespace[name] = jit(namespace[name])
            _kernels_ready = True
        return _compiled_kernels


#: (the name the orientation step and its tests know)
_orientation_kernels = _kernels
