#!/usr/bin/env python3
"""Enqueue cancel commands for cancel-worker and wait for their outcomes (confluent-kafka).

What a Python upstream service needs, in one file:

* the producer settings the workers rely on: key ``provider:account``, the Java-compatible
  ``murmur2_random`` partitioner, an idempotent producer with ``acks=all``;
* an outcome listener positioned at the *end* of the outcomes topic *before* the first send,
  so no outcome of these commands can be missed, and waiting by idempotency key.

Usage: cancel_and_wait.py --brokers HOST:PORT [--timeout 30] < commands.jsonl
Each input line is a cancel-command.v1 object. Prints ``sent <idempotency key> <kafka key>
<partition> <offset>`` per command, then each outcome as a JSON line once it arrives.
Exit status: 0 every outcome arrived, 75 timed out (the cancels may still complete: resending
the same command, same idempotency key, is safe), 1 a send failed.
"""

import argparse
import json
import sys
import time
import uuid

from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition


def producer(brokers):
    return Producer({
        "bootstrap.servers": brokers,
        "partitioner": "murmur2_random",  # librdkafka's default (crc32) puts keys elsewhere
        "enable.idempotence": True,  # implies acks=all, no duplicates from retries
        "acks": "all",
        "linger.ms": 5,
    })


def outcome_listener(brokers, topic):
    """A consumer at the end of every partition of the outcomes topic, positioned now."""
    consumer = Consumer({
        "bootstrap.servers": brokers,
        "group.id": f"cancel-example-{uuid.uuid4()}",  # never commits; assign() needs no group
        "enable.auto.commit": False,
    })
    partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
    start = []
    for partition in partitions:
        _, high = consumer.get_watermark_offsets(TopicPartition(topic, partition), timeout=10)
        start.append(TopicPartition(topic, partition, high))
    consumer.assign(start)
    return consumer


def enqueue(producer, topic, command):
    """Sends one command keyed provider:account; returns (partition, offset) once acknowledged."""
    delivered = {}

    def report(error, message):
        delivered["error"] = error
        delivered["where"] = (message.partition(), message.offset())

    producer.produce(
        topic,
        key=f"{command['provider']}:{command['account']}".encode(),
        value=json.dumps(command, separators=(",", ":")).encode(),
        on_delivery=report,
    )
    producer.flush(30)
    if delivered.get("error") is not None or "where" not in delivered:
        raise KafkaException(delivered.get("error"))
    return delivered["where"]


def wait_for_outcomes(consumer, keys, timeout):
    """Outcomes by idempotency key, until every key has one or the timeout passes."""
    outcomes = {}
    deadline = time.monotonic() + timeout
    while len(outcomes) < len(keys) and time.monotonic() < deadline:
        message = consumer.poll(0.5)
        if message is None or message.error():
            continue
        outcome = json.loads(message.value())
        if outcome.get("idempotency_key") in keys:
            outcomes.setdefault(outcome["idempotency_key"], outcome)
    return outcomes


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--brokers", required=True)
    parser.add_argument("--commands-topic", default="cancel.commands")
    parser.add_argument("--outcomes-topic", default="cancel.outcomes")
    parser.add_argument("--timeout", type=float, default=30)
    arguments = parser.parse_args()

    commands = [json.loads(line) for line in sys.stdin if line.strip()]
    listener = outcome_listener(arguments.brokers, arguments.outcomes_topic)  # before the first send
    sender = producer(arguments.brokers)
    try:
        for command in commands:
            partition, offset = enqueue(sender, arguments.commands_topic, command)
            kafka_key = f"{command['provider']}:{command['account']}"
            print(f"sent {command['idempotency_key']} {kafka_key} {partition} {offset}", flush=True)
    except KafkaException as error:
        print(f"send failed: {error}", file=sys.stderr)
        return 1
    keys = {command["idempotency_key"] for command in commands}
    outcomes = wait_for_outcomes(listener, keys, arguments.timeout)
    listener.close()
    for key in sorted(outcomes):
        print(json.dumps(outcomes[key], sort_keys=True), flush=True)
    if len(outcomes) < len(keys):
        missing = ", ".join(sorted(keys - outcomes.keys()))
        print(f"no outcome within {arguments.timeout}s for: {missing}; the cancels may still complete", file=sys.stderr)
        return 75
    return 0


if __name__ == "__main__":
    sys.exit(main())
