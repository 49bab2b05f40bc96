"""A folder of finished cells, so that an interrupted model search resumes.

:func:`mixtures.select.search` with ``checkpoint=folder`` writes every cell
it finishes (its table row, parameters and EM run) to ``folder`` as soon as
the cell is done, and reads back the cells already there before fitting
anything, so that the same search, interrupted (Ctrl-C, a killed process)
and started again, fits only the cells it had not finished and returns the
same table as an uninterrupted search.

The rules:

* **Same inputs only.** The folder holds a fingerprint (SHA-256) of
  everything that decides a cell's fit: the data's bytes, shape and dtype,
  the models and K, every option of the search and this format's version.
  A search with another fingerprint empties the folder of its cells before
  writing its own; it never reads them.
* **Whole files only.** A cell goes to a hidden temporary file in the same
  folder, which then replaces the cell's file in one ``os.replace``: a
  cell's file is whole or absent, never half-written. A file that cannot be
  read back anyway (a disk error) is refitted, not trusted.
* **Trusted folders only.** Cells are Python pickles, which can run code
  when loaded: point a search only at a folder you (or gmmlab) wrote.
"""

from __future__ import annotations

import hashlib
import os
import pickle
from pathlib import Path
from typing import Any

__all__ = ["CellStore", "fingerprint", "write_whole"]

#: Bumped whenever what a cell's file holds changes meaning.
FORMAT = 1
_FINGERPRINT_FILE = "fingerprint"
_SUFFIX = ".cell"


def fingerprint(*parts: Any) -> str:
    """SHA-256 of ``parts`` (arrays, strings, numbers, tuples, dicts) as hex.

    Parts are pickled (protocol 5: an array's bytes, shape and dtype; a
    dict in its insertion order), so equal inputs give equal fingerprints
    within one Python and NumPy.
    """
    digest = hashlib.sha256()
    digest.update(pickle.dumps((FORMAT, *parts), protocol=5))
    return digest.hexdigest()


def write_whole(path: Path, data: bytes) -> None:
    """``data`` to ``path`` through a temporary file and one ``os.replace``.

    The one home of the rule (``experiments.tables.atomic_write`` uses it):
    a reader sees the old file or the new one, never half of one.
    """
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        temporary.write_bytes(data)
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)


class CellStore:
    """Finished cells of one search in ``folder`` (created on the first save).

    Parameters
    ----------
    folder : str or path-like
        Where the cells go; it may hold another search's cells, which are
        removed at the first save (see the module docstring).
    key : str
        The search's :func:`fingerprint`.
    """

    def __init__(self, folder: str | os.PathLike, key: str) -> None:
        self.folder = Path(folder)
        if self.folder.exists() and not self.folder.is_dir():
            raise ValueError(
                f"checkpoint {str(self.folder)!r} exists and is not a folder; "
                "give a folder (it is created if missing)."
            )
        self.key = key
        self._claimed = self._current()

    def _current(self) -> bool:
        """True when the folder holds this search's cells."""
        try:
            return (self.folder / _FINGERPRINT_FILE).read_text().strip() == self.key
        except OSError:
            return False

    def _path(self, stage: int, cell: tuple[str, int]) -> Path:
        model, k = cell
        return self.folder / f"pass{stage}-{model}-{k}{_SUFFIX}"

    def load(self, stage: int, cell: tuple[str, int]) -> Any | None:
        """The cell saved for ``stage`` (1 or 2), or None when there is none."""
        if not self._claimed:
            return None
        try:
            return pickle.loads(self._path(stage, cell).read_bytes())
        except FileNotFoundError:
            return None
        except (OSError, pickle.UnpicklingError, EOFError, ValueError):
            return None  # unreadable: fitted again, never trusted

    def save(self, stage: int, cell: tuple[str, int], value: Any) -> None:
        """Write one finished cell, whole or not at all."""
        if not self._claimed:
            self.folder.mkdir(parents=True, exist_ok=True)
            for stale in self.folder.glob(f"pass*{_SUFFIX}"):
                stale.unlink()  # another search's cells: never mixed with ours
            write_whole(self.folder / _FINGERPRINT_FILE, (self.key + "\n").encode())
            self._claimed = True
        write_whole(self._path(stage, cell), pickle.dumps(value, protocol=5))

    def __len__(self) -> int:
        """How many cells (of both passes) the folder holds for this search."""
        if not self._claimed:
            return 0
        return sum(1 for _ in self.folder.glob(f"pass*{_SUFFIX}"))
