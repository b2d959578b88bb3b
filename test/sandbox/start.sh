#!/bin/sh
# Start the epic_fdw HTTPS sandbox in the background and print its port.
# Usage: start.sh STATE_DIR [extra sandbox.py args...]
# Expects STATE_DIR/clients.json (written by the test runner). Logs to STATE_DIR/sandbox.log.
# Extra args are passed to sandbox.py, e.g. --dataset STU3=DIR --latency-ms 20.
# Start-up waits up to EPIC_SANDBOX_START_TIMEOUT seconds (default 60: big datasets load
# for a few seconds).
set -eu
if [ $# -lt 1 ]; then
    echo "usage: $0 STATE_DIR [extra sandbox.py args...]" >&2
    exit 2
fi
STATE_DIR=$1
shift
HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
mkdir -p "$STATE_DIR"
STATE_DIR=$(cd "$STATE_DIR" && pwd)
rm -f "$STATE_DIR/port"

/usr/bin/python3 "$HERE/sandbox.py" --state-dir "$STATE_DIR" \
    --clients "$STATE_DIR/clients.json" \
    --fixtures "$REPO/test/fixtures/stu3" --fixtures "$REPO/test/fixtures/r4" \
    "$@" >>"$STATE_DIR/sandbox.log" 2>&1 </dev/null &
child=$!

TIMEOUT=${EPIC_SANDBOX_START_TIMEOUT:-60}
case $TIMEOUT in ''|*[!0-9]*) TIMEOUT=60 ;; esac
i=0
while [ $i -lt $((TIMEOUT * 10)) ]; do
    if [ -s "$STATE_DIR/port" ]; then
        cat "$STATE_DIR/port"
        exit 0
    fi
    if ! kill -0 "$child" 2>/dev/null; then
        echo "start.sh: sandbox exited during start-up; last lines of $STATE_DIR/sandbox.log:" >&2
        tail -n 20 "$STATE_DIR/sandbox.log" >&2
        exit 1
    fi
    sleep 0.1
    i=$((i + 1))
done
echo "start.sh: sandbox did not write $STATE_DIR/port within $TIMEOUT s; see $STATE_DIR/sandbox.log" >&2
kill "$child" 2>/dev/null || true
exit 1
