"""The individual checks of a user's EM function, and the problems they pose.

Each check is a function ``(caller, context) -> list[CheckResult]``; CHECKS
lists them in the order :func:`~mixtures.check.check_em` runs them.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from mixtures.align import align
from mixtures.check.conventions import (
    LooseParams,
    _unchecked,
    _valid,
    call_em_function,
)
from mixtures.check.diagnosis import BUGS, _diagnose, _difference, reference_step
from mixtures.check.results import CheckResult
from mixtures.em import score_samples
from mixtures.params import MixtureParams

#: Every check problem has three components.
_K = 3


# ---------------------------------------------------------------------------
# Problems


def _problem(d: int, seed: int, n: int = 300, separation: float = 2.5):
    """A moderately overlapping 3-component problem and a rough start."""
    rng = np.random.default_rng(seed)
    means = rng.normal(scale=separation, size=(3, d))
    covs = np.stack([np.eye(d) * s for s in (0.6, 1.0, 1.4)])
    truth = MixtureParams([0.3, 0.3, 0.4], means, covs)
    X, _ = truth.sample(n, random_state=rng)
    # Unequal start weights and covariances, so that leaving the weights or the
    # normalising constants out of the E-step changes the very first step.
    spread = np.cov(X.T).reshape(d, d)
    start = MixtureParams(
        [0.2, 0.3, 0.5],
        means + rng.normal(scale=0.5, size=(3, d)),
        np.stack([spread * scale for scale in (0.6, 1.0, 1.5)]),
    )
    return X, truth, start


def _duplicates_problem() -> tuple[np.ndarray, MixtureParams]:
    """A 1-D series with 13 identical values and a start on them."""
    rng = np.random.default_rng(5)
    x = np.concatenate(
        [
            rng.normal(24.5, 0.5, 15),
            rng.normal(35.0, 1.0, 10),
            np.full(13, 44.44571429),
            rng.normal(44.0, 0.4, 12),
        ]
    )
    start = MixtureParams(
        [0.3, 0.2, 0.5], [[24.5], [35.0], [44.44571429]], [[[1.0]], [[1.0]], [[1.0]]]
    )
    return x[:, None], start


# ---------------------------------------------------------------------------
# The checks
#
# Each check is a function ``(caller, context) -> list[CheckResult]``. The
# caller calls the user's function (its warnings silenced, its exceptions
# turned into evidence) and keeps every output, which the last check, on the
# weights, inspects. CHECKS lists them in the order they run.


@dataclass(frozen=True)
class CheckContext:
    """What every check needs to know about the function under test.

    Attributes
    ----------
    convention : str
        The calling convention in use (module docstring); never "auto".
    dims : tuple of int
        The data dimensions the convention accepts: (1,) or (1, 2).
    tolerance : float
        Agreement required of one EM step with the reference.
    """

    convention: str
    dims: tuple[int, ...]
    tolerance: float = 1e-6


class Caller:
    """Calls the function under test and remembers every output it returned.

    ``caller(X, params, max_iter)`` returns ``(loose, trace, error)``: the
    returned parameters (or None), the function's own trace (or None) and
    the error message of a failed call ("" when it succeeded).
    """

    def __init__(self, fn: Callable, convention: str) -> None:
        self.fn = fn
        self.convention = convention
        self.outputs: list[LooseParams] = []

    def __call__(
        self, X: np.ndarray, params: MixtureParams, max_iter: int
    ) -> tuple[LooseParams | None, np.ndarray | None, str]:
        """Call the function on X from ``params`` for ``max_iter`` iterations."""
        try:
            # The user's warnings (overflow, invalid values) must not escape;
            # what they cause is reported through the checks.
            with warnings.catch_warnings(), np.errstate(all="ignore"):
                warnings.simplefilter("ignore")
                loose, trace = call_em_function(
                    self.fn, self.convention, X, params, max_iter, _K
                )
        except Exception as error:
            return None, None, f"{type(error).__name__}: {error}"
        self.outputs.append(loose)
        return loose, trace, ""


def check_one_step(caller: Caller, context: CheckContext) -> list[CheckResult]:
    """One EM step equals the reference step; a mismatch is diagnosed by mutants."""
    name = "one EM step equals the reference"
    if context.convention == "self-init":
        return [
            CheckResult(name, None, "not applicable: the function initialises itself")
        ]
    X, _, start = _problem(max(context.dims), 1)
    mine, _, error = caller(X, start, 1)
    if mine is None:
        return [CheckResult(name, False, f"the call failed: {error}")]
    reference = reference_step(X, start)
    gaps = _difference(mine, reference)
    wrong = [part for part, gap in gaps.items() if not gap <= context.tolerance]
    evidence = ", ".join(f"{part} off by {gap:.2g}" for part, gap in gaps.items())
    diagnosis = _diagnose(X, start, mine, wrong) if wrong else ""
    return [CheckResult(name, not wrong, evidence, diagnosis)]


def check_monotone(caller: Caller, context: CheckContext) -> list[CheckResult]:
    """The log-likelihood never decreases over the first eight iterations."""
    name = "log-likelihood never decreases"
    X, _, start = _problem(max(context.dims), 2)
    values: list[float] = []
    for t in range(1, 9):
        loose, _, error = caller(X, start, t)
        params = None if loose is None else _valid(loose)
        if params is None:
            return [
                CheckResult(
                    name,
                    False,
                    f"after {len(values) + 1} iteration(s) the parameters are "
                    f"invalid {error or '(NaN, or weights not on the simplex)'}",
                    "likely cause: invalid parameters (see the one-step check).",
                )
            ]
        values.append(float(np.mean(score_samples(X, params))))
    worst = float(np.diff(values).min())
    ok = worst >= -1e-9 * abs(values[-1])
    return [
        CheckResult(
            name,
            ok,
            "mean log-likelihood after 1..8 iterations: "
            + ", ".join(f"{v:.5f}" for v in values),
            ""
            if ok
            else "likely cause: the E-step or M-step is not the EM update (see above).",
        )
    ]


def check_converges(caller: Caller, context: CheckContext) -> list[CheckResult]:
    """Asked for many iterations, it runs more than one and stops at a fixed point.

    On well-separated data, where EM converges in a few dozen iterations.
    """
    name = "runs more than one iteration and converges"
    X, _, start = _problem(max(context.dims), 6, separation=6.0)
    one, _, _ = caller(X, start, 1)
    many, trace, error = caller(X, start, 500)
    if one is None or many is None:
        return [CheckResult(name, False, f"the call failed: {error}")]
    moved = max(_difference(one, many).values())
    converged = _valid(many)
    drift = float("inf")
    if converged is not None:
        step = reference_step(X, converged)
        drift = max(
            _difference(
                step,
                _unchecked(
                    converged.weights, converged.means, converged.full_covariances()
                ),
            ).values()
        )
    diagnosis = ""
    if moved <= 1e-8:
        diagnosis = (
            "likely cause: the function returns after one iteration "
            "(a `return` inside the iteration loop)."
        )
    elif drift >= 1e-3:
        diagnosis = "likely cause: it stops before convergence, or does not converge."
    return [
        CheckResult(
            name,
            moved > 1e-8 and drift < 1e-3,
            f"500 vs 1 iteration(s) differ by {moved:.2g}; one more reference step "
            f"moves the result by {drift:.2g}"
            + ("" if trace is None else f"; its trace has {trace.size} entries"),
            diagnosis,
        )
    ]


def check_recovers(caller: Caller, context: CheckContext) -> list[CheckResult]:
    """A well-separated mixture is recovered (means and weights, after matching)."""
    name = "recovers a well-separated mixture"
    X, truth, start = _problem(max(context.dims), 3, n=2000, separation=6.0)
    loose, _, error = caller(X, start, 300)
    recovered = None if loose is None else _valid(loose)
    if recovered is None:
        return [CheckResult(name, False, f"no valid parameters came back {error}")]
    aligned = align(recovered, truth)
    mean_error = float(np.max(np.abs(aligned.means - truth.means)))
    weight_error = float(np.max(np.abs(aligned.weights - truth.weights)))
    return [
        CheckResult(
            name,
            mean_error < 0.25 and weight_error < 0.05,
            f"largest mean error {mean_error:.3g}, weight error {weight_error:.3g} "
            "(after matching components)",
        )
    ]


def check_dimensions(caller: Caller, context: CheckContext) -> list[CheckResult]:
    """1-D and 2-D inputs give valid parameters (where the convention takes them)."""
    results = []
    for d in (1, 2):
        name = f"{d}-D input works"
        if d not in context.dims:
            results.append(
                CheckResult(
                    name, None, f"not applicable to convention {context.convention!r}"
                )
            )
            continue
        X, _, start = _problem(d, 4)
        loose, _, error = caller(X, start, 5)
        ok = loose is not None and _valid(loose) is not None
        evidence = (
            "valid parameters returned"
            if ok
            else f"failed: {error or 'invalid parameters'}"
        )
        results.append(CheckResult(name, ok, evidence))
    return results


def check_duplicates(caller: Caller, context: CheckContext) -> list[CheckResult]:
    """Data with a run of identical values do not produce NaN."""
    x, start = _duplicates_problem()
    loose, _, error = caller(x, start, 100)
    finite = loose is not None and all(
        np.all(np.isfinite(getattr(loose, part)))
        for part in ("weights", "means", "covariances")
    )
    return [
        CheckResult(
            "duplicated points do not produce NaN",
            finite,
            "finite parameters on a series with 13 identical values"
            if finite
            else "non-finite parameters or a failure on a series with 13 "
            f"identical values {error}",
            ""
            if finite
            else "likely cause: no variance floor; add a small value to the "
            "variances (scikit-learn's reg_covar) so a component on identical "
            "points stays finite.",
        )
    ]


def check_weights(caller: Caller, context: CheckContext) -> list[CheckResult]:
    """Weights sum to one and stay positive, in everything the function returned.

    Inspects the outputs the earlier checks collected; run on its own, it
    calls the function once first.
    """
    if not caller.outputs:
        X, _, start = _problem(max(context.dims), 4)
        caller(X, start, 5)
    returned = [o for o in caller.outputs if o.weights.size]
    sums = [float(o.weights.sum()) for o in returned]
    minimum = min((float(o.weights.min()) for o in returned), default=float("nan"))
    ok = bool(sums) and all(abs(s - 1) < 1e-6 for s in sums) and minimum > 0
    diagnosis = ""
    if not ok and any(abs(s - 1) > 1e-6 for s in sums):
        diagnosis = "likely cause: " + BUGS["unnormalised_weights"] + "."
    return [
        CheckResult(
            "weights sum to one and stay positive",
            ok,
            f"weight sums between {min(sums, default=float('nan')):.6g} and "
            f"{max(sums, default=float('nan')):.6g}, smallest weight {minimum:.3g}",
            diagnosis,
        )
    ]


#: The checks of :func:`check_em`, in the order they run.
CHECKS: tuple[Callable[[Caller, CheckContext], list[CheckResult]], ...] = (
    check_one_step,
    check_monotone,
    check_converges,
    check_recovers,
    check_dimensions,
    check_duplicates,
    check_weights,
)
