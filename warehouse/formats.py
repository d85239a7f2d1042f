"""Writing one split of a dataset in each export format, streamed by DuckDB and pyarrow.

Parquet is written first, in batches from the warehouse, in the Hugging Face hub layout
(`data/{split}-00000-of-00001.parquet`, loadable with `datasets.load_dataset`); the other
formats are read back from it, so every format holds the same rows in the same order:

- `jsonl/{split}.jsonl` — one JSON object per row;
- `hf/` — a `datasets.DatasetDict.save_to_disk` folder (Arrow stream files + state.json),
  loadable with `datasets.load_from_disk`;
- `dspy/{split}.jsonl` — rows shaped for `dspy.Example(**row).with_inputs(*DSPY_INPUTS)`.

Nothing here reads the clock or the machine: the same rows give byte-identical files.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from contextlib import AbstractContextManager
from enum import StrEnum
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from warehouse.db import limit_threads

BATCH_ROWS = 2_000
ROW_GROUP = 2_048  # rows hold whole files: small groups keep readers' memory small
DSPY_INPUTS = ("code", "task_description")
DSPY_FIELDS = ("code", "task_description", "event_sequence", "bug_type", "bug_location",
               "explanation", "refactored_code")


class ExportFormat(StrEnum):
    PARQUET = "parquet"
    JSONL = "jsonl"
    HF = "hf"
    DSPY = "dspy"


class PartitionBy(StrEnum):
    LANGUAGE = "language"
    BUG_TYPE = "bug_type"


def quote(path: Path) -> str:
    return "'" + str(path).replace("'", "''") + "'"


def _one_thread(con: duckdb.DuckDBPyConnection) -> AbstractContextManager[None]:
    """Run statements on one thread: rows stream in a fixed order, where several threads
    would finish them out of order and buffer them (memory growing with the data)."""
    return limit_threads(con, 1)


def write_parquet(batches: Iterable[pa.Table], out: Path, partition_by: PartitionBy | None
                  ) -> int:
    """Write batches to one Parquet file, or one file per value of partition_by (hive
    layout, the column kept in the files); rows written."""
    writers: dict[str, pq.ParquetWriter] = {}

    def writer_for(target: Path, schema: pa.Schema) -> pq.ParquetWriter:
        if str(target) not in writers:
            target.parent.mkdir(parents=True, exist_ok=True)
            writers[str(target)] = pq.ParquetWriter(target, schema, compression="zstd")
        return writers[str(target)]

    count = 0
    try:
        for table in batches:
            count += table.num_rows
            if partition_by is None:
                writer_for(out, table.schema).write_table(table, row_group_size=ROW_GROUP)
                continue
            column = table.column(partition_by.value)
            for value in sorted(set(column.to_pylist()), key=lambda v: (v is None, v or "")):
                part = table.filter(pc.is_null(column) if value is None
                                    else pc.equal(column, value))
                name = "__HIVE_DEFAULT_PARTITION__" if value is None else value
                target = out / f"{partition_by.value}={name}" / "data_0.parquet"
                writer_for(target, table.schema).write_table(part, row_group_size=ROW_GROUP)
    finally:
        for writer in writers.values():
            writer.close()
    return count


def parquet_files(target: Path) -> list[Path]:
    """The Parquet files one split was written to, in a fixed order."""
    return sorted(target.rglob("*.parquet")) if target.is_dir() else [target]


def _source(files: list[Path]) -> str:
    return f"read_parquet([{', '.join(quote(f) for f in files)}], hive_partitioning = false)"


def write_jsonl(con: duckdb.DuckDBPyConnection, files: list[Path], out: Path) -> None:
    _write_json_lines(con, f"SELECT * FROM {_source(files)}", out)


JSON_BATCH_ROWS = 64  # rows per fetched batch: whole files near the size cap are large


def _write_json_lines(con: duckdb.DuckDBPyConnection, query: str, out: Path) -> int:
    """Each row of the query as one JSON object per line; returns the rows written.

    The rows stream from DuckDB in small batches and are written as they come: DuckDB's own
    COPY … (FORMAT json) buffers whole-file texts past its memory limit."""
    out.parent.mkdir(parents=True, exist_ok=True)
    count = 0
    with _one_thread(con), out.open("w", encoding="utf-8") as sink:
        reader = con.sql(query).to_arrow_reader(JSON_BATCH_ROWS)
        for batch in reader:
            for row in batch.to_pylist():
                sink.write(json.dumps(row, ensure_ascii=False, separators=(",", ":"),
                                      default=str))
                sink.write("\n")
            count += batch.num_rows
    return count


def write_dspy(con: duckdb.DuckDBPyConnection, files: list[Path], out: Path) -> int:
    """Rows in the analyser's fields; pairs with no before code (added files) are left out,
    and at function level every function but the one the label locates."""
    out.parent.mkdir(parents=True, exist_ok=True)
    unit = "function" if "function" in pq.read_schema(files[0]).names else "file"
    # A function row carries its commit's label; only the function the label points at is
    # an example of that bug (the others would teach that correct code is buggy).
    only_located = "AND is_bug_location" if unit == "function" else ""
    subject = ("format('{} {} `{}` in {}', language, kind, function, path)"
               if unit == "function" else "format('{} file {}', language, path)")
    query = f"""
        SELECT before AS code,
               format('Review this {{}} from {{}} for concurrency bugs (race conditions, '
                      'deadlocks, timeouts, mailbox overflows, process leaks, exit-signal '
                      'mishandling). Describe the interleaving that triggers the bug, where it '
                      'is, why it happens, and rewrite the code without it.', {subject}, repo)
                   AS task_description,
               list_transform(coalesce(event_sequence, []), lambda s: struct_pack(
                   step := s.step, actor := s.actor, action := s.action, target := s.target,
                   file := s.file, "function" := s."function", line := s.line,
                   note := s.note)) AS event_sequence, bug_type,
               CASE WHEN location_file IS NULL THEN NULL
                    ELSE concat(location_file,
                                CASE WHEN location_start IS NULL THEN ''
                                     ELSE format(':{{}}-{{}}', location_start, location_end) END,
                                CASE WHEN location_function IS NULL THEN ''
                                     ELSE format(' ({{}})', location_function) END) END
                   AS bug_location,
               explanation, after AS refactored_code,
               id, repo, sha, path, annotator, mine_run_id, label_run_id, introduced_by,
               introduced_at, bug_age_days
        FROM {_source(files)} WHERE before IS NOT NULL {only_located}"""
    return _write_json_lines(con, query, out)


def write_hf_split(files: list[Path], folder: Path, split: str, description: str) -> None:
    """One split as `Dataset.save_to_disk` writes it: an Arrow stream and its state files."""
    folder.mkdir(parents=True, exist_ok=True)
    arrow = folder / "data-00000-of-00001.arrow"
    schema = pq.read_schema(files[0]).remove_metadata()
    with pa.OSFile(str(arrow), "wb") as sink, pa.ipc.new_stream(sink, schema) as writer:
        for path in files:
            for batch in pq.ParquetFile(path).iter_batches(batch_size=BATCH_ROWS):
                writer.write_batch(pa.RecordBatch.from_arrays(batch.columns, schema=schema))
    with arrow.open("rb") as handle:
        fingerprint = hashlib.file_digest(handle, "sha256").hexdigest()[:16]
    # Features are left for `datasets` to read from the Arrow schema, which keeps this
    # folder independent of the `datasets` version that loads it.
    (folder / "dataset_info.json").write_text(json.dumps(
        {"description": description, "citation": "", "homepage": "", "license": ""},
        indent=2, sort_keys=True) + "\n")
    (folder / "state.json").write_text(json.dumps({
        "_data_files": [{"filename": arrow.name}], "_fingerprint": fingerprint,
        "_format_columns": None, "_format_kwargs": {}, "_format_type": None,
        "_output_all_columns": False, "_split": split}, indent=2, sort_keys=True) + "\n")


def write_hf_dict(folder: Path, splits: list[str]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "dataset_dict.json").write_text(json.dumps({"splits": splits}) + "\n")
