"""The report package's structure: small modules, one list of sections."""

from __future__ import annotations

import ast
import importlib
import pkgutil
from pathlib import Path

import experiments
import experiments.report
from experiments.report import SECTIONS, build_report, params_from_components
from experiments.report import sections as sections_package

PACKAGE = Path(experiments.report.__file__).parent
MAX_LINES = 700


def _modules() -> list[Path]:
    return sorted(PACKAGE.rglob("*.py"))


def test_no_module_of_the_report_is_above_700_lines():
    lengths = {
        str(path.relative_to(PACKAGE)): len(path.read_text().splitlines())
        for path in _modules()
    }
    assert len(lengths) > 5
    too_long = {name: n for name, n in lengths.items() if n > MAX_LINES}
    assert too_long == {}


def test_every_module_says_its_job_in_a_docstring():
    missing = [
        str(path.relative_to(PACKAGE))
        for path in _modules()
        if not ast.get_docstring(ast.parse(path.read_text()))
    ]
    assert missing == []


def test_sections_lists_every_section_module_once():
    names = sorted(
        info.name
        for info in pkgutil.iter_modules(sections_package.__path__)
        if not info.ispkg
    )
    listed = [section.render.__module__.rsplit(".", 1)[-1] for section in SECTIONS]
    assert sorted(listed) == names
    assert len(set(listed)) == len(listed)
    for name in names:
        module = importlib.import_module(f"{sections_package.__name__}.{name}")
        assert module.SECTION in SECTIONS
        assert module.SECTION.name == name
    # The page begins with the summary and ends with the fits not eligible,
    # then the setup and versions; the five write-ups follow their
    # introduction, in order.
    assert listed[0] == "summary"
    assert listed[-2:] == ["not_eligible", "setup"]
    start = listed.index("writeups")
    assert listed[start : start + 6] == ["writeups", "s1", "s2", "s3", "s4", "s5"]


def test_the_public_names_keep_their_import_paths():
    assert experiments.build_report is build_report
    assert callable(params_from_components)
    assert build_report.__module__ == "experiments.report"
