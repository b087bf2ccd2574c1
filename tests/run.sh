#!/usr/bin/env bash
# Every test, on a fresh machine with Rust, Java, Maven and Python: installs
# the Python clients the tests use (Kafka's, Segment's and schemathesis, when missing), starts a real Kafka
# broker (deploy/kafka.sh fetches it from Maven Central the first time),
# runs `cargo test --workspace` against it, and stops it.
#   tests/run.sh [cargo test arguments...]
set -euo pipefail
cd "$(dirname "$0")/.."
if ! python3 -c "import confluent_kafka, fastavro, segment.analytics, schemathesis" 2>/dev/null; then
  python3 -m pip install --quiet --disable-pip-version-check -r tests/clients/requirements.txt
fi
exec deploy/kafka.sh with cargo test --workspace "$@"
