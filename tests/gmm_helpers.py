"""Mixtures with known truth, and other helpers shared by the tests.

Also: small components tables (:func:`component_rows`), the sweep the report
tests build a report from (:func:`report_sweep`, :func:`record_sweep`), and
the numbers a report's text states (:func:`numbers_in`, :func:`states`) and
its Markdown tables (:func:`markdown_tables`).

A plain module (not ``conftest``), so test modules can import it by name:
pytest puts this folder on ``sys.path`` (the tests are not a package), which
also means the *installed* ``mixtures`` is the one under test when pytest is
run as ``pytest``. Data are drawn with :meth:`MixtureParams.sample`, the
library's one sampler.
"""

from __future__ import annotations

import re
import textwrap
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

from mixtures import MixtureParams

__all__ = [
    "BACKEND_TEST_OPTIONS",
    "CONTRACT_TRUTH",
    "component_rows",
    "markdown_cells",
    "markdown_table_lines",
    "markdown_tables",
    "numbers_in",
    "random_mixture",
    "record_sweep",
    "report_sweep",
    "states",
]


#: Models whose M-step iterates the common orientation (an MM algorithm)
#: until a tolerance: a change of 1e-16 in the statistics (another summation
#: order: blocks, chunks, a device) may take one inner step more or fewer, so
#: many EM iterations later two fits agree to about 1e-8, not to rounding.
INNER_TOLERANCE_MODELS = frozenset({"EVE", "VVE"})
#: The agreement to ask of two fits of those models after many iterations.
INNER_TOLERANCE_RTOL = 1e-6


def random_mixture(
    rng: np.random.Generator,
    n_components: int,
    n_features: int,
    *,
    separation: float = 6.0,
    covariance_type: str = "full",
) -> MixtureParams:
    """A random mixture with well-separated means and moderate conditioning."""
    weights = rng.dirichlet(np.full(n_components, 5.0))
    means = rng.normal(scale=separation, size=(n_components, n_features))
    full = []
    for _ in range(n_components):
        a = rng.normal(size=(n_features, n_features)) / np.sqrt(n_features)
        full.append(a @ a.T + 0.5 * np.eye(n_features))
    params = MixtureParams(weights, means, np.array(full), "full")
    return params.as_covariance_type(covariance_type)


CONTRACT_TRUTH = MixtureParams(
    weights=[0.3, 0.3, 0.4],
    means=[[0.0, 0.0], [5.0, 0.5], [0.5, 5.0]],
    covariances=[
        [[0.6, 0.15], [0.15, 0.4]],
        [[0.5, -0.1], [-0.1, 0.7]],
        [[0.4, 0.0], [0.0, 0.5]],
    ],
)

#: Small but adequate settings so the whole suite stays within minutes.
BACKEND_TEST_OPTIONS = {
    "em": {},
    "sklearn": {},
    "pymc": {"draws": 500, "tune": 500},
    "pymc-advi": {"n_iter": 6000, "draws": 400},
}


def component_rows(run_id, weights, means, variances, **extra) -> pd.DataFrame:
    """A 1-D fit's components-table rows; ``extra`` maps a column to K*3 values."""
    rows = []
    for k, (w, m, v) in enumerate(zip(weights, means, variances, strict=True)):
        rows += [
            {"component": k, "parameter": "weight", "i": 0, "j": 0, "estimate": w},
            {"component": k, "parameter": "mean", "i": 0, "j": 0, "estimate": m},
            {"component": k, "parameter": "covariance", "i": 0, "j": 0, "estimate": v},
        ]
    frame = pd.DataFrame(rows).assign(run_id=run_id, truth=np.nan)
    for column, values in extra.items():
        frame[column] = values
    return frame


# ---------------------------------------------------------------------------
# The sweep the report tests build a report from.

#: After the ``[sweep]`` table and the scenario data sets: a synthetic
#: series, S5 with a K that cannot fit (failed runs to list), two engines
#: and both kinds of start.
_REPORT_SWEEP_REST = """
    [[datasets]]
    name = "synthetic"
    params = { n = [200, 800], n_components = 2, separation = 2.0 }
    [[datasets]]
    name = "s5"
    n_components = [2, 3, 500]
    [backends.em]
    [backends.sklearn]
    [grid]
    init_params = ["kmeans", "random_from_data"]
"""


def report_sweep(root_seed: int, scenarios: tuple[str, ...] = ("s1",)) -> str:
    """The report tests' sweep (TOML): two seeds, ``scenarios`` first."""
    named = "".join(f'    [[datasets]]\n    name = "{name}"\n' for name in scenarios)
    head = f"    [sweep]\n    root_seed = {root_seed}\n    seeds = 2\n"
    return textwrap.dedent(head + named + _REPORT_SWEEP_REST.lstrip("\n"))


def record_sweep(
    folder: Path, sweep: str, echo: Callable[..., object] | None = None
) -> Path:
    """Run the sweep ``sweep`` (TOML) into ``folder / "results"``; return it."""
    from experiments.config import load_config
    from experiments.runner import run_sweep

    config = folder / "sweep.toml"
    config.write_text(textwrap.dedent(sweep))
    results = folder / "results"
    run_sweep(
        load_config(config),
        results,
        progress=False,
        echo=echo or (lambda *_: None),
    )
    return results


# ---------------------------------------------------------------------------
# The numbers a report's text states.

#: A number as the report writes one: an optional sign, thousands separated
#: by commas, decimals, an exponent, a percent sign; never part of a word
#: ("s1", "e_3") or of a longer number.
_NUMBER = re.compile(
    r"(?<![\w.])-?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?(?:e[-+]?\d+)?%?(?![\w])"
)


def numbers_in(text: str) -> list[str]:
    """Every number ``text`` states, in order, as written."""
    return _NUMBER.findall(text)


def states(text: str, *values: str) -> bool:
    """Whether ``text`` states the numbers ``values`` one after another."""
    found = numbers_in(text)
    width = len(values)
    return any(
        tuple(found[i : i + width]) == values for i in range(len(found) - width + 1)
    )


# ---------------------------------------------------------------------------
# A report's Markdown tables.


def markdown_table_lines(markdown: str) -> list[list[str]]:
    """Every Markdown table, as its lines; each line must be one row."""
    tables, current = [], []
    for line in markdown.splitlines():
        if line.startswith("|"):
            current.append(line)
        elif current:
            tables.append(current)
            current = []
    return [*tables, current] if current else tables


def markdown_cells(line: str) -> list[str]:
    """One table line's cells, stripped (an escaped ``\\|`` stays in its cell)."""
    return [c.strip() for c in re.split(r"(?<!\\)\|", line)[1:-1]]


def markdown_tables(markdown: str) -> list[pd.DataFrame]:
    """Every Markdown table in ``markdown``, its cells as text."""
    return [
        pd.DataFrame(
            [markdown_cells(line) for line in lines[2:]],
            columns=markdown_cells(lines[0]),
        )
        for lines in markdown_table_lines(markdown)
    ]
