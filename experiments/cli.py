"""The ``gmmlab`` command line (``gmmlab --help`` lists the same).

``gmmlab run [CONFIG]``
    Run (or resume) a sweep of data sets x engines x seeds into Parquet
    tables and build its report; with no CONFIG, the bundled default sweep.
``gmmlab report RESULTS``
    Build the HTML and Markdown report of a results folder.
``gmmlab fit FILE``
    Search covariance models x K on a CSV or Parquet file (BIC/ICL, as
    mclust does), cross-check the chosen model, write parameters,
    assignments and a report.
``gmmlab check MODULE:FUNCTION``
    Validate your own EM function against the reference engine.
``gmmlab demo``
    Fit the engine to Iris and print its parameters beside scikit-learn's.
``gmmlab --version``
    The installed gmmlab version.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import warnings
from pathlib import Path

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
    if not 1 <= args.components <= X.shape[0]:
        print(
            f"gmmlab demo: error: --components must be between 1 and "
            f"{X.shape[0]} (Iris has {X.shape[0]} flowers); got {args.components}.",
            file=sys.stderr,
        )
        return 2
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


DEFAULT_CONFIG = Path(__file__).parent / "configs" / "default.toml"


def _report_folder(args: argparse.Namespace, config_path: Path, out: Path) -> Path:
    """Where ``gmmlab run`` writes its report (see ``gmmlab run --help``)."""
    if args.report:
        return Path(args.report)
    if args.out:  # beside the results the user asked for, never in the cwd
        return out / "report"
    return Path("reports") / config_path.stem


def _run(args: argparse.Namespace) -> int:
    from experiments.config import ConfigError, load_config
    from experiments.runner import run_sweep

    config_path = Path(args.config) if args.config else DEFAULT_CONFIG
    out = Path(args.out) if args.out else Path("results") / config_path.stem
    if not args.config:
        # The installed copy: editing a checkout's file changes nothing here.
        print(f"config: the bundled default sweep, {config_path}")
    try:
        config = load_config(config_path)
        if args.jobs < 1:
            raise ConfigError(f"--jobs must be at least 1; got {args.jobs}.")
        if args.timeout is not None and args.timeout <= 0:
            raise ConfigError(f"--timeout must be positive; got {args.timeout}.")
        run_sweep(
            config,
            out,
            jobs=args.jobs,
            scheduler=args.scheduler,
            timeout=args.timeout,
            force=args.force,
            progress=not args.no_progress,
        )
        if not args.no_report:
            from experiments.report import build_report

            index = build_report(out, _report_folder(args, config_path, out))
            print(f"report: {index}  (open it in a browser)")
    except ValueError as error:
        print(f"gmmlab run: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(
            f"gmmlab run: interrupted; completed runs are kept in {out}, "
            "run the same command to resume.",
            file=sys.stderr,
        )
        return 130
    return 0


def _report(args: argparse.Namespace) -> int:
    from experiments.report import build_report

    results = Path(args.results)
    out = Path(args.out) if args.out else Path("reports") / results.name
    try:
        index = build_report(results, out)
    except ValueError as error:
        print(f"gmmlab report: error: {error}", file=sys.stderr)
        return 2
    print(f"report: {index}")
    return 0


def _out_of_core(args: argparse.Namespace) -> bool:
    """Whether ``gmmlab fit`` searches on Dask: a folder or ``--scheduler``."""
    if args.scheduler is None and not Path(args.file).is_dir():
        return False
    fixed = {
        "--lrt": bool(args.lrt),
        "--noise": args.noise,
        "--label": args.label is not None,
        "--scale": args.scale != "none",
        "--sep": args.sep is not None,
    }
    refused = [name for name, given in fixed.items() if given]
    if refused:
        raise ValueError(
            f"{', '.join(refused)} not supported yet on data fitted out of core "
            "(a folder, or --scheduler); fit a file in memory for those."
        )
    return True


def _fit(args: argparse.Namespace) -> int:
    from experiments.userfit import fit_file, parse_components

    try:
        components = parse_components(args.components)
        backends = tuple(b.strip() for b in args.backends.split(",") if b.strip())
        out = Path(args.out) if args.out else Path("reports") / Path(args.file).stem
        models = [m.strip() for m in args.models.split(",") if m.strip()]
        columns = [c.strip() for c in args.columns.split(",") if c.strip()]
        progress = not args.no_progress and sys.stderr.isatty()
        # What a fit in memory and one out of core both take.
        common = {
            "components": components,
            "models": models or None,
            "columns": columns or None,
            "prior": args.prior,
            "missing": args.missing,
            "out": out,
            "jobs": args.jobs,
            # A bar only where a person watches: not in logs or pipes.
            "progress": progress,
            "verbose": args.verbose,
        }
        if _out_of_core(args):
            from experiments.userfit_rows import fit_rows

            fit_rows(
                args.file, address=args.scheduler, sample_size=args.sample, **common
            )
            return 0
        fit_file(
            args.file,
            label=args.label,
            sep=args.sep,
            header=args.header,
            scale=args.scale,
            backends=backends,
            seeds=args.seeds,
            lrt=args.lrt,
            noise=args.noise,
            **common,
        )
    except ValueError as error:
        print(f"gmmlab fit: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        # Every file is written whole or not at all, and the search's
        # finished cells and the cross-check's finished runs are kept.
        print(
            "gmmlab fit: interrupted; no file was left half-written (run the same "
            "command again: it resumes from the cells and runs already done).",
            file=sys.stderr,
        )
        return 130
    return 0


def _check(args: argparse.Namespace) -> int:
    import json

    from mixtures.check import results_as_dict, run_isolated

    if not args.timeout > 0:
        print("gmmlab check: error: --timeout must be positive.", file=sys.stderr)
        return 2
    results, why = run_isolated(
        args.target, convention=args.convention, timeout=args.timeout
    )
    if results is None:
        if args.json:
            print(json.dumps({"passed": False, "error": why}, indent=2))
        else:
            print(f"gmmlab check: FAIL: {why}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(results_as_dict(results), indent=2))
    else:
        marks = {True: "PASS", False: "FAIL", None: "n/a "}
        width = max(len(r.name) for r in results)
        for result in results:
            print(f"{marks[result.passed]}  {result.name:<{width}}  {result.evidence}")
            if result.diagnosis:
                print(f"      {'':<{width}}  -> {result.diagnosis}")
        failed = sum(r.passed is False for r in results)
        passed = sum(r.passed is True for r in results)
        skipped = len(results) - failed - passed
        print(f"\n{passed} passed, {failed} failed, {skipped} not applicable")
    return 0 if all(r.passed is not False for r in results) else 1


_CHECK_CONVENTIONS = """\
how your function is called (--convention):
  standard   fn(X, n_components, weights, means, covariances, max_iter)
             X (n, d), weights (K,), means (K, d), covariances (K, d, d)
  1d         fn(x, n_components, weights, means, variances, max_iter)
             x (n,), means (K,), variances (K,)
  column     as 1d, with means and variances as (K, 1) columns
  self-init  fn(X, n_components, max_iter): it initialises itself
  auto       self-init for at most three parameters, else standard,
             falling back to 1d (the default)
it returns (weights, means, covariances) in the same layout, optionally
followed by its log-likelihood trace.
"""


def _add_run(commands) -> None:
    """``gmmlab run``'s arguments."""
    run = commands.add_parser(
        "run", help="run or resume a sweep (default: the bundled default sweep)"
    )
    run.add_argument("config", nargs="?", help="sweep configuration (TOML)")
    run.add_argument("--out", help="results folder (default: results/CONFIG-NAME)")
    run.add_argument(
        "--jobs",
        type=int,
        default=os.cpu_count() or 1,
        help="parallel runs (default: the number of cores)",
    )
    run.add_argument(
        "--scheduler",
        help="Dask scheduler: tcp://HOST:PORT, or 'local' for a new LocalCluster",
    )
    run.add_argument("--timeout", type=float, help="seconds allowed per run")
    run.add_argument(
        "--force",
        action="store_true",
        help="rerun every run, replacing the results folder",
    )
    run.add_argument("--no-progress", action="store_true", help="no progress bar")
    run.add_argument(
        "--report",
        metavar="DIR",
        help="report folder (default: OUT/report with --out, else reports/NAME)",
    )
    run.add_argument(
        "--no-report",
        action="store_true",
        help="do not build the report at the end",
    )
    run.set_defaults(handler=_run)


def _add_report(commands) -> None:
    """``gmmlab report``'s arguments."""
    report = commands.add_parser("report", help="build the report of a results folder")
    report.add_argument("results", help="results folder of a sweep")
    report.add_argument("--out", help="report folder (default: reports/NAME)")
    report.set_defaults(handler=_report)


def _add_fit(commands) -> None:
    """``gmmlab fit``'s arguments."""
    fit = commands.add_parser(
        "fit",
        help="search models x K on a CSV or Parquet file (BIC, as mclust) and "
        "write parameters, assignments, report",
    )
    fit.add_argument(
        "file",
        help="text table (.csv, .tsv, .txt, .data, .dat; separator and header "
        "detected) or Parquet; columns holding numbers are features. A folder "
        "of Parquet files or a Zarr array is fitted out of core (--scheduler)",
    )
    fit.add_argument(
        "--components",
        default="1..9",
        metavar="K|A..B",
        help="K or a range searched (default 1..9, chosen by BIC)",
    )
    fit.add_argument(
        "--models",
        default="",
        metavar="M1,M2,...",
        help="covariance models searched, by mclust's names (EII, VII, EEI, VEI, "
        "EVI, VVI, EEE, VEE, EVE, VVE, EEV, VEV, EVV, VVV; E, V for one column) "
        "or scikit-learn's (full, tied, diag, spherical); default: all that apply",
    )
    fit.add_argument(
        "--columns",
        default="",
        metavar="C1,C2,...",
        help="feature columns (default: every column holding numbers)",
    )
    fit.add_argument(
        "--label",
        metavar="COL",
        help="a column of known classes: never a feature; the report compares "
        "the clustering with it",
    )
    fit.add_argument(
        "--sep",
        choices=["comma", "semicolon", "tab", "whitespace"],
        help="field separator of a text file (default: detected)",
    )
    header = fit.add_mutually_exclusive_group()
    header.add_argument(
        "--header",
        dest="header",
        action="store_const",
        const=True,
        help="the first line names the columns (default: detected)",
    )
    header.add_argument("--no-header", dest="header", action="store_const", const=False)
    fit.add_argument(
        "--prior",
        action="store_true",
        help="MAP-EM with the conjugate prior of Fraley & Raftery (2007) "
        "(default: maximum likelihood, comparable with mclust)",
    )
    fit.add_argument(
        "--scale",
        choices=["none", "standard", "minmax"],
        default="none",
        help="rescale each column before fitting; results are reported in the "
        "file's units (default none: regularisation is already relative to "
        "each column's variance, so units do not matter; EII, VII, EEV, VEV, "
        "EVE and VVE change with per-column scaling)",
    )
    fit.add_argument(
        "--missing",
        choices=["error", "em"],
        default="error",
        help="what to do with empty cells (or NA, NaN): 'error' (default) "
        "refuses the file; 'em' fits by maximum likelihood over each row's "
        "observed values (rows with no value at all are left out, said so, and "
        "unassigned in assignments.csv)",
    )
    fit.add_argument(
        "--backends",
        default="em,sklearn",
        help="comma-separated engines of the cross-check at the chosen model "
        "(scikit-learn only for its four models)",
    )
    fit.add_argument("--seeds", type=int, default=5, help="seeds per initialisation")
    fit.add_argument(
        "--jobs",
        type=int,
        default=os.cpu_count() or 1,
        help="parallel processes for the search and the cross-check "
        "(default: all cores, here %(default)s)",
    )
    fit.add_argument(
        "--lrt",
        type=int,
        nargs="?",
        const=999,
        default=0,
        metavar="B",
        help="also test K against K + 1 for the chosen covariance model by the "
        "parametric bootstrap (mclust's mclustBootstrapLRT), B replicates per "
        "step (default 999 when given); writes lrt.csv and lrt.png",
    )
    fit.add_argument(
        "--noise",
        action="store_true",
        help="also search the same models and K with a uniform noise component "
        "(mclust's initialization$noise; the noise-only model K = 0 included), "
        "initial noise by nearest-neighbour cleaning; writes noise_search.csv, "
        "noise_assignments.csv and noise.png",
    )
    fit.add_argument(
        "--scheduler",
        metavar="ADDRESS|local",
        help="fit out of core on Dask, block by block (data larger than memory: "
        "a folder of Parquet files, one Parquet file or a Zarr array): 'local' "
        "starts a cluster of --jobs worker processes here, an address "
        "(tcp://host:8786) uses a running one. A folder is always fitted out "
        "of core (default then: Dask's threads in this process). Starts are "
        "searched on a sample, every cell then fitted on all rows; writes "
        "assignments/ (one Parquet file per block), not a report",
    )
    fit.add_argument(
        "--sample",
        type=int,
        default=50_000,
        metavar="N",
        help="out of core: rows of the sample the starts are searched on "
        "(default %(default)s)",
    )
    fit.add_argument("--out", help="output folder (default: reports/FILE-STEM)")
    fit.add_argument(
        "--no-progress",
        action="store_true",
        help="no progress bar (default: one on a terminal)",
    )
    fit.add_argument(
        "--verbose",
        action="store_true",
        help="also print the covariance matrices (always printed for up to "
        "3 features; always in parameters.json)",
    )
    fit.set_defaults(handler=_fit)


def _add_check(commands) -> None:
    """``gmmlab check``'s arguments."""
    check = commands.add_parser(
        "check",
        help="validate your EM implementation against the reference engine",
        description="Run a battery of checks on your EM function and name the "
        "likely bug of every failure.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=_CHECK_CONVENTIONS,
    )
    check.add_argument(
        "target",
        help="MODULE:FUNCTION or FILE.py:FUNCTION, e.g. my_em.py:em",
    )
    check.add_argument(
        "--convention",
        default="auto",
        choices=["auto", "standard", "1d", "column", "self-init"],
        help="how the function is called (see mixtures.check)",
    )
    check.add_argument("--json", action="store_true", help="machine-readable output")
    check.add_argument(
        "--timeout",
        type=float,
        default=60.0,
        help="seconds the whole check may take (default 60); the function runs "
        "in a separate process, so a hang or sys.exit cannot stop gmmlab",
    )
    check.set_defaults(handler=_check)


def _add_demo(commands) -> None:
    """``gmmlab demo``'s arguments."""
    demo = commands.add_parser(
        "demo", help="fit the engine to Iris and print the learned parameters"
    )
    demo.add_argument(
        "--components",
        type=int,
        default=3,
        metavar="K",
        help="number of components, 1 to 150 (default 3: Iris's three species)",
    )
    demo.add_argument(
        "--covariance-type",
        default="full",
        choices=["full", "tied", "diag", "spherical"],
        help="scikit-learn's covariance type (default full)",
    )
    demo.add_argument(
        "--seed",
        type=int,
        default=0,
        help="random_state of both fits, so they start alike (default 0)",
    )
    demo.set_defaults(handler=_demo)


def _build_parser() -> argparse.ArgumentParser:
    from mixtures._version import installed_version

    parser = argparse.ArgumentParser(
        prog="gmmlab",
        description="Gaussian mixtures by EM: fit, compare and validate. "
        "In Python: mixtures.GaussianMixture, fit_em, search, bootstrap, "
        "check_em; experiments.run_sweep, build_report, fit_file.",
    )
    parser.add_argument(
        "--version", action="version", version=f"gmmlab {installed_version()}"
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _add_run(commands)
    _add_report(commands)
    _add_fit(commands)
    _add_check(commands)
    _add_demo(commands)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``gmmlab`` console script."""
    args = _build_parser().parse_args(argv)
    return args.handler(args)


if __name__ == "__main__":
    sys.exit(main())
