"""The ``gmmlab`` command line.

``gmmlab demo`` fits the from-scratch engine to the Iris data shipped with
scikit-learn, prints the learned parameters and checks them against
scikit-learn's ``GaussianMixture`` from the same initialisation.
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings

import numpy as np

__all__ = ["main"]


def _format_matrix(matrix: np.ndarray, indent: str) -> str:
    rows = np.array2string(np.atleast_2d(matrix), precision=4, suppress_small=True)
    return "\n".join(indent + line for line in rows.splitlines())


def _demo(args: argparse.Namespace) -> int:
    from sklearn.datasets import load_iris
    from sklearn.mixture import GaussianMixture as SklearnGaussianMixture

    from mixtures import GaussianMixture

    iris = load_iris()
    X = iris.data
    options = dict(
        n_components=args.components,
        covariance_type=args.covariance_type,
        tol=1e-6,
        max_iter=500,
        random_state=args.seed,
    )
    start = time.perf_counter()
    ours = GaussianMixture(**options).fit(X)
    ours_seconds = time.perf_counter() - start
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        start = time.perf_counter()
        reference = SklearnGaussianMixture(**options).fit(X)
        reference_seconds = time.perf_counter() - start

    print(f"Iris: {X.shape[0]} flowers, features {', '.join(iris.feature_names)}")
    print(
        f"gmmlab EM, K={args.components}, covariance_type={args.covariance_type!r}: "
        f"{'converged' if ours.converged_ else 'did NOT converge'} in "
        f"{ours.n_iter_} iterations, mean log-likelihood {ours.lower_bound_:.6f}"
    )
    for k in np.argsort(ours.means_[:, 0]):
        print(f"\ncomponent {k}: weight {ours.weights_[k]:.4f}")
        print("  mean " + np.array2string(ours.means_[k], precision=4))
        print("  covariance")
        print(
            _format_matrix(
                ours.covariances_[k]
                if ours.covariances_.ndim == 3
                else ours.covariances_,
                "    ",
            )
        )
    agreement = np.max(np.abs(ours.means_ - reference.means_))
    print(
        f"\nscikit-learn from the same random_state: mean log-likelihood "
        f"{reference.lower_bound_:.6f} after {reference.n_iter_} iterations; "
        f"largest difference in the means {agreement:.1e}"
    )
    print(
        f"fit time: gmmlab {ours_seconds * 1e3:.1f} ms, "
        f"scikit-learn {reference_seconds * 1e3:.1f} ms"
    )
    return 0


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="gmmlab",
        description="Gaussian mixtures by EM: fit, compare and validate.",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    demo = commands.add_parser(
        "demo", help="fit the engine to Iris and print the learned parameters"
    )
    demo.add_argument("--components", type=int, default=3, metavar="K")
    demo.add_argument(
        "--covariance-type",
        default="full",
        choices=["full", "tied", "diag", "spherical"],
    )
    demo.add_argument("--seed", type=int, default=0)
    demo.set_defaults(handler=_demo)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``gmmlab`` console script."""
    args = _build_parser().parse_args(argv)
    return args.handler(args)


if __name__ == "__main__":
    sys.exit(main())
