"""The bronze job, SIGKILLed right after batch N was written and before Spark records
the batch as done in its checkpoint: the worst moment to die (the restart runs batch N again,
so only the look-up of landed event_ids keeps its rows single).

    LAKE_TEST_CRASH_AFTER_BATCH=2 python -m tests.reliability.crash_after_merge --checkpoint ... --namespace ...
"""

from __future__ import annotations

import os
import runpy
import signal

from pyspark.sql.streaming import DataStreamWriter

CRASH_AFTER = int(os.environ["LAKE_TEST_CRASH_AFTER_BATCH"])
_foreach_batch = DataStreamWriter.foreachBatch


def _crashing(self, func):
    def run(df, batch_id: int) -> None:
        func(df, batch_id)
        if batch_id == CRASH_AFTER:
            print(f"crash_after_merge: batch {batch_id} written, SIGKILL", flush=True)
            os.killpg(0, signal.SIGKILL)  # the job's own session: this driver and its JVM

    return _foreach_batch(self, run)


DataStreamWriter.foreachBatch = _crashing
runpy.run_module("spark_jobs.bronze.ingest_uploads", run_name="__main__", alter_sys=True)
