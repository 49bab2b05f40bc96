"""README.md states the committed results: its numbers blocks are current.

Every result number in the README sits in a ``<!-- numbers:NAME -->`` block
that ``benchmarks/readme_numbers.py`` generates from
``benchmarks/results/*.json`` and ``reports/default/report.md``; these tests
regenerate each block and compare. When they fail after a benchmark or a new
default report, refresh with ``python benchmarks/readme_numbers.py --write``.
"""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
GENERATOR = ROOT / "benchmarks" / "readme_numbers.py"
REFRESH = "python benchmarks/readme_numbers.py --write"


@pytest.fixture(scope="module")
def numbers():
    if not (README.exists() and GENERATOR.exists()):  # an installed package alone
        pytest.skip("README.md and benchmarks/ are not next to the tests")
    spec = importlib.util.spec_from_file_location("readme_numbers", GENERATOR)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def blocks(numbers) -> list[tuple[str, str]]:
    return [
        (m.group(1), m.group(2)) for m in numbers.MARKER.finditer(README.read_text())
    ]


def test_every_block_states_what_the_results_files_say(numbers, blocks):
    for name, stated in blocks:
        assert stated.strip("\n") == numbers.BLOCKS[name](), (
            f"README block {name!r} is stale: {REFRESH}"
        )


def test_every_generator_has_its_block(numbers, blocks):
    assert {name for name, _ in blocks} == set(numbers.BLOCKS)


def test_phrase_blocks_do_not_start_a_line():
    # A line that starts with an HTML comment is an HTML block in Markdown,
    # so the rest of that line would not be rendered as Markdown.
    for line in README.read_text().splitlines():
        if line.startswith("<!-- numbers:"):
            assert re.fullmatch(r"<!-- /?numbers:[\w-]+ -->", line), line


def test_no_speed_ratio_against_the_write_ups_own_timings():
    # The lecture's 13.9 s and 22 ms were measured on other hardware.
    text = re.sub(r"\s+", " ", README.read_text())
    for sentence in re.split(r"(?<=[.;])\s", text):
        if "13.9 s" in sentence or "22 ms" in sentence:
            assert not re.search(r"\d\s*[x\u00d7]\b|times faster", sentence), sentence


def test_report_figures_shown_in_the_readme_exist():
    for path in re.findall(r"\]\((reports/[^)]+)\)", README.read_text()):
        assert (ROOT / path).exists(), path


def test_refresh_rewrites_a_stale_block_and_nothing_else(numbers, monkeypatch):
    monkeypatch.setitem(numbers.BLOCKS, "demo", lambda: "42 s")
    text = (
        "Took <!-- numbers:demo -->41 s<!-- /numbers:demo --> here.\n"
        "<!-- numbers:demo -->\n\nold\n\n<!-- /numbers:demo -->\n41 s stays.\n"
    )
    assert numbers.refresh(text) == (
        "Took <!-- numbers:demo -->42 s<!-- /numbers:demo --> here.\n"
        "<!-- numbers:demo -->\n\n42 s\n\n<!-- /numbers:demo -->\n41 s stays.\n"
    )
