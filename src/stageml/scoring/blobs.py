"""Staged buckets as Arrow blobs: how the Spark engine moves an export's rows.

A staging task reads one split of a table (a run of whole Parquet row groups, or a CSV
file) with DuckDB, exactly as the local engine stages its partitions
(:mod:`stageml.scoring.staging`: same reader and CSV rules, same row numbers, same hash of
the trimmed ``buyer_id``), and emits one row per bucket it saw: that bucket's rows as a
zstd-compressed Arrow IPC stream, low-cardinality strings dictionary-encoded. Spark
shuffles these few hundred blobs instead of millions of rows; the scoring task turns its
bucket's blobs back into the local engine's frames (:func:`bucket_frames`).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from stageml.scoring.staging import (
    STAGE_BATCH_ROWS,
    arrow_to_frame,
    bucketed,
    count_rows,
    numbered,
    split_batch,
)

BUCKET = "_bucket"
TABLE = "_table"  # which table a staged blob holds
ORDER = "_order"  # a staged blob's place in its table: split index << 32 | batch number
BLOB = "_rows"
# String columns with at most this many values in a batch travel dictionary-encoded.
_DICTIONARY_MAX = 1024
_IPC = pa.ipc.IpcWriteOptions(compression="zstd")


@dataclass(frozen=True)
class Split:
    """A staging task's share of one table: a file, or a run of a Parquet file's rows."""

    table: str
    path: str
    rows: tuple[int, int] | None = None  # [start, stop) of the file's rows, 0-based


def table_splits(name: str, path: Path, rows_per_split: int) -> list[Split]:
    """Split a table for staging: whole Parquet row groups, up to ``rows_per_split`` rows each.

    A row group is never cut (its rows are decoded together); a CSV file is one split, read
    by DuckDB with the local engine's rules. A Parquet table may be a folder of part files
    (as Spark writes it); hidden and ``_``-prefixed files such as ``_SUCCESS`` are skipped.
    """
    if path.suffix == ".csv":
        return [Split(name, str(path))]
    import pyarrow.dataset as ds

    files = ds.dataset(str(path), format="parquet").files if path.is_dir() else [str(path)]
    splits = []
    for file in sorted(files):
        meta = pq.ParquetFile(file).metadata
        start = stop = 0
        for group in range(meta.num_row_groups):
            stop += meta.row_group(group).num_rows
            if stop - start >= rows_per_split or group == meta.num_row_groups - 1:
                splits.append(Split(name, file, (start, stop)))
                start = stop
    return splits


def interaction_rows(splits: list[Split]) -> int:
    """Rows of the interactions table: from the Parquet footers, or counted in the CSV."""
    mine = [s for s in splits if s.table == "interactions"]
    if len(mine) == 1 and mine[0].rows is None:
        return count_rows(Path(mine[0].path))
    return sum(s.rows[1] - s.rows[0] for s in mine if s.rows is not None)


def stage_split(
    index: int, split: Split, n: int, keys: list[int], threads: int
) -> Iterator[pa.RecordBatch]:
    """Read split ``index``; yield its rows by bucket (bucket key, table, order, Arrow IPC).

    The order (split index, then batch) puts a bucket's blobs of a table back in file order.
    """
    import duckdb

    con = duckdb.connect()
    try:
        con.execute(f"SET threads = {threads}")
        con.execute("SET preserve_insertion_order = true")  # file order within each bucket
        query = bucketed(numbered(Path(split.path), split.rows), n)
        reader = con.sql(query).to_arrow_reader(STAGE_BATCH_ROWS)
        for number, batch in enumerate(reader):
            parts = list(split_batch(_dictionary_encoded(batch), n))
            yield pa.RecordBatch.from_arrays(
                [
                    pa.array([keys[k] for k, _ in parts], pa.int64()),
                    pa.array([split.table] * len(parts), pa.string()),
                    pa.array([(index << 32) + number] * len(parts), pa.int64()),
                    pa.array([_ipc_bytes(rows) for _, rows in parts], pa.binary()),
                ],
                names=[BUCKET, TABLE, ORDER, BLOB],
            )
    finally:
        con.close()


def _dictionary_encoded(batch: pa.RecordBatch) -> pa.RecordBatch:
    """Low-cardinality strings as dictionaries: each bucket's copy of the rows is a few bytes each.

    ``buyer_id`` is never one (a bucket gets a fraction of the buyers but would carry the
    whole batch's dictionary).
    """
    columns = []
    for name, column in zip(batch.schema.names, batch.columns, strict=True):
        text = pa.types.is_string(column.type) or pa.types.is_large_string(column.type)
        if text and name != "buyer_id":
            encoded = pc.dictionary_encode(column)
            if len(encoded.dictionary) <= _DICTIONARY_MAX:
                column = encoded
        columns.append(column)
    return pa.RecordBatch.from_arrays(columns, names=batch.schema.names)


def _ipc_bytes(rows: pa.RecordBatch) -> bytes:
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, rows.schema, options=_IPC) as writer:
        writer.write_batch(rows)
    return bytes(sink.getvalue())


def bucket_frames(staged: pa.Table) -> dict[str, pd.DataFrame]:
    """Turn a bucket's staged blobs into its tables, as the local engine reads them.

    Blobs come from several splits in the shuffle's order; put in their staging order, each
    table's rows are back in file order (validation keeps the first of repeated rows). The
    frames get the local engine's dtypes (dictionaries decoded to the contract's strings).
    """
    names = staged.column(TABLE).to_pylist()
    blobs = [value.as_buffer() for chunk in staged.column(BLOB).chunks for value in chunk]
    tables: dict[str, list[pa.Table]] = {}
    for row in np.argsort(staged.column(ORDER).to_numpy(), kind="stable").tolist():
        rows = pa.ipc.open_stream(blobs[row]).read_all()
        tables.setdefault(names[row], []).append(_plain(rows))
    return {name: arrow_to_frame(pa.concat_tables(parts)) for name, parts in tables.items()}


def _plain(table: pa.Table) -> pa.Table:
    """Decode dictionary columns to their values (blobs of one table may differ in encoding)."""
    schema = pa.schema(
        pa.field(f.name, f.type.value_type) if pa.types.is_dictionary(f.type) else f
        for f in table.schema
    )
    return table.cast(schema)
