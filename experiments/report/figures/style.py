"""How the report's figures look and are saved: colours, styles, PNG bytes.

One colour per engine throughout, a line style per initialisation, the
matplotlib settings a report is drawn under (applied with
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

__all__ = [
    "CHAIN_COLOURS",
    "ENGINE_COLOURS",
    "INIT_STYLES",
    "STATUS_MARKERS",
    "STYLE",
    "colour",
    "figure_file_name",
    "png_bytes",
    "sparse_symlog_ticks",
    "subplots",
]

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
    "figure.dpi": 100,
    "savefig.dpi": 100,
    "font.size": 9,
    "svg.hashsalt": "gmmlab",
}
#: One colour per chain of a sampler's trace.
CHAIN_COLOURS = ("#2ca02c", "#9467bd", "#8c564b", "#e377c2", "#17becf", "#bcbd22")
#: Marker of a fit's final log-likelihood by its status.
STATUS_MARKERS = {"ok": "o", "degenerate": "x", "unconverged": "^"}

#: Colours for arms that are not one of the engines (write-ups' code, named
#: arms), given in order of the arm name's hash so they are stable.
_OTHER_COLOURS = (
    "#9467bd",
    "#8c564b",
    "#e377c2",
    "#17becf",
    "#bcbd22",
    "#aec7e8",
    "#ffbb78",
)


def subplots(nrows: int = 1, ncols: int = 1, **kwargs):
    """A new ``Figure`` and its axes, without pyplot (no global figure state)."""
    figsize = kwargs.pop("figsize", None)
    fig = Figure(figsize=figsize)
    return fig, fig.subplots(nrows, ncols, **kwargs)


def colour(engine: str) -> str:
    """The colour of an engine or arm, the same in every figure."""
    if engine in ENGINE_COLOURS:
        return ENGINE_COLOURS[engine]
    if engine == "sklearn-defaults":
        return "#7f7f7f"
    digest = sum(ord(c) * (i + 1) for i, c in enumerate(engine))
    return _OTHER_COLOURS[digest % len(_OTHER_COLOURS)]


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
