"""The engine's pass in the Python array API: PyTorch, CuPy... on their device.

:func:`device_pass` is the fused pass of :mod:`mixtures._kernel` (the E-step
and the M-step's statistics in one sweep over the rows) written once for any
namespace of the array API standard (through ``array-api-compat``): NumPy,
``array-api-strict``, PyTorch, CuPy. The rows never leave the data's device;
only the statistics do, (K, D, D) per iteration, to the host, where the
M-step of every covariance model runs (:func:`mixtures.em.m_step`), the same
code as for the compiled kernel. The M-step's input does not grow with the
rows: moving it costs microseconds, and one M-step for all 14 models keeps
the fit equal to the compiled kernel's (``tests/test_array_api_pass.py``).

Per block of rows (as many as a quarter of a GPU's free memory holds, at
most 2 GiB of temporaries, so that a pass launches few kernels), the rows
are moved to the mixture's mean (``origin``). 'full' models: to each
component's centre, multiplied by the precision's Cholesky factor (``y = (x
- mu_k) P_k``, the triangular solve against the covariance's factor written
as a product with its inverse), squared and summed to the Mahalanobis
distances; the moments from the same (K, B, D) differences. 'diag' models:
matrix products only (``x^2``, ``x`` against the precisions), never a
(K, B, D) array, as scikit-learn's diagonal pass; the moments from ``r x``
and ``r x^2`` moved to the centres in float64. Log-densities and the
log-sum-exp over components are in float64, as in the compiled kernel;
responsibilities are flushed to zero below ``sqrt(tiny)`` of the data's
dtype; the moments are computed in the data's dtype (float32 data stay
float32) and summed over blocks in float64 on the device. Devices without
float64 (Apple's MPS) are refused with a clear error.
"""

from __future__ import annotations

import importlib
import math
from typing import Any, NamedTuple

import numpy as np

from mixtures._arrays import to_numpy
from mixtures.params import MixtureParams
from mixtures.passes import SufficientStats

__all__ = [
    "DEFAULT_BLOCK_BYTES",
    "DevicePass",
    "device_pass",
    "device_passes",
    "namespace_of",
]

#: Bytes of the (K, B, D) temporaries of one block of rows (about three of
#: them live at once).
DEFAULT_BLOCK_BYTES = 128 * 2**20

#: Responsibilities below this (per dtype) are flushed to zero, as in the
#: compiled kernel (:data:`mixtures._kernel._TINY`).
_TINY = {
    np.dtype(np.float64): math.sqrt(np.finfo(np.float64).tiny),
    np.dtype(np.float32): math.sqrt(np.finfo(np.float32).tiny),
}


class DevicePass(NamedTuple):
    """One pass's results: statistics on the host, per-row values on the device.

    ``mass`` (K,), ``first`` (K, D), ``second`` (K, D, D), or (K, D) for a
    diagonal model, ``centres`` (K, D), ``log_likelihood`` and ``weight_sum``
    are host float64, as :class:`mixtures._kernel.PassResult`'s;
    ``log_prob`` (N,) float64 and ``labels`` (N,) (None unless asked for)
    stay on the data's device.
    """

    mass: np.ndarray
    first: np.ndarray
    second: np.ndarray
    log_likelihood: float
    weight_sum: float
    log_prob: Any
    centres: np.ndarray
    labels: Any


def namespace_of(X) -> tuple[Any, Any]:
    """``(xp, device)`` of an array-API array (NumPy included)."""
    try:
        compat = importlib.import_module("array_api_compat")
    except ImportError:  # scikit-learn vendors a copy
        compat = importlib.import_module("sklearn.externals.array_api_compat")

    return compat.array_namespace(X), compat.device(X)


class _Frame(NamedTuple):
    """The parameters in the pass's frame, on the device (see ``_kernel._setup``).

    ``method`` is 'direct' (rows minus each centre, times the Cholesky
    factor), 'diag' or 'quadratic'; the last two score a row by matrix
    products, ``maha = w2 . f(x) - 2 w1 . x + w0`` with ``f(x)`` the
    squares (diag) or the products ``x_i x_j, i <= j`` (quadratic), and
    take their moments about the origin, moved to the centres on the host.
    """

    origin: Any  # (D,) data dtype
    local: Any  # (K, D) means - origin, data dtype
    local_host: np.ndarray  # (K, D) the same, host float64
    centres: np.ndarray  # (K, D) host float64: origin + local, as represented
    log_norm: Any  # (K, 1) float64: log w_k + log det P_k - D/2 log 2 pi
    factors: Any  # 'direct': (K, D, D) Cholesky factors, data dtype
    w2: Any  # 'diag': (K, D) precisions; 'quadratic': (K, T) Lambda_ij
    w1: Any  # (K, D) Lambda_k c_k
    w0: Any  # (K, 1) c_k' Lambda_k c_k
    pairs: tuple[Any, Any] | None  # 'quadratic': (T,) row and column indices
    method: str


def _frame(xp, device, dtype, params: MixtureParams, full_method: str) -> _Frame:
    """Mirror of the compiled kernel's ``_setup``, computed on the host."""
    model = params.model
    means = params.means
    n_features = means.shape[1]
    origin = (params.weights @ means).astype(dtype)
    local = (means - origin.astype(np.float64)).astype(dtype)
    local64 = local.astype(np.float64)
    factors = model.kernel_factors(params.precisions_cholesky, *means.shape)
    if model.kernel == "full":
        log_det = np.log(np.diagonal(factors, axis1=1, axis2=2)).sum(axis=1)
        precisions = factors @ np.swapaxes(factors, 1, 2)
    else:
        log_det = 0.5 * np.log(factors).sum(axis=1)
        precisions = factors
    with np.errstate(divide="ignore"):
        log_norm = (
            np.log(params.weights) + log_det - 0.5 * n_features * math.log(2 * math.pi)
        )

    def put(array, as_dtype):
        # A writable copy: PyTorch refuses read-only views (broadcast factors).
        return xp.asarray(np.array(array, dtype=as_dtype, order="C"), device=device)

    method, pairs, w2 = "diag", None, precisions
    if model.kernel == "full":
        method = full_method
        rows, cols = np.triu_indices(n_features)
        w2 = precisions[:, rows, cols] * np.where(rows == cols, 1.0, 2.0)
        pairs = (put(rows, np.int64), put(cols, np.int64))
    if method == "diag":
        w1 = precisions * local64
        w0 = np.sum(precisions * local64 * local64, axis=1)
    else:
        w1 = np.einsum("kij,kj->ki", precisions, local64)
        w0 = np.einsum("ki,ki->k", w1, local64)
    return _Frame(
        origin=put(origin, dtype),
        local=put(local, dtype),
        local_host=local64,
        centres=origin.astype(np.float64) + local64,
        log_norm=put(log_norm[:, None], np.float64),
        factors=put(factors, dtype),
        w2=put(w2, dtype),
        w1=put(w1, dtype),
        w0=put(w0[:, None], dtype),
        pairs=pairs if method == "quadratic" else None,
        method=method,
    )


def _block_rows(frame: _Frame, n_features: int, itemsize: int, budget: int) -> int:
    """Rows per block: the block's temporaries within ``budget`` bytes.

    About three (K, B, D) arrays in the data's dtype for 'direct', three
    (B, D(D+1)/2) for 'quadratic', three (B, D) for every method, and four
    (K, B) float64 arrays.
    """
    n_components = frame.centres.shape[0]
    per_row = 3 * n_features * itemsize + 4 * n_components * 8
    if frame.method == "direct":
        per_row += 3 * n_components * n_features * itemsize
    elif frame.method == "quadratic":
        per_row += 3 * (n_features * (n_features + 1) // 2) * itemsize
    return max(256, budget // per_row)


def _budget(X) -> int:
    """Bytes for one block's temporaries.

    A quarter of a GPU's free memory, at most 2 GiB (a few large blocks
    keep the launches few); elsewhere :data:`DEFAULT_BLOCK_BYTES`.
    """
    library = type(X).__module__.split(".")[0]
    free = None
    if library == "torch" and X.device.type == "cuda":
        import torch

        free = torch.cuda.mem_get_info(X.device)[0]
    elif library == "cupy":
        import cupy

        free = cupy.cuda.Device(X.device.id).mem_info[0]
    if free is None:
        return DEFAULT_BLOCK_BYTES
    return int(min(free // 4, 2 * 2**30))


def _log_densities(xp, Xb, frame: _Frame):
    """``log w_k phi_k(x)`` (K, B) float64, and what the moments reuse.

    'direct': the rows minus each centre, ``diff`` (K, B, D), times the
    Cholesky factor. 'diag' and 'quadratic': matrix products against
    ``f(x)`` (the squares, or the products ``x_i x_j``), which never form a
    (K, B, D) array; the moments reuse ``f(x)``.
    """
    if frame.method == "direct":
        diff = Xb[None, :, :] - frame.local[:, None, :]
        y = xp.matmul(diff, frame.factors)
        maha = xp.sum(y * y, axis=2)
        reuse = diff
    else:
        if frame.method == "diag":
            reuse = Xb * Xb
        else:
            assert frame.pairs is not None  # set for 'quadratic'
            rows, cols = frame.pairs
            reuse = xp.take(Xb, rows, axis=1) * xp.take(Xb, cols, axis=1)
        maha = (
            xp.matmul(frame.w2, xp.matrix_transpose(reuse))
            - 2.0 * xp.matmul(frame.w1, xp.matrix_transpose(Xb))
            + frame.w0
        )
    return reuse, frame.log_norm - 0.5 * xp.astype(maha, xp.float64)


def _posterior(xp, logp, weights):
    """``log p(x)`` (B,), and weighted responsibilities (K, B), both float64."""
    peak = xp.max(logp, axis=0)
    finite = xp.isfinite(peak)
    safe_peak = xp.where(finite, peak, xp.zeros_like(peak))
    shifted = xp.exp(xp.clip(logp - safe_peak, min=-700.0))
    total = xp.sum(shifted, axis=0)
    log_prob = xp.where(finite, xp.log(total) + safe_peak, peak)
    scale = xp.where(finite, weights / total, xp.zeros_like(total))
    return log_prob, shifted * scale


def device_pass(
    X,
    sample_weight,
    params: MixtureParams,
    *,
    with_moments: bool = True,
    labels: bool = False,
    block_bytes: int | None = None,
    full_method: str = "auto",
) -> DevicePass:
    """One fused pass over ``X`` (n_samples, n_features) on its own device.

    Parameters
    ----------
    X : array-API array of shape (n_samples, n_features), float32 or float64
    sample_weight : array-API array of shape (n_samples,), same namespace and
        device, or None (all ones)
    params : MixtureParams
        On the host, float64.
    with_moments : bool, default=True
        False scores the rows only (zero moments).
    labels : bool, default=False
        Also the most probable component of each row (the first maximum).
    block_bytes : int, optional
        Size of one block's temporaries; None: a quarter of a GPU's free
        memory (at most 2 GiB), else :data:`DEFAULT_BLOCK_BYTES`.
    full_method : {'auto', 'direct', 'quadratic'}, default='auto'
        How a model with full covariances scores the rows. 'auto':
        'quadratic' when its temporaries are the smaller, ``D (D + 1) / 2 <
        K D``, else 'direct'. 'direct': the
        rows minus each centre times the Cholesky factor ((K, B, D)
        temporaries; the moments about the centres directly); 'quadratic',
        ``x' Lambda x - 2 x' Lambda c + c' Lambda c`` as matrix products
        against the products ``x_i x_j`` ((B, D(D+1)/2) temporaries, less
        memory traffic for K > (D + 1) / 2; the moments about the origin,
        moved to the centres in float64 on the host).

    Returns
    -------
    DevicePass
    """
    xp, device = namespace_of(X)
    dtype = np.dtype(str(X.dtype).split(".")[-1])
    if dtype not in _TINY:
        raise ValueError(
            f"the array-API pass needs float32 or float64 rows; got {dtype}."
        )
    if "float64" not in xp.__array_namespace_info__().dtypes(device=device):
        raise ValueError(
            "kernel='array-api' sums the statistics in float64, which the "
            f"device {device!r} does not have; fit on the CPU (kernel='auto')."
        )
    if full_method not in ("auto", "direct", "quadratic"):
        raise ValueError(
            f"full_method must be 'auto', 'direct' or 'quadratic'; got {full_method!r}."
        )
    n_samples, n_features = X.shape
    n_components = params.n_components
    if full_method == "auto":
        smaller = n_features * (n_features + 1) // 2 < n_components * n_features
        full_method = "quadratic" if smaller else "direct"
    frame = _frame(xp, device, dtype, params, full_method)
    if sample_weight is None:
        sample_weight = xp.ones((n_samples,), dtype=xp.float64, device=device)
    sample_weight = xp.astype(sample_weight, xp.float64)
    if block_bytes is None:
        block_bytes = _budget(X)
    rows = _block_rows(frame, n_features, dtype.itemsize, block_bytes)
    moment = {
        "direct": (n_components, n_features, n_features),
        "diag": (n_components, n_features),
        "quadratic": (n_components, n_features * (n_features + 1) // 2),
    }[frame.method]
    sums = {
        "mass": xp.zeros((n_components,), dtype=xp.float64, device=device),
        "first": xp.zeros((n_components, n_features), dtype=xp.float64, device=device),
        "second": xp.zeros(moment, dtype=xp.float64, device=device),
    }
    log_probs, label_blocks = [], []
    for start in range(0, n_samples, rows):
        stop = min(start + rows, n_samples)
        Xb = X[start:stop, :] - frame.origin
        reuse, logp = _log_densities(xp, Xb, frame)
        if labels:
            label_blocks.append(xp.argmax(logp, axis=0))
        log_prob, resp = _posterior(xp, logp, sample_weight[start:stop])
        log_probs.append(log_prob)
        if with_moments:
            _add_moments(xp, sums, Xb, reuse, resp, frame, dtype)
    log_prob = xp.concat(log_probs) if log_probs else xp.zeros((0,), dtype=xp.float64)
    counted = sample_weight != 0
    weighted = xp.where(counted, sample_weight * log_prob, xp.zeros_like(log_prob))
    host = {
        name: np.asarray(to_numpy(value), dtype=np.float64)
        for name, value in sums.items()
    }
    first, second = _about_centres(host, frame)
    return DevicePass(
        mass=host["mass"],
        first=first,
        second=second,
        log_likelihood=float(to_numpy(xp.sum(weighted))),
        weight_sum=float(
            to_numpy(xp.sum(xp.where(counted, sample_weight, xp.zeros_like(log_prob))))
        ),
        log_prob=log_prob,
        centres=frame.centres,
        labels=xp.concat(label_blocks) if labels and label_blocks else None,
    )


def _add_moments(xp, sums: dict, Xb, reuse, resp, frame: _Frame, dtype) -> None:
    """One block's mass, first and second moments, added in float64.

    'direct': about the centres, from ``diff`` (K, B, D). 'diag' and
    'quadratic': about the origin, ``r x`` and ``r f(x)`` (two matrix
    products); :func:`_about_centres` moves the totals to the centres.
    """
    tiny = _TINY[dtype]
    resp = xp.where(resp >= tiny, resp, xp.zeros_like(resp))
    sums["mass"] += xp.sum(resp, axis=1)
    resp = xp.astype(resp, Xb.dtype)
    if frame.method == "direct":
        weighted = reuse * resp[:, :, None]
        sums["first"] += xp.astype(xp.sum(weighted, axis=1), xp.float64)
        second = xp.matmul(xp.permute_dims(weighted, (0, 2, 1)), reuse)
        sums["second"] += xp.astype(second, xp.float64)
        return
    sums["first"] += xp.astype(xp.matmul(resp, Xb), xp.float64)
    sums["second"] += xp.astype(xp.matmul(resp, reuse), xp.float64)


def _about_centres(host: dict, frame: _Frame) -> tuple[np.ndarray, np.ndarray]:
    """First and second moments about the centres, from the pass's totals.

    ``sum r (x - c) = r x - m c``; diag: ``sum r (x - c)^2 = r x^2 - 2 c r x
    + m c^2``; quadratic: ``S_c = S_0 - c (r x)' - (r x) c' + m c c'``, with
    ``S_0`` rebuilt from its upper triangle.
    """
    mass, first, second = host["mass"], host["first"], host["second"]
    if frame.method == "direct":
        return first, second
    c = frame.local_host
    about = first - mass[:, None] * c
    if frame.method == "diag":
        return about, second - 2.0 * c * first + mass[:, None] * c * c
    n_features = c.shape[1]
    rows, cols = np.triu_indices(n_features)
    full = np.zeros((c.shape[0], n_features, n_features))
    full[:, rows, cols] = second
    full[:, cols, rows] = second
    outer = np.einsum("ki,kj->kij", c, first)
    full += (
        -outer
        - np.swapaxes(outer, 1, 2)
        + mass[:, None, None] * np.einsum("ki,kj->kij", c, c)
    )
    return about, full


def device_passes(device_X, sample_weight: np.ndarray | None):
    """The passes of a fit with ``kernel="array-api"`` over ``device_X``.

    ``(scored, score)``, as :class:`mixtures.fitting` takes a fit's own
    passes: the loop's scored pass and the final scoring.

    The statistics come back to the host; ``log p(x)`` of every row stays on
    the device until a degenerate component's reseeding asks for it.
    """
    xp, device = namespace_of(device_X)
    weights = None
    if sample_weight is not None:
        weights = xp.asarray(np.asarray(sample_weight, np.float64), device=device)

    def scored(_X, _weights, params: MixtureParams):
        result = device_pass(device_X, weights, params)
        stats = SufficientStats(
            result.mass,
            result.centres,
            result.first,
            params.model.moments_from_kernel(result.second),
            result.weight_sum,
        )
        return stats, result.log_prob, result.log_likelihood / result.weight_sum

    def score(_X, params: MixtureParams):
        result = device_pass(device_X, None, params, with_moments=False, labels=True)
        return to_numpy(result.log_prob), to_numpy(result.labels)

    return scored, score
