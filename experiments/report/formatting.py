"""How many digits the report prints: one rule per kind of number.

Every number in a table of the report goes through :func:`cell_text`, which
picks its precision from the column's name, so a section never chooses a
number of digits:

======================================  ===================================
column names with                       printed as
======================================  ===================================
``share``, ``at best``                  whole percent: ``50%``
``seconds``, ``time``                   3 significant digits: ``0.00912``
``log-lik``, ``likelihood``, ``bic``,   2 decimals: ``-3009.25`` (2
``icl``, ``elpd``, ``elbo``, ``waic``   significant digits below 0.01)
``weight``                              3 decimals: ``0.331``
``r-hat``                               3 decimals
``ess``, ``pareto``                     0 and 2 decimals
anything else                           4 significant digits: ``13.74``
======================================  ===================================

Whole numbers print without decimals (but shares and log-likelihoods), and
no number is printed with more than 4 significant digits unless its column
is a log-likelihood (whose integer part alone can need more).
:func:`vector_text` and :func:`matrix_text` print a mean vector or a
covariance matrix on one line at 4 significant digits.
"""

from __future__ import annotations

import itertools
import math
import re
from collections.abc import Callable, Iterable

import numpy as np
import pandas as pd

__all__ = [
    "cell_text",
    "column_format",
    "matrix_text",
    "parameter_text",
    "scientific",
    "significant",
    "vector_text",
]

#: Significant digits of a number whose column names no kind.
DEFAULT_DIGITS = 4


def parameter_text(value) -> str:
    """A data set's parameter as a label shows it: ``1000`` for a float 1000.0.

    Parameters come back from a table as floats where another row lacks
    them; whole ones are shown as integers.
    """
    if isinstance(value, float | np.floating) and float(value).is_integer():
        return str(int(value))
    return str(value)


def significant(value: float, digits: int = DEFAULT_DIGITS) -> str:
    """``value`` to ``digits`` significant digits, in positional notation.

    Scientific notation only outside [1e-3, 1e6); the integer part of a
    number is never rounded away (1234.5 to 3 digits is ``1234``, not
    ``1.23e+03``), and trailing zeros are dropped (``11.5``, not ``11.50``).
    """
    if value == 0 or not math.isfinite(value):
        return "0" if value == 0 else str(value)
    magnitude = math.floor(math.log10(abs(value)))
    if not -3 <= magnitude < 6:
        return f"{value:.{digits - 1}e}"
    decimals = max(0, digits - 1 - magnitude)
    text = f"{value:.{decimals}f}"
    if "." in text:  # 11.5, not 11.50: trailing zeros claim digits not known
        text = text.rstrip("0").rstrip(".")
    return "0" if float(text) == 0 else text


def scientific(value: float) -> str:
    """A threshold such as 1e-6 in the shortest scientific form (not 1e-06)."""
    return np.format_float_scientific(value, trim="-", exp_digits=1)


def _percent(value: float) -> str:
    return f"{100 * value:.0f}%"


def _decimals(places: int) -> Callable[[float], str]:
    def shown(value: float) -> str:
        if value != 0 and abs(value) < 10.0**-places:
            return significant(value, 2)  # a tiny difference keeps its size
        return f"{value:.{places}f}"

    return shown


def _whole_or(rule: Callable[[float], str]) -> Callable[[float], str]:
    """``rule``, but whole numbers without decimals."""

    def shown(value: float) -> str:
        if value.is_integer() and abs(value) < 1e15:
            return str(int(value))
        return rule(value)

    return shown


#: (tokens any of which names the kind, how its numbers print), first match.
_KINDS: tuple[tuple[frozenset[str], Callable[[float], str]], ...] = (
    (frozenset({"share", "at best"}), _percent),
    (frozenset({"seconds", "second", "time"}), _whole_or(lambda v: significant(v, 3))),
    (
        frozenset(
            {"likelihood", "lik", "loglik", "bic", "icl", "elpd", "elbo", "waic"}
        ),
        _decimals(2),
    ),
    (frozenset({"weight"}), _whole_or(_decimals(3))),
    (frozenset({"r hat", "rhat"}), _whole_or(_decimals(3))),
    (frozenset({"ess"}), _whole_or(_decimals(0))),
    (frozenset({"pareto"}), _whole_or(_decimals(2))),
)


def column_format(column: str) -> Callable[[float], str]:
    """How the floats of a column called ``column`` are printed (see above)."""
    words = re.findall(r"[a-z0-9]+", str(column).lower())
    phrases = set(words) | {" ".join(pair) for pair in itertools.pairwise(words)}
    for names, rule in _KINDS:
        if names & phrases:
            return rule
    return _whole_or(significant)


def cell_text(value, column: str = "") -> str:
    """A table cell as text: blank for missing, a float by its column's rule."""
    if value is None or (not isinstance(value, str) and _missing(value)):
        return ""
    if isinstance(value, bool | np.bool_):
        return str(bool(value))
    if isinstance(value, float | np.floating):
        return column_format(column)(float(value))
    return str(value)


def _missing(value) -> bool:
    try:
        return bool(pd.isna(value))
    except (TypeError, ValueError):  # an array or a list: not one missing value
        return False


def vector_text(values: Iterable[float], digits: int = DEFAULT_DIGITS) -> str:
    """A vector on one line, each entry to ``digits`` significant digits."""
    return "(" + ", ".join(significant(float(v), digits) for v in values) + ")"


def matrix_text(matrix: np.ndarray, digits: int = DEFAULT_DIGITS) -> str:
    """A matrix on one line, row by row: ``[[a, b], [b, c]]``."""
    rows = (
        "[" + ", ".join(significant(float(v), digits) for v in row) + "]"
        for row in np.asarray(matrix)
    )
    return "[" + ", ".join(rows) + "]"
