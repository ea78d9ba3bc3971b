"""A Ray Data datasource over one masklab reader (imported only once Ray is there).

The reader itself travels to the read task, with whatever it already knows (a COCO
reader's parsed json and label scan), so the task continues exactly where the driver
left it: one reader, one report, as in the local engine. The task streams blocks of
samples; its last row is a trailer (``id`` null) carrying the reader's report.
"""

from __future__ import annotations

import pickle
from collections.abc import Iterator
from typing import Any

import pyarrow as pa
from ray.data.block import BlockMetadata
from ray.data.datasource import Datasource, ReadTask

from masklab.formats import ConversionReport, Reader
from masklab.ray.arrow import schema, to_table


def trailer(report: ConversionReport) -> pa.Table:
    """One row with a null ``id``: the reader's report, pickled in ``py``."""
    columns: dict[str, Any] = {f.name: pa.nulls(1, f.type) for f in schema()}
    columns["py"] = pa.array([pickle.dumps(report, protocol=5)], pa.binary())
    return pa.Table.from_pydict(columns, schema=schema())


def reports(table: pa.Table) -> list[ConversionReport]:
    """The reports of a block's trailer rows (none in a plain block)."""
    ids = table.column("id")
    if ids.null_count == 0:
        return []
    rows = table.filter(ids.is_null())
    return [pickle.loads(b) for b in rows.column("py").to_pylist()]


def stream(reader: Reader, block_size: int) -> Iterator[pa.Table]:
    """The reader's samples in blocks of ``block_size``, then the trailer."""
    batch = []
    for sample in reader:
        batch.append(sample)
        if len(batch) == block_size:
            yield to_table(batch)
            batch = []
    if batch:
        yield to_table(batch)
    yield trailer(reader.report)


class ReaderSource(Datasource):
    """One read task that runs ``reader`` and streams its blocks."""

    def __init__(self, reader: Reader, block_size: int) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        self.reader = reader
        self.block_size = block_size

    def get_name(self) -> str:
        return f"masklab-{self.reader.spec.name}"

    def estimate_inmemory_data_size(self) -> int | None:
        return None

    def get_read_tasks(
        self, parallelism: int, per_task_row_limit: int | None = None, data_context: Any = None
    ) -> list[ReadTask]:
        import ray

        ref, block_size = ray.put(self.reader), self.block_size  # not in the task's closure
        meta = BlockMetadata(num_rows=None, size_bytes=None, input_files=None, exec_stats=None)
        return [ReadTask(lambda: stream(ray.get(ref), block_size), meta, schema=schema())]
