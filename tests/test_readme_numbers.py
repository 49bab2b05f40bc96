"""README.md states the committed results: its numbers blocks are current.

Every result number in the README sits in a ``<!-- numbers:NAME -->`` block
that ``benchmarks/readme_numbers.py`` generates from
``benchmarks/results/*.json`` and ``reports/default/report.md``; these tests
regenerate each block and compare, and fail on a timing or speed ratio typed
by hand outside the blocks (``HAND_TYPED`` lists the few allowed, each with
its reason). When they fail after a benchmark or a new
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


#: Blocks that state times the main job measured: a user who runs the
#: Quickstart's main job rewrites reports/default on their own machine, so
#: there these are checked for their form, not their seconds.
TIMED_BLOCKS = {"main-job", "s4-loops"}


def _report_is_committed() -> bool:
    """Whether reports/default/report.md is the committed one (git says so)."""
    import subprocess

    try:
        done = subprocess.run(
            ["git", "diff", "--quiet", "HEAD", "--", "reports/default/report.md"],
            cwd=README.parent,
            capture_output=True,
        )
    except OSError:
        return False
    return done.returncode == 0


def test_every_block_states_what_the_results_files_say(numbers, blocks):
    committed = _report_is_committed()
    for name, stated in blocks:
        fresh = numbers.BLOCKS[name]()
        if name in TIMED_BLOCKS and not committed:
            stated, fresh = (re.sub(r"\d[\d,.]*", "N", t) for t in (stated, fresh))
        assert stated.strip("\n") == fresh, f"README block {name!r} is stale: {REFRESH}"


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


#: A duration: "6 min", "20 s", "1.8 s", "22 ms", "90 seconds", "2 minutes".
TIMING = re.compile(
    r"(?<![\w.])\d+(?:[.,]\d+)?\s?"
    r"(?:ms|\u00b5s|s|sec|seconds?|min|minutes?|h|hours?)\b"
)
#: A speed ratio: "12x", "3.4\u00d7", "x faster", "536 times faster".
RATIO = re.compile(
    r"(?<![\w.])\d+(?:\.\d+)?[x\u00d7](?!\w)"
    r"|\b(?:times|x|\u00d7)\s+(?:faster|slower|quicker)\b"
)
#: Durations the README may state by hand, outside the generated blocks: each
#: phrase (whitespace normalised) with the reason it is not a result. A phrase
#: that no longer occurs fails the test, so the list cannot go stale.
HAND_TYPED = {
    "well under 10 minutes on 2 cores": "the whole suite's target, not a measurement",
    "a target of under 2 minutes": "the fast loop's target, not a measurement",
    "(target: under 2 minutes on 2 cores)": "the fast loop's target again",
    "(`--timeout`, 60 s)": "the default of a command-line option",
    "13.9 s for its Python loops": "the lecture's own figure, quoted (other hardware)",
    "about 22 ms for vectorised versions": "the lecture's own figure, quoted",
}


def _outside_blocks(numbers) -> str:
    return re.sub(r"\s+", " ", numbers.MARKER.sub(" ", README.read_text()))


def test_no_hand_typed_timing_or_speed_ratio_outside_the_blocks(numbers):
    text = _outside_blocks(numbers)
    for phrase, reason in HAND_TYPED.items():
        assert phrase in text, f"stale exception {phrase!r} ({reason}): remove it"
        text = text.replace(phrase, " ")
    found = [
        text[max(0, m.start() - 40) : m.end() + 20]
        for pattern in (TIMING, RATIO)
        for m in pattern.finditer(text)
    ]
    assert not found, (
        "hand-typed timing or speed ratio in README.md: generate it in a "
        "numbers block from a results file, drop it, or list it in HAND_TYPED "
        f"with its reason: {found}"
    )


@pytest.mark.parametrize(
    ("sample", "flagged"),
    [
        ("takes about 6 minutes", True),
        ("the first 20 s of it", True),
        ("sampling 1.8 s", True),
        ("17 ms against 33 ms", True),
        ("about 90 seconds", True),
        ("**12.1x** faster", True),
        ("536 times faster", True),
        ("272 x 2, shipped with its source", False),
        ("14 models x K = 1..9", False),
        ("tol = 1e-8 and 4 chains", False),
        ("S1 seeds 0..49", False),
    ],
)
def test_the_timing_patterns(sample, flagged):
    hit = bool(TIMING.search(sample) or RATIO.search(sample))
    assert hit == flagged, sample


def test_results_hold_no_cross_machine_ratio():
    # A ratio to the write-ups' timings would compare different hardware.
    results = ROOT / "benchmarks" / "results"
    if not results.exists():
        pytest.skip("benchmarks/results is not next to the tests")
    for path in results.glob("*.json"):
        text = path.read_text()
        assert "vs_loops" not in text, path
        assert "vs_vectorised" not in text, path


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
