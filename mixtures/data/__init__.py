"""Data shipped with gmmlab, with their sources (see README.md here).

>>> X = load_faithful()
>>> X.shape
(272, 2)
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

__all__ = ["DATA_FOLDER", "load_faithful"]

DATA_FOLDER = Path(__file__).parent


def load_faithful(*, as_frame: bool = False) -> np.ndarray | pd.DataFrame:
    """Old Faithful: eruption time and waiting time (min), 272 rows.

    Azzalini & Bowman (1990), as distributed with R (``datasets::faithful``).
    Waiting times are whole minutes, so many values are tied.

    Returns
    -------
    X : ndarray of shape (272, 2), or a DataFrame with columns
        ``eruptions`` and ``waiting`` when ``as_frame``.
    """
    frame = pd.read_csv(DATA_FOLDER / "faithful.csv")
    return frame if as_frame else frame.to_numpy(dtype=np.float64)
