"""An interrupted model search resumes cell by cell (mixtures.checkpoint)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from mixtures import select
from mixtures.checkpoint import CellStore, fingerprint
from mixtures.data import load_faithful

SMALL = {"models": ["EEE", "VVV", "VEI"], "n_components": range(1, 5)}


def _comparable(table: pd.DataFrame) -> pd.DataFrame:
    return table.drop(columns="seconds")


@pytest.fixture(scope="module")
def uninterrupted():
    return select.search(load_faithful(), **SMALL)


def _interrupt_after(monkeypatch, n_cells: int | None) -> list:
    """Count the cells fitted, (model, K, pass); the search raises
    KeyboardInterrupt as it starts cell ``n_cells + 1`` (None: never)."""
    fit_cell, calls = select._fit_cell, []

    def counted(*args, **kwargs):
        calls.append((*args[1:3], 2 if "always" in kwargs else 1))
        if len(calls) == n_cells_left[0]:
            n_cells_left[0] = None  # once
            calls.pop()
            raise KeyboardInterrupt
        return fit_cell(*args, **kwargs)

    n_cells_left = [None if n_cells is None else n_cells + 1]

    monkeypatch.setattr(select, "_fit_cell", counted)
    return calls


@pytest.mark.parametrize("n_done", [5, 15])  # in the first pass, in the second
def test_an_interrupted_search_resumes_and_gives_the_same_table(
    uninterrupted, tmp_path, monkeypatch, n_done
):
    folder = tmp_path / "cells"
    calls = _interrupt_after(monkeypatch, n_done)
    with pytest.raises(KeyboardInterrupt):
        select.search(load_faithful(), checkpoint=folder, **SMALL)
    assert len(list(folder.glob("*.cell"))) == n_done
    assert not list(folder.glob(".*tmp"))
    first = list(calls[:n_done])
    calls.clear()
    resumed = select.search(load_faithful(), checkpoint=folder, **SMALL)
    # Nothing finished is fitted twice; everything else is fitted once.
    assert not set(first) & set(calls)
    assert len(first) + len(calls) == len(list(folder.glob("*.cell")))
    pd.testing.assert_frame_equal(
        _comparable(resumed.table), _comparable(uninterrupted.table)
    )
    for cell, fit in uninterrupted.fits.items():
        np.testing.assert_array_equal(resumed.fits[cell].means_, fit.means_)
    calls.clear()
    again = select.search(load_faithful(), checkpoint=folder, **SMALL)
    assert calls == []  # a finished search is read back whole
    assert again.n_resumed == len(list(folder.glob("*.cell")))
    assert uninterrupted.n_resumed == 0
    pd.testing.assert_frame_equal(again.table, resumed.table)


def test_cells_of_other_data_or_options_are_never_read(tmp_path, monkeypatch):
    folder = tmp_path / "cells"
    X = load_faithful()
    select.search(X, models="EEE", n_components=[1, 2], checkpoint=folder)
    calls = _interrupt_after(monkeypatch, None)
    for changed in (
        {"X": X * 1.0001},
        {"X": X, "tol": 1e-7},
        {"X": X, "random_state": 3},
    ):
        calls.clear()
        options = {"models": "EEE", "n_components": [1, 2], **changed}
        fresh = select.search(options.pop("X"), checkpoint=folder, **options)
        assert len(calls) >= 2  # both cells fitted again
        assert len(list(folder.glob("*.cell"))) == len(calls)  # old ones gone
        expected = select.search(changed["X"], **options)
        pd.testing.assert_frame_equal(
            _comparable(fresh.table), _comparable(expected.table)
        )


def test_an_unreadable_cell_is_fitted_again(tmp_path, monkeypatch):
    folder = tmp_path / "cells"
    X = load_faithful()
    reference = select.search(X, models="VVV", n_components=[2], checkpoint=folder)
    (cell,) = folder.glob("pass1-*.cell")
    cell.write_bytes(b"not a pickle")
    calls = _interrupt_after(monkeypatch, None)
    again = select.search(X, models="VVV", n_components=[2], checkpoint=folder)
    assert calls == [("VVV", 2, 1)]
    pd.testing.assert_frame_equal(
        _comparable(again.table), _comparable(reference.table)
    )


def test_checkpoint_must_be_a_folder(tmp_path):
    afile = tmp_path / "file"
    afile.write_text("x")
    with pytest.raises(ValueError, match="not a folder"):
        select.search(load_faithful(), models="EEE", n_components=1, checkpoint=afile)


def test_fingerprint_sees_every_part():
    a = np.arange(6.0).reshape(3, 2)
    base = fingerprint(a, "x", {"tol": 1e-8})
    assert fingerprint(a.copy(), "x", {"tol": 1e-8}) == base
    assert fingerprint(a.reshape(2, 3), "x", {"tol": 1e-8}) != base
    assert fingerprint(a.astype(np.float32), "x", {"tol": 1e-8}) != base
    assert fingerprint(a, "y", {"tol": 1e-8}) != base
    assert fingerprint(a, "x", {"tol": 1e-7}) != base


def test_store_writes_nothing_until_a_cell_is_saved(tmp_path):
    store = CellStore(tmp_path / "cells", "key")
    assert store.load(1, ("EEE", 2)) is None
    assert len(store) == 0
    assert not (tmp_path / "cells").exists()
    store.save(1, ("EEE", 2), {"a": 1})
    assert store.load(1, ("EEE", 2)) == {"a": 1}
    assert CellStore(tmp_path / "cells", "other").load(1, ("EEE", 2)) is None
