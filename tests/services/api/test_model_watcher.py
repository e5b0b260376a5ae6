"""services/api/model_watcher.py's `models.promoted` consumer against the real Kafka: it reads committed data
only, so a promotion event a transactional producer aborted never wakes the watcher; a committed one does.

    .lake/venvs/core/bin/python -m pytest -q tests/services/api/test_model_watcher.py -p no:cacheprovider
"""

from __future__ import annotations

import threading
import time

import pytest

pytestmark = pytest.mark.integration


def test_an_aborted_promotion_does_not_wake_the_watcher(stack_up, unique):
    from kafka import KafkaProducer
    from kafka.admin import NewTopic

    from lake.clients import kafka_admin
    from services.api.model_watcher import ModelWatcher

    watcher = ModelWatcher(stack_up.model_copy(update={"topic_models_promoted": unique}), registry=lambda: None)
    woken, stop = threading.Event(), threading.Event()
    watcher.wake = woken.set
    thread = threading.Thread(target=watcher.consume, args=(stop,), daemon=True)
    with kafka_admin(stack_up) as admin:
        admin.create_topics([NewTopic(unique, 1, 1)])
    thread.start()
    try:
        assert watcher.kafka_ready.wait(30), "the consumer did not start"

        tx = KafkaProducer(bootstrap_servers=stack_up.kafka_bootstrap, transactional_id=f"{unique}-tx")
        tx.init_transactions()
        tx.begin_transaction()
        tx.send(unique, b'{"model_version": "aborted-v9"}')
        tx.flush()
        tx.abort_transaction()
        time.sleep(3)  # the consumer polls every 0.5 s
        assert not woken.is_set(), "an aborted promotion woke the watcher"

        tx.begin_transaction()
        tx.send(unique, b'{"model_version": "committed-v9"}')
        tx.commit_transaction()
        tx.close()
        assert woken.wait(15), "a committed promotion did not wake the watcher"
    finally:
        stop.set()
        thread.join(15)
        with kafka_admin(stack_up) as admin:
            admin.delete_topics([unique])
