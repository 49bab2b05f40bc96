"""Validate anyone's EM implementation against the reference engine.

``check_em(fn)`` runs a battery of checks on a user's EM function and says,
for each, pass or fail with evidence, and for failures the likely cause.

The calling conventions (``convention=``):

* ``"standard"``: ``fn(X, n_components, weights, means, covariances, max_iter)``
  with X (n, d), weights (K,), means (K, d), covariances (K, d, d);
* ``"1d"``: ``fn(x, n_components, weights, means, variances, max_iter)`` with
  x (n,), means (K,), variances (K,), as univariate write-ups often have it;
* ``"column"``: like ``"1d"`` but means and variances as (K, 1) columns;
* ``"self-init"``: ``fn(X, n_components, max_iter)``, initialising itself (the
  one-step comparison is then not applicable).

``fn`` returns ``(weights, means, covariances)`` in the same layout, optionally
followed by its log-likelihood trace. ``"auto"`` picks ``"self-init"`` for
functions of at most three parameters, else tries ``"standard"`` and falls
back to ``"1d"``.

The diagnosis compares the user's single EM step with *mutants* of the
reference step, each carrying one classic bug: the
standard deviation passed where the variance is expected, responsibilities
normalised over the samples instead of the components, mixing weights left
out of the E-step, component densities without their normalising constant,
weights not divided by n, the covariance taken about the old means. A mutant
that reproduces the user's step names the bug.
"""

from __future__ import annotations

import inspect
import math
import warnings
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from scipy.special import logsumexp

from mixtures.align import align, sqrtm_psd
from mixtures.em import score_samples
from mixtures.params import MixtureParams

__all__ = [
    "BUGS",
    "CHECKS",
    "Caller",
    "CheckContext",
    "CheckResult",
    "LooseParams",
    "call_em_function",
    "check_converges",
    "check_dimensions",
    "check_duplicates",
    "check_em",
    "check_monotone",
    "check_one_step",
    "check_recovers",
    "check_weights",
    "load_function",
    "reference_step",
    "results_as_dict",
]

#: Every check problem has three components.
_K = 3

#: The classic bugs the diagnosis can recognise, with their explanation.
BUGS = {
    "sd_for_variance": "the standard deviation is passed where the density expects "
    "the variance (e.g. pdf(x, mean, sqrt(var)) with a pdf that squares nothing)",
    "normalised_over_samples": "responsibilities are normalised over the samples "
    "(axis of n) instead of over the components, so they do not sum to one per point",
    "missing_weights": "the mixing weights are left out of the E-step",
    "unnormalised_densities": "component densities lack their normalising constant "
    "1/sqrt(det(2 pi Sigma))",
    "unnormalised_weights": "new weights are the responsibility sums, not divided by n",
    "old_means_in_covariance": "covariances are computed about the old means instead "
    "of the new ones",
}


@dataclass(frozen=True)
class CheckResult:
    """One check: ``passed`` is True, False, or None when not applicable."""

    name: str
    passed: bool | None
    evidence: str
    diagnosis: str = ""


# ---------------------------------------------------------------------------
# The reference step and its mutants


def reference_step(
    X: np.ndarray, params: MixtureParams, bug: str | None = None
) -> LooseParams:
    """One textbook EM step from ``params`` (no regularisation), or a buggy one.

    ``bug`` is None or a key of :data:`BUGS`. Written plainly, independent of
    the engine; the tests check that it equals :func:`mixtures.em.em_step`.
    """
    n, d = X.shape
    covariances = params.full_covariances()
    used = sqrtm_psd(covariances) if bug == "sd_for_variance" else covariances
    log_density = np.empty((n, params.n_components))
    for k in range(params.n_components):
        diff = X - params.means[k]
        maha = np.einsum("ni,ij,nj->n", diff, np.linalg.inv(used[k]), diff)
        constant = (
            0.0
            if bug == "unnormalised_densities"
            else -0.5 * (d * math.log(2 * math.pi) + np.linalg.slogdet(used[k])[1])
        )
        log_density[:, k] = constant - 0.5 * maha
    log_weights = 0.0 if bug == "missing_weights" else np.log(params.weights)
    joint = log_density + log_weights
    axis = 0 if bug == "normalised_over_samples" else 1
    resp = np.exp(joint - logsumexp(joint, axis=axis, keepdims=True))
    mass = resp.sum(axis=0)
    weights = mass if bug == "unnormalised_weights" else mass / n
    means = resp.T @ X / mass[:, None]
    centres = params.means if bug == "old_means_in_covariance" else means
    new_cov = np.stack(
        [
            (resp[:, k, None] * (X - centres[k])).T @ (X - centres[k]) / mass[k]
            for k in range(params.n_components)
        ]
    )
    return _unchecked(weights, means, new_cov)


@dataclass(frozen=True)
class LooseParams:
    """Parameters as a function returned them, possibly invalid.

    Unlike :class:`MixtureParams`, nothing is checked: weights may be off the
    simplex and any array may hold NaN.

    Attributes
    ----------
    weights : ndarray of shape (n_components,)
    means : ndarray of shape (n_components, n_features)
    covariances : ndarray of shape (n_components, n_features, n_features)
    """

    weights: np.ndarray
    means: np.ndarray
    covariances: np.ndarray


def _unchecked(weights, means, covariances) -> LooseParams:
    return LooseParams(
        np.asarray(weights, float),
        np.asarray(means, float),
        np.asarray(covariances, float),
    )


def _valid(loose: LooseParams) -> MixtureParams | None:
    try:
        return MixtureParams(loose.weights, loose.means, loose.covariances)
    except (ValueError, np.linalg.LinAlgError):
        return None


# ---------------------------------------------------------------------------
# Calling conventions


def _convention(fn: Callable, convention: str) -> str:
    if convention != "auto":
        return convention
    try:
        n_params = len(inspect.signature(fn).parameters)
    except (TypeError, ValueError):
        n_params = 6
    return "self-init" if n_params <= 3 else "standard"


def load_function(target: str) -> Callable:
    """``module:function`` or ``path/to/file.py:function`` to a callable.

    A module is imported with the working directory on the path; a file is
    loaded by its path. Raises ValueError with what to fix.
    """
    import importlib
    import importlib.util
    import os
    import sys
    from pathlib import Path

    if ":" not in target:
        raise ValueError(
            f"expected MODULE:FUNCTION or FILE.py:FUNCTION; got {target!r}."
        )
    where, name = target.rsplit(":", 1)
    if where.endswith(".py"):
        spec = importlib.util.spec_from_file_location(Path(where).stem, where)
        if spec is None or spec.loader is None or not Path(where).is_file():
            raise ValueError(f"no such file {where!r}.")
        module = importlib.util.module_from_spec(spec)
        try:
            spec.loader.exec_module(module)
        except SyntaxError as error:
            raise ValueError(
                f"cannot load {where!r}: syntax error on line {error.lineno}: "
                f"{error.msg}."
            ) from None
        except Exception as error:
            raise ValueError(
                f"cannot load {where!r}: importing it raised "
                f"{type(error).__name__}: {error}"
            ) from None
    else:
        if os.getcwd() not in sys.path:
            sys.path.insert(0, os.getcwd())
        try:
            module = importlib.import_module(where)
        except ImportError as error:
            raise ValueError(f"cannot import {where!r}: {error}") from None
        except SyntaxError as error:
            raise ValueError(
                f"cannot load {where!r}: syntax error in {error.filename} on line "
                f"{error.lineno}: {error.msg}."
            ) from None
        except Exception as error:
            raise ValueError(
                f"cannot load {where!r}: importing it raised "
                f"{type(error).__name__}: {error}"
            ) from None
    function = getattr(module, name, None)
    if not callable(function):
        raise ValueError(f"{where!r} has no function {name!r}.")
    return function


def call_em_function(
    fn: Callable,
    convention: str,
    X: np.ndarray,
    params: MixtureParams | None,
    max_iter: int,
    n_components: int | None = None,
) -> tuple[LooseParams, np.ndarray | None]:
    """Call someone's EM ``fn`` in its convention (module docstring).

    Parameters
    ----------
    fn : callable
    convention : {"standard", "1d", "column", "self-init"}
    X : ndarray of shape (n_samples, n_features)
    params : MixtureParams or None
        The starting parameters (None for "self-init").
    max_iter : int
    n_components : int, optional
        K; by default ``params.n_components``.

    Returns
    -------
    loose : the returned weights (K,), means (K, D) and covariances
        (K, D, D), as arrays that may be invalid (NaN, off the simplex)
    trace : ndarray or None, the function's own trace when it returns one
    """
    if params is None and (convention != "self-init" or n_components is None):
        raise ValueError(
            f"convention {convention!r} needs starting parameters (or, for "
            "'self-init', n_components)."
        )
    k = params.n_components if params is not None else n_components
    if convention == "self-init":
        out = fn(X if X.shape[1] > 1 else X[:, 0], k, max_iter)
    elif params is None:  # pragma: no cover - excluded above
        raise AssertionError
    elif convention == "standard":
        out = fn(
            X.copy(),
            k,
            params.weights.copy(),
            params.means.copy(),
            params.full_covariances().copy(),
            max_iter,
        )
    elif convention in ("1d", "column"):
        if X.shape[1] != 1:
            raise ValueError("a 1-D convention cannot take multi-dimensional data")
        variances = params.full_covariances()[:, 0, 0].copy()
        means = params.means[:, 0].copy()
        if convention == "column":
            variances, means = variances[:, None], means[:, None]
        out = fn(X[:, 0].copy(), k, params.weights.copy(), means, variances, max_iter)
    else:
        raise ValueError(
            f"unknown convention {convention!r}; use auto, standard, "
            "1d, column or self-init."
        )
    if not isinstance(out, tuple | list) or len(out) not in (3, 4):
        raise ValueError(
            "the function must return (weights, means, covariances[, loglik_trace])"
        )
    weights, means, covariances = (np.asarray(a, dtype=float) for a in out[:3])
    trace = None if len(out) == 3 else np.asarray(out[3], dtype=float).ravel()
    d = X.shape[1]
    if (
        weights.size != k
        or means.size != k * d
        or covariances.size
        not in (
            k * d * d,
            k * d,
        )
    ):
        raise ValueError(
            "wrong output shapes: expected weights of size K = "
            f"{k}, means of size K*D = {k * d} and covariances of size K*D*D = "
            f"{k * d * d} (or K*D variances); got weights {weights.shape}, means "
            f"{means.shape}, covariances {covariances.shape}."
        )
    means = means.reshape(-1, d)
    kk = means.shape[0]
    if covariances.size == kk * d * d:
        covariances = covariances.reshape(kk, d, d)
    elif covariances.size == kk * d:  # variance vectors
        covariances = np.stack([np.diag(v) for v in covariances.reshape(kk, d)])
    return _unchecked(weights.ravel(), means, covariances), trace


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


def _difference(a: LooseParams, b: LooseParams) -> dict[str, float]:
    """Largest absolute difference per parameter block (inf when shapes differ)."""
    out = {}
    for name in ("weights", "means", "covariances"):
        x, y = getattr(a, name), getattr(b, name)
        out[name] = (
            float(np.max(np.abs(x - y)))
            if x.shape == y.shape and np.all(np.isfinite(x))
            else float("inf")
        )
    return out


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
    diagnosis = ""
    if wrong:
        matches = {
            bug: max(_difference(mine, reference_step(X, start, bug)).values())
            for bug in BUGS
        }
        bug = min(matches, key=lambda key: matches[key])
        if matches[bug] <= 1e-6:
            diagnosis = f"likely cause: {BUGS[bug]} ({bug})."
        else:
            diagnosis = (
                f"no known bug reproduces this step; wrong part: {', '.join(wrong)}."
            )
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


def results_as_dict(results: list[CheckResult]) -> dict[str, Any]:
    """JSON-ready form: ``{"passed": bool, "checks": [...]}``."""
    return {
        "passed": all(r.passed is not False for r in results),
        "checks": [asdict(r) for r in results],
    }


if __name__ == "__main__":  # the child of run_isolated
    import sys

    _child_main(sys.argv[1:])
