"""Data too large for memory, opened as a Dask array for :func:`mixtures.fit_em`.

:func:`open_rows` opens a folder of Parquet files (or one file) or a Zarr
array as a lazy ``dask.array.Array`` of float rows, columns in one chunk,
so that :func:`mixtures.fit_em` and :class:`mixtures.GaussianMixture` fit it
block by block (:mod:`mixtures.dask_em`). Nothing is read but the metadata
(and, for Parquet, each file's row count).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

__all__ = ["column_names", "open_rows"]


def open_rows(path, columns: Sequence[str] | Sequence[int] | None = None):
    """A lazy (n_rows, n_columns) float Dask array of the data at ``path``.

    Parameters
    ----------
    path : str or Path
        A folder of Parquet files, one Parquet file, or a Zarr array (a
        folder with ``.zarray`` or ``zarr.json``) of shape (n_rows, n_columns).
    columns : sequence of str or int, optional
        Parquet: column names (default: every numeric column). Zarr: column
        positions (default: all).

    Returns
    -------
    dask.array.Array
        float64 (float32 kept), rows chunked as stored, columns in one chunk.

    Raises
    ------
    ValueError
        When the path does not exist or holds neither Parquet nor Zarr, or a
        chosen column is missing or not numeric.
    """
    path = Path(path)
    if not path.exists():
        raise ValueError(f"{path} does not exist.")
    if _is_zarr(path):
        return _zarr_rows(path, columns)
    if path.suffix == ".parquet" or (path.is_dir() and any(path.glob("*.parquet"))):
        return _parquet_rows(path, columns)
    raise ValueError(
        f"{path} is neither Parquet (a .parquet file or a folder of them) nor a "
        "Zarr array; open other formats with dask yourself and pass the array."
    )


def column_names(
    path, columns: Sequence[str] | Sequence[int] | None = None
) -> list[str]:
    """The names of the columns :func:`open_rows` opens (Zarr: their positions)."""
    path = Path(path)
    if _is_zarr(path):
        if columns is None:
            import dask.array as da

            columns = range(da.from_zarr(str(path)).shape[1])
        return [str(c) for c in columns]
    return _parquet_columns(path, columns)


def _is_zarr(path: Path) -> bool:
    return (path / ".zarray").exists() or (path / "zarr.json").exists()


def _float_rows(array):
    if array.dtype not in (np.float32, np.float64):
        array = array.astype(np.float64)
    return array.rechunk({1: -1})


def _parquet_files(path: Path) -> list[Path]:
    return sorted(path.glob("*.parquet")) if path.is_dir() else [path]


def _parquet_columns(path: Path, columns) -> list[str]:
    """The chosen (default: every numeric) columns of the Parquet at ``path``."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    schema = pq.read_schema(_parquet_files(path)[0])
    numeric = {
        field.name
        for field in schema
        if pa.types.is_integer(field.type) or pa.types.is_floating(field.type)
    }
    if columns is None:
        columns = [name for name in schema.names if name in numeric]
        if not columns:
            raise ValueError(f"{path} has no numeric column.")
    columns = list(columns)
    absent = [c for c in columns if c not in schema.names]
    if absent:
        raise ValueError(f"{path} has no column(s) {absent}; it has {schema.names}.")
    wrong = [c for c in columns if c not in numeric]
    if wrong:
        raise ValueError(f"column(s) {wrong} of {path} are not numeric.")
    return columns


def _parquet_rows(path: Path, columns):
    """One block per Parquet file (its row count from the file's footer)."""
    import dask.array as da
    import pyarrow.parquet as pq
    from dask import delayed

    files = _parquet_files(path)
    columns = _parquet_columns(path, columns)
    blocks = [
        da.from_delayed(
            delayed(_read_parquet, pure=True)(str(file), columns),
            shape=(pq.ParquetFile(file).metadata.num_rows, len(columns)),
            dtype=np.float64,
        )
        for file in files
    ]
    return da.concatenate(blocks, axis=0)


def _read_parquet(file: str, columns: list) -> np.ndarray:
    """The chosen columns of one Parquet file, (n_rows, n_columns) float64."""
    import pyarrow.parquet as pq

    table = pq.read_table(file, columns=columns)
    return np.column_stack(
        [table.column(c).to_numpy().astype(np.float64, copy=False) for c in columns]
    )


def _zarr_rows(path: Path, columns):
    import dask.array as da

    array = da.from_zarr(str(path))
    if array.ndim != 2:
        raise ValueError(f"{path} holds a {array.ndim}-D array; expected 2-D rows.")
    if columns is not None:
        positions = list(columns)
        if any(not isinstance(c, int | np.integer) for c in positions):
            raise ValueError("columns of a Zarr array are positions (integers).")
        if positions and (min(positions) < 0 or max(positions) >= array.shape[1]):
            raise ValueError(
                f"columns {positions} out of range for {array.shape[1]} columns."
            )
        array = array[:, positions]
    return _float_rows(array)
