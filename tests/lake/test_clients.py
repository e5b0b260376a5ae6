"""lake.clients.per_process: one shared object per key and process, built once; a builder may ask for
another shared object (the Spark captioner's loader builds a registry, which asks for the MinIO client)
without deadlocking (unit: no servers)."""

from __future__ import annotations

import threading

from lake.clients import per_process


def test_built_once_and_reused():
    made = []
    first = per_process(("test-once",), lambda: made.append(1) or object())
    assert per_process(("test-once",), lambda: made.append(2) or object()) is first and made == [1]


def test_a_builder_may_ask_for_another_shared_object():
    def outer():
        return ("outer", per_process(("test-inner",), lambda: "inner"))

    done = []
    t = threading.Thread(target=lambda: done.append(per_process(("test-outer",), outer)), daemon=True)
    t.start()
    t.join(timeout=10)
    assert done == [("outer", "inner")], "nested per_process deadlocked"
