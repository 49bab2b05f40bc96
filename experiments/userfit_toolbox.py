"""What ``gmmlab fit`` adds to its search when asked: mclust's wider toolbox.

:func:`run_toolbox` runs, after the search and before the report is built,
the bootstrap likelihood-ratio tests of the chosen model (``--lrt``,
:mod:`experiments.userfit_lrt`) and the search with a uniform noise component
(``--noise``, :mod:`experiments.userfit_noise`); each writes its files into
the output folder and its tables into the results folder, where the report's
section "Beyond BIC" (:mod:`experiments.report.sections.toolbox`) reads them.
A table of an earlier run that this one did not ask for is removed first, so
the report never shows a stale one. It returns what the console prints after
the summary.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from experiments.tables import TOOLBOX, table_path

if TYPE_CHECKING:
    from experiments.userfit import FileData, FileSearch

__all__ = ["check_toolbox_options", "run_toolbox"]


def check_toolbox_options(lrt: int, noise: bool, missing: str) -> None:
    """Refuse ``--lrt`` and ``--noise`` with ``--missing em``: they need every value."""
    for flag, asked in (("--lrt", lrt), ("--noise", noise)):
        if asked and missing == "em":
            raise ValueError(
                f"{flag} does not support --missing em yet: its fits need every "
                "value. Run it on the rows without empty cells, or drop "
                f"{flag} to fit over each row's observed values."
            )


def run_toolbox(
    file: FileData,
    found: FileSearch,
    out: Path,
    results: Path,
    *,
    lrt: int,
    noise: bool,
    jobs: int,
    progress: bool,
) -> list[str]:
    """Run the tests asked for, write their files; return the console's lines."""
    from experiments.userfit_lrt import LRT_CSV, LRT_PNG
    from experiments.userfit_noise import NOISE_ASSIGNMENTS_CSV, NOISE_CSV, NOISE_PNG

    for name in TOOLBOX:
        table_path(results, name).unlink(missing_ok=True)
    for name in (LRT_CSV, LRT_PNG, NOISE_CSV, NOISE_ASSIGNMENTS_CSV, NOISE_PNG):
        (out / name).unlink(missing_ok=True)
    lines: list[str] = []
    if lrt:
        from experiments.userfit_lrt import describe_lrt, run_lrt

        result = run_lrt(
            file.data.X,
            found.model,
            out,
            results,
            n_bootstrap=lrt,
            jobs=jobs,
            progress=progress,
        )
        lines.append(describe_lrt(result, found.n_components))
        lines.append(f"likelihood-ratio tests: {out / LRT_CSV} and {out / LRT_PNG}")
    if noise:
        from experiments.userfit_noise import describe_noise, run_noise

        searched = run_noise(file, found, out, results, jobs=jobs, progress=progress)
        # In the units fitted, as found's table.
        lines.append(describe_noise(searched.table, found, int(searched.noise.sum())))
        written = [NOISE_CSV, NOISE_ASSIGNMENTS_CSV, NOISE_PNG]
        lines.append(
            "noise search: "
            + ", ".join(str(out / n) for n in written if (out / n).exists())
        )
    return lines
