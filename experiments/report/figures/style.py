"""How the report's figures look and are saved: size, type, colours, PNG bytes.

Every figure is :data:`FIGURE_WIDTH` inches wide at :data:`DPI`, which is
the page's content column (:data:`FIGURE_WIDTH_PX` pixels): the page shows
each at its natural size, so type drawn at :data:`SMALL_TYPE` points or
more (11 px) stays legible; :func:`check_figure` refuses a figure that
breaks either rule. One colour per engine or arm throughout (distinct
within a figure, :func:`arm_colours`), a line style per initialisation,
the matplotlib settings a report is drawn under (applied with
``matplotlib.rc_context``, so importing the report changes no global
matplotlib state), new figures without pyplot, symlog ticks, and a figure
rendered to PNG bytes under a portable file name.
"""

from __future__ import annotations

import io
import re
from typing import Any

import numpy as np
from matplotlib.figure import Figure
from matplotlib.text import Text

__all__ = [
    "CHAIN_COLOURS",
    "DPI",
    "ENGINE_COLOURS",
    "FIGURE_WIDTH",
    "FIGURE_WIDTH_PX",
    "INIT_STYLES",
    "SMALL_TYPE",
    "STATUS_MARKERS",
    "STYLE",
    "arm_colours",
    "check_figure",
    "colour",
    "figure_file_name",
    "png_bytes",
    "sparse_symlog_ticks",
    "subplots",
]

#: Resolution of every figure (pixels per inch), in the file and on the page.
DPI = 100
#: Width of every figure in inches: the page's content column at :data:`DPI`.
FIGURE_WIDTH = 9.0
#: That width in pixels; the page's style sheet sets its column to it.
FIGURE_WIDTH_PX = round(FIGURE_WIDTH * DPI)
#: The smallest type of any figure, in points (11 px at :data:`DPI`).
SMALL_TYPE = 8.0

ENGINE_COLOURS = {
    "em": "#1f77b4",
    "sklearn": "#ff7f0e",
    "pymc": "#2ca02c",
    "pymc-advi": "#d62728",
    "sklearn-vb": "#393b79",
}
INIT_STYLES: dict[str, Any] = {
    "kmeans": "-",
    "random_from_data": "--",
    "k-means++": ":",
    "random": "-.",
    "default": "-",
}
#: Applied with ``matplotlib.rc_context`` while a report is built: importing
#: the report changes no global matplotlib state.
STYLE: Any = {  # matplotlib types its keys as literals
    "figure.dpi": DPI,
    "savefig.dpi": DPI,
    "font.size": 9,
    "axes.titlesize": 10,
    "axes.labelsize": 9,
    "xtick.labelsize": SMALL_TYPE,
    "ytick.labelsize": SMALL_TYPE,
    "legend.fontsize": SMALL_TYPE,
    "legend.title_fontsize": SMALL_TYPE,
    "figure.titlesize": 10,
    "svg.hashsalt": "gmmlab",
}
#: One colour per chain of a sampler's trace.
CHAIN_COLOURS = ("#2ca02c", "#9467bd", "#8c564b", "#e377c2", "#17becf", "#bcbd22")
#: Marker of a fit's final log-likelihood by its status.
STATUS_MARKERS = {"ok": "o", "degenerate": "x", "unconverged": "^"}

#: Colours of the arms of the default sweep that are not engines (the
#: write-ups' code), each its own.
_ARM_COLOURS = {
    "sklearn-defaults": "#7f7f7f",
    "s1-sd-as-variance": "#17becf",
    "s1-wrong-axis": "#bcbd22",
    "s1-fixed": "#8c564b",
    "homework": "#9467bd",
    "lecture-loops": "#e377c2",
    "blog": "#e7ba52",
}
#: Colours for other arms, given in order of the arm name's hash so they are
#: stable; :func:`arm_colours` keeps them distinct within a figure.
_OTHER_COLOURS = (
    "#9467bd",
    "#8c564b",
    "#e377c2",
    "#17becf",
    "#bcbd22",
    "#aec7e8",
    "#ffbb78",
    "#98df8a",
    "#ff9896",
    "#c5b0d5",
    "#c49c94",
    "#dbdb8d",
    "#9edae5",
    "#f7b6d2",
    "#7f7f7f",
    "#637939",
    "#8c6d31",
    "#843c39",
    "#7b4173",
)


def subplots(nrows: int = 1, ncols: int = 1, *, height: float, **kwargs):
    """A new ``Figure`` of the page's width and its axes, without pyplot.

    ``height`` in inches; the width is always :data:`FIGURE_WIDTH`. No
    pyplot, so no global figure state.
    """
    fig = Figure(figsize=(FIGURE_WIDTH, height))
    return fig, fig.subplots(nrows, ncols, **kwargs)


def colour(engine: str) -> str:
    """The colour of an engine or arm, the same in every figure."""
    if engine in ENGINE_COLOURS:
        return ENGINE_COLOURS[engine]
    if engine in _ARM_COLOURS:
        return _ARM_COLOURS[engine]
    digest = sum(ord(c) * (i + 1) for i, c in enumerate(engine))
    return _OTHER_COLOURS[digest % len(_OTHER_COLOURS)]


def arm_colours(arms) -> dict[str, str]:
    """A colour for each of ``arms``, no two the same.

    Each arm keeps :func:`colour`'s colour unless an arm before it (in
    sorted order, engines first) has it already; then it takes the first
    colour of the palette that no arm of ``arms`` uses.
    """
    names = sorted(set(arms), key=lambda a: (a not in ENGINE_COLOURS, a))
    wanted = {arm: colour(arm) for arm in names}
    palette = [*ENGINE_COLOURS.values(), *_ARM_COLOURS.values(), *_OTHER_COLOURS]
    spare = [c for c in dict.fromkeys(palette) if c not in wanted.values()]
    given: dict[str, str] = {}
    for arm in names:
        shade = wanted[arm]
        if shade in given.values():
            shade = spare.pop(0) if spare else shade
        given[arm] = shade
    return given


def check_figure(fig: Figure, name: str) -> None:
    """ValueError unless ``fig`` is the page's width with type legible there.

    Every figure is :data:`FIGURE_WIDTH_PX` pixels wide (so the page shows
    it at its natural size) and no visible text is smaller than
    :data:`SMALL_TYPE` points.
    """
    width = round(fig.get_figwidth() * DPI)
    if width != FIGURE_WIDTH_PX:
        raise ValueError(
            f"figure {name!r} is {width} px wide; every figure is drawn "
            f"{FIGURE_WIDTH_PX} px wide (style.subplots)"
        )
    small = sorted(
        {
            text.get_text()
            for text in fig.findobj(Text)
            if text.get_visible()
            and text.get_text()
            and float(text.get_fontsize()) < SMALL_TYPE
        }
    )
    if small:
        raise ValueError(
            f"figure {name!r} has type below {SMALL_TYPE:g} pt: {small[:3]}"
        )


def sparse_symlog_ticks(ax, linthresh: float = 1e-4) -> None:
    """Ticks at 0 and every third power of ten on a symlog axis, not every one."""
    low, high = ax.get_ylim()
    top = int(np.ceil(np.log10(max(abs(low), abs(high), linthresh * 10))))
    powers = [10.0**k for k in range(-3, top + 1, 3)]
    ticks = [0.0] + [p for p in powers if p <= high] + [-p for p in powers if -p >= low]
    ax.set_yticks(sorted(ticks))
    ax.set_yticklabels([_power_label(v) for v in sorted(ticks)])


def _power_label(value: float) -> str:
    if value == 0:
        return "0"
    exponent = round(float(np.log10(abs(value))))
    return f"{'-' if value < 0 else ''}1e{exponent}"


def figure_file_name(name: str) -> str:
    """The PNG file a figure called ``name`` is saved as.

    Data set names may be ``file:PATH``; runs of characters other than
    letters, digits, ``_``, ``.`` and ``-`` become one ``_``, so file names
    stay portable.
    """
    safe = re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("_")
    return f"{safe}.png"


def png_bytes(fig: Figure) -> bytes:
    """``fig`` rendered as PNG, without the software tag (reproducible bytes)."""
    image = io.BytesIO()
    fig.savefig(image, format="png", metadata={"Software": None})
    return image.getvalue()
