#!/usr/bin/python3
"""Control client for the epic_fdw test sandbox (stdlib only).

Usage: EPIC_SANDBOX_DIR=DIR /usr/bin/python3 ctl.py CMD [ARGS]

  reset                 clear the sandbox's request log
  revoke                revoke every access token issued so far
  token-lifetime N      lifetime (seconds) of tokens issued from now on
  latency N             sleep N ms before answering every FHIR request (0 = off)
  max-url-length N      answer 414 to FHIR requests whose absolute URL is longer than N
                        bytes (default 2048)
  longest-url           the length in bytes of the longest absolute URL among the logged
                        FHIR requests (0 when none)
  expire-pages          forget every dataset paging session (next links then fail, 4113)
  log                   one line per logged request: <kind> <METHOD> <path> <status>
                        (query string URL-decoded, parameters in the order received;
                        for /dataset/VERSION/ requests the path is relative to that base,
                        and the random _getpages token is shown as _getpages=*)
  log-json              the raw log as JSON
  secrets               every access token issued and client assertion received, one a line
                        (for the test suite's check that none of them leaked)
  count KIND [RESOURCE] number of log entries of KIND (token, fhir, discovery, metadata),
                        optionally only those whose path is RESOURCE followed by ? or /
  fault JSON            queue a fault for upcoming requests, e.g.
                        '{"match": "Patient?", "kind": "status", "status": 503,
                          "headers": {"Retry-After": "1"}}'
                        (fields: see parse_fault in sandbox.py); prints nothing
  faults                the queued faults (with counters) as JSON
  faults-clear          drop every queued fault and pending revoke-after, and release
                        connections that are hanging or dripping
  revoke-after N        revoke the current tokens once N more FHIR requests succeeded
  dataset NAME VERSION FILE [epic|lenient]
                        (re)load the named ad-hoc dataset NAME (served under
                        /dataset/NAME/, FHIR VERSION STU3 or R4) from FILE (- for
                        standard input): a JSON array of resources or a Bundle; with
                        `epic`, Epic's required search parameters are enforced;
                        with `lenient`, unknown search parameters are ignored (an
                        outcome issue "not-supported", left out of the self link);
                        prints nothing
  dataset-delete NAME   drop the named dataset NAME
  bulk JSON             Bulk Data export switches for jobs kicked off from now on (see
                        bulk.py: file_size, polls, gzip, never_complete, ...); {} resets
  bulk-update NAME JSON change the named dataset NAME: {"upsert": [...], "delete": [...]}
  datasets              every dataset served: NAME VERSION RULES TYPE=N ... one a line

In the log, requests answered by a fault get " fault=<kind>" appended (their status is
the status sent, 0 when none was); `reset` clears the log but not the queued faults.

The port is read from DIR/port and TLS is verified against DIR/ca.crt for
https://localhost:PORT. Output is deterministic so that it can be diffed in pg_regress
expected files.
"""

import http.client
import json
import os
import ssl
import sys
import urllib.parse


def die(msg, code=2):
    sys.stderr.write("ctl.py: %s\n" % msg)
    sys.exit(code)


def request(method, path, body=None):
    state_dir = os.environ.get("EPIC_SANDBOX_DIR")
    if not state_dir:
        die("EPIC_SANDBOX_DIR is not set")
    try:
        with open(os.path.join(state_dir, "port")) as f:
            port = int(f.read().strip())
    except (OSError, ValueError) as e:
        die("sandbox is not running (cannot read %s/port: %s)" % (state_dir, e))
    try:
        ctx = ssl.create_default_context(cafile=os.path.join(state_dir, "ca.crt"))
    except (OSError, ssl.SSLError) as e:
        die("cannot load %s/ca.crt: %s" % (state_dir, e))
    conn = http.client.HTTPSConnection("localhost", port, context=ctx, timeout=10)
    try:
        headers = {"Content-Type": "application/json"} if body is not None else {}
        if body is None and method == "POST":
            body = b""
        conn.request(method, path, body=body, headers=headers)
        resp = conn.getresponse()
        body = resp.read()
    except (OSError, http.client.HTTPException) as e:
        die("sandbox unreachable at https://localhost:%d: %s" % (port, e))
    finally:
        conn.close()
    if resp.status != 200:
        die("sandbox answered %d to %s %s: %s" % (resp.status, method, path,
                                                 body.decode("utf-8", "replace")))
    return json.loads(body.decode("utf-8"))


def decode_path(path):
    resource, sep, query = path.partition("?")
    resource = urllib.parse.unquote(resource)
    if not sep:
        return resource
    pairs = urllib.parse.parse_qsl(query, keep_blank_values=True)
    return resource + "?" + "&".join("%s=%s" % (k, v) for k, v in pairs)


def log_path(e):
    p = decode_path(e["path"])
    if e.get("base") == "dataset" and "_getpages=" in p:
        res, _, query = p.partition("?")
        p = res + "?" + "&".join("_getpages=*" if kv.startswith("_getpages=") else kv
                                 for kv in query.split("&"))
    if e.get("kind") == "bulk":
        parts = p.split("/")
        if len(parts) >= 2:
            parts[1] = "*"      # the random job id
        p = "/".join(parts)
    return p


def bulk_suffix(e):
    """Bulk Data requests (bulk.py): the job/file part is random, so only its kind and
    file name are shown, with the origin asked and whether a bearer token came along."""
    if e["kind"] != "bulk":
        return ""
    return " host=%s token=%s%s" % ("other" if e.get("host", "").startswith("127.") else "fhir",
                                    "yes" if e.get("token") else "no",
                                    " gzip" if e.get("gzip") else "")


def main(argv):
    if not argv:
        die(__doc__.strip(), 1)
    cmd, args = argv[0], argv[1:]
    if cmd == "reset" and not args:
        request("POST", "/_sandbox/reset")
    elif cmd == "revoke" and not args:
        request("POST", "/_sandbox/revoke")
    elif cmd == "token-lifetime" and len(args) == 1 and args[0].isdigit():
        request("POST", "/_sandbox/token-lifetime?seconds=%d" % int(args[0]))
    elif cmd == "latency" and len(args) == 1 and args[0].isdigit():
        request("POST", "/_sandbox/latency?ms=%d" % int(args[0]))
    elif cmd == "max-url-length" and len(args) == 1 and args[0].isdigit():
        request("POST", "/_sandbox/max-url-length?bytes=%d" % int(args[0]))
    elif cmd == "longest-url" and not args:
        print(max([e.get("url_length", 0) for e in request("GET", "/_sandbox/log")
                   if e["kind"] == "fhir"] or [0]))
    elif cmd == "expire-pages" and not args:
        request("POST", "/_sandbox/expire-pages")
    elif cmd == "log" and not args:
        for e in request("GET", "/_sandbox/log"):
            print("%s %s %s %s%s%s" % (e["kind"], e["method"], log_path(e), e["status"],
                                       " fault=%s" % e["fault"] if e.get("fault") else "",
                                       bulk_suffix(e)))
    elif cmd == "fault" and len(args) == 1:
        try:
            json.loads(args[0])
        except ValueError as e:
            die("fault: not JSON: %s" % e, 1)
        request("POST", "/_sandbox/fault", args[0].encode("utf-8"))
    elif cmd == "bulk" and len(args) == 1:
        request("POST", "/_sandbox/bulk", args[0].encode("utf-8"))
    elif cmd == "bulk-update" and len(args) == 2:
        request("POST", "/_sandbox/bulk-update?" + urllib.parse.urlencode([("dataset", args[0])]),
                args[1].encode("utf-8"))
    elif cmd == "faults" and not args:
        print(json.dumps(request("GET", "/_sandbox/faults"), indent=1))
    elif cmd == "faults-clear" and not args:
        request("POST", "/_sandbox/faults-clear")
    elif cmd == "revoke-after" and len(args) == 1 and args[0].isdigit():
        request("POST", "/_sandbox/revoke-after?n=%d" % int(args[0]))
    elif cmd == "dataset" and len(args) in (3, 4) and args[3:] in ([], ["epic"], ["lenient"]):
        name, version, path = args[:3]
        try:
            if path == "-":
                body = sys.stdin.buffer.read()
            else:
                with open(path, "rb") as f:
                    body = f.read()
        except OSError as e:
            die("dataset: cannot read %s: %s" % (path, e), 1)
        query = urllib.parse.urlencode([("name", name), ("version", version)]
                                       + ([("rules", args[3])] if args[3:] else []))
        request("POST", "/_sandbox/dataset?" + query, body)
    elif cmd == "dataset-delete" and len(args) == 1:
        request("DELETE", "/_sandbox/dataset?" + urllib.parse.urlencode([("name", args[0])]))
    elif cmd == "datasets" and not args:
        for name, d in sorted(request("GET", "/_sandbox/datasets").items()):
            print(" ".join([name, d["version"], d["rules"]]
                           + ["%s=%d" % kv for kv in sorted(d["counts"].items())]))
    elif cmd == "secrets" and not args:
        got = request("GET", "/_sandbox/secrets")
        for s in got["tokens"] + got["assertions"]:
            print(s)
    elif cmd == "log-json" and not args:
        print(json.dumps(request("GET", "/_sandbox/log"), indent=1))
    elif cmd == "count" and len(args) in (1, 2):
        kind = args[0]
        n = 0
        for e in request("GET", "/_sandbox/log"):
            if e["kind"] != kind:
                continue
            if len(args) == 2:
                p, r = e["path"], args[1]
                if not (p == r or p.startswith(r + "?") or p.startswith(r + "/")):
                    continue
            n += 1
        print(n)
    else:
        die("bad command: %s\n%s" % (" ".join(argv), __doc__.strip()), 1)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
