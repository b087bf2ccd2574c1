#!/usr/bin/env bash
# Every test, on a fresh machine with Rust, Java, Maven, Python and Node:
# installs what the tests use when missing (promtool and Chromium from
# Debian's packages; the Python clients: Kafka's, Segment's, schemathesis;
# Playwright's driver from npm), starts a real Kafka
# broker (deploy/kafka.sh fetches it from Maven Central the first time),
# runs `cargo test --workspace` against it, and stops it.
#   tests/run.sh [cargo test arguments...]
set -euo pipefail
cd "$(dirname "$0")/.."
# promtool (Debian's prometheus package) parses /metrics; Chromium (Debian's
# chromium) renders the dashboard.
missing=()
command -v promtool >/dev/null 2>&1 || missing+=(prometheus)
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
if [ ${#missing[@]} -gt 0 ]; then
  sudo_cmd=()
  [ "$(id -u)" -ne 0 ] && sudo_cmd=(sudo)
  "${sudo_cmd[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
if ! python3 -c "import confluent_kafka, fastavro, segment.analytics, schemathesis" 2>/dev/null; then
  python3 -m pip install --quiet --disable-pip-version-check -r tests/clients/requirements.txt
fi
if [ ! -d tests/clients/node_modules/playwright-core ]; then
  npm ci --prefix tests/clients --no-audit --no-fund --silent
fi
exec deploy/kafka.sh with cargo test --workspace "$@"
