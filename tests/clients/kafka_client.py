"""An upstream app that is not idfold: publishes raw events to idfold's raw
topics with Confluent's Python client (librdkafka), as JSON and as Avro
single-object encoded records written by fastavro, and reads the
dead-letter topic back with its headers.

    kafka_client.py publish BOOTSTRAP PREFIX --json FILE --avro FILE [--bad]
    kafka_client.py dead-letters BOOTSTRAP TOPIC COUNT

`publish` prints {"published": n, "bad": k}; `dead-letters` prints a JSON
list of {"headers": {...}, "value": "..."}.
"""

import argparse
import io
import json
import pathlib
import sys
import time

import fastavro
from confluent_kafka import Consumer, Producer, TopicPartition

SCHEMAS = pathlib.Path(__file__).resolve().parents[2] / "schemas"
MAGIC = b"\xc3\x01"


def load_schema(kind):
    raw = json.loads((SCHEMAS / f"{kind}.v1.avsc").read_text())
    canonical = fastavro.schema.to_parsing_canonical_form(raw)
    # The single-object header carries the CRC-64-AVRO fingerprint of the
    # Parsing Canonical Form, little-endian: fastavro gives those bytes in hex.
    fingerprint = bytes.fromhex(fastavro.schema.fingerprint(canonical, "CRC-64-AVRO"))
    return fastavro.parse_schema(raw), raw, fingerprint


def avro_single_object(event):
    parsed, raw, fingerprint = load_schema(event["type"])
    record = {}
    for field in raw["fields"]:
        value = event.get(field["name"])
        if isinstance(value, dict):
            # Avro has no arbitrary-JSON type: objects travel as JSON text.
            value = json.dumps(value, separators=(",", ":"))
        if value is None and field["name"] == "channel":
            value = "api"
        record[field["name"]] = value
    out = io.BytesIO()
    fastavro.schemaless_writer(out, parsed, record)
    return MAGIC + fingerprint + out.getvalue()


def publish(bootstrap, prefix, json_file, avro_file, bad):
    producer = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True, "acks": "all"})
    failures = []

    def delivered(err, _msg):
        if err is not None:
            failures.append(str(err))

    published = 0

    def send(kind, value, key):
        nonlocal published
        while True:
            try:
                producer.produce(f"{prefix}.raw.{kind}", value=value, key=key, on_delivery=delivered)
                break
            except BufferError:
                producer.poll(0.1)
        producer.poll(0)
        published += 1

    for path, encode in ((json_file, lambda line, _event: line.encode()), (avro_file, lambda _line, event: avro_single_object(event))):
        if not path:
            continue
        for line in pathlib.Path(path).read_text().splitlines():
            if not line.strip():
                continue
            event = json.loads(line)
            # Upstream apps key as they like; idfold re-keys by workspace.
            send(event["type"], encode(line, event), (event.get("anonymous_id") or "k").encode())
    bad_count = 0
    if bad:
        for kind, value in (
            ("track", b"this is not json"),
            ("identify", MAGIC + b"\x01\x02\x03\x04\x05\x06\x07\x08" + b"\x00"),
            ("survey", json.dumps({"type": "survey", "workspace_id": "w", "timestamp": "2026-01-01T00:00:00Z", "user_id": "u", "survey_id": "s", "action": "shown"}).encode()),
        ):
            send(kind, value, None)
            bad_count += 1
    producer.flush(60)
    if failures:
        sys.exit(f"deliveries failed: {failures[:3]}")
    print(json.dumps({"published": published, "bad": bad_count}))


def dead_letters(bootstrap, topic, count):
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"reader-{time.time_ns()}", "enable.auto.commit": False})
    metadata = consumer.list_topics(topic, timeout=10)
    partitions = [TopicPartition(topic, p, 0) for p in metadata.topics[topic].partitions]
    consumer.assign(partitions)
    letters = []
    deadline = time.time() + 30
    while len(letters) < count and time.time() < deadline:
        message = consumer.poll(0.5)
        if message is None or message.error():
            continue
        headers = {k: (v.decode() if v is not None else None) for k, v in (message.headers() or [])}
        letters.append({"headers": headers, "value": message.value().decode("utf-8", "replace")})
    consumer.close()
    print(json.dumps(letters))


def latest(bootstrap, topic):
    """Every record of a (compacted) topic up to its end, as {key: value}:
    the latest value per key, JSON-decoded, null for a tombstone."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"reader-{time.time_ns()}", "enable.auto.commit": False})
    metadata = consumer.list_topics(topic, timeout=10)
    ends = {}
    for p in metadata.topics[topic].partitions:
        low, high = consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)
        if high > low:
            ends[p] = high
    consumer.assign([TopicPartition(topic, p, 0) for p in ends])
    values = {}
    deadline = time.time() + 30
    while ends and time.time() < deadline:
        message = consumer.poll(0.5)
        if message is None or message.error():
            continue
        value = message.value()
        values[message.key().decode()] = None if value is None else json.loads(value)
        if message.offset() + 1 >= ends.get(message.partition(), 0):
            ends.pop(message.partition(), None)
    consumer.close()
    print(json.dumps(values))


def group_members(bootstrap, group):
    """The members of a consumer group: their static instance ids and the
    partitions assigned to them."""
    from confluent_kafka.admin import AdminClient
    admin = AdminClient({"bootstrap.servers": bootstrap})
    described = admin.describe_consumer_groups([group], request_timeout=10)[group].result(timeout=15)
    members = [
        {
            "group_instance_id": m.group_instance_id,
            "partitions": sorted(tp.partition for tp in (m.assignment.topic_partitions if m.assignment else [])),
        }
        for m in described.members
    ]
    print(json.dumps({"state": str(described.state), "members": members}))


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    p = commands.add_parser("publish")
    p.add_argument("bootstrap")
    p.add_argument("prefix")
    p.add_argument("--json")
    p.add_argument("--avro")
    p.add_argument("--bad", action="store_true")
    d = commands.add_parser("dead-letters")
    d.add_argument("bootstrap")
    d.add_argument("topic")
    d.add_argument("count", type=int)
    members_parser = commands.add_parser("group-members")
    members_parser.add_argument("bootstrap")
    members_parser.add_argument("group")
    latest_parser = commands.add_parser("latest")
    latest_parser.add_argument("bootstrap")
    latest_parser.add_argument("topic")
    args = parser.parse_args()
    if args.command == "publish":
        publish(args.bootstrap, args.prefix, args.json, args.avro, args.bad)
    elif args.command == "group-members":
        group_members(args.bootstrap, args.group)
    elif args.command == "latest":
        latest(args.bootstrap, args.topic)
    else:
        dead_letters(args.bootstrap, args.topic, args.count)


if __name__ == "__main__":
    main()
