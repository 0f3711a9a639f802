"""Produces records read from stdin ("PARTITION<TAB>PAYLOAD" per line) with confluent-kafka.

Usage: produce.py BOOTSTRAP TOPIC < records
Fails (exit 1) if any record is not acknowledged by the broker.

Each record is its own record batch: tansu 0.6.0 answers a fetch from an offset inside a batch
with nothing from that batch (a consumer resuming at offset 50 of a 100-record batch gets the
next batch, losing 50..99 — checked with this same client). With one record per batch every
committed offset is a batch boundary.
"""
import sys

from confluent_kafka import Producer

bootstrap, topic = sys.argv[1], sys.argv[2]
producer = Producer({"bootstrap.servers": bootstrap, "acks": "all", "linger.ms": 0,
                     "batch.num.messages": 1, "enable.idempotence": False})
failed = []


def delivered(err, msg):
    if err is not None:
        failed.append(str(err))


for line in sys.stdin:
    partition, payload = line.rstrip("\n").split("\t", 1)
    while True:
        try:
            producer.produce(topic, payload.encode(), partition=int(partition), on_delivery=delivered)
            break
        except BufferError:
            producer.poll(0.1)
    producer.poll(0)
left = producer.flush(60)
if failed or left:
    sys.exit(f"{len(failed)} records failed ({failed[:3]}), {left} not delivered")
