"""Development sessions.

``nox -s fast`` (the quick loop), ``nox -s tests`` (everything), ``nox -s lint``
(ruff check and format), ``nox -s typecheck`` (mypy), ``nox -s bench`` (speed
against scikit-learn, on demand). Every session installs the package itself,
not in editable mode, so the installed package is what gets tested.
"""

import nox

nox.options.sessions = ["lint", "typecheck", "tests"]  # bench only on demand
nox.options.default_venv_backend = "venv"


@nox.session
def tests(session: nox.Session) -> None:
    """The whole test suite, PyMC and Dask included (pytest arguments after --)."""
    session.install(".[test]")
    session.run("pytest", *session.posargs)


@nox.session
def fast(session: nox.Session) -> None:
    """The fast tier: everything not marked slow, without PyMC or Dask installed."""
    session.install(".[test-fast]")
    session.run("pytest", "-m", "not slow", *session.posargs)


@nox.session
def lint(session: nox.Session) -> None:
    """Ruff's lint rules (docstrings included) and its formatter, as checks."""
    session.install("ruff>=0.6")
    paths = ["mixtures", "experiments", "tests", "benchmarks", "examples", "reports"]
    session.run("ruff", "check", *paths, *session.posargs)
    session.run("ruff", "format", "--check", *paths)


@nox.session
def typecheck(session: nox.Session) -> None:
    """mypy on the two packages (configured in pyproject.toml)."""
    session.install(".[typecheck]")
    session.run("mypy", *session.posargs)


@nox.session
def bench(session: nox.Session) -> None:
    """Benchmark the engine against scikit-learn; writes benchmarks/results/."""
    session.install(".")
    session.run("python", "benchmarks/bench_engine.py", *session.posargs)
