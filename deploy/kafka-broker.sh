#!/usr/bin/env bash
# The Kafka-compatible broker the Kafka event log is tested against: tansu, pinned.
#
#   deploy/kafka-broker.sh install               cargo-install tansu unless it is there
#   deploy/kafka-broker.sh start [PORT] [STORAGE] start on 127.0.0.1:PORT (default 9092)
#   deploy/kafka-broker.sh stop                  stop the broker started here
#   deploy/kafka-broker.sh status                running (exit 0) or not (exit 3)
#
# STORAGE is a tansu storage URL: sqlite://tansu.db (default; kept across restarts; a
# relative path lives in the state dir) or memory://tansu/. Prefer sqlite: tansu 0.6.0's
# memory storage cannot fetch from the middle of a record batch and misreports a
# partition's end offset. The pid file, log and sqlite files live in
# ${DAYBOOK_BROKER_DIR:-/tmp/daybook-broker}.
# tansu does not create topics on first use: the event log creates its own.
set -euo pipefail

TANSU_VERSION=0.6.0
# dynostore: memory:// storage; libsql: sqlite:// storage.
TANSU_FEATURES=dynostore,libsql
STATE_DIR=${DAYBOOK_BROKER_DIR:-/tmp/daybook-broker}
PID_FILE=$STATE_DIR/tansu.pid
ADDR_FILE=$STATE_DIR/tansu.addr
LOG_FILE=$STATE_DIR/tansu.log

die() {
    echo "kafka-broker: $*" >&2
    exit 1
}

tansu_bin() {
    if command -v tansu >/dev/null 2>&1; then
        command -v tansu
    elif [[ -x ${CARGO_HOME:-$HOME/.cargo}/bin/tansu ]]; then
        echo "${CARGO_HOME:-$HOME/.cargo}/bin/tansu"
    else
        return 1
    fi
}

running_pid() {
    [[ -f $PID_FILE ]] || return 1
    local pid
    pid=$(<"$PID_FILE")
    [[ -n $pid ]] && kill -0 "$pid" 2>/dev/null && echo "$pid"
}

port_answers() {
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

cmd_install() {
    local bin
    if bin=$(tansu_bin); then
        echo "tansu already installed: $bin"
        return 0
    fi
    command -v cargo >/dev/null 2>&1 || die "cargo is needed to install tansu"
    echo "installing tansu $TANSU_VERSION (features $TANSU_FEATURES); this compiles for a while"
    cargo install --locked "tansu@$TANSU_VERSION" --features "$TANSU_FEATURES"
    tansu_bin >/dev/null || die "tansu was installed but is not on PATH nor in ${CARGO_HOME:-$HOME/.cargo}/bin"
}

cmd_start() {
    local port=${1:-9092} storage=${2:-sqlite://tansu.db} bin pid
    [[ $port =~ ^[0-9]+$ ]] || die "port must be a number, not '$port'"
    bin=$(tansu_bin) || die "no tansu: install it with deploy/kafka-broker.sh install"
    mkdir -p "$STATE_DIR"
    if pid=$(running_pid); then
        if [[ $(<"$ADDR_FILE") == "127.0.0.1:$port" ]]; then
            echo "127.0.0.1:$port"
            return 0
        fi
        die "already running (pid $pid) at $(<"$ADDR_FILE"); stop it first"
    fi
    port_answers "$port" && die "127.0.0.1:$port is taken by another process"
    # Started from the state dir, so that a relative sqlite:// path lands there.
    (
        cd "$STATE_DIR"
        exec nohup "$bin" broker \
            --listener-url "tcp://127.0.0.1:$port" \
            --advertised-listener-url "tcp://127.0.0.1:$port" \
            --storage-engine "$storage" >>"$LOG_FILE" 2>&1 </dev/null
    ) &
    pid=$!
    echo "$pid" >"$PID_FILE"
    echo "127.0.0.1:$port" >"$ADDR_FILE"
    for _ in $(seq 1 300); do
        if port_answers "$port"; then
            echo "127.0.0.1:$port"
            return 0
        fi
        if ! kill -0 "$pid" 2>/dev/null; then
            rm -f "$PID_FILE"
            tail -n 20 "$LOG_FILE" >&2 || true
            die "tansu exited at start; log: $LOG_FILE"
        fi
        sleep 0.1
    done
    tail -n 20 "$LOG_FILE" >&2 || true
    die "tansu did not answer on 127.0.0.1:$port within 30 s; log: $LOG_FILE"
}

cmd_stop() {
    local pid
    if ! pid=$(running_pid); then
        rm -f "$PID_FILE"
        echo "not running"
        return 0
    fi
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 100); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    if kill -0 "$pid" 2>/dev/null; then
        kill -KILL "$pid" 2>/dev/null || true
    fi
    rm -f "$PID_FILE"
    echo "stopped"
}

cmd_status() {
    local pid
    if pid=$(running_pid); then
        echo "running: pid $pid at $(<"$ADDR_FILE") (log $LOG_FILE)"
    else
        echo "not running"
        exit 3
    fi
}

case ${1:-} in
    install) cmd_install ;;
    start) cmd_start "${@:2}" ;;
    stop) cmd_stop ;;
    status) cmd_status ;;
    *)
        sed -n '2,14p' "$0" | sed 's/^# \{0,1\}//'
        exit 2
        ;;
esac
