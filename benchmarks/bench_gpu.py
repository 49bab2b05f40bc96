"""The array-API pass on a GPU against scikit-learn's array-API path (issue 29).

One short script for a lent GPU machine (PyTorch there): per EM iteration, on
the same device in the same run,

* **ours**: :func:`mixtures.array_api_pass.device_pass` over the rows on the
  GPU (the E-step and the M-step's statistics in one sweep per block) plus
  the M-step on the host, as ``GaussianMixture(kernel="array-api")`` runs it,
  for a full model both ways of scoring (``direct`` and ``quadratic``; the
  default picks ``quadratic`` here);
* **scikit-learn**: ``sklearn.mixture.GaussianMixture`` under
  ``array_api_dispatch`` on the same tensor, per iteration as
  ``(t(max_iter=1 + R) - t(max_iter=1)) / R`` from the same starting
  parameters (``weights_init``, ``means_init``, ``precisions_init``, so no
  k-means), ``tol=0``;

at 10^6 x 16, K = 16, 'full' (float32 and float64) and 10^6 x 64, K = 64,
'diag' (float32), with the peak GPU memory of our pass beyond the data, and
the pass against the device's roofline: the memory floor (the rows read
once, at the bandwidth of a measured device-to-device copy) and the
arithmetic floor (the pass's floating-point operations at the measured rate
of a large matrix product in the same dtype, TF32 off), the larger of the
two being the floor.

Run with ``python benchmarks/bench_gpu.py [--n N] [--repeats R]``; results
go to ``benchmarks/results/gpu-latest.json`` with the device named, and a
Markdown table is printed. Without CUDA (``--device torch-cpu`` or
``cpu``) the same script runs on PyTorch or NumPy on the CPU as a dry run
of its own code and writes nothing. Never part
of the test run. scikit-learn's dispatch needs ``SCIPY_ARRAY_API=1``, which
the script sets before importing SciPy.
"""

from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("SCIPY_ARRAY_API", "1")

import numpy as np
from _results import median_seconds, write_and_print

from mixtures import MixtureParams
from mixtures.array_api_pass import device_pass
from mixtures.em import m_step
from mixtures.passes import SufficientStats

CASES = (("full", 16, 16, "float32"), ("full", 16, 16, "float64"),
         ("diag", 64, 64, "float32"))  # fmt: skip


def _truth(kind: str, n_features: int, n_components: int) -> MixtureParams:
    """A seeded mixture of separated components (the data's and the start's)."""
    rng = np.random.default_rng(0)
    means = rng.normal(scale=3.0, size=(n_components, n_features))
    if kind == "diag":
        covariances = rng.uniform(0.5, 2.0, size=(n_components, n_features))
    else:
        a = rng.normal(size=(n_components, n_features, n_features))
        covariances = a @ np.swapaxes(a, 1, 2) / n_features + 0.5 * np.eye(n_features)
    weights = np.full(n_components, 1.0 / n_components)
    return MixtureParams(weights, means, covariances, kind)


class Device:
    """The array library and device the benchmark runs on.

    'cuda': PyTorch on the GPU (the measurement); 'torch-cpu' and 'cpu':
    PyTorch or NumPy on the CPU, dry runs of this script's own code.
    """

    def __init__(self, name: str):
        self.name = name
        self.cuda = name == "cuda"
        self.torch = None
        self.label = "CPU (NumPy dry run)"
        if name == "cpu":
            return
        import torch

        torch.backends.cuda.matmul.allow_tf32 = False
        self.torch = torch
        self.label = (
            torch.cuda.get_device_name() if self.cuda else "CPU (PyTorch dry run)"
        )

    def put(self, array: np.ndarray):
        if self.torch is None:
            return array
        return self.torch.asarray(array, device="cuda" if self.cuda else "cpu")

    def sync(self) -> None:
        if self.cuda:
            self.torch.cuda.synchronize()


def _rows(device: Device, params: MixtureParams, n: int, dtype: str):
    """``n`` rows drawn from ``params`` on the device, in blocks (seeded)."""
    rng = np.random.default_rng(1)
    blocks = []
    for start in range(0, n, 250_000):
        rows = min(250_000, n - start)
        labels = rng.choice(params.n_components, size=rows, p=params.weights)
        noise = rng.standard_normal((rows, params.n_features))
        if params.covariance_type == "diag":
            noise *= np.sqrt(params.covariances[labels])
        else:
            factors = np.linalg.cholesky(params.covariances)
            noise = np.einsum("nij,nj->ni", factors[labels], noise)
        blocks.append(device.put((params.means[labels] + noise).astype(dtype)))
    if device.torch is None:
        return np.concatenate(blocks)
    return device.torch.cat(blocks)


def _ours(X, params: MixtureParams, repeats: int, method: str) -> float:
    """Seconds per iteration: the pass on the device, the M-step on the host."""
    model = params.model

    def iteration():
        result = device_pass(X, None, params, full_method=method)
        stats = SufficientStats(result.mass, result.centres, result.first,
                                model.moments_from_kernel(result.second),
                                result.weight_sum)  # fmt: skip
        m_step(stats, model, 1e-6, None, params.covariances)

    return median_seconds(iteration, repeats)


def _sklearn(X, params: MixtureParams, device: Device, repeats: int) -> float:
    """Seconds per iteration of scikit-learn's array-API path on the same rows."""
    import sklearn
    from sklearn.mixture import GaussianMixture

    dtype = "float32" if "32" in str(X.dtype) else "float64"
    precisions = params.precisions_cholesky
    precisions = (
        precisions**2 if params.covariance_type == "diag"
        else precisions @ np.swapaxes(precisions, 1, 2)
    )  # fmt: skip

    def fit(max_iter: int) -> float:
        model = GaussianMixture(
            params.n_components, covariance_type=params.covariance_type,
            tol=0.0, max_iter=max_iter, init_params="random_from_data",
            weights_init=device.put(params.weights.astype(dtype)),
            means_init=device.put(params.means.astype(dtype)),
            precisions_init=device.put(precisions.astype(dtype)), random_state=0,
        )  # fmt: skip
        with sklearn.config_context(array_api_dispatch=True):
            device.sync()
            begin = time.perf_counter()
            model.fit(X)
            device.sync()
            return time.perf_counter() - begin

    extra = 10
    fit(1)  # warm-up
    one = np.median([fit(1) for _ in range(repeats)])
    more = np.median([fit(1 + extra) for _ in range(repeats)])
    return float(more - one) / extra


def _floors(device: Device, X, params: MixtureParams) -> dict:
    """The memory and arithmetic floors of one pass, and how they were measured."""
    n, d = X.shape
    k = params.n_components
    itemsize = 4 if "32" in str(X.dtype) else 8
    if not device.cuda:
        return {}
    torch = device.torch
    big = torch.empty(2**28, dtype=torch.uint8, device="cuda")  # 256 MiB
    copy = median_seconds(lambda: (big.clone(), device.sync()), 5)
    bandwidth = 2 * big.numel() / copy  # bytes read and written
    dtype = torch.float32 if itemsize == 4 else torch.float64
    a = torch.randn(8192, 8192, dtype=dtype, device="cuda")
    product = median_seconds(lambda: (a @ a, device.sync()), 3)
    flop_rate = 2 * 8192**3 / product
    flops = 4 * k * n * d * d if params.covariance_type == "full" else 8 * k * n * d
    memory_floor = n * d * itemsize / bandwidth
    arithmetic_floor = flops / flop_rate
    return {
        "bandwidth_bytes_per_s": bandwidth,
        "matmul_flops_per_s": flop_rate,
        "pass_flops": flops,
        "memory_floor_s": memory_floor,
        "arithmetic_floor_s": arithmetic_floor,
        "floor_s": max(memory_floor, arithmetic_floor),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1_000_000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument(
        "--device", choices=("cuda", "torch-cpu", "cpu"), default="cuda"
    )
    args = parser.parse_args()
    device = Device(args.device)
    rows, record = [], []
    for kind, d, k, dtype in CASES:
        params = _truth(kind, d, k)
        X = _rows(device, params, args.n, dtype)
        theirs = _sklearn(X, params, device, args.repeats)
        floors = _floors(device, X, params)
        for method in ("direct", "quadratic") if kind == "full" else ("auto",):
            if device.cuda:
                device.torch.cuda.reset_peak_memory_stats()
            ours = _ours(X, params, args.repeats, method)
            peak = (
                device.torch.cuda.max_memory_allocated() - X.numel() * X.element_size()
                if device.cuda else 0
            )  # fmt: skip
            case = {"n": args.n, "features": d, "components": k,
                    "covariance": kind, "method": method, "dtype": dtype,
                    "ours_s": ours, "sklearn_s": theirs, "speedup": theirs / ours,
                    "peak_extra_bytes": int(peak), **floors}  # fmt: skip
            record.append(case)
            rows.append({
                "case": f"{args.n:.0e} x {d}, K = {k}, {kind}, {dtype}",
                "method": method,
                "ours ms": f"{1e3 * ours:.2f}", "sklearn ms": f"{1e3 * theirs:.2f}",
                "speedup": f"{theirs / ours:.1f}x",
                "floor ms": f"{1e3 * floors['floor_s']:.2f}" if floors else "-",
                "x floor": f"{ours / floors['floor_s']:.1f}" if floors else "-",
                "peak extra MiB": f"{peak / 2**20:.0f}",
            })  # fmt: skip
    result = {"device": device.label, "cases": record}
    if not device.cuda:
        print(f"{device.label}: nothing written")
        for row in rows:
            print(row)
        return
    write_and_print("gpu-latest.json", result, rows)


if __name__ == "__main__":
    main()
