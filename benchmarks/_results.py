"""Shared by the benchmark scripts: the machine, the JSON file, a Markdown table."""

from __future__ import annotations

import json
import os
import platform
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
