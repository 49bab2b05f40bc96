"""Running the checks on a function: in this process, or isolated in a child."""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence

import numpy as np

from mixtures.check.checks import _K, CHECKS, Caller, CheckContext, _problem
from mixtures.check.conventions import _convention, call_em_function, load_function
from mixtures.check.results import CheckResult, results_as_dict


def check_em(
    fn: Callable,
    *,
    convention: str = "auto",
    tolerance: float = 1e-6,
    checks: Sequence[Callable[[Caller, CheckContext], list[CheckResult]]] = CHECKS,
) -> list[CheckResult]:
    """Run the checks on ``fn`` and return their results in order.

    Parameters
    ----------
    fn : callable
        The EM implementation, in one of the conventions of the module
        docstring.
    convention : {"auto", "standard", "1d", "column", "self-init"}
    tolerance : float
        Agreement required of one EM step with the reference (1e-6).
    checks : sequence of check functions, default=CHECKS
        Each ``(caller, context) -> list[CheckResult]``.

    Returns
    -------
    list of CheckResult
    """
    requested = convention
    convention = _convention(fn, convention)
    if convention == "standard" and requested == "auto":
        try:
            X, _, start = _problem(2, 0)
            with warnings.catch_warnings(), np.errstate(all="ignore"):
                warnings.simplefilter("ignore")
                call_em_function(fn, convention, X, start, 1, _K)
        except Exception:
            convention = "1d"
    context = CheckContext(
        convention=convention,
        dims=(1,) if convention in ("1d", "column") else (1, 2),
        tolerance=tolerance,
    )
    caller = Caller(fn, convention)
    results: list[CheckResult] = []
    for check in checks:
        results.extend(check(caller, context))
    return results


def run_isolated(
    target: str, *, convention: str = "auto", timeout: float = 60.0
) -> tuple[list[CheckResult] | None, str]:
    """Load ``target`` and run :func:`check_em` in a child process.

    The user's code cannot hang, exit or crash the caller: returns
    ``(results, "")``, or ``(None, why)`` when the function could not be
    loaded, ran past ``timeout`` seconds, ended the process (``sys.exit``,
    ``os._exit``, a crash) or printed no result.
    """
    import json
    import os
    import subprocess
    import sys
    import tempfile

    with tempfile.TemporaryDirectory() as folder:
        output = os.path.join(folder, "result.json")
        command = [sys.executable, "-m", "mixtures.check", target, convention, output]
        try:
            completed = subprocess.run(
                command, capture_output=True, text=True, timeout=timeout, check=False
            )
        except subprocess.TimeoutExpired:
            return None, (
                f"the function did not return within {timeout:g} s (an endless "
                "loop, or far too many iterations); raise --timeout if it is "
                "just slow."
            )
        if not os.path.isfile(output):
            tail = (completed.stderr or "").strip().splitlines()[-3:]
            return None, (
                f"the function ended the Python process (exit status "
                f"{completed.returncode}) instead of returning: sys.exit, "
                "os._exit or a crash inside it"
                + (f"; its last words: {' | '.join(tail)}" if tail else ".")
            )
        with open(output) as handle:
            outcome = json.load(handle)
    if "error" in outcome:
        return None, outcome["error"]
    return [CheckResult(**check) for check in outcome["checks"]], ""


def _child_main(argv: list[str]) -> None:
    """``python -m mixtures.check TARGET CONVENTION OUTPUT`` (see run_isolated)."""
    import json

    target, convention, output = argv
    try:
        outcome = results_as_dict(
            check_em(load_function(target), convention=convention)
        )
    except ValueError as error:
        outcome = {"error": str(error)}
    with open(output, "w") as handle:
        json.dump(outcome, handle)
