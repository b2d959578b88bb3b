#!/usr/bin/python3
"""Run a SQL on FHIR v2 conformance test directory through epic_fdw.

Usage: /usr/bin/python3 test/conformance/run.py TESTS_DIR

For each test file, its resources are loaded into the sandbox as a named dataset
(POST /_sandbox/dataset, served under /dataset/NAME/ with FHIR search semantics), and
an epic_fdw server is created for it. For each test, the foreign table is created from
the view with epic_fdw_view_ddl(), read with SELECT, and the rows (as to_jsonb of each
row) are compared with "expect" ignoring order (numbers by value); a test with
"expectError" passes when creating or reading the table fails. Every test runs in its
own psql session inside a transaction that is rolled back.

Needs the environment scripts/lib.sh sets up: PGHOST/PGPORT/PGUSER for a cluster with
epic_fdw installed, and the sandbox (EPIC_CTL, EPIC_DATASET_URL_STU3, EPIC_CA_FILE,
EPIC_RSA_KEY). Prints "ok"/"not ok" per test, the skipped ones with their reason, and
"N passed, N failed" last; exits 1 when any test failed.
"""

import glob
import json
import os
import re
import ssl
import subprocess
import sys
import urllib.request

PSQL = os.environ.get("PSQL", "/usr/lib/postgresql/15/bin/psql")


def sandbox_base():
    url = os.environ["EPIC_DATASET_URL_STU3"]      # https://localhost:PORT/dataset/STU3/
    return url[: url.index("/dataset/")]


def load_dataset(name, version, resources):
    ctx = ssl.create_default_context(cafile=os.environ["EPIC_CA_FILE"])
    req = urllib.request.Request(
        "%s/_sandbox/dataset?name=%s&version=%s" % (sandbox_base(), name, version),
        data=json.dumps(resources).encode(), method="POST",
        headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, context=ctx, timeout=30) as r:
        json.load(r)


def psql(script, variables):
    args = [PSQL, "-X", "-q", "-At", "-v", "ON_ERROR_STOP=1", "-d", "postgres"]
    for k, v in variables.items():
        args += ["-v", "%s=%s" % (k, v)]
    p = subprocess.run(args, input=script, capture_output=True, text=True, timeout=120)
    return p.returncode, p.stdout, p.stderr


DATETIME = re.compile(r"^(\d{4})-(\d\d)-(\d\d)T(\d\d):(\d\d):(\d\d)(\.\d+)?(Z|[+-]\d\d:\d\d)$")
TIME = re.compile(r"^(\d\d):(\d\d):(\d\d)(\.\d+)?$")


def temporal(s):
    """A dateTime with a time zone as an aware datetime, a time as seconds, else None.

    Columns typed dateTime/instant are timestamptz and time columns time: their JSON
    is PostgreSQL's text of the value (in the session's time zone, without trailing
    zero milliseconds), so they compare with "expect" by value, as numbers do."""
    import datetime
    m = DATETIME.match(s)
    if m:
        tz = m.group(8).replace("Z", "+00:00")
        return datetime.datetime.fromisoformat(
            "%s-%s-%sT%s:%s:%s%s%s" % (m.group(1), m.group(2), m.group(3), m.group(4),
                                       m.group(5), m.group(6), (m.group(7) or "")[:7], tz))
    m = TIME.match(s)
    if m:
        return ("time", int(m.group(1)) * 3600 + int(m.group(2)) * 60 + int(m.group(3)),
                float(m.group(4) or 0))
    return None


def same(a, b):
    """JSON equality; numbers, dateTimes with a time zone and times by value."""
    if isinstance(a, bool) or isinstance(b, bool):
        return a is b
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return float(a) == float(b)
    if isinstance(a, str) and isinstance(b, str) and a != b:
        ta, tb = temporal(a), temporal(b)
        if ta is not None and tb is not None and type(ta) is type(tb):
            return ta == tb
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    return a == b


def rows_match(got, want):
    used = [False] * len(got)
    if len(got) != len(want):
        return False
    for w in want:
        for i, g in enumerate(got):
            if not used[i] and same(g, w):
                used[i] = True
                break
        else:
            return False
    return True


def fhir_version(versions):
    versions = versions or []
    if any(v.startswith("4.") for v in versions):
        return "R4"
    if any(v.startswith("3.") for v in versions):
        return "STU3"
    return "R4"


SERVER_SQL = """
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS epic_fdw;
DROP SERVER IF EXISTS :"server" CASCADE;
CREATE SERVER :"server" FOREIGN DATA WRAPPER epic_fdw
  OPTIONS (fhir_url :'url', fhir_version :'version', ca_file :'ca_file');
CREATE USER MAPPING FOR CURRENT_USER SERVER :"server"
  OPTIONS (client_id 'epic-fdw-rs384', private_key_file :'rsa_key', key_id 'rs1');
"""

TEST_SQL = """
\\set VERBOSITY verbose
BEGIN;
SELECT epic_fdw_view_ddl(:'view'::jsonb, 'conformance_view', :'server') \\gexec
SELECT coalesce(json_agg(to_jsonb(t)), '[]') FROM conformance_view t;
ROLLBACK;
"""


# SQLSTATEs of a view epic_fdw refuses: invalid ViewDefinition (22023 from
# epic_fdw_view_ddl, HV024 as a table option), or one that fails on the data
# (HV000 evaluation, 21000 several values, HV004 wrong JSON type, HV007 column)
VIEW_ERROR = re.compile(r"^ERROR:\s+(22023|HV024|HV000|21000|HV004|HV007):", re.M)


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    files = sorted(glob.glob(os.path.join(sys.argv[1], "*.json")))
    if not files:
        sys.exit("no test files in %s" % sys.argv[1])
    passed = failed = 0
    skipped = []
    for n, path in enumerate(files):
        base = os.path.basename(path)
        with open(path, encoding="utf-8") as f:
            suite = json.load(f)
        name = "conf-%d-%s" % (n, re.sub(r"[^A-Za-z0-9_-]", "_", base[:-5]))
        version = fhir_version(suite.get("fhirVersion"))
        load_dataset(name, version, suite.get("resources", []))
        server = "conf_%d" % n
        rc, _, err = psql(SERVER_SQL, {
            "server": server, "version": version,
            "url": "%s/dataset/%s/" % (sandbox_base(), name),
            "ca_file": os.environ["EPIC_CA_FILE"], "rsa_key": os.environ["EPIC_RSA_KEY"]})
        if rc != 0:
            print("not ok - %s: creating the server failed: %s" % (base, err.strip()))
            failed += len(suite.get("tests", []))
            continue
        for t in suite.get("tests", []):
            title = t.get("title", "?")
            expect_error = bool(t.get("expectError"))
            if not expect_error and "expect" not in t:
                skipped.append("%s: %s (no \"expect\" and no \"expectError\")" % (base, title))
                continue
            rc, out, err = psql(TEST_SQL, {"view": json.dumps(t.get("view")), "server": server})
            why = ""
            if expect_error:
                # the error must be epic_fdw's verdict on the view (its SQLSTATE),
                # not the plumbing failing (a connection, HTTP, a crash)
                m = VIEW_ERROR.search(err)
                msg = err.strip().splitlines()[0] if err.strip() else ""
                ok = rc != 0 and m is not None
                why = msg if ok else "expected an error from the view, got %s" % (msg or out.strip())
            elif rc != 0:
                ok, why = False, err.strip().splitlines()[0] if err.strip() else "psql failed"
            else:
                got = json.loads(out.strip().splitlines()[-1])
                ok = rows_match(got, t["expect"])
                if not ok:
                    why = "got %s want %s" % (json.dumps(got), json.dumps(t["expect"]))
            if ok:
                passed += 1
            else:
                failed += 1
            print("%s - %s: %s%s" % ("ok" if ok else "not ok", base, title,
                                     (" # " + why) if why else ""))
        psql('SET client_min_messages = warning; DROP SERVER IF EXISTS :"server" CASCADE;',
             {"server": server})
    for s in skipped:
        print("skip - %s" % s)
    print("%d passed, %d failed" % (passed, failed))
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
