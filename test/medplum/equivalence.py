#!/usr/bin/env python3
"""Equivalence runner: each query of queries.sql with pushdown on, with pushdown
off, and over the truth tables; all three must give the same rows.

Each block of queries.sql starts with a header line:
    -- q: TITLE                      one statement
    -- p auto: TITLE                 prepared statements under plan_cache_mode = auto
    -- p generic: TITLE              ... under plan_cache_mode = force_generic_plan
A block runs in its own psql session per mode (so a prepared statement's plans
are made under that mode's epic_fdw.pushdown); its statements are compared
one by one, as multisets of rows.  Prints "ok N - TITLE (rows)" or "not ok N -
TITLE: what differs", and "N passed, N failed" last.

Usage: equivalence.py QUERIES.sql   (psql from $PGBIN, connection from PGHOST etc.;
the schemas mp (foreign tables) and truth (plain tables) must exist)
"""
import concurrent.futures
import os
import re
import subprocess
import sys

PSQL = os.path.join(os.environ.get("PGBIN", "/usr/lib/postgresql/15/bin"), "psql")
MARK = "@@statement@@"
PLANS = "@@plans@@"
MODES = {
    "on": "SET search_path = mp, public; SET epic_fdw.pushdown = on;",
    "off": "SET search_path = mp, public; SET epic_fdw.pushdown = off;",
    "truth": "SET search_path = truth, public;",
}
HEADER = re.compile(r"^-- (q|p auto|p generic): (.*)$")


def parse(path):
    blocks = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            m = HEADER.match(line.rstrip("\n"))
            if m:
                blocks.append({"kind": m.group(1), "title": m.group(2), "sql": ""})
            elif blocks:
                blocks[-1]["sql"] += line
    for b in blocks:
        stmts = [s.strip() for s in re.split(r";\s*\n", b["sql"].strip() + "\n") if s.strip()]
        b["statements"] = [re.sub(r"(?m)^\s*--.*\n?", "", s).strip() for s in stmts]
        b["statements"] = [s for s in b["statements"] if s]
    return blocks


def run(block, mode):
    """(list of per-statement sorted row lists, error text or None, warnings, the
    prepared statement's plan counts)"""
    script = ["SET TimeZone = 'UTC';", "SET DateStyle = 'ISO, YMD';", "SET extra_float_digits = 0;",
              MODES[mode]]
    if block["kind"] == "p auto":
        script.append("SET plan_cache_mode = auto;")
    elif block["kind"] == "p generic":
        script.append("SET plan_cache_mode = force_generic_plan;")
    for s in block["statements"]:
        script.append("\\echo " + MARK)
        script.append(s + ";")
    if block["kind"] != "q":
        # which plans the prepared statement used (reported, not compared)
        script.append("\\echo " + PLANS)
        script.append("SELECT generic_plans || ' generic, ' || custom_plans || ' custom' "
                      "FROM pg_prepared_statements WHERE name = 'q';")
    p = subprocess.run([PSQL, "-X", "-q", "-A", "-t", "-F", "|", "-v", "ON_ERROR_STOP=1",
                        "-d", os.environ.get("PGDATABASE", "postgres")],
                       input="\n".join(script) + "\n", capture_output=True, text=True, timeout=120)
    out, _, plans = p.stdout.partition(PLANS + "\n")
    sections = out.split(MARK + "\n")[1:]
    results = [sorted(x for x in sec.split("\n") if x != "") for sec in sections]
    err = None
    if p.returncode != 0:
        lines = [x for x in p.stderr.splitlines() if x.startswith(("ERROR", "DETAIL", "HINT"))]
        err = " / ".join(lines) or p.stderr.strip() or "psql exit %d" % p.returncode
    warnings = [x for x in p.stderr.splitlines() if x.startswith("WARNING")]
    return results, err, warnings, plans.strip()


def show(rows, n=3):
    return "; ".join(rows[:n]) + (" ..." if len(rows) > n else "")


def compare(block, res):
    """(ok, summary)"""
    nstmt = len(block["statements"])
    problems = []
    rowcounts = []
    for mode in ("on", "off", "truth"):
        if res[mode][1]:
            problems.append("pushdown %s fails: %s" % (mode, res[mode][1]) if mode != "truth"
                            else "truth fails: %s" % res[mode][1])
    if not problems:
        for i in range(nstmt):
            want = res["truth"][0][i] if i < len(res["truth"][0]) else None
            rowcounts.append(len(want or []))
            for mode in ("on", "off"):
                got = res[mode][0][i] if i < len(res[mode][0]) else None
                if got != want:
                    missing = sorted(set(want or []) - set(got or []))
                    extra = sorted(set(got or []) - set(want or []))
                    stmt = " ".join(block["statements"][i].split())
                    problems.append("%s: pushdown %s gives %d rows, truth %d%s%s"
                                    % ("statement %d" % (i + 1) if nstmt == 1 or len(stmt) > 60
                                       else stmt, mode, len(got or []), len(want or []),
                                       "; missing: " + show(missing) if missing else "",
                                       "; extra: " + show(extra) if extra else ""))
    warn = sorted(set(w for m in ("on", "off") for w in res[m][2]))
    if problems:
        return False, " | ".join(problems)
    rows = "/".join(str(n) for n in rowcounts)
    plans = ""
    if block["kind"] != "q":
        plans = " [plans: pushdown on %s; off %s]" % (res["on"][3], res["off"][3])
    return True, "(%s rows)%s%s" % (rows, plans, " [" + "; ".join(warn) + "]" if warn else "")


def main():
    blocks = parse(sys.argv[1])
    jobs = {}
    with concurrent.futures.ThreadPoolExecutor(max_workers=3) as ex:
        for i, b in enumerate(blocks):
            for mode in MODES:
                jobs[(i, mode)] = ex.submit(run, b, mode)
        passed = failed = 0
        empty = 0
        for i, b in enumerate(blocks):
            res = {mode: jobs[(i, mode)].result() for mode in MODES}
            ok, msg = compare(b, res)
            label = "%d - %s%s" % (i + 1, "[%s] " % b["kind"] if b["kind"] != "q" else "", b["title"])
            if ok:
                passed += 1
                if msg.startswith("(0 rows)"):
                    empty += 1
                print("ok %s %s" % (label, msg))
            else:
                failed += 1
                print("not ok %s: %s" % (label, msg))
            sys.stdout.flush()
    print("# %d queries, %d of those that passed returned no rows" % (len(blocks), empty))
    print("%d passed, %d failed" % (passed, failed))
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
