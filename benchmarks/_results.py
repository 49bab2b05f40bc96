"""Shared by the benchmark scripts: the machine, a median timer, the JSON file, a table."""

from __future__ import annotations

import json
import os
import platform
import statistics
import time
from pathlib import Path

RESULTS = Path(__file__).parent / "results"


def machine() -> dict:
    """What the numbers were measured on."""
    return {
        "platform": platform.platform(),
        "processor": platform.processor(),
        "cpus": os.cpu_count(),
    }


def write_and_print(name: str, result: dict, rows: list[dict]) -> None:
    """Write ``result`` (with the machine) to ``results/NAME`` and print ``rows``."""
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / name).write_text(
        json.dumps({**result, "machine": machine()}, indent=2) + "\n"
    )
    keys = list(rows[0])
    print("| " + " | ".join(keys) + " |")
    print("|" + "---|" * len(keys))
    for row in rows:
        print("| " + " | ".join(str(row[key]) for key in keys) + " |")


def median_seconds(step, repeats: int) -> float:
    """Median wall time of ``step()`` over ``repeats`` calls after one warm-up.

    The warm-up pays for compilation and thread pools.
    """
    step()
    times = []
    for _ in range(repeats):
        begin = time.perf_counter()
        step()
        times.append(time.perf_counter() - begin)
    return statistics.median(times)
