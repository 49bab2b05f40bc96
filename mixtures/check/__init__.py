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

# The modules, one job each: conventions (loading and calling the user's
# function), diagnosis (the reference step, its mutants and the diagnosis),
# checks (the individual checks and the problems they pose), results (what a
# check reports) and runner (running the checks, in process or in a child).
from mixtures.check.checks import (
    CHECKS,
    Caller,
    CheckContext,
    check_converges,
    check_dimensions,
    check_duplicates,
    check_monotone,
    check_one_step,
    check_recovers,
    check_weights,
)
from mixtures.check.conventions import LooseParams, call_em_function, load_function
from mixtures.check.diagnosis import BUGS, reference_step
from mixtures.check.results import CheckResult, results_as_dict
from mixtures.check.runner import check_em
from mixtures.check.runner import run_isolated as run_isolated

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
