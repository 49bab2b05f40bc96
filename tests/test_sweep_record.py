"""A sweep's record of when it ran (manifest.json), across resumes."""

from __future__ import annotations

import json
from pathlib import Path

from experiments.config import load_config
from experiments.runner import run_sweep

TINY = Path(__file__).parents[1] / "experiments" / "configs" / "tiny.toml"


def _manifest(out: Path) -> dict:
    return json.loads((out / "manifest.json").read_text())


def test_rerunning_a_finished_sweep_keeps_its_record(tmp_path):
    out = tmp_path / "tiny"
    messages: list[str] = []
    run_sweep(load_config(TINY), out, progress=False, echo=lambda *_: None)
    first = _manifest(out)
    assert first["finished_at"] >= first["started_at"]
    run_sweep(load_config(TINY), out, progress=False, echo=messages.append)
    assert any("12 already done, 0 to run" in m for m in messages)
    again = _manifest(out)
    # Nothing ran: the same session, not a new one with new times.
    for key in ("started_at", "finished_at", "n_runs", "n_by_status"):
        assert again[key] == first[key]
    assert "earlier_sessions" not in again


def test_a_resume_that_runs_something_is_a_new_session(tmp_path):
    out = tmp_path / "tiny"
    run_sweep(load_config(TINY), out, progress=False, echo=lambda *_: None)
    first = _manifest(out)
    # Lose one finished run (its parts), as a kill before its write would.
    runs = sorted((out / "parts" / "runs").glob("*.parquet"))
    run_id = runs[0].stem
    for part in (out / "parts").glob(f"*/{run_id}.parquet"):
        part.unlink()
    run_sweep(load_config(TINY), out, progress=False, echo=lambda *_: None)
    again = _manifest(out)
    # A new session (times may fall in the same second: compare records).
    assert again["started_at"] >= first["started_at"]
    assert again["earlier_sessions"][-1]["started_at"] == first["started_at"]
    assert len(again["earlier_sessions"]) == 1


def test_derived_tables_are_returned_not_stored(tmp_path):
    out = tmp_path / "tiny"
    stale = tmp_path / "tiny" / "convergence.parquet"
    run_sweep(load_config(TINY), out, progress=False, echo=lambda *_: None)
    assert not stale.exists()  # nothing on disk can go stale
    stale.write_bytes(b"left by an older gmmlab")
    said: list[str] = []
    tables = run_sweep(load_config(TINY), out, progress=False, echo=said.append)
    assert not stale.exists()
    listed = next(line for line in said if line.startswith("tables in"))
    assert "runs.parquet" in listed
    assert "convergence" not in listed  # only files that are there
    assert len(tables["convergence"]) > 0
    from experiments.analysis import convergence_summary
    from experiments.report.context import read_results

    # The report derives it from the runs, as the sweep did.
    derived = read_results(out).convergence
    expected = convergence_summary(tables["runs"])
    assert derived.equals(expected)
