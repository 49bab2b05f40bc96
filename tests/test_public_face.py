"""What a newcomer finds: the public names and the command line's help."""

from __future__ import annotations

import importlib
import re
import subprocess
import sys

import pytest

import experiments
import mixtures
from experiments.cli import _build_parser, main


@pytest.mark.parametrize("package", [mixtures, experiments])
def test_every_public_name_is_its_modules_object(package):
    assert sorted(package.__all__) == sorted(package._EXPORTS)
    for name in package.__all__:
        module = importlib.import_module(package._EXPORTS[name])
        assert getattr(package, name) is getattr(module, name)
        assert name in dir(package)
    with pytest.raises(AttributeError, match="no attribute"):
        package.no_such_name


def test_the_main_entry_points_are_one_import_away():
    for name in ("GaussianMixture", "fit_em", "search", "bootstrap", "check_em"):
        assert name in mixtures.__all__
    for name in ("run_sweep", "build_report", "fit_file"):
        assert name in experiments.__all__


def test_importing_the_package_imports_no_heavy_library():
    # A worker process or `gmmlab --version` pays for what it uses only.
    code = (
        "import sys, mixtures, experiments, mixtures._version; "
        "print(sorted(m for m in ('sklearn', 'numba', 'pymc', 'scipy') "
        "if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == "[]"


def test_help_names_every_command_and_the_python_entry_points(capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    text = " ".join(capsys.readouterr().out.split())
    commands = _build_parser()._subparsers._group_actions[0].choices
    for command in commands:
        assert re.search(rf"\b{command}\b \w", text), command
    for name in ("search", "bootstrap", "check_em", "build_report", "fit_file"):
        assert name in text


def test_version(capsys):
    from mixtures._version import installed_version

    with pytest.raises(SystemExit) as stop:
        main(["--version"])
    assert stop.value.code == 0
    assert capsys.readouterr().out.strip() == f"gmmlab {installed_version()}"


@pytest.mark.parametrize("k", ["0", "151", "-2"])
def test_demo_rejects_an_impossible_number_of_components(k, capsys):
    assert main(["demo", "--components", k]) == 2
    err = capsys.readouterr().err
    assert "between 1 and 150" in err
    assert "Traceback" not in err


def test_every_option_has_help():
    parser = _build_parser()
    for name, sub in parser._subparsers._group_actions[0].choices.items():
        for action in sub._actions:
            if action.dest in ("help",):
                continue
            # --no-header's help is its pair's (--header), shown beside it.
            if action.option_strings == ["--no-header"]:
                continue
            assert action.help, f"gmmlab {name} {action.option_strings or action.dest}"


def test_check_help_gives_every_calling_convention_as_the_checker_documents_it(
    capsys,
):
    from mixtures import check

    with pytest.raises(SystemExit):
        main(["check", "--help"])
    text = capsys.readouterr().out
    documented = dict(
        re.findall(r'\* ``"([\w-]+)"``: ``(fn\([^`]*\))``', check.__doc__ or "")
    )
    assert set(documented) == {"standard", "1d", "self-init"}
    for convention, signature in documented.items():
        line = next(ln for ln in text.splitlines() if ln.strip().startswith(convention))
        assert signature in line
    for convention in ("column", "auto"):
        assert re.search(rf"^\s+{convention}\s", text, re.MULTILINE)
