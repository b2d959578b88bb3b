#!/usr/bin/env python3
"""scripts/docs_test.py: run every ```sql block of README.md and docs/*.md
against the sandbox (called by scripts/docs_test.sh, which provides the
environment of scripts/lib.sh: PGHOST/PGPORT/PGUSER, EPIC_* variables).

Each file's blocks run in order, each block in its own psql session, in a
fresh database.  Unless the file says <!-- docs-test: no-prelude (reason) -->,
the database first gets the prelude below: the extension, the servers "epic"
and "dataset" (both over the sandbox's generated STU3 dataset, or its R4 one
when the file says <!-- docs-test: prelude-r4 (reason) -->) with a user
mapping each, and every built-in table imported into public from "epic".

Substitutions (as scripts/readme_walkthrough.sh makes): Epic's public sandbox
FHIR bases become the sandbox's (plus its ca_file), /etc/epic_fdw/key.pem the
test key, /etc/epic_fdw/new.pem and new.pub a second test key pair, and
/etc/epic_fdw/views the example ViewDefinition directory.

A block whose output ends with a JWK Set (epic_fdw_public_jwks) registers
that JWK Set with the sandbox for the last client_id and jku the file's SQL
has set so far, as a user would host it and register it with Epic.

Tags, on the last non-blank line before the fence:
  <!-- docs-test: skip (reason) -->            not run; the reason is printed
  <!-- docs-test: fails SQLSTATE (reason) -->  must fail with that SQLSTATE
DOCS_TEST_VERBOSE=1 prints each block's output too (to compare with the text the
docs show).  Prints one ok/not ok/skip line per block, the counts, and "N passed, N failed".
"""
import json
import os
import re
import subprocess
import sys
import tempfile

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ENV = os.environ
MRN = "urn:oid:1.2.840.114350.1.13.0.1.7.5.737384.14"

PRELUDE = """
CREATE EXTENSION epic_fdw;
CREATE SERVER epic FOREIGN DATA WRAPPER epic_fdw
  OPTIONS (fhir_url '{url}', fhir_version '{ver}', ca_file '{ca}', mrn_system '{mrn}');
CREATE USER MAPPING FOR CURRENT_USER SERVER epic
  OPTIONS (client_id 'epic-fdw-rs384', private_key_file '{key}', key_id 'rs1');
CREATE SERVER dataset FOREIGN DATA WRAPPER epic_fdw
  OPTIONS (fhir_url '{url}', fhir_version '{ver}', ca_file '{ca}', mrn_system '{mrn}');
CREATE USER MAPPING FOR CURRENT_USER SERVER dataset
  OPTIONS (client_id 'epic-fdw-rs384', private_key_file '{key}', key_id 'rs1');
IMPORT FOREIGN SCHEMA fhir FROM SERVER epic INTO public;
"""

TAG = re.compile(r"^<!--\s*docs-test:\s*(skip|fails\s+([0-9A-Z]{5}))\s*\((.+)\)\s*-->\s*$")
NO_PRELUDE = re.compile(r"<!--\s*docs-test:\s*no-prelude\s*\((.+?)\)\s*-->")
PRELUDE_R4 = re.compile(r"<!--\s*docs-test:\s*prelude-r4\s*\((.+?)\)\s*-->")


def substitute(sql):
    keys = os.path.join(os.path.dirname(ENV["EPIC_RSA_KEY"]))
    ca = ENV["EPIC_CA_FILE"]
    for ver in ("STU3", "R4"):
        sql = sql.replace("'https://fhir.epic.com/interconnect-fhir-oauth/api/FHIR/%s/'" % ver,
                          "'%s', ca_file '%s'" % (ENV["EPIC_FHIR_URL_" + ver], ca))
    sql = sql.replace("'/etc/epic_fdw/key.pem'", "'%s'" % ENV["EPIC_RSA_KEY"])
    sql = sql.replace("'/etc/epic_fdw/new.pem'", "'%s'" % os.path.join(keys, "wrong.pem"))
    sql = sql.replace("'/etc/epic_fdw/new.pub'", "'%s'" % os.path.join(keys, "wrong.pub"))
    sql = sql.replace("'/etc/epic_fdw/views'", "'%s'" % ENV["EPIC_VIEW_DIR"])
    return sql


def blocks(path):
    """(line, sql, tag) for each ```sql block; tag is None, ('skip', None, why)
    or ('fails', SQLSTATE, why)."""
    lines = open(path, encoding="utf-8").read().split("\n")
    out = []
    i = 0
    while i < len(lines):
        if lines[i].strip() == "```sql":
            start = i + 1
            j = start
            while j < len(lines) and lines[j].strip() != "```":
                j += 1
            k = i - 1
            while k >= 0 and lines[k].strip() == "":
                k -= 1
            tag = None
            m = TAG.match(lines[k].strip()) if k >= 0 else None
            if m:
                tag = ("skip", None, m.group(3)) if m.group(1) == "skip" else ("fails", m.group(2), m.group(3))
            out.append((start, "\n".join(lines[start:j]) + "\n", tag))
            i = j + 1
        else:
            i += 1
    return out


def psql(db, sql, tmp):
    f = os.path.join(tmp, "block.sql")
    with open(f, "w") as fh:
        fh.write("\\set VERBOSITY verbose\n" + sql)
    r = subprocess.run(["psql", "-X", "-q", "-At", "-v", "ON_ERROR_STOP=1", "-d", db, "-f", f],
                       capture_output=True, text=True, timeout=300)
    return r.returncode, r.stdout, r.stderr


def admin(sql):
    return subprocess.run(["psql", "-X", "-q", "-At", "-d", "postgres", "-c", sql],
                          capture_output=True, text=True, check=True).stdout


AUTO_CONF = "SELECT name FROM pg_file_settings WHERE sourcefile LIKE '%/postgresql.auto.conf'"


def register(client_id, jku, jwks_text, n):
    """Register the printed JWK Set with the sandbox for client_id and jku."""
    d = ENV["EPIC_SANDBOX_DIR"]
    jf = os.path.join(d, "docs-jwks-%d.json" % n)
    with open(jf, "w") as fh:
        fh.write(jwks_text)
    p = os.path.join(d, "clients.json")
    c = json.load(open(p))
    c["clients"] = [x for x in c["clients"] if x["client_id"] != client_id] + [
        {"client_id": client_id, "jku": jku, "jwks_file": jf}]
    json.dump(c, open(p + ".tmp", "w"))
    os.replace(p + ".tmp", p)


def main():
    files = [os.path.join(REPO, "README.md")] + sorted(
        os.path.join(REPO, "docs", f) for f in os.listdir(os.path.join(REPO, "docs")) if f.endswith(".md"))
    passed = failed = ran = skipped = 0
    nreg = 0
    skips = []
    tmp = tempfile.mkdtemp()
    auto_before = set(admin(AUTO_CONF).split())
    for path in files:
        rel = os.path.relpath(path, REPO)
        text = open(path, encoding="utf-8").read()
        bl = blocks(path)
        if not bl:
            continue
        db = "docs_test"
        admin("DROP DATABASE IF EXISTS %s" % db)
        admin("CREATE DATABASE %s" % db)
        if not NO_PRELUDE.search(text):
            ver = "R4" if PRELUDE_R4.search(text) else "STU3"
            rc, out, err = psql(db, PRELUDE.format(url=ENV["EPIC_DATASET_URL_" + ver], ver=ver, ca=ENV["EPIC_CA_FILE"],
                                                   key=ENV["EPIC_RSA_KEY"], mrn=MRN), tmp)
            if rc != 0:
                print("not ok - %s: the prelude failed\n%s" % (rel, err))
                failed += 1
                continue
        sql_so_far = ""
        for line, sql, tag in bl:
            name = "%s:%d" % (rel, line)
            if tag and tag[0] == "skip":
                skipped += 1
                skips.append("%s (%s)" % (name, tag[2]))
                print("skip - %s (%s)" % (name, tag[2]))
                continue
            ran += 1
            sql = substitute(sql)
            sql_so_far += sql
            rc, out, err = psql(db, sql, tmp)
            got = re.findall(r"ERROR:  ([0-9A-Z]{5}):", err)
            if tag and tag[0] == "fails":
                ok = rc != 0 and got[:1] == [tag[1]]
                what = "fails with %s as documented" % tag[1]
            else:
                ok = rc == 0
                what = "runs"
            if ok:
                passed += 1
                print("ok - %s %s" % (name, what))
                if ENV.get("DOCS_TEST_VERBOSE"):
                    print(out + err)
            else:
                failed += 1
                print("not ok - %s %s\n%s%s" % (name, what, out[-2000:], err[-3000:]))
            # a printed JWK Set: host (register) it for the file's client
            last = out.strip().split("\n")[-1] if out.strip() else ""
            server = re.findall(r"epic_fdw_public_jwks\('([^']+)'", sql)
            if ok and last.startswith('{"keys"') and server:
                # the client_id and jku of that server's user mapping
                um = re.findall(r"CREATE USER MAPPING FOR \S+ SERVER %s OPTIONS \((.*?)\);" % re.escape(server[-1]),
                                sql_so_far, re.S)
                cid = re.findall(r"client_id\s+'([^']*)'", um[-1]) if um else []
                jku = re.findall(r"jku\s+'([^']*)'", um[-1]) if um else []
                if cid and jku:
                    nreg += 1
                    register(cid[-1], jku[-1], last, nreg)
        admin("DROP DATABASE IF EXISTS %s" % db)
    # a block may have changed the cluster's settings (session_preload_libraries)
    for name in set(admin(AUTO_CONF).split()) - auto_before:
        admin("ALTER SYSTEM RESET %s" % name)
    admin("SELECT pg_reload_conf()")
    print("docs: %d blocks ran, %d skipped" % (ran, skipped))
    for s in skips:
        print("  skipped: %s" % s)
    print("%d passed, %d failed" % (passed, failed))
    return 0 if failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
