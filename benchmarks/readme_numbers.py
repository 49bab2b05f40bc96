"""README.md's result numbers, generated from the committed results files.

Every stretch of README.md between ``<!-- numbers:NAME -->`` and
``<!-- /numbers:NAME -->`` is the output of ``BLOCKS[NAME]``, which reads
``benchmarks/results/*.json`` or the default report
(``reports/default/report.md``), so the README cannot disagree with either.
A marker on a line of its own encloses whole paragraphs or tables; a marker
inside a line encloses a phrase.

``python benchmarks/readme_numbers.py`` checks the README (exit status 1 and
a diff when a block is stale); ``--write`` rewrites the stale blocks. Run it
after a benchmark writes new results or ``gmmlab run`` rebuilds the report.
"""

from __future__ import annotations

import argparse
import datetime as dt
import difflib
import json
import re
import sys
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
REPORT = ROOT / "reports" / "default" / "report.md"
README = ROOT / "README.md"

#: A number in the report's prose (a sentence's full stop is not part of it).
NUMBER = r"(-?\d+(?:\.\d+)?)"
MARKER = re.compile(r"<!-- numbers:([\w-]+) -->(.*?)<!-- /numbers:\1 -->", re.S)


# ---------------------------------------------------------------------------
# Reading the sources


def _json(name: str) -> dict:
    return json.loads((RESULTS / name).read_text())


def _report_section(heading: str) -> str:
    """The report's text under the first heading that starts with ``heading``."""
    text = REPORT.read_text()
    level = heading.split(" ")[0]
    start = text.find("\n" + heading)
    if start < 0:
        raise LookupError(f"{REPORT} has no heading {heading!r}")
    end = re.compile(rf"\n#{{1,{len(level)}}} ").search(text, start + 1)
    return text[start : end.start() if end else len(text)]


def _report_table(heading: str, *columns: str, after: str = "") -> list[dict[str, str]]:
    """Rows of the first table under ``heading`` (and ``after``) with all ``columns``."""
    section = _report_section(heading)
    section = section[section.index(after) :]
    for block in re.findall(r"(?:^\|.*\|\n?)+", section, re.M):
        lines = block.strip().splitlines()
        header = [cell.strip() for cell in lines[0].strip("|").split("|")]
        if set(columns) <= set(header):
            return [
                dict(
                    zip(
                        header,
                        (c.strip() for c in line.strip("|").split("|")),
                        strict=True,
                    )
                )
                for line in lines[2:]
            ]
    raise LookupError(f"{REPORT}: no table with {columns} under {heading!r}")


def _report_find(heading: str, pattern: str) -> re.Match:
    match = re.search(pattern, _report_section(heading))
    if match is None:
        raise LookupError(f"{REPORT}: {pattern!r} not found under {heading!r}")
    return match


def _label(row: dict[str, str]) -> str:
    """A data set and its parameters as the report writes them: 's5 scaled=True'."""
    params = [f"{k[2:]}={v}" for k, v in row.items() if k.startswith("p_") and v]
    return " ".join([row["dataset"], *params])


# ---------------------------------------------------------------------------
# The blocks, from the default report


def main_job() -> str:
    setup = _report_find("## Setup", r"started (\S+), finished (\S+);")
    started, finished = (dt.datetime.fromisoformat(t) for t in setup.groups())
    minutes, seconds = divmod(round((finished - started).total_seconds()), 60)
    cores = next(
        r["value"] for r in _report_table("## Setup", "item") if r["item"] == "cores"
    )
    summary = _report_table("## Summary", "engine", "fits", "median seconds")
    nuts = sum(
        float(r["fits"]) * float(r["median seconds"])
        for r in summary
        if r["engine"] == "pymc"
    )
    return (
        f"took {minutes} min {seconds} s on {cores} cores for the committed report "
        f"(its Setup), about {nuts:.0f} s of it in PyMC's NUTS fits"
    )


def s1_duplicates() -> str:
    return _report_find("### S1:", r"with probability ([\d.]+%)").group(1)


def s1_policy() -> str:
    sklearn = _report_find(
        "### S1:",
        r"of (\d+) random starts, scikit-learn ended (\d+) with two identical "
        r"components and (\d+) with a component collapsed",
    )
    ours = _report_find(
        "### S1:",
        r"\((\d+) such actions over (\d+) fits\); (\d+) fits still end degenerate",
    )
    starts, twins, collapsed = sklearn.groups()
    actions, fits, degenerate = ours.groups()
    return (
        f"of {starts} random-point starts, scikit-learn ends {twins} with two "
        f"identical components and {collapsed} with a component collapsed onto the "
        f"tied value; gmmlab's EM, from the same starts, takes {actions} re-seeding "
        f"or flooring actions over its {fits} fits, and {degenerate} of them still "
        "end degenerate, the likelihood rising towards a collapse"
    )


def faithful_sweep() -> str:
    line = _report_find("## Model selection", r"faithful: BIC chooses[^\n]*").group(0)
    table = _report_table(
        "## Model selection", "covariance_type", "n_components", after=line
    )
    ks = sorted({int(r["n_components"]) for r in table})
    types = sorted({r["covariance_type"] for r in table})
    chosen = re.search(
        rf"BIC chooses K = (\d+) \((\w+)\), BIC {NUMBER}, log-likelihood {NUMBER}",
        line,
    )
    fooled = re.search(
        rf"Trusting every fit would have chosen K = (\d+) \((\w+)\), BIC {NUMBER}", line
    )
    text = (
        f"K = {ks[0]}..{ks[-1]} and {len(types)} covariance types ({', '.join(types)}). "
        f"In the committed report BIC chooses K = {chosen[1]} ({chosen[2]}): "
        f"log-likelihood {chosen[4]}, BIC {chosen[3]}. "
    )
    if fooled is None:
        return text + "No fit classified degenerate or unconverged has a lower BIC"
    return text + (
        f"A search that trusted every fit would have chosen K = {fooled[1]} "
        f"({fooled[2]}), BIC {fooled[3]}, a fit classified degenerate or "
        "unconverged, so never chosen"
    )


def s4_loops() -> str:
    rows = _report_table("### S4:", "engine or code", "start", "median seconds")
    seconds = {
        r["engine or code"]: float(r["median seconds"])
        for r in rows
        if r["start"] == "lecture"
    }
    loops, ours = seconds["lecture-loops"], seconds["em"]
    return (
        "On the same machine, against the lecture's own code: in the default sweep "
        "(report, S4), from the lecture's start, its Python loops took "
        f"{loops:.2f} s and gmmlab's EM {1e3 * ours:.1f} ms (medians), "
        f"{loops / ours:,.0f} times faster."
    )


def check_example() -> str:
    rows = _report_table("### S5:", "check", "result", "evidence", "diagnosis")
    lines = ["| check | result | evidence | diagnosis |", "|---|---|---|---|"]
    lines += [
        f"| {r['check']} | {r['result']} | {r['evidence']} | {r['diagnosis']} |"
        for r in rows
    ]
    return "\n".join(lines)


def bayes_status() -> str:
    rows = _report_table(
        "## Likelihood and Bayesian views",
        "backend",
        "status",
        "d_draws",
        "d_sampling_attempts",
    )
    nuts = [r for r in rows if r["backend"] == "pymc"]
    ok = [r for r in nuts if r["status"] == "ok"]
    draws = [int(float(r["d_draws"])) for r in nuts]
    usual = max(set(draws), key=draws.count)
    unusual: dict[str, list[str]] = {}
    for r in nuts:
        if int(float(r["d_draws"])) != usual:
            how = f"{int(float(r['d_draws'])):,} draws per chain, {r['d_sampling_attempts']} sampling attempts"
            unusual.setdefault(how, []).append(_label(r))
    advi = [
        f"{_label(r)} ({r['status']})"
        for r in rows
        if r["backend"] == "pymc-advi" and r["status"] != "ok"
    ]
    parts = [f"{', '.join(labels)}: {how}" for how, labels in unusual.items()]
    parts.append(f"{'the others' if unusual else 'all'} {usual:,}")
    return (
        f"NUTS ok on {len(ok)} of {len(nuts)} data sets ({'; '.join(parts)}); "
        f"ADVI not ok on {', '.join(advi) or 'none'}"
    )


# ---------------------------------------------------------------------------
# The blocks, from the benchmarks


def engine_table(report: dict | None = None) -> str:
    """The speed table and its notes, from ``report`` (default: latest.json).

    ``benchmarks/bench_engine.py`` prints the same text after a run.
    """
    report = _json("latest.json") if report is None else report
    machine = report["machine"]
    lines = [
        f"Measured {report['date']} on {machine['cpu']} ({machine['cores']} cores); "
        f"DGEMM {report['gemm_gflops']['float64']:.0f} GFLOP/s, "
        f"SGEMM {report['gemm_gflops']['float32']:.0f} GFLOP/s.",
        "",
        "| case | N, D, K, type, dtype | gmmlab s/iter | scikit-learn s/iter | "
        "ratio (target) | NumPy kernel ratio | whole fit ratio | "
        "peak MiB gmmlab / sklearn | x GEMM floor |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in report["cases"]:
        lines.append(
            f"| {r['case']} | {r['n']:,}, {r['d']}, {r['k']}, {r['covariance_type']}, "
            f"{r['dtype']} | {r['gmmlab_s_per_iter']:.4f} | {r['sklearn_s_per_iter']:.3f} "
            f"| **{r['ratio']:.1f}x** ({r['target_ratio']:.0f}x) | "
            f"{r['numpy_kernel_ratio']:.1f}x | {r['fit_ratio']:.1f}x | "
            f"{r['gmmlab_peak_mib']:.0f} / {r['sklearn_peak_mib']:.0f} | "
            f"{r['times_gemm_floor']:.1f} |"
        )
    s4 = report["s4"]
    lines += [
        "",
        "S4 (n = 1000, K = 2, the lecture's start and stopping rule): whole fit "
        f"{1e3 * s4['gmmlab_fit_s']:.2f} ms in {s4['n_iter']} iterations "
        f"(target {1e3 * s4['target_s']:.0f} ms), **{s4['ratio']:.1f}x** "
        f"scikit-learn's {1e3 * s4['sklearn_fit_s']:.1f} ms (target "
        f"{s4['target_ratio']:.0f}x); NumPy kernel {1e3 * s4['gmmlab_numpy_fit_s']:.2f} ms.",
    ]
    if "compile" in report:  # a --quick run measures neither of these
        compile_s = report["compile"]
        lines += [
            "",
            "First use of the compiled kernel in a new process: "
            + ", ".join(f"{k} {v:.1f} s" for k, v in compile_s["cold_s"].items())
            + " with an empty cache; "
            + ", ".join(f"{k} {v:.2f} s" for k, v in compile_s["warm_cache_s"].items())
            + " from numba's disk cache.",
        ]
    if "scaling" in report:
        scaling = report["scaling"]
        lines += [
            "",
            f"Scaling of (a) over N = {scaling['rows'][0]['n']:,} ... "
            f"{scaling['rows'][-1]['n']:,}: time per iteration grows as "
            f"N^{scaling['gmmlab_loglog_slope']:.2f} "
            f"(scikit-learn N^{scaling['sklearn_loglog_slope']:.2f}).",
        ]
    return "\n".join(lines)


def kernel_buffers() -> str:
    sizes = [r["kernel_buffers_mib"] for r in _json("latest.json")["cases"]]
    return f"{min(sizes):.0f} to {max(sizes):.0f} MiB"


def speed_targets() -> str:
    engine, search = _json("latest.json"), _json("select-latest.json")
    missed = [
        f"({r['case']}) {r['ratio']:.1f}x < {r['target_ratio']:.0f}x"
        for r in engine["cases"]
        if r["ratio"] < r["target_ratio"]
    ]
    s4 = engine["s4"]
    if s4["gmmlab_fit_s"] > s4["target_s"] or s4["ratio"] < s4["target_ratio"]:
        missed.append("S4")
    for row in search["rows"]:
        target = row["target_seconds"]
        if target is not None and row["seconds"] > target:
            missed.append(
                f"model search on {row['data']} {row['seconds']:.0f} s > {target:.0f} s"
            )
        if row["data"] == "wine":
            limit = search["targets"]["wine_slowest_cell"]
            if row["slowest_cell_seconds"] > limit:
                missed.append(
                    f"slowest wine cell {row['slowest_cell_seconds']:.0f} s > {limit:.0f} s"
                )
    return "missed: " + ", ".join(missed) if missed else "every target met"


def missing_speed() -> str:
    """One EM iteration with missing values against complete data (issue 26)."""
    result = _json("missing-latest.json")
    n, d = result["shape"]
    ratios = ", ".join(
        f"{row['ratio']:.1f}x at {row['missing rate']:.0%} missing "
        f"({row['patterns']:,} patterns)"
        for row in result["rows"]
    )
    return (
        f"one iteration at {n:,} x {d}, K = {result['n_components']}, "
        f"{result['covariance_type']}, against the same rows complete in the same "
        f"run: {ratios}; target {result['target_ratio']:.0f}x at 10%"
    )


def dask_speed() -> str:
    """One iteration on a Dask array against one in memory (issue 27)."""
    result = _json("dask-latest.json")
    t, s = result["throughput"], result["streamed"]
    return (
        f"one iteration over {t['rows']:,} x {result['n_features']} rows "
        f"(K = {result['n_components']}, {result['covariance_type']}) in "
        f"{t['rows'] // t['chunk rows']} blocks on Dask's threaded scheduler runs "
        f"at {t['ratio']:.2f}x the in-memory compiled pass's rows per second "
        f"(target {result['target_ratio']:.1f}x, "
        f"{'met' if t['ratio'] >= result['target_ratio'] else 'not met'}). A fit "
        f"of {s['rows']:,} rows of the same mixture streamed from "
        f"{s['parquet MB']:,.0f} MB of Parquet on disk took {s['seconds of the fit']:.0f} s "
        f"({s['iterations']} iterations, "
        f"{'converged' if s['converged'] else 'not converged'}; one pass over "
        f"the rows, reading included, {s['seconds per pass over the rows']:.1f} s) "
        f"in a process whose memory peaked at {s['peak RSS MB of the fitting process']:,} MB "
        f"(the data: {s['data MB in memory']:,.0f} MB)"
    )


def missing_status() -> str:
    result = _json("missing-latest.json")
    row = next(r for r in result["rows"] if r["missing rate"] == 0.1)
    return (
        f"one iteration at 10% missing costs {row['ratio']:.1f}x a complete one "
        f"(target {result['target_ratio']:.0f}x)"
    )


def select_timing() -> str:
    search = _json("select-latest.json")
    lines = [
        f"The whole 14 x 9 search as `gmmlab fit` runs it (`reg_covar_relative=True`, "
        f"`n_jobs={search['n_jobs']}`) on {search['cpus']} cores, beside scikit-learn's "
        "own search over its four covariance types x K = 1..9 with as many starts per "
        f"cell, spread over as many processes, in the same run ({search['date']}; "
        "`python benchmarks/bench_select.py` writes `benchmarks/results/select-latest.json`):",
        "",
        "| data | cells | starts | gmmlab | target | slowest cell | chosen "
        "| scikit-learn (n_init) | per start, gmmlab : scikit-learn |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in search["rows"]:
        target = "" if r["target_seconds"] is None else f"{r['target_seconds']:.0f} s"
        lines.append(
            f"| {r['data']} ({r['shape'][0]} x {r['shape'][1]}) | {r['cells']} | "
            f"{r['starts']:,} | {r['seconds']:.1f} s | {target} | {r['slowest_cell']} "
            f"{r['slowest_cell_seconds']:.1f} s | {r['chosen']} | "
            f"{r['sklearn_seconds']:.1f} s ({r['sklearn_n_init']}) | "
            f"{r['ms_per_start']:.1f} : {r['sklearn_ms_per_start']:.1f} ms |"
        )
    return "\n".join(lines)


def select_mclust() -> str:
    against = _answers()["faithful"]["against_mclust"]
    below = (
        f"none of the {against['cells']} cells ends"
        if against["below"] == 0
        else f"{against['below']} of the {against['cells']} cells end"
    )
    return (
        f"{below} below mclust's published value by more than 0.1 BIC units (its "
        f"printed precision is 0.001), {against['equal']} agree with it and "
        f"{against['above']} reach a higher maximum, by up to "
        f"{against['largest_gain']:.1f} BIC units ({against['largest_gain_cell']})"
    )


def select_chosen() -> str:
    chosen = _answers()["chosen"]
    parts = []
    for name, c in chosen.items():
        ari = (
            f", adjusted Rand index {c['ari']:.3f} against the known classes"
            if "ari" in c
            else ""
        )
        parts.append(
            f"{name}: {c['model']},{c['n_components']} (log-likelihood "
            f"{_minus(c['log_likelihood'], 2)}, BIC {_minus(c['bic'], 2)}, from the "
            f"`{c['start']}` start{ari})"
        )
    return "; ".join(parts)


def _minus(value: float, digits: int) -> str:
    """``value`` with ``digits`` decimals and a typographic minus, as in the prose."""
    return f"{value:.{digits}f}".replace("-", "\u2212")


def _cells(rows: list[dict], digits: int) -> str:
    """'EEE,4 (BIC 2320.137), VVE,2 (2320.283) and VEE,3 (2321.932)'."""
    cells = [
        f"{r['model']},{r['n_components']} "
        f"({'BIC ' if i == 0 else ''}{_minus(r['bic'], digits)})"
        for i, r in enumerate(rows)
    ]
    return ", ".join(cells[:-1]) + " and " + cells[-1]


def _answers() -> dict:
    return _json("select-latest.json")["answers"]


def select_faithful() -> str:
    best, *rest = _answers()["faithful"]["top"]
    return (
        f"{best['model']},{best['n_components']}, with log-likelihood "
        f"{_minus(best['log_likelihood'], 3)} and BIC {_minus(best['bic'], 3)}, but "
        f"lists {_cells(rest, 3)} next"
    )


def select_plateau() -> str:
    answers = _answers()
    climb = answers["faithful_eee4_from_hc"]
    top = answers["faithful"]["top"]
    bic = {f"{r['model']},{r['n_components']}": r["bic"] for r in top}
    eee3 = top[0]
    # The sentence's claims, checked against the file: say them only if true.
    if (eee3["model"], eee3["n_components"]) != ("EEE", 3):
        raise ValueError("the search no longer chooses EEE,3")
    if not bic["EEE,4"] < bic["VVE,2"]:
        raise ValueError("converged EEE,4 no longer beats VVE,2 by BIC")
    if abs(climb["loose_log_likelihood"] - eee3["log_likelihood"]) > 0.01:
        raise ValueError("the loose EEE,4 is not on EEE,3's plateau")
    if not climb["loose_bic"] > max(bic["VVE,2"], bic["VEE,3"]):
        raise ValueError("the loose EEE,4 no longer ranks below VVE,2 and VEE,3")
    return (
        "EEE,4 crawls across two plateaus under plain EM. mclust's default rule (a "
        f"relative change of {climb['mclust_tol']:.0e}) stops it at iteration "
        f"{climb['mclust_stop_iteration']}, at log-likelihood "
        f"{_minus(climb['mclust_stop_log_likelihood'], 2)}; `tol="
        f"{climb['loose_tol']:.0e}` stops it at iteration {climb['loose_n_iter']}, "
        f"at {_minus(climb['loose_log_likelihood'], 2)} (EEE,3 plus a redundant "
        "component), where its BIC ranks below VVE,2 and VEE,3, mclust's order. Run "
        f"to convergence, it climbs to {_minus(climb['converged_log_likelihood'], 2)} "
        f"after {climb['converged_n_iter']} iterations, and its BIC then beats VVE,2's"
    ).replace("e-0", "e-")


def select_spikes() -> str:
    faithful = _answers()["faithful"]
    return (
        "the smallest component variance, in any direction, of any of the "
        f"{faithful['ok_cells']} `ok` cells is "
        f"{faithful['min_relative_variance_ok']:.1e} of the data's"
    ).replace("e-0", "e-")


def select_iris() -> str:
    return _cells(_answers()["iris"]["top"], 2)


def fit_faithful() -> str:
    return _cells(_answers()["faithful_reg_covar_relative"]["top"], 2)


def nuts_table() -> str:
    bayes = _json("bayes-latest.json")
    lines = [
        f"{bayes['case']}, on this project's {bayes['machine']['cpus']}-core machine.",
        "",
        "| run | compile | sampling | whole fit after compile | r-hat max | bulk ESS min "
        "| divergences | EM's MLE inside 94% HDI |",
        "|---|---|---|---|---|---|---|---|",
    ]
    lines += [
        f"| {r['run']} | {r['compile_seconds']:.1f} s | {r['sampling_seconds']:.1f} s | "
        f"{r['fit_seconds']:.1f} s | {r['r_hat_max']:.3f} | {r['ess_bulk_min']:.0f} | "
        f"{r['divergences']} | {r['mle_inside_hdi']} |"
        for r in bayes["nuts"]
    ]
    lines += ["", f"Target: {bayes['target']}."]
    return "\n".join(lines)


def _exponent(tol: float) -> str:
    return f"{tol:.0e}".replace("e-0", "e-")


def accel_table() -> str:
    accel = _json("accel-latest.json")
    lines = [
        "| case | method | `tol` reaching the optimum | iterations | seconds "
        "| fewer iterations | less time |",
        "|---|---|---|---|---|---|---|",
    ]
    lines += [
        f"| {r['case']} | {r['method']} | {_exponent(r['tol'])} | {r['iterations']:,} | "
        f"{r['seconds']:.3g} | {r['fewer_iterations']:.2f}x | {r['less_time']:.2f}x |"
        for r in accel["to_optimum"]
    ]
    lines += ["", f"Target: {accel['target']}."]
    return "\n".join(lines)


BLOCKS: dict[str, Callable[[], str]] = {
    "main-job": main_job,
    "s1-duplicates": s1_duplicates,
    "s1-policy": s1_policy,
    "faithful-sweep": faithful_sweep,
    "s4-loops": s4_loops,
    "check-example": check_example,
    "bayes-status": bayes_status,
    "engine-table": engine_table,
    "kernel-buffers": kernel_buffers,
    "speed-targets": speed_targets,
    "select-timing": select_timing,
    "missing-speed": missing_speed,
    "missing-status": missing_status,
    "dask-speed": dask_speed,
    "select-faithful": select_faithful,
    "select-plateau": select_plateau,
    "select-spikes": select_spikes,
    "select-iris": select_iris,
    "select-mclust": select_mclust,
    "select-chosen": select_chosen,
    "fit-faithful": fit_faithful,
    "nuts-table": nuts_table,
    "accel-table": accel_table,
}


# ---------------------------------------------------------------------------
# Rewriting the README


def refresh(text: str) -> str:
    """``text`` with every marked block regenerated (unknown names raise)."""

    def fill(match: re.Match) -> str:
        name = match.group(1)
        if name not in BLOCKS:
            raise KeyError(f"README block {name!r} has no generator in {__file__}")
        body = BLOCKS[name]()
        if match.group(2).startswith("\n"):  # a block on lines of its own
            body = f"\n\n{body}\n\n"
        return f"<!-- numbers:{name} -->{body}<!-- /numbers:{name} -->"

    return MARKER.sub(fill, text)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("readme", nargs="?", type=Path, default=README)
    parser.add_argument("--write", action="store_true", help="rewrite stale blocks")
    args = parser.parse_args(argv)
    text = args.readme.read_text()
    fresh = refresh(text)
    if fresh == text:
        print(f"{args.readme}: every numbers block is current.")
        return 0
    if args.write:
        args.readme.write_text(fresh)
        print(f"{args.readme}: numbers blocks rewritten.")
        return 0
    sys.stdout.writelines(
        difflib.unified_diff(
            text.splitlines(keepends=True),
            fresh.splitlines(keepends=True),
            "README",
            "fresh",
        )
    )
    print(f"\n{args.readme} is stale: run python benchmarks/readme_numbers.py --write")
    return 1


if __name__ == "__main__":
    raise SystemExit(main())
