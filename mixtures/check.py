"""Validate anyone's EM implementation against the reference engine.

``check_em(fn)`` runs a battery of checks on a user's EM function and says,
for each, pass or fail with evidence, and for failures the likely cause.

The calling conventions (``convention=``):

* ``"standard"``: ``fn(X, n_components, weights, means, covariances, max_iter)``
  with X (n, d), weights (K,), means (K, d), covariances (K, d, d);
* ``"1d"``: ``fn(x, n_components, weights, means, variances, max_iter)`` with
  x (n,), means (K,), variances (K,), as in scenario S1;
* ``"column"``: like ``"1d"`` but means and variances as (K, 1) columns;
* ``"self-init"``: ``fn(X, n_components, max_iter)``, initialising itself (the
  one-step comparison is then not applicable).

``fn`` returns ``(weights, means, covariances)`` in the same layout, optionally
followed by its log-likelihood trace. ``"auto"`` picks ``"self-init"`` for
functions of at most three parameters, else tries ``"standard"`` and falls
back to ``"1d"``.

The diagnosis compares the user's single EM step with *mutants* of the
reference step, each carrying one classic bug (from the scenarios): the
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
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from scipy.special import logsumexp

from mixtures.align import align
from mixtures.em import score_samples
from mixtures.params import MixtureParams

__all__ = [
    "BUGS",
    "CheckResult",
    "call_em_function",
    "check_em",
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
    "1/sqrt(det(2 pi Sigma)) (the S3 confusion)",
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


def _sqrtm(covariance: np.ndarray) -> np.ndarray:
    values, vectors = np.linalg.eigh(covariance)
    return (vectors * np.sqrt(np.clip(values, 0, None))) @ vectors.T


def reference_step(
    X: np.ndarray, params: MixtureParams, bug: str | None = None
) -> MixtureParams:
    """One textbook EM step from ``params`` (no regularisation), or a buggy one.

    ``bug`` is None or a key of :data:`BUGS`. Written plainly, independent of
    the engine; the tests check that it equals :func:`mixtures.em.em_step`.
    """
    n, d = X.shape
    covariances = params.full_covariances()
    used = (
        np.stack([_sqrtm(c) for c in covariances])
        if bug == "sd_for_variance"
        else covariances
    )
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
class _Loose:
    """Parameters as returned, possibly invalid (NaN, weights off the simplex)."""

    weights: np.ndarray
    means: np.ndarray
    covariances: np.ndarray


def _unchecked(weights, means, covariances) -> _Loose:
    return _Loose(
        np.asarray(weights, float),
        np.asarray(means, float),
        np.asarray(covariances, float),
    )


def _valid(loose: _Loose) -> MixtureParams | None:
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
        if spec is None or not Path(where).is_file():
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
) -> tuple[_Loose, np.ndarray | None]:
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
    k = params.n_components if n_components is None else n_components
    if convention == "self-init":
        out = fn(X if X.shape[1] > 1 else X[:, 0], k, max_iter)
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
    """A 1-D series with 13 identical values (like S1) and a start on them."""
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


def _difference(a: _Loose, b: _Loose) -> dict[str, float]:
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


def check_em(
    fn: Callable, *, convention: str = "auto", tolerance: float = 1e-6
) -> list[CheckResult]:
    """Run every check on ``fn`` and return the results in order.

    Parameters
    ----------
    fn : callable
        The EM implementation, in one of the conventions of the module
        docstring.
    convention : {"auto", "standard", "1d", "column", "self-init"}
    tolerance : float
        Agreement required of one EM step with the reference (1e-6).
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
    dims = [1] if convention in ("1d", "column") else [1, 2]
    results: list[CheckResult] = []
    outputs: list[_Loose] = []

    def safe_call(X, params, max_iter):
        try:
            # The user's warnings (overflow, invalid values) must not escape;
            # what they cause is reported through the checks.
            with warnings.catch_warnings(), np.errstate(all="ignore"):
                warnings.simplefilter("ignore")
                loose, trace = call_em_function(fn, convention, X, params, max_iter, _K)
        except Exception as error:
            return None, None, f"{type(error).__name__}: {error}"
        outputs.append(loose)
        return loose, trace, ""

    # 1. one step equals the reference, and the diagnosis of a mismatch
    X2, _, start2 = _problem(max(dims), 1)
    if convention == "self-init":
        results.append(
            CheckResult(
                "one EM step equals the reference",
                None,
                "not applicable: the function initialises itself",
            )
        )
    else:
        mine, _, error = safe_call(X2, start2, 1)
        if mine is None:
            results.append(
                CheckResult(
                    "one EM step equals the reference",
                    False,
                    f"the call failed: {error}",
                )
            )
        else:
            reference = reference_step(X2, start2)
            gaps = _difference(mine, reference)
            wrong = [name for name, gap in gaps.items() if not gap <= tolerance]
            evidence = ", ".join(
                f"{name} off by {gap:.2g}" for name, gap in gaps.items()
            )
            diagnosis = ""
            if wrong:
                matches = {
                    bug: max(
                        _difference(mine, reference_step(X2, start2, bug)).values()
                    )
                    for bug in BUGS
                }
                bug = min(matches, key=matches.get)
                if matches[bug] <= 1e-6:
                    diagnosis = f"likely cause: {BUGS[bug]} ({bug})."
                else:
                    diagnosis = (
                        "no known bug reproduces this step; wrong part: "
                        f"{', '.join(wrong)}."
                    )
            results.append(
                CheckResult(
                    "one EM step equals the reference", not wrong, evidence, diagnosis
                )
            )

    # 2. the log-likelihood never decreases
    X1, _, start1 = _problem(max(dims), 2)
    values, stuck = [], False
    for t in range(1, 9):
        loose, _, error = safe_call(X1, start1, t)
        params = None if loose is None else _valid(loose)
        if params is None:
            stuck = True
            break
        values.append(float(np.mean(score_samples(X1, params))))
    if stuck:
        results.append(
            CheckResult(
                "log-likelihood never decreases",
                False,
                f"after {len(values) + 1} iteration(s) the parameters are invalid "
                f"{error or '(NaN, or weights not on the simplex)'}",
                "likely cause: invalid parameters (see the one-step check).",
            )
        )
    else:
        drops = np.diff(values)
        worst = float(drops.min()) if drops.size else 0.0
        results.append(
            CheckResult(
                "log-likelihood never decreases",
                bool(worst >= -1e-9 * abs(values[-1])),
                f"mean log-likelihood after 1..8 iterations: "
                f"{', '.join(f'{v:.5f}' for v in values)}",
                ""
                if worst >= -1e-9 * abs(values[-1])
                else "likely cause: the E-step or M-step is not the EM update "
                "(see above).",
            )
        )

    # 3. asked for many iterations, it runs more than one and stops at a fixed point
    # (on well-separated data, where EM converges in a few dozen iterations)
    X3, _, start3 = _problem(max(dims), 6, separation=6.0)
    one, _, _ = safe_call(X3, start3, 1)
    many, trace, error = safe_call(X3, start3, 500)
    if one is None or many is None:
        results.append(
            CheckResult(
                "runs more than one iteration and converges",
                False,
                f"the call failed: {error}",
            )
        )
    else:
        moved = max(_difference(one, many).values())
        converged = _valid(many)
        drift = float("inf")
        if converged is not None:
            step = reference_step(X3, converged)
            drift = max(
                _difference(
                    step,
                    _unchecked(
                        converged.weights, converged.means, converged.full_covariances()
                    ),
                ).values()
            )
        ok = moved > 1e-8 and drift < 1e-3
        diagnosis = ""
        if moved <= 1e-8:
            diagnosis = (
                "likely cause: the function returns after one iteration "
                "(a `return` inside the iteration loop, as in scenario S5)."
            )
        elif drift >= 1e-3:
            diagnosis = (
                "likely cause: it stops before convergence, or does not converge."
            )
        results.append(
            CheckResult(
                "runs more than one iteration and converges",
                ok,
                f"500 vs 1 iteration(s) differ by {moved:.2g}; one more reference step "
                f"moves the result by {drift:.2g}"
                + ("" if trace is None else f"; its trace has {trace.size} entries"),
                diagnosis,
            )
        )

    # 4. recovers a well-separated truth
    Xs, truth_s, start_s = _problem(max(dims), 3, n=2000, separation=6.0)
    loose, _, error = safe_call(Xs, start_s, 300)
    recovered = None if loose is None else _valid(loose)
    if recovered is None:
        results.append(
            CheckResult(
                "recovers a well-separated mixture",
                False,
                f"no valid parameters came back {error}",
            )
        )
    else:
        aligned = align(recovered, truth_s)
        mean_error = float(np.max(np.abs(aligned.means - truth_s.means)))
        weight_error = float(np.max(np.abs(aligned.weights - truth_s.weights)))
        results.append(
            CheckResult(
                "recovers a well-separated mixture",
                mean_error < 0.25 and weight_error < 0.05,
                f"largest mean error {mean_error:.3g}, weight error {weight_error:.3g} "
                "(after matching components)",
            )
        )

    # 5. 1-D and multi-D inputs
    for d in (1, 2):
        name = f"{d}-D input works"
        if d not in dims:
            results.append(
                CheckResult(name, None, f"not applicable to convention {convention!r}")
            )
            continue
        Xd, _, start_d = _problem(d, 4)
        loose, _, error = safe_call(Xd, start_d, 5)
        ok = loose is not None and _valid(loose) is not None
        results.append(
            CheckResult(
                name,
                ok,
                "valid parameters returned"
                if ok
                else f"failed: {error or 'invalid parameters'}",
            )
        )

    # 6. duplicated points do not give NaN
    x, duplicates_start = _duplicates_problem()
    loose, _, error = safe_call(x, duplicates_start, 100)
    finite = loose is not None and all(
        np.all(np.isfinite(getattr(loose, n)))
        for n in ("weights", "means", "covariances")
    )
    results.append(
        CheckResult(
            "duplicated points do not produce NaN",
            finite,
            "finite parameters on a series with 13 identical values (as in S1)"
            if finite
            else f"non-finite parameters or a failure on a series with 13 "
            f"identical values {error}",
            ""
            if finite
            else "likely cause: no variance floor; add a small value to the "
            "variances (scikit-learn's reg_covar) so a component on identical "
            "points stays finite.",
        )
    )

    # 7. weights sum to one and stay positive, over everything returned
    sums = [float(o.weights.sum()) for o in outputs if o.weights.size]
    minimum = min(
        (float(o.weights.min()) for o in outputs if o.weights.size),
        default=float("nan"),
    )
    ok = bool(sums) and all(abs(s - 1) < 1e-6 for s in sums) and minimum > 0
    results.append(
        CheckResult(
            "weights sum to one and stay positive",
            ok,
            f"weight sums between {min(sums, default=float('nan')):.6g} and "
            f"{max(sums, default=float('nan')):.6g}, smallest weight {minimum:.3g}",
            ""
            if ok
            else "likely cause: " + BUGS["unnormalised_weights"] + "."
            if any(abs(s - 1) > 1e-6 for s in sums)
            else "",
        )
    )
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
