#!/bin/bash
# bench/run.sh — the epic_fdw benchmark (see bench/README.md). Not part of scripts/test.sh.
#
#   bash bench/run.sh            # 20,000 patients × 5 statements, several minutes
#   bash bench/run.sh --quick    # 2,000 patients, fewer runs: a smoke check
#
# Runs as root on Debian 12: installs what it needs, builds and installs epic_fdw,
# generates the dataset, starts the HTTPS sandbox and a throwaway PostgreSQL cluster
# (scripts/lib.sh), runs bench/bench.py and writes bench/RESULTS.md. Everything it
# starts is stopped on exit; its state directory is removed unless BENCH_KEEP=1.
#
# Environment (defaults for the full run / --quick):
#   BENCH_PATIENTS (20000 / 2000)  BENCH_STATEMENTS (5)  BENCH_RUNS (5 / 3)
#   BENCH_SLOW_RUNS (3 / 1): runs of the 50 ms latency scenarios
#   BENCH_LATENCY_MS (50)  BENCH_FANOUT (200): patients in the fan-out scenario
#   BENCH_PAGE_SIZES ("50 100 200 500 1000")  BENCH_OUT (bench/RESULTS.md)
#   BENCH_ONLY ("s1 s3 s4 s5 s6 s7": a subset, writes only raw JSON)  BENCH_KEEP
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=../scripts/lib.sh
. "$HERE/../scripts/lib.sh"

# shellcheck source=lib.sh
. "$HERE/lib.sh"
bench_args "$0" 20 "$@"
if [ "$MODE" = quick ]; then
	: "${BENCH_PATIENTS:=2000}" "${BENCH_RUNS:=3}" "${BENCH_SLOW_RUNS:=1}"
else
	: "${BENCH_PATIENTS:=20000}" "${BENCH_RUNS:=5}" "${BENCH_SLOW_RUNS:=3}"
fi
: "${BENCH_STATEMENTS:=5}" "${BENCH_OUT:=$HERE/RESULTS.md}"
export BENCH_MODE=$MODE BENCH_PATIENTS BENCH_STATEMENTS BENCH_RUNS BENCH_SLOW_RUNS BENCH_OUT

# PL/Python is the baseline of scenario 1 only
WITH_PLPY=true
case " ${BENCH_ONLY:-s1} " in *" s1 "*) ;; *) WITH_PLPY=false ;; esac

epic_install_deps
# PL/Python for the baseline, time -v for whole processes, git for the
# commit RESULTS.md names
if $WITH_PLPY && ! dpkg -s postgresql-plpython3-15 time git >/dev/null 2>&1; then
	epic_log "installing postgresql-plpython3-15, time and git"
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq >/dev/null
	apt-get install -y -qq --no-install-recommends postgresql-plpython3-15 time git >/dev/null
fi
epic_build_install

bench_state epic_fdw_bench
bench_dataset STU3 "$BENCH_PATIENTS" "$BENCH_STATEMENTS"
export BENCH_DATASET_DIR=$DATA BENCH_RAW="$STATE/results.json"

# the sandbox's request log must not fill memory over thousands of requests: bench.py
# resets it before every counted group
bench_start STU3 300

"$PGBIN/psql" -X -q -v ON_ERROR_STOP=1 -d bench \
	-v dataset_url="$EPIC_DATASET_URL_STU3" -v ca_file="$EPIC_CA_FILE" -v rsa_key="$EPIC_RSA_KEY" \
	-v with_plpy="$WITH_PLPY" >/dev/null <<'SQL'
\i sql/include/dataset.sql
ALTER SERVER dataset OPTIONS (ADD page_size '100', ADD or_lists 'true');
\if :with_plpy
\i bench/plpython.sql
\endif
-- backend CPU time in ns (schedstat's first field)
CREATE FUNCTION public.bench_cpu_ns() RETURNS bigint LANGUAGE sql AS
$$ SELECT split_part(pg_read_file('/proc/self/schedstat'), ' ', 1)::bigint $$;
-- runs a single-value query once: wall ms, backend CPU ms, its value
CREATE FUNCTION public.bench_run(q text, OUT ms float8, OUT cpu_ms float8, OUT n bigint)
LANGUAGE plpgsql AS $$
DECLARE t0 timestamptz; c0 bigint;
BEGIN
  c0 := public.bench_cpu_ns();
  t0 := clock_timestamp();
  EXECUTE q INTO n;
  ms := extract(epoch FROM clock_timestamp() - t0) * 1000;
  cpu_ms := (public.bench_cpu_ns() - c0) / 1e6;
END $$;
SQL

$PY "$HERE/bench.py"
