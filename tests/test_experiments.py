"""Data sets, sweep configs and the runner: tables, determinism, resume, Dask."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from pandas.testing import assert_frame_equal

from experiments import scenarios
from experiments.cli import main
from experiments.config import ConfigError, load_config, parse_config, plan_runs
from experiments.datasets import load_dataset
from experiments.runner import run_sweep
from experiments.tables import read_tables

ROOT = Path(__file__).resolve().parents[1]
TINY = ROOT / "experiments" / "configs" / "tiny.toml"
TIMING = ["seconds", "d_sampling_seconds"]


def _write(tmp_path: Path, text: str, name: str = "sweep.toml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


def _without_timings(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.drop(columns=[c for c in TIMING if c in frame.columns])


def _assert_same_tables(a: dict, b: dict) -> None:
    for name in ("runs", "traces", "components", "convergence"):
        assert_frame_equal(
            _without_timings(a[name]), _without_timings(b[name]), check_like=True
        )


# ---------------------------------------------------------------------------
# Data sets


@pytest.mark.parametrize("separation", [0.5, 2.0, 4.0])
def test_synthetic_has_exactly_the_requested_c_separation(separation):
    data = load_dataset(
        "synthetic",
        seed=3,
        n=200,
        dim=3,
        n_components=4,
        separation=separation,
        condition_number=5.0,
    )
    truth = data.truth
    largest = np.linalg.eigvalsh(truth.full_covariances())[:, -1]
    ratios = [
        np.linalg.norm(truth.means[i] - truth.means[j])
        / np.sqrt(3 * max(largest[i], largest[j]))
        for i in range(4)
        for j in range(i)
    ]
    assert min(ratios) == pytest.approx(separation)
    eigen = np.linalg.eigvalsh(truth.full_covariances())
    assert eigen[:, -1] / eigen[:, 0] == pytest.approx(np.full(4, 5.0))
    assert data.X.shape == (200, 3)
    assert data.labels.shape == (200,)


def test_synthetic_weights_and_reproducibility():
    a = load_dataset("synthetic", seed=1, n=100, weight_imbalance=9.0, n_components=3)
    b = load_dataset("synthetic", seed=1, n=100, weight_imbalance=9.0, n_components=3)
    assert a.truth.weights.max() / a.truth.weights.min() == pytest.approx(9.0)
    np.testing.assert_array_equal(a.X, b.X)
    tied = load_dataset("synthetic", seed=1, covariance_type="tied", condition_number=3)
    covs = tied.truth.full_covariances()
    np.testing.assert_allclose(covs[0], covs[1])


def test_scenarios_carry_their_facts():
    s1 = load_dataset("s1")
    assert s1.X.shape == (50, 1)
    assert np.sum(s1.X[:, 0] == 44.44571429) == 13
    assert np.sum(s1.X[:, 0] == 43.66666667) == 5
    s2 = load_dataset("s2", seed=0)
    assert s2.X.shape == (5000, 2)
    np.testing.assert_allclose(s2.truth.means, scenarios.S2_MEANS)
    s3 = load_dataset("s3", seed=0)
    assert s3.X.shape == (17000, 1)
    assert np.bincount(s3.labels).tolist() == [2000, 5000, 10000]
    s4 = load_dataset("s4", seed=0)
    assert np.bincount(s4.labels).tolist() == [600, 400]
    s5 = load_dataset("s5", seed=0)
    assert s5.X.shape == (100, 2)
    assert s5.X.min() == 0.0
    assert s5.X.max() == 1.0
    raw = load_dataset("s5", seed=0, scaled=False)
    span = np.ptp(raw.X, axis=0)
    np.testing.assert_allclose(s5.truth.means, (raw.truth.means - raw.X.min(0)) / span)


def test_real_and_file_datasets(tmp_path):
    iris = load_dataset("iris")
    assert iris.X.shape == (150, 4)
    assert iris.n_components == 3
    assert load_dataset("wine").X.shape == (178, 13)
    frame = pd.DataFrame(
        {
            "a": [1.0, 2.0, 3.0],
            "b": [4.0, 5.0, 6.0],
            "kind": ["x", "y", "x"],
            "note": ["p", "q", "r"],
        }
    )
    frame.to_csv(tmp_path / "mine.csv", index=False)
    frame.to_parquet(tmp_path / "mine.parquet")
    for suffix in ("csv", "parquet"):
        data = load_dataset(f"file:{tmp_path / f'mine.{suffix}'}", label_column="kind")
        assert data.X.shape == (3, 2)
        assert data.labels.tolist() == [0, 1, 0]


@pytest.mark.parametrize(
    ("name", "params", "message"),
    [
        ("nope", {}, "unknown data set 'nope'"),
        ("synthetic", {"colour": 1}, r"has no parameter\(s\) \['colour'\]"),
        ("file:/no/such.csv", {}, "does not exist"),
        ("synthetic", {"separation": -1.0}, "separation > 0"),
    ],
)
def test_dataset_errors(name, params, message):
    with pytest.raises(ValueError, match=message):
        load_dataset(name, **params)


# ---------------------------------------------------------------------------
# Configs


GOOD = """
    [sweep]
    seeds = 2
    [[datasets]]
    name = "s4"
    [backends.em]
    [grid]
    init_params = ["kmeans"]
"""


@pytest.mark.parametrize(
    ("broken", "key", "allowed"),
    [
        (
            GOOD.replace('name = "s4"', 'name = "s9"'),
            "datasets[0].name",
            "known: synthetic",
        ),
        (
            GOOD.replace("[backends.em]", "[backends.magic]"),
            "backends.magic",
            "registered: em, sklearn",
        ),
        (
            GOOD.replace("[backends.em]", "[backends.em]\nbanana = 1"),
            "backends.em",
            "n_init, precisions_init, prior, reg_covar",
        ),
        (GOOD.replace("seeds = 2", 'seeds = "two"'), "sweep.seeds", "integer >= 1"),
        (
            GOOD.replace('init_params = ["kmeans"]', 'init_params = ["best"]'),
            "grid.init_params",
            "allowed: kmeans",
        ),
        (GOOD + "\n    [extra]\n", "top level", "allowed: backends, checks, datasets"),
        (
            GOOD.replace('name = "s4"', 'name = "s4"\n    params = { n = 3 }'),
            "datasets[0].params",
            "unknown key(s) ['n']",
        ),
    ],
)
def test_config_errors_name_file_key_and_allowed_values(tmp_path, broken, key, allowed):
    path = _write(tmp_path, broken)
    with pytest.raises(ConfigError) as error:
        load_config(path)
    message = str(error.value)
    assert str(path) in message
    assert f"[{key}]" in message
    assert allowed in message


def test_plan_derives_seeds_from_identity_not_order():
    config = load_config(TINY)
    runs = plan_runs(config)
    assert len(runs) == 12
    assert len({r.run_id for r in runs}) == 12
    reordered = parse_config({**config.raw, "datasets": config.raw["datasets"][::-1]})
    by_id = {r.run_id: r for r in plan_runs(reordered)}
    for run in runs:
        assert by_id[run.run_id].fit_seed == run.fit_seed
        assert by_id[run.run_id].data_seed == run.data_seed
    # Same data and the same initialisation for every engine of a cell.
    pairs = {}
    for run in runs:
        pairs.setdefault((run.dataset, run.seed), set()).add(run.fit_seed)
    assert all(len(seeds) == 1 for seeds in pairs.values())


# ---------------------------------------------------------------------------
# Sweeps


@pytest.fixture(scope="module")
def tiny_tables(tmp_path_factory):
    out = tmp_path_factory.mktemp("tiny")
    return out, run_sweep(load_config(TINY), out, progress=False, echo=lambda *_: None)


def test_tiny_sweep_tables_and_schemas(tiny_tables):
    out, tables = tiny_tables
    runs, traces, components = tables["runs"], tables["traces"], tables["components"]
    assert len(runs) == 12
    assert set(runs["status"]) == {"ok"}
    import pyarrow.parquet as pq

    schema = pq.read_schema(out / "runs.parquet")
    expected = {
        "run_id": "string",
        "dataset": "string",
        "backend": "string",
        "n_components": "int64",
        "covariance_type": "string",
        "init": "string",
        "data_replicate": "int64",
        "seed": "int64",
        "status_reason": "string",
        "stopped_by": "string",
        "comparable": "bool",
        "log_likelihood": "double",
        "bic": "double",
        "aic": "double",
        "n_iter": "int64",
        "converged": "bool",
        "seconds": "double",
        "status": "string",
        "p_n": "double",
        "m_mean_rmse": "double",
        "m_ari": "double",
        "final_change_nats": "double",
    }
    for column, dtype in expected.items():
        assert str(schema.field(column).type) in (dtype, "large_string"), column
    assert set(traces.columns) == {
        "run_id",
        "restart",
        "iteration",
        "value",
        "trace_kind",
    }
    assert set(traces["run_id"]) == set(runs["run_id"])
    assert set(components.columns) == {
        "run_id",
        "component",
        "parameter",
        "i",
        "j",
        "estimate",
        "truth",
        "posterior_sd",
        "hdi_low",
        "hdi_high",
        "map",
    }
    assert components["map"].isna().all()  # no Bayesian engine here
    assert tables["predictive"].empty
    # 2-D, K components: weight + 2 means + 3 covariance entries each.
    per_run = components.groupby("run_id").size()
    k = runs.set_index("run_id")["n_components"]
    assert (per_run == 6 * k[per_run.index]).all()
    assert components["truth"].notna().all()  # both data sets have a truth
    convergence = tables["convergence"]
    assert len(convergence) == 4
    assert convergence["share_at_best"].between(0, 1).all()
    manifest = json.loads((out / "manifest.json").read_text())
    for key in (
        "config",
        "config_hash",
        "versions",
        "platform",
        "started_at",
        "finished_at",
        "git_commit",
        "stopping",
        "same_optimum_nats",
    ):
        assert key in manifest
    # BIC from the shared log-likelihood and the parameter count.
    row = runs.iloc[0]
    assert row["bic"] == pytest.approx(
        -2 * row["log_likelihood"] + row["n_parameters"] * np.log(row["n_samples"])
    )
    assert read_tables(out)["runs"].shape == runs.shape


def test_em_and_sklearn_agree_run_by_run(tiny_tables):
    _, tables = tiny_tables
    runs = tables["runs"]
    pivot = runs.pivot_table(
        index=["dataset", "seed"], columns="backend", values="log_likelihood"
    )
    np.testing.assert_allclose(pivot["em"], pivot["sklearn"], rtol=1e-6)


def test_same_config_twice_gives_identical_tables(tiny_tables, tmp_path):
    _, first = tiny_tables
    second = run_sweep(
        load_config(TINY), tmp_path / "again", progress=False, echo=lambda *_: None
    )
    _assert_same_tables(first, second)


@pytest.mark.slow
def test_dask_local_cluster_gives_the_same_tables(tiny_tables, tmp_path):
    pytest.importorskip("distributed")
    _, pooled = tiny_tables
    dask_tables = run_sweep(
        load_config(TINY),
        tmp_path / "dask",
        jobs=2,
        scheduler="local",
        progress=False,
        echo=lambda *_: None,
    )
    _assert_same_tables(pooled, dask_tables)


@pytest.mark.slow  # two spawned worker processes: seconds of imports each
def test_process_pool_gives_the_same_tables(tiny_tables, tmp_path):
    _, inline = tiny_tables
    pooled = run_sweep(
        load_config(TINY),
        tmp_path / "pool",
        jobs=2,
        progress=False,
        echo=lambda *_: None,
    )
    _assert_same_tables(inline, pooled)


# Slow enough per run (a few tenths of a second with the compiled kernel)
# that a signal sent when the first run is written lands mid-sweep: with
# eight runs, seconds of them are still to come when the tests (polling
# every 20 ms) signal after the first one or two.
SLOWISH = """
    [sweep]
    root_seed = 3
    seeds = 8
    [[datasets]]
    name = "synthetic"
    params = { n = 60000, dim = 2, n_components = 3, separation = 1.0 }
    [backends.em]
    [grid]
    init_params = ["random"]
"""


def _start_sweep(config: Path, out: Path, jobs: int) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "experiments",
            "run",
            str(config),
            "--out",
            str(out),
            "--jobs",
            str(jobs),
            "--no-progress",
            "--no-report",
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,
        # A child inherits an ignored SIGINT (Python then never raises
        # KeyboardInterrupt); whatever an earlier test left in this process,
        # the sweep gets Ctrl-C as a user's terminal would deliver it.
        preexec_fn=_default_sigint,
    )


def _default_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _wait_for_parts(process, parts: Path, count: int, limit: float = 120) -> None:
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline and process.poll() is None:
        if parts.is_dir() and len(list(parts.glob("*.parquet"))) >= count:
            return
        time.sleep(0.02)


@pytest.fixture(scope="module")
def slowish_clean(tmp_path_factory):
    """SLOWISH run start to finish in one go: the same for every ``jobs``."""
    folder = tmp_path_factory.mktemp("slowish")
    config = _write(folder, SLOWISH)
    return run_sweep(
        load_config(config), folder / "clean", progress=False, echo=lambda *_: None
    )


@pytest.mark.slow
@pytest.mark.parametrize("jobs", [1, 2])
def test_killed_sweep_keeps_finished_runs_and_resumes_to_the_clean_result(
    tmp_path, jobs, slowish_clean
):
    config = _write(tmp_path, SLOWISH)
    out = tmp_path / "killed"
    process = _start_sweep(config, out, jobs)
    parts = out / "parts" / "runs"
    _wait_for_parts(process, parts, 2)
    os.killpg(process.pid, signal.SIGKILL)  # the pool's workers too
    process.communicate()
    done = len(list(parts.glob("*.parquet")))
    assert 2 <= done < 8, "the sweep should have been killed mid-way"
    # Every finished run is on disk and readable; no temporary was promoted.
    for path in parts.glob("*.parquet"):
        row = pd.read_parquet(path)
        assert row["status"].iloc[0] in {"ok", "unconverged", "degenerate"}
        assert (out / "parts" / "traces" / path.name).is_file()
    messages = []
    resumed = run_sweep(load_config(config), out, progress=False, echo=messages.append)
    assert any(f"{done} already done" in m for m in messages)
    # The dead writer's lock was taken over, and said so.
    assert any("stale lock" in m for m in messages)
    _assert_same_tables(resumed, slowish_clean)


@pytest.mark.slow  # the sweep runs in a new Python process (seconds of imports)
def test_ctrl_c_keeps_finished_runs(tmp_path):
    config = _write(tmp_path, SLOWISH)
    out = tmp_path / "interrupted"
    process = _start_sweep(config, out, 1)
    parts = out / "parts" / "runs"
    _wait_for_parts(process, parts, 1)
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 130
    assert "completed runs are kept" in stderr.decode()
    assert 1 <= len(list(parts.glob("*.parquet"))) < 8


def test_failing_runs_are_recorded_and_the_sweep_goes_on(tmp_path):
    config = _write(
        tmp_path,
        """
        [sweep]
        seeds = 2
        [[datasets]]
        name = "s5"
        n_components = [2, 200]
        [backends.em]
        [backends.sklearn]
        [grid]
        init_params = ["kmeans"]
    """,
    )
    tables = run_sweep(
        load_config(config), tmp_path / "out", progress=False, echo=lambda *_: None
    )
    runs = tables["runs"]
    failed = runs[runs["status"] == "failed"]
    assert len(runs) == 8
    assert len(failed) == 4
    assert set(failed["n_components"]) == {200}
    assert failed["error"].str.contains("n_samples >= n_components").all()
    assert (runs.loc[runs["status"] == "ok", "n_components"] == 2).all()
    assert set(tables["traces"]["run_id"]) <= set(
        runs.loc[runs.status == "ok", "run_id"]
    )
    summary = tables["convergence"]
    assert set(summary.loc[summary.n_components == 200, "n_ok"]) == {0}


def test_per_run_timeout_is_a_failed_run(tmp_path):
    config = _write(tmp_path, SLOWISH.replace("seeds = 8", "seeds = 1"))
    tables = run_sweep(
        load_config(config),
        tmp_path / "out",
        timeout=0.01,
        progress=False,
        echo=lambda *_: None,
    )
    row = tables["runs"].iloc[0]
    assert row["status"] == "failed"
    assert "RunTimeoutError" in row["error"]


def test_folder_of_another_config_is_refused_unless_forced(tiny_tables, tmp_path):
    out, _ = tiny_tables
    other = _write(tmp_path, GOOD)
    with pytest.raises(ValueError, match="different configuration"):
        run_sweep(load_config(other), out, progress=False, echo=lambda *_: None)
    copy = tmp_path / "copy"
    shutil.copytree(out, copy)  # TINY's folder, without running it again
    forced = run_sweep(
        load_config(other), copy, force=True, progress=False, echo=lambda *_: None
    )
    assert set(forced["runs"]["dataset"]) == {"s4"}


def test_cli_run_and_its_errors(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)  # nothing may land in the working directory
    config = _write(tmp_path, GOOD)
    assert (
        main(
            [
                "run",
                str(config),
                "--out",
                str(tmp_path / "r"),
                "--jobs",
                "1",
                "--no-progress",
            ]
        )
        == 0
    )
    output = capsys.readouterr().out
    assert "runs.parquet" in output
    # With --out, the report goes beside the results, not into the cwd.
    assert f"report: {tmp_path / 'r' / 'report' / 'index.html'}" in output
    assert (tmp_path / "r" / "report" / "index.html").is_file()
    assert not (tmp_path / "reports").exists()
    # --report puts it where the user asks.
    assert (
        main(
            [
                "run",
                str(config),
                "--out",
                str(tmp_path / "r"),
                "--no-progress",
                "--report",
                str(tmp_path / "mine"),
            ]
        )
        == 0
    )
    assert f"report: {tmp_path / 'mine' / 'index.html'}" in capsys.readouterr().out
    broken = _write(
        tmp_path, GOOD.replace("[backends.em]", "[backends.nope]"), "b.toml"
    )
    assert main(["run", str(broken), "--out", str(tmp_path / "x")]) == 2
    assert "[backends.nope] unknown backend" in capsys.readouterr().err


def test_ctrl_c_inside_the_compiled_kernel_stops_the_sweep(monkeypatch):
    # A signal handler's exception raised while numba's parallel kernel runs
    # reaches Python as a SystemError whose cause is the real exception:
    # Ctrl-C must still stop the sweep, and any other error stays a failed run.
    import experiments.runner as runner

    spec = plan_runs(load_config(TINY))[0]

    def wrapped(cause):
        def fit(_spec):
            try:
                raise cause
            except BaseException as error:
                raise SystemError("returned a result with an exception set") from error

        return fit

    monkeypatch.setattr(runner, "_fit_and_evaluate", wrapped(KeyboardInterrupt()))
    with pytest.raises(KeyboardInterrupt):
        runner.execute_run(spec)
    monkeypatch.setattr(runner, "_fit_and_evaluate", wrapped(ValueError("broken")))
    assert runner.execute_run(spec)["run"]["status"] == "failed"
