#!/usr/bin/env bash
# A single-node Apache Kafka broker (KRaft, combined broker + controller) on
# 127.0.0.1, fetched from Maven Central with the machine's Maven and run with
# the machine's Java. Nothing else is needed on a fresh machine.
#
#   deploy/kafka.sh fetch            download the broker's jars (cached)
#   deploy/kafka.sh start            format storage if new, start, wait until it answers
#   deploy/kafka.sh stop             stop it (controlled shutdown), keep its data
#   deploy/kafka.sh status           exit 0 when it answers
#   deploy/kafka.sh wipe             stop it and delete its data
#   deploy/kafka.sh with CMD...      start, run CMD with IDFOLD_TEST_KAFKA set, stop
#
# Settings (environment): KAFKA_VERSION (4.1.1), KAFKA_PORT (19092; the
# controller listens on KAFKA_PORT+1), KAFKA_HOME (where its data and log go,
# default target/kafka/PORT), KAFKA_CACHE (~/.cache/idfold), KAFKA_HEAP (768m).
set -euo pipefail

KAFKA_VERSION="${KAFKA_VERSION:-4.1.1}"
KAFKA_PORT="${KAFKA_PORT:-19092}"
CONTROLLER_PORT=$((KAFKA_PORT + 1))
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
KAFKA_HOME="${KAFKA_HOME:-$ROOT/target/kafka/$KAFKA_PORT}"
KAFKA_CACHE="${KAFKA_CACHE:-$HOME/.cache/idfold}"
KAFKA_HEAP="${KAFKA_HEAP:-768m}"
LIBS="$KAFKA_CACHE/kafka-$KAFKA_VERSION/libs"
PID_FILE="$KAFKA_HOME/broker.pid"
LOG_FILE="$KAFKA_HOME/broker.log"

say() { echo "kafka.sh: $*" >&2; }

fetch() {
  if [ -f "$LIBS/.complete" ]; then return 0; fi
  command -v mvn >/dev/null || { say "Maven (mvn) is needed to fetch the broker"; exit 1; }
  command -v java >/dev/null || { say "Java is needed to run the broker"; exit 1; }
  local work; work="$(mktemp -d)"
  cat >"$work/pom.xml" <<EOF
<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>dev.idfold</groupId><artifactId>kafka-broker</artifactId><version>1</version>
  <packaging>pom</packaging>
  <dependencies>
    <dependency>
      <groupId>org.apache.kafka</groupId><artifactId>kafka_2.13</artifactId>
      <version>$KAFKA_VERSION</version>
    </dependency>
    <!-- The broker logs through SLF4J 1.7; this binds it to its log4j2. -->
    <dependency>
      <groupId>org.apache.logging.log4j</groupId><artifactId>log4j-slf4j-impl</artifactId>
      <version>2.24.3</version>
    </dependency>
  </dependencies>
</project>
EOF
  say "fetching org.apache.kafka:kafka_2.13:$KAFKA_VERSION and its runtime dependencies from Maven Central"
  rm -rf "$LIBS"
  mvn -q -B -f "$work/pom.xml" dependency:copy-dependencies \
    -DincludeScope=runtime -DoutputDirectory="$LIBS"
  rm -rf "$work"
  touch "$LIBS/.complete"
}

answers() {
  # The broker logs this line once its listeners accept requests.
  [ -f "$PID_FILE" ] && kill -0 "$(cat "$PID_FILE")" 2>/dev/null &&
    grep -q "Kafka Server started" "$LOG_FILE" 2>/dev/null &&
    (exec 3<>"/dev/tcp/127.0.0.1/$KAFKA_PORT") 2>/dev/null
}

write_config() {
  mkdir -p "$KAFKA_HOME/data"
  cat >"$KAFKA_HOME/server.properties" <<EOF
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:$CONTROLLER_PORT
listeners=PLAINTEXT://127.0.0.1:$KAFKA_PORT,CONTROLLER://127.0.0.1:$CONTROLLER_PORT
advertised.listeners=PLAINTEXT://127.0.0.1:$KAFKA_PORT
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
log.dirs=$KAFKA_HOME/data
num.partitions=1
auto.create.topics.enable=false
offsets.topic.replication.factor=1
offsets.topic.num.partitions=4
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0
EOF
  cat >"$KAFKA_HOME/log4j2.properties" <<'EOF'
rootLogger.level=WARN
rootLogger.appenderRef.out.ref=OUT
appender.out.type=Console
appender.out.name=OUT
appender.out.layout.type=PatternLayout
appender.out.layout.pattern=[%d] %p %m (%c)%n
logger.started.name=kafka.server.KafkaRaftServer
logger.started.level=INFO
EOF
}

java_run() {
  java -Xms256m "-Xmx$KAFKA_HEAP" -XX:+UseG1GC \
    "-Dlog4j2.configurationFile=$KAFKA_HOME/log4j2.properties" \
    -cp "$LIBS/*" "$@"
}

start() {
  fetch
  if answers; then say "already running on 127.0.0.1:$KAFKA_PORT"; return 0; fi
  write_config
  if [ ! -f "$KAFKA_HOME/data/meta.properties" ]; then
    local cluster_id
    cluster_id="$(java_run kafka.tools.StorageTool random-uuid | tail -1)"
    java_run kafka.tools.StorageTool format -t "$cluster_id" \
      -c "$KAFKA_HOME/server.properties" >/dev/null
  fi
  : >"$LOG_FILE"
  nohup java -Xms256m "-Xmx$KAFKA_HEAP" -XX:+UseG1GC \
    "-Dlog4j2.configurationFile=$KAFKA_HOME/log4j2.properties" \
    -cp "$LIBS/*" kafka.Kafka "$KAFKA_HOME/server.properties" >>"$LOG_FILE" 2>&1 &
  echo $! >"$PID_FILE"
  local waited=0
  until answers; do
    if ! kill -0 "$(cat "$PID_FILE")" 2>/dev/null; then
      say "the broker exited; its log ($LOG_FILE) ends with:"; tail -20 "$LOG_FILE" >&2; exit 1
    fi
    if [ "$waited" -ge 120 ]; then say "no answer after 60 s; see $LOG_FILE"; stop; exit 1; fi
    sleep 0.5; waited=$((waited + 1))
  done
  say "broker answers on 127.0.0.1:$KAFKA_PORT (data in $KAFKA_HOME)"
}

stop() {
  [ -f "$PID_FILE" ] || return 0
  local pid; pid="$(cat "$PID_FILE")"
  if kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid"
    for _ in $(seq 1 60); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
    kill -0 "$pid" 2>/dev/null && { say "no exit after 30 s: killing"; kill -KILL "$pid"; }
  fi
  rm -f "$PID_FILE"
}

case "${1:-}" in
  fetch) fetch ;;
  start) start ;;
  stop) stop ;;
  status) answers ;;
  wipe) stop; rm -rf "$KAFKA_HOME" ;;
  with)
    shift
    [ "$#" -gt 0 ] || { say "usage: kafka.sh with CMD..."; exit 2; }
    start
    trap stop EXIT
    IDFOLD_TEST_KAFKA="127.0.0.1:$KAFKA_PORT" "$@"
    ;;
  *) sed -n '2,16p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2 ;;
esac
