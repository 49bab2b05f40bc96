"""The report reads tables only: what the runner records of the data, and
the closed forms the report draws with (checked against the engine)."""

from __future__ import annotations

import ast
import json
import shutil
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from numpy.testing import assert_allclose, assert_array_equal

import experiments.fit_views
import experiments.report
from experiments import datasets as datasets_module
from experiments.config import load_config, plan_runs
from experiments.data_facts import SHOWN_POINTS, record_data, shown_rows
from experiments.datasets import load_dataset
from experiments.fit_views import (
    assign_components,
    component_densities,
    confusion_table,
    mixture_density,
)
from experiments.report import build_report
from experiments.report.context import MISSING_DATA_NOTE
from experiments.runner import run_sweep
from experiments.scenario_analysis import sampling_spread
from mixtures import MixtureParams
from mixtures.em import predict_labels, score_samples

SWEEP = """
    [sweep]
    root_seed = 3
    seeds = 1
    data_replicates = 2
    [[datasets]]
    name = "s2"
    n_components = 4
    [[datasets]]
    name = "s5"
    params = { scaled = [true, false] }
    [[datasets]]
    name = "synthetic"
    params = { n = 900, n_components = 2, separation = 3.0 }
    [[datasets]]
    name = "s3"
    n_components = 3
    [backends.em]
"""


@pytest.fixture(scope="module")
def recorded(tmp_path_factory):
    folder = tmp_path_factory.mktemp("sweep")
    config_path = folder / "sweep.toml"
    config_path.write_text(textwrap.dedent(SWEEP))
    config = load_config(config_path)
    results = folder / "results"
    tables = run_sweep(config, results, progress=False, echo=lambda *_: None)
    return config, results, tables


def _params(rng, n_features, n_components=3):
    means = rng.normal(scale=3, size=(n_components, n_features))
    factors = rng.normal(size=(n_components, n_features, n_features))
    covariances = factors @ factors.transpose(0, 2, 1) + np.eye(n_features)
    weights = rng.dirichlet(np.ones(n_components))
    return MixtureParams(weights, means, covariances)


@pytest.mark.parametrize("n_features", [1, 2, 5])
def test_the_closed_forms_agree_with_the_engine(n_features):
    rng = np.random.default_rng(n_features)
    params = _params(rng, n_features)
    X = rng.normal(scale=3, size=(400, n_features))
    assert_array_equal(assign_components(X, params), predict_labels(X, params))
    if n_features == 1:
        grid = np.linspace(-10, 10, 301)
        expected = np.exp(score_samples(grid[:, None], params))
        assert_allclose(mixture_density(grid, params), expected, rtol=1e-10)
        parts = component_densities(grid, params)
        assert parts.shape == (3, grid.size)
        assert_allclose(parts.sum(axis=0), expected, rtol=1e-10)
        # Each weighted component integrates to its weight.
        assert_allclose(np.trapezoid(parts, grid), params.weights, rtol=1e-6)


def test_confusion_table_counts_every_row_once():
    labels = ["a", "a", "b", "b", "b", "c"]
    components = [1, 1, 2, 2, 1, 3]
    table = confusion_table(labels, components)
    assert list(table.columns) == ["class", "component 1", "component 2", "component 3"]
    counts = table.set_index("class")
    assert counts.loc["b", "component 2"] == 2
    assert counts.loc["b", "component 1"] == 1
    assert int(counts.to_numpy().sum()) == len(labels)


def test_shown_rows_are_seeded_and_bounded():
    assert_array_equal(shown_rows(300, 2), np.arange(300))
    many = shown_rows(10_000, 3)
    assert many.size == SHOWN_POINTS
    assert np.all(np.diff(many) > 0)
    assert_array_equal(many, shown_rows(10_000, 3))
    assert_array_equal(shown_rows(17_000, 1), np.arange(17_000))


def test_the_runner_records_each_first_replicate_data_set_once(recorded):
    config, _, tables = recorded
    facts, samples = tables["data_sets"], tables["samples"]
    specs = plan_runs(config)
    first = [spec for spec in specs if spec.data_replicate == 0]
    variants = {s.data_key: s for s in first}
    assert len(facts) == len(variants) == 5  # s2, s5 twice, synthetic, s3
    assert not facts["data_key"].duplicated().any()
    for _, row in facts.iterrows():
        spec = variants[row["data_key"]]
        data = load_dataset(spec.dataset, seed=spec.data_seed, **spec.dataset_params)
        assert row["n_samples"] == data.X.shape[0]
        assert_allclose(json.loads(row["low"]), data.X.min(axis=0))
        assert_allclose(json.loads(row["high"]), data.X.max(axis=0))
        assert len(json.loads(row["features"])) == data.X.shape[1]
        if data.truth is not None:
            spread = sampling_spread(data.X, data.truth)
            assert_allclose(row["truth_log_likelihood"], spread["log_likelihood"])
            assert_allclose(row["truth_spread"], spread["spread"])
        else:
            assert np.isnan(row["truth_log_likelihood"])
        mine = samples[samples["data_key"] == row["data_key"]]
        X = mine.pivot(index="row", columns="feature", values="value")
        rows = shown_rows(*data.X.shape)
        assert_array_equal(X.index.to_numpy(), rows)
        assert_array_equal(X.to_numpy(), data.X[rows])


def test_a_stored_record_is_not_loaded_again(recorded):
    config, results, _ = recorded
    known = pd.read_parquet(results / "data_sets.parquet")
    assert record_data(plan_runs(config), known) is None


def test_the_report_builds_without_loading_any_data_set(
    recorded, monkeypatch, tmp_path
):
    _, results, _ = recorded

    def refuse(*args, **kwargs):
        raise AssertionError("the report loaded a data set")

    monkeypatch.setattr(
        datasets_module, "DATASETS", dict.fromkeys(datasets_module.DATASETS, refuse)
    )
    html = build_report(results, tmp_path / "report").read_text()
    assert MISSING_DATA_NOTE not in html
    for name in ("fit_s2", "fit_s3", "fit_synthetic"):
        assert (tmp_path / "report" / f"{name}.png").is_file()


# Modules that hold the engine's passes and fits, and the data sets' loaders
# (of experiments.datasets, the report may use only how a data set is named).
_FORBIDDEN = {
    "experiments.datasets",
    "mixtures.em",
    "mixtures.passes",
    "mixtures.fitting",
    "mixtures.estimator",
    "sklearn",
}


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module == "experiments.datasets":
            names.update(
                f"{node.module}.{alias.name}"
                for alias in node.names
                if alias.name != "dataset_name"
            )
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
        elif isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
    return names


def test_no_report_module_imports_the_engine_or_the_data_sets():
    package = Path(experiments.report.__file__).parent
    modules = [*sorted(package.rglob("*.py")), Path(experiments.fit_views.__file__)]
    offenders = {
        str(path.name): sorted(
            name
            for name in _imports(path)
            if any(name == f or name.startswith(f"{f}.") for f in _FORBIDDEN)
        )
        for path in modules
    }
    assert {k: v for k, v in offenders.items() if v} == {}


def test_an_older_folder_says_so_and_a_rerun_records_the_data(recorded, tmp_path):
    config, results, _ = recorded
    old = tmp_path / "old"
    shutil.copytree(results, old)
    for name in ("data_sets", "samples"):
        (old / f"{name}.parquet").unlink()
    html = build_report(old, tmp_path / "report-old").read_text()
    assert MISSING_DATA_NOTE in html
    tables = run_sweep(config, old, progress=False, echo=lambda *_: None, force=True)
    assert len(tables["data_sets"]) == 5
    html = build_report(old, tmp_path / "report-new").read_text()
    assert MISSING_DATA_NOTE not in html


def test_assignments_of_rows_with_holes_use_their_observed_values():
    from mixtures.missing import find_patterns, missing_score_and_label

    rng = np.random.default_rng(12)
    params = _params(rng, 4)
    X = rng.normal(scale=3, size=(300, 4))
    X[rng.random(X.shape) < 0.3] = np.nan
    X = X[~np.isnan(X).all(axis=1)]
    expected = missing_score_and_label(X, find_patterns(X), params, "numpy")[1]
    assert_array_equal(assign_components(X, params), expected)
