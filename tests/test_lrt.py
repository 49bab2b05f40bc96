"""The bootstrap likelihood-ratio test for the number of components (issue 28)."""

from __future__ import annotations

import numpy as np
import pytest
from numpy.testing import assert_array_equal

from mixtures import MixtureParams
from mixtures.data import load_faithful
from mixtures.lrt import bootstrap_lrt
from mixtures.select import search


@pytest.fixture(scope="module")
def faithful_lrt():
    return bootstrap_lrt(
        load_faithful(), "EEE", max_components=3, n_bootstrap=99, random_state=1
    )


@pytest.mark.slow
def test_old_faithful_eee_rejects_one_and_two_components_and_doubts_three(
    faithful_lrt,
):
    result = faithful_lrt
    # 1 and 2 components are rejected: no replicate reaches the observed
    # statistic. 3 against 4 is borderline (p = 0.047 with 999 replicates a
    # step, issue 28's note): its p-value is neither tiny nor large.
    assert list(result.n_components) == [1, 2, 3]
    assert result.p_values[0] == pytest.approx(1 / 100)
    assert result.p_values[1] == pytest.approx(1 / 100)
    assert 0.01 < result.p_values[2] < 0.25
    assert result.bootstrap.shape == (99, 3)
    assert (result.bootstrap >= 0).all()  # floored: K + 1 nests every K fit
    table = result.table()
    assert list(table["test"]) == ["1 vs 2", "2 vs 3", "3 vs 4"]


@pytest.mark.slow
def test_the_observed_statistics_are_the_searchs_log_likelihoods(faithful_lrt):
    table = search(load_faithful(), ["EEE"], [1, 2, 3, 4], reg_covar_relative=True)
    loglik = table.table.set_index("n_components")["log_likelihood"]
    expected = [2 * (loglik[k + 1] - loglik[k]) for k in (1, 2, 3)]
    np.testing.assert_allclose(faithful_lrt.observed, expected, rtol=1e-9)


@pytest.mark.slow
def test_the_result_does_not_depend_on_the_number_of_processes():
    X = load_faithful()[:120]
    one = bootstrap_lrt(X, "VII", max_components=2, n_bootstrap=19, n_jobs=1)
    two = bootstrap_lrt(X, "VII", max_components=2, n_bootstrap=19, n_jobs=2)
    assert_array_equal(one.bootstrap, two.bootstrap)
    assert_array_equal(one.p_values, two.p_values)


@pytest.mark.slow
def test_under_the_null_the_p_values_are_not_small_and_one_component_is_kept():
    rng = np.random.default_rng(0)
    X = rng.multivariate_normal([1.0, -2.0], [[2.0, 0.6], [0.6, 1.0]], size=300)
    result = bootstrap_lrt(X, "VVV", n_bootstrap=39, random_state=2)
    assert result.selected == 1
    assert list(result.n_components) == [1]
    # Under the null the observed statistic is one more draw of the same law:
    # it sits inside the replicates' range.
    low, high = np.quantile(result.bootstrap[:, 0], [0.0, 1.0])
    assert low <= result.observed[0] <= high


@pytest.mark.slow
def test_two_separated_groups_are_found():
    truth = MixtureParams(
        np.array([0.5, 0.5]), np.array([[0.0], [6.0]]), np.array([1.0, 1.0]), "V"
    )
    X, _ = truth.sample(200, np.random.default_rng(5))
    result = bootstrap_lrt(X, "V", n_bootstrap=39, random_state=0)
    assert result.selected == 2
    assert result.p_values[0] == pytest.approx(1 / 40)


@pytest.mark.slow
def test_the_figure_has_one_panel_per_step(faithful_lrt):
    from experiments.report.figures.lrt import lrt_figure

    fig = lrt_figure(faithful_lrt)
    visible = [ax for ax in fig.axes if ax.get_visible()]
    assert len(visible) == 3
    assert "3 vs 4" in visible[2].get_title()


@pytest.mark.parametrize(
    ("options", "match"),
    [
        ({"n_bootstrap": 5}, "n_bootstrap must be an integer >= 19"),
        ({"level": 1.5}, "level must be strictly between 0 and 1"),
        ({"max_components": 0}, "max_components must be a positive int"),
        ({"n_starts": -1}, "n_starts must be an integer >= 0"),
        ({"random_state": None}, "random_state must be a non-negative int"),
    ],
)
def test_bad_settings_are_refused(options, match):
    with pytest.raises(ValueError, match=match):
        bootstrap_lrt(load_faithful(), "EEE", **options)


def test_an_unknown_model_is_refused():
    with pytest.raises(ValueError, match="XYZ"):
        bootstrap_lrt(load_faithful(), "XYZ")


@pytest.mark.slow
def test_gmmlab_fit_lrt_prints_the_sequence_and_writes_it(tmp_path, capsys):
    import pandas as pd

    from experiments.cli import main

    path = tmp_path / "faithful.csv"
    pd.DataFrame(load_faithful(), columns=["eruptions", "waiting"]).to_csv(
        path, index=False
    )
    out = tmp_path / "out"
    args = ["fit", str(path), "--models", "EEE", "--components", "1..4",
            "--backends", "em", "--seeds", "1", "--jobs", "1", "--no-progress",
            "--lrt", "19", "--out", str(out)]  # fmt: skip
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert "bootstrap likelihood-ratio tests, EEE (19 replicates per step)" in printed
    assert "2 vs 3: LRTS" in printed
    assert "the tests keep K =" in printed
    assert "BIC's K = 3" in printed
    table = pd.read_csv(out / "lrt.csv")
    assert list(table["test"])[:2] == ["1 vs 2", "2 vs 3"]
    assert (out / "lrt.png").stat().st_size > 10_000
    # Out of core the tests are refused, with the reason.
    folder = tmp_path / "rows"
    folder.mkdir()
    pd.DataFrame(load_faithful(), columns=["a", "b"]).to_parquet(folder / "p.parquet")
    assert main(["fit", str(folder), "--lrt", "--out", str(tmp_path / "o")]) == 2
    assert "--lrt not supported yet" in capsys.readouterr().err


@pytest.mark.slow
def test_the_readme_toolbox_example_runs():
    import re
    from pathlib import Path

    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    section = readme[readme.index("## mclust's wider toolbox") :]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    # Fewer replicates than the README's 999: the same calls, faster.
    code = code.replace(
        'bootstrap_lrt(X, "EEE")', 'bootstrap_lrt(X, "EEE", n_bootstrap=19)'
    )
    assert "n_bootstrap=19" in code
    namespace: dict = {}
    exec(compile(code, "README.md", "exec"), namespace)
    assert namespace["clf"].training_error_ == pytest.approx(0.02)
    assert namespace["density"].model == "EEE"
    noisy = namespace["noisy"]
    assert noisy.noise_weight_ == pytest.approx(0.086, abs=5e-4)
    assert (noisy.predict(namespace["X"]) == -1).sum() == 12
