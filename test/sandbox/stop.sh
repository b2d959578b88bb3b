#!/bin/sh
# Stop the epic_fdw sandbox started by start.sh. Usage: stop.sh STATE_DIR
set -eu
if [ $# -ne 1 ]; then
    echo "usage: $0 STATE_DIR" >&2
    exit 2
fi
PIDFILE=$1/pid
[ -s "$PIDFILE" ] || exit 0          # not running
pid=$(cat "$PIDFILE")
case $pid in ''|*[!0-9]*) echo "stop.sh: bad pid file $PIDFILE" >&2; exit 1 ;; esac
# only signal the process if it really is our sandbox (pids get recycled)
if ! tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q 'sandbox\.py'; then
    rm -f "$PIDFILE" "$1/port"
    exit 0
fi
kill -TERM "$pid" 2>/dev/null || exit 0
i=0
while kill -0 "$pid" 2>/dev/null && [ $i -lt 50 ]; do
    sleep 0.1
    i=$((i + 1))
done
if kill -0 "$pid" 2>/dev/null; then
    kill -KILL "$pid" 2>/dev/null || true
fi
rm -f "$PIDFILE" "$1/port"
