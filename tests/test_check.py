"""`gmmlab check`: each classic bug is caught by the right check and diagnosis."""

from __future__ import annotations

import importlib
import json

import numpy as np
import pytest
from numpy.testing import assert_allclose

from experiments.cli import main
from mixtures import MixtureParams, check_em
from mixtures.check import BUGS, load_function, reference_step
from mixtures.em import DegeneracyPolicy, em_step

from gmm_helpers import random_mixture


def _load(name):
    return importlib.import_module(f"experiments.writeups.{name}").em


def _by_name(results):
    return {result.name: result for result in results}


@pytest.mark.parametrize("name", ["correct", "correct_1d"])
def test_correct_implementations_pass_everything(name):
    results = check_em(_load(name))
    assert all(r.passed is not False for r in results), [
        (r.name, r.evidence) for r in results if r.passed is False
    ]
    assert sum(r.passed is True for r in results) >= 7


@pytest.mark.parametrize(
    ("name", "bug"),
    [
        ("normalised_over_samples", "normalised_over_samples"),
        ("missing_weights", "missing_weights"),
        ("unnormalised_densities", "unnormalised_densities"),
        ("sd_for_variance_1d", "sd_for_variance"),
    ],
)
def test_e_and_m_step_bugs_are_named_by_the_one_step_check(name, bug):
    results = _by_name(check_em(_load(name)))
    step = results["one EM step equals the reference"]
    assert step.passed is False
    assert step.diagnosis == f"likely cause: {BUGS[bug]} ({bug})."


def test_early_return_is_caught_by_the_iteration_check():
    results = _by_name(check_em(_load("early_return")))
    assert results["one EM step equals the reference"].passed is True
    iterations = results["runs more than one iteration and converges"]
    assert iterations.passed is False
    assert "return` inside the iteration loop" in iterations.diagnosis
    assert "differ by 0" in iterations.evidence


def test_reference_step_is_the_engines_step(rng):
    params = random_mixture(rng, 3, 2, separation=2.0)
    X, _ = params.sample(400, random_state=1)
    weights = np.ones(400)
    engine, _ = em_step(X, weights, params, DegeneracyPolicy.for_data(X, weights, 0.0))
    reference = reference_step(X, params)
    assert_allclose(reference.weights, engine.weights, rtol=1e-10)
    assert_allclose(reference.means, engine.means, rtol=1e-10, atol=1e-12)
    assert_allclose(reference.covariances, engine.full_covariances(), rtol=1e-9)


def test_every_mutant_differs_from_the_reference(rng):
    params = MixtureParams(
        [0.2, 0.3, 0.5],
        [[0.0, 0.0], [3.0, 0.0], [0.0, 3.0]],
        np.stack([np.eye(2) * s for s in (0.5, 1.0, 2.0)]),
    )
    X, _ = params.sample(300, random_state=2)
    correct = reference_step(X, params)
    for bug in BUGS:
        mutant = reference_step(X, params, bug)
        gap = max(
            np.max(np.abs(getattr(mutant, a) - getattr(correct, a)))
            for a in ("weights", "means", "covariances")
        )
        assert gap > 1e-3, bug


def test_self_initialising_function_is_checked_without_the_step_comparison():
    from mixtures import fit_em

    def mine(X, n_components, max_iter):
        result = fit_em(X, n_components, max_iter=max_iter, random_state=0, tol=0.0)
        p = result.params
        return p.weights, p.means, p.full_covariances()

    results = _by_name(check_em(mine))
    assert results["one EM step equals the reference"].passed is None
    assert results["recovers a well-separated mixture"].passed is True


@pytest.mark.slow  # each check spawns a Python process (seconds of imports)
def test_cli_table_json_and_exit_status(capsys):
    assert main(["check", "experiments.writeups.correct:em"]) == 0
    out = capsys.readouterr().out
    assert "PASS  one EM step equals the reference" in out
    assert out.strip().endswith("8 passed, 0 failed, 0 not applicable")
    assert main(["check", "experiments/writeups/early_return.py:em", "--json"]) == 1
    report = json.loads(capsys.readouterr().out)
    assert report["passed"] is False
    failed = [c["name"] for c in report["checks"] if c["passed"] is False]
    assert "runs more than one iteration and converges" in failed
    assert main(["check", "no_such_module:em"]) == 2
    assert "cannot import" in capsys.readouterr().err
    # A missing function takes the same way out (the child's loader refuses
    # it, exit status 2); what the loader says of it, without a third child:
    with pytest.raises(ValueError, match="has no function 'nothing'"):
        load_function("experiments.writeups.correct:nothing")


# ---------------------------------------------------------------------------
# Isolation: the user's code runs in a child process (issue 13, part 4)


def _user_file(tmp_path, body: str):
    path = tmp_path / "user_em.py"
    path.write_text(
        "import numpy as np\n"
        "from experiments.writeups.correct import em as _correct\n\n" + body
    )
    return f"{path}:em"


@pytest.mark.slow  # each spawns a Python process (seconds of imports)
@pytest.mark.parametrize(
    ("body", "message"),
    [
        (
            "def em(X, k, w, m, c, n):\n    while True:\n        pass\n",
            "did not return within 3 s",
        ),
        (
            "import sys\ndef em(X, k, w, m, c, n):\n    sys.exit(0)\n",
            "ended the Python process",
        ),
        ("import os\ndef em(X, k, w, m, c, n):\n    os._exit(3)\n", "exit status 3"),
        ("def em(X, k, w, m, c, n)\n    return 1\n", "syntax error on line 4"),
        ("import no_such_package_xyz\ndef em(*a):\n    pass\n", "ModuleNotFoundError"),
    ],
)
def test_hangs_exits_and_broken_files_fail_clearly(tmp_path, capsys, body, message):
    target = _user_file(tmp_path, body)
    # The child process needs a second or two to import numpy, scipy and
    # sklearn: 3 s lets it reach the endless loop before it is stopped.
    timeout = "3" if "while True" in body else "120"
    assert main(["check", target, "--timeout", timeout]) == 2
    assert message in capsys.readouterr().err


@pytest.mark.slow  # each spawns a Python process (seconds of imports)
def test_explicit_convention_is_honoured(tmp_path, capsys):
    # A 1-D function called as 'standard' must fail as standard, not be
    # silently re-run as 1-D. The write-up's 1-D EM, refusing 2-D data at
    # once: called as 'standard', the bare write-up asks for a 26 GiB array
    # in the duplicates check (seconds of the kernel's refusal).
    body = (
        "from experiments.writeups.correct_1d import em as _em_1d\n"
        "def em(x, k, w, m, v, n):\n"
        "    if np.ndim(x) != 1:\n"
        "        raise ValueError('one-dimensional data only')\n"
        "    return _em_1d(x, k, w, m, v, n)\n"
    )
    target = _user_file(tmp_path, body)
    # Left to find its convention, the checker calls it as 1-D: it passes.
    assert all(r.passed is not False for r in check_em(load_function(target)))
    assert main(["check", target, "--convention", "standard", "--json"]) == 1
    report = json.loads(capsys.readouterr().out)
    assert report["passed"] is False


@pytest.mark.slow  # each spawns a Python process (seconds of imports)
def test_wrong_output_shapes_are_named(tmp_path, capsys):
    body = "def em(X, k, w, m, c, n):\n    return np.full(k + 1, 1.0 / (k + 1)), m, c\n"
    target = _user_file(tmp_path, body)
    assert main(["check", target, "--json"]) == 1
    report = json.loads(capsys.readouterr().out)
    evidence = " ".join(c["evidence"] for c in report["checks"] if not c["passed"])
    assert "wrong output shapes" in evidence


@pytest.mark.slow  # each spawns a Python process (seconds of imports)
def test_not_applicable_checks_are_not_counted_as_passed(capsys):
    assert main(["check", "experiments/writeups/correct_1d.py:em"]) == 0
    out = capsys.readouterr().out.strip().splitlines()[-1]
    assert out.endswith("not applicable")
    assert not out.endswith(" 0 not applicable")


# -- each check on its own -------------------------------------------------------


def _run_alone(check, name):
    from mixtures.check import Caller, CheckContext

    fn = _load(name)
    convention = "1d" if name.endswith("_1d") else "standard"
    dims = (1,) if convention == "1d" else (1, 2)
    caller = Caller(fn, convention)
    return check(caller, CheckContext(convention, dims)), caller


def test_check_em_is_the_list_of_checks_in_order():
    from mixtures.check import CHECKS, check_one_step, check_weights

    assert CHECKS[0] is check_one_step
    assert CHECKS[-1] is check_weights
    only_first = check_em(_load("correct"), checks=[check_one_step])
    assert [r.name for r in only_first] == ["one EM step equals the reference"]


def test_one_step_check_alone():
    from mixtures.check import check_one_step

    (good,), _ = _run_alone(check_one_step, "correct")
    (bad,), _ = _run_alone(check_one_step, "missing_weights")
    assert good.passed is True
    assert bad.passed is False
    assert "missing_weights" in bad.diagnosis


def test_monotone_check_alone():
    from mixtures.check import check_monotone

    (good,), caller = _run_alone(check_monotone, "correct")
    assert good.passed is True
    assert "after 1..8 iterations" in good.evidence
    assert len(caller.outputs) == 8  # one call per number of iterations


def test_converges_check_alone():
    from mixtures.check import check_converges

    (good,), _ = _run_alone(check_converges, "correct")
    (bad,), _ = _run_alone(check_converges, "early_return")
    assert good.passed is True
    assert bad.passed is False
    assert "inside the iteration loop" in bad.diagnosis


def test_recovers_check_alone():
    from mixtures.check import check_recovers

    (good,), _ = _run_alone(check_recovers, "correct")
    (bad,), _ = _run_alone(check_recovers, "unnormalised_densities")
    assert good.passed is True
    assert "after matching components" in good.evidence
    assert bad.passed is False


def test_dimensions_check_alone():
    from mixtures.check import check_dimensions

    two_d, _ = _run_alone(check_dimensions, "correct")
    one_d_only, _ = _run_alone(check_dimensions, "correct_1d")
    assert [r.passed for r in two_d] == [True, True]
    assert [r.passed for r in one_d_only] == [True, None]  # 2-D not applicable


def _em_1d_that_divides_by_zero_on_ties(x, n_components, weights, means, variances,
                                        max_iter):  # fmt: skip
    """A 1-D EM that scales by the smallest gap between values: zero on ties."""
    fit = _load("correct_1d")(x, n_components, weights, means, variances, max_iter)
    gap = np.diff(np.sort(x)).min()
    with np.errstate(divide="ignore", invalid="ignore"):
        return fit[0], fit[1], np.asarray(fit[2]) * gap / gap


def test_duplicates_check_alone():
    from mixtures.check import Caller, CheckContext, check_duplicates

    (good,), _ = _run_alone(check_duplicates, "correct_1d")
    context = CheckContext("1d", (1,))
    (bad,) = check_duplicates(
        Caller(_em_1d_that_divides_by_zero_on_ties, "1d"), context
    )
    assert good.passed is True
    assert bad.passed is False
    assert "variance floor" in bad.diagnosis


def test_weights_check_alone_calls_the_function_itself():
    from mixtures.check import check_weights

    (good,), caller = _run_alone(check_weights, "correct")
    assert good.passed is True
    assert len(caller.outputs) == 1  # nothing collected before: one call of its own


def test_messages_of_the_checker_speak_of_data_not_scenarios():
    from pathlib import Path

    from mixtures import check

    modules = sorted(Path(check.__file__).parent.glob("*.py"))
    assert len(modules) > 1  # the package's every module, not its __init__
    source = "".join(module.read_text() for module in modules)
    for scenario in ("S1", "S3", "S5", "scenario"):
        assert scenario not in source, scenario
