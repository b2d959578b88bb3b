"""FHIR Bulk Data export (Group-level $export) for the sandbox's datasets, with Epic's behaviour.

  GET  {dataset base}/Group/{id}/$export[?_type=A,B][&_since=INSTANT]
        Prefer: respond-async required, Accept application/fhir+json; answers 202 with
        Content-Location: https://HOST/_bulk/job/{job}  (400/404 OperationOutcomes otherwise)
  GET  /_bulk/job/{job}            202 + Retry-After + X-Progress while running ("polls" times),
                                   then 200 with the manifest (transactionTime, request,
                                   requiresAccessToken, output[], error[], deleted[])
  DELETE /_bulk/job/{job}          202: cancels a running job or deletes a finished one's files;
                                   the job and its files answer 404 afterwards
  GET  /_bulk/file/{job}/{name}    the NDJSON file (gzip-encoded when the switch is on and the
                                   client accepts gzip); bearer token required when the
                                   manifest says requiresAccessToken
  POST /_sandbox/bulk              JSON object: the switches for jobs kicked off from now on
                                   (missing keys take the defaults of DEFAULTS; {} resets)
  POST /_sandbox/bulk-update?dataset=NAME
                                   JSON {"upsert": [resources], "delete": [{"type", "id"}]}:
                                   change a named dataset the way a live server does:
                                   upserted resources get meta.lastUpdated = now, deleted ones
                                   are remembered (with the time and the Groups their
                                   patient was in) for `deleted` of later exports of
                                   those Groups with _since

Which resources a Group exports: the Group must be a resource of the dataset (a dataset's
own Group resources, e.g. the cohorts work's or a test's); its members are the Patients
named by member[].entity.reference.  For _type Patient the members themselves are
exported; for any other type, the resources whose subject or patient reference names a
member.  A dataset without that Group answers 404.  _type defaults to every type of the
dataset but Group.  _since keeps resources whose meta.lastUpdated is after it (a resource
without meta.lastUpdated is always exported).

Switches (DEFAULTS): file_size (resources per output file), polls (202 answers before the
manifest), retry_after (seconds, "" for none), requires_token, error_file (an error file of
OperationOutcomes in the manifest), gzip, never_complete (always 202), fail_job (the job
ends in a 500 OperationOutcome), poll_429 (the n-th status poll, 1-based, answers 429 with
Retry-After: 1), file_500 (the first request of the first output file answers 500, later
ones succeed), expired (every output file answers 404, as an expired file does),
other_origin (file URLs on https://127.0.0.1:PORT instead of localhost: another origin);
repeat and pad make big exports for memory tests and benchmarks: each exported resource is
written repeat times (ids ID-0, ID-1, ...: with repeat 1 the id is kept) with a narrative
text.div of pad bytes added (0: none).

Every request is logged with kind "bulk" and "token": whether it carried a bearer token, so
that tests can assert that none went to another origin.
"""

import datetime
import gzip
import json
import secrets
import threading
import urllib.parse

FHIR_JSON = "application/fhir+json; charset=utf-8"
NDJSON = "application/fhir+ndjson"

DEFAULTS = {"file_size": 1000, "polls": 1, "retry_after": "1", "requires_token": True,
            "error_file": False, "gzip": False, "never_complete": False, "fail_job": False,
            "poll_429": 0, "file_500": False, "expired": False, "other_origin": False,
            "repeat": 1, "pad": 0}

_lock = threading.Lock()
_config = dict(DEFAULTS)
_jobs = {}        # job id -> dict
_deleted = {}     # dataset name -> [(rtype, rid, time, ids of the Groups its patient was in)]


def _outcome(code, diagnostics, severity="error"):
    return json.dumps({"resourceType": "OperationOutcome", "issue": [
        {"severity": severity, "code": code, "diagnostics": diagnostics}]}).encode("utf-8")


def _now():
    return datetime.datetime.now(datetime.timezone.utc)


def _instant(t):
    return t.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _parse_instant(s):
    try:
        t = datetime.datetime.fromisoformat(s.replace("Z", "+00:00"))
    except (ValueError, AttributeError):
        return None
    if t.tzinfo is None:
        return None
    return t


def _patient_of(res):
    """The Patient id a resource belongs to (itself for a Patient), or None."""
    if res.get("resourceType") == "Patient":
        return res.get("id")
    for field in ("subject", "patient"):
        ref = res.get(field)
        if isinstance(ref, dict) and isinstance(ref.get("reference"), str):
            r = ref["reference"].split("/_history")[0]
            parts = r.rstrip("/").split("/")
            if len(parts) >= 2 and parts[-2] == "Patient":
                return parts[-1]
    return None


def _members(group):
    """The Patient ids a Group's member[].entity references name."""
    out = set()
    for m in group.get("member") or []:
        ref = ((m or {}).get("entity") or {}).get("reference") or ""
        if ref.startswith("Patient/"):
            out.add(ref[len("Patient/"):])
    return out


# -- control ----------------------------------------------------------------------------

def control(handler, method, name, params):
    """/_sandbox/bulk and /_sandbox/bulk-update; returns True when it answered."""
    global _config
    if method == "POST" and name == "bulk":
        try:
            doc = json.loads(handler.read_body_cached.decode("utf-8") or "{}")
            if not isinstance(doc, dict):
                raise ValueError("not an object")
            bad = [k for k in doc if k not in DEFAULTS]
            if bad:
                raise ValueError("unknown switch %s (known: %s)" % (bad[0], ", ".join(DEFAULTS)))
        except (ValueError, UnicodeDecodeError) as e:
            handler.send_json(400, {"error": "bad bulk switches: %s" % e})
            return True
        with _lock:
            _config = dict(DEFAULTS, **doc)
            out = dict(_config)
        handler.send_json(200, {"ok": True, "bulk": out})
        return True
    if method == "POST" and name == "bulk-update":
        handler.send_json(*_update(handler.server.state, params.get("dataset", ""),
                                   handler.read_body_cached))
        return True
    return False


def _update(st, name, body):
    import dataset as dataset_mod
    ds = st.get_dataset(name)
    if ds is None:
        return 404, {"error": "no dataset named %s" % name}
    try:
        doc = json.loads(body.decode("utf-8"))
        upserts = doc.get("upsert", [])
        deletes = doc.get("delete", [])
    except (ValueError, UnicodeDecodeError, AttributeError) as e:
        return 400, {"error": "bad update: %s" % e}
    now = _now()
    items = {}
    for rtype, store in ds.stores.items():
        for rid, text in zip(store.ids, store.texts):
            items[(rtype, rid)] = json.loads(text)
    groups_of = {}    # patient id -> ids of the Groups it was in before the update
    for (rtype, rid), res in items.items():
        if rtype == "Group":
            for pid in _members(res):
                groups_of.setdefault(pid, set()).add(rid)
    for res in upserts:
        res = dict(res)
        meta = dict(res.get("meta") or {})
        meta.setdefault("lastUpdated", _instant(now))
        res["meta"] = meta
        items[(res.get("resourceType"), res.get("id"))] = res
    gone = []
    for d in deletes:
        old = items.pop((d.get("type"), d.get("id")), None)
        if old is not None:
            gone.append((d["type"], d["id"], now, groups_of.get(_patient_of(old), set())))
    try:
        new = dataset_mod.Dataset(ds.version, resources=list(items.values()), name=ds.name,
                                  any_type=ds.any_type, epic_rules=ds.epic_rules)
    except dataset_mod.LoadError as e:
        return 400, {"error": "bad update: %s" % e}
    st.set_dataset(new)
    with _lock:
        _deleted.setdefault(name, []).extend(gone)
    return 200, {"ok": True, "upserted": len(upserts), "deleted": len(gone)}


def forget_dataset(name):
    with _lock:
        _deleted.pop(name, None)


def _copies(res, text, repeat, pad):
    """The lines a resource becomes in an export (see the repeat and pad switches)."""
    if repeat <= 1 and pad <= 0:
        yield text
        return
    res = dict(res)
    if pad > 0:
        res["text"] = {"status": "generated", "div": "<div>" + "x" * pad + "</div>"}
    rid = res.get("id")
    for k in range(repeat):
        if repeat > 1:
            res["id"] = "%s-%d" % (rid, k)
        yield json.dumps(res, separators=(",", ":")).encode("utf-8")


_cache = []    # [(key, dataset, content)]: the last exports made (big ones are slow to make)
CACHE_SIZE = 2


def _content(ds, group_id, members, types, since, cfg):
    """The files of an export: (files {name: bytes}, [(type, name, count)], error file
    names, deleted file names); the same request on the same dataset is made once."""
    key = (group_id, tuple(types), since.isoformat() if since else None,
           json.dumps(cfg, sort_keys=True))
    with _lock:
        for k, kds, c in _cache:
            if kds is ds and k == key:    # (a changed dataset is a new object)
                return c
        gone = [g for g in _deleted.get(ds.name, [])
                if since is not None and g[2] > since and g[0] in types and group_id in g[3]]
    files = {}
    outs = []
    for t in types:
        store = ds.stores.get(t)
        chunk = []
        n = 0

        def flush():
            nonlocal chunk, n
            if not chunk:
                return
            n += 1
            fname = "%s-%d.ndjson" % (t, n)
            files[fname] = b"".join(chunk)
            outs.append((t, fname, len(chunk)))
            chunk = []
        for text in (store.texts if store else ()):
            res = json.loads(text)
            if _patient_of(res) not in members:
                continue
            if since is not None:
                lu = _parse_instant(((res.get("meta") or {}).get("lastUpdated")) or "")
                if lu is not None and lu <= since:
                    continue
            for line in _copies(res, text, cfg["repeat"], cfg["pad"]):
                chunk.append(line + b"\n")
                if len(chunk) >= cfg["file_size"]:
                    flush()
        flush()
    error_names = []
    if cfg["error_file"]:
        lines = [_outcome("processing", "sandbox: resource could not be exported (%d)" % (i % 2))
                 for i in range(3)]
        files["errors-1.ndjson"] = b"\n".join(lines) + b"\n"
        error_names.append("errors-1.ndjson")
    deleted_names = []
    if gone:
        lines = [json.dumps({"resourceType": "Bundle", "type": "transaction", "entry": [
            {"request": {"method": "DELETE", "url": "%s/%s" % (g[0], g[1])}}]}).encode()
            for g in gone]
        files["deleted-1.ndjson"] = b"\n".join(lines) + b"\n"
        deleted_names.append("deleted-1.ndjson")
    content = (files, outs, error_names, deleted_names)
    with _lock:
        _cache.append((key, ds, content))
        del _cache[:-CACHE_SIZE]
    return content


# -- kick-off ---------------------------------------------------------------------------

def is_kickoff(rel):
    path = urllib.parse.unquote(rel.split("?")[0]).strip("/").split("/")
    return len(path) == 3 and path[0] == "Group" and path[2] == "$export"


def kickoff(handler, method, ds, rel, base_url):
    """The answer to a kick-off: (status, body, headers, content_type)."""
    path, _, query = rel.partition("?")
    group_id = urllib.parse.unquote(path).strip("/").split("/")[1]

    def fail(status, code, diag):
        return status, _outcome(code, diag), None, FHIR_JSON

    if method != "GET":
        return fail(405, "not-supported", "sandbox: $export is kicked off with GET")
    if (handler.headers.get("Prefer") or "").strip().lower() != "respond-async":
        return fail(400, "invalid", "Prefer: respond-async is required for $export")
    try:
        pairs = urllib.parse.parse_qsl(query, keep_blank_values=True, strict_parsing=bool(query))
    except ValueError as e:
        return fail(400, "invalid", "malformed query string: %s" % e)
    types = None
    since = None
    for k, v in pairs:
        if k == "_type":
            types = [t for t in v.split(",") if t]
        elif k == "_since":
            since = _parse_instant(v)
            if since is None:
                return fail(400, "invalid", "_since must be an instant with a time zone, got %r"
                            % v)
        elif k == "_outputFormat":
            if v not in ("application/fhir+ndjson", "application/ndjson", "ndjson"):
                return fail(400, "not-supported", "_outputFormat %s is not supported" % v)
        else:
            return fail(400, "not-supported", "parameter %s is not supported by $export" % k)
    gstore = ds.stores.get("Group")
    gi = gstore.by_id.get(group_id) if gstore else None
    if gi is None:
        return fail(404, "not-found", "Group/%s is not known" % group_id)
    members = _members(json.loads(gstore.texts[gi]))
    if types is None:
        types = sorted(t for t in ds.stores if t != "Group")
    for t in types:
        if not ds.supports(t):
            return fail(400, "not-supported", "resource type %s cannot be exported" % t)
    with _lock:
        cfg = dict(_config)
    now = _now()
    job_id = secrets.token_urlsafe(12)
    host = handler.host()
    origin = "https://%s" % host
    if cfg["other_origin"]:
        origin = "https://127.0.0.1:%d" % handler.server.server_address[1]
    files, outs, error_names, deleted_names = _content(ds, group_id, members, types, since, cfg)

    def url(fname):
        return "%s/_bulk/file/%s/%s" % (origin, job_id, fname)
    output = [{"type": t, "url": url(fname), "count": n} for t, fname, n in outs]
    errors = [{"type": "OperationOutcome", "url": url(f)} for f in error_names]
    deleted = [{"type": "Bundle", "url": url(f)} for f in deleted_names]
    manifest = {"transactionTime": _instant(now), "request": base_url + rel,
                "requiresAccessToken": bool(cfg["requires_token"]), "output": output,
                "error": errors}
    if since is not None:
        manifest["deleted"] = deleted
    with _lock:
        _jobs[job_id] = {"cfg": cfg, "polls": 0, "manifest": manifest, "files": files,
                         "state": "running", "file_requests": {}}
    status_url = "https://%s/_bulk/job/%s" % (host, job_id)
    return 202, _outcome("informational", "export started", "information"), \
        {"Content-Location": status_url}, FHIR_JSON


# -- status, files, cancel --------------------------------------------------------------

def serve(handler, method, raw_path):
    """/_bulk/...: the status URL (GET, DELETE) and the output files (GET)."""
    st = handler.server.state
    parts = raw_path.strip("/").split("/")
    auth = handler.headers.get("Authorization") or ""
    scheme, _, token = auth.partition(" ")
    has_token = scheme.lower() == "bearer" and bool(token.strip())
    entry = {"method": method, "kind": "bulk", "fhir_version": None,
             "path": raw_path[len("/_bulk/"):], "token": has_token,
             "host": handler.host()}

    def answer(status, body=b"", headers=None, ctype=FHIR_JSON):
        st.add_log(dict(entry, status=status))
        handler.send(status, body, headers, ctype)

    with _lock:
        job = _jobs.get(parts[2]) if len(parts) >= 3 else None
    if job is None or job["state"] == "deleted":
        return answer(404, _outcome("not-found", "sandbox: no such export job or file"))
    cfg = job["cfg"]
    token_ok = has_token and st.check_token(token.strip()) is not None
    if parts[1] == "job" and len(parts) == 3:
        if not token_ok:
            return answer(401, b"", {"WWW-Authenticate": 'Bearer error="invalid_token"'})
        if method == "DELETE":
            with _lock:
                job["state"] = "deleted"
                job["files"] = {}
            return answer(202, _outcome("informational", "export deleted", "information"))
        if method != "GET":
            return answer(405, _outcome("not-supported", "sandbox: GET or DELETE"))
        with _lock:
            job["polls"] += 1
            n = job["polls"]
        if cfg["poll_429"] and n == cfg["poll_429"]:
            return answer(429, _outcome("throttled", "sandbox: polling too often"),
                          {"Retry-After": "1"})
        if cfg["fail_job"] and n > cfg["polls"]:
            return answer(500, _outcome("exception", "sandbox: the export job failed"))
        if cfg["never_complete"] or n <= cfg["polls"]:
            headers = {"X-Progress": "%d%% complete" % min(99, 100 * n // max(1, cfg["polls"] + 1))}
            if cfg["retry_after"] != "":
                headers["Retry-After"] = str(cfg["retry_after"])
            return answer(202, b"", headers)
        return answer(200, json.dumps(job["manifest"]).encode("utf-8"), {"Expires": "Thu, 01 Jan 2099 00:00:00 GMT"},
                      "application/json")
    if parts[1] == "file" and len(parts) == 4 and method == "GET":
        body = job["files"].get(parts[3])
        if body is None:
            return answer(404, _outcome("not-found", "sandbox: no such file"))
        if cfg["requires_token"] and not token_ok:
            return answer(401, b"", {"WWW-Authenticate": 'Bearer error="invalid_token"'})
        with _lock:
            k = job["file_requests"][parts[3]] = job["file_requests"].get(parts[3], 0) + 1
        first = job["manifest"]["output"][0]["url"].endswith("/" + parts[3]) \
            if job["manifest"]["output"] else False
        if cfg["expired"] and not parts[3].startswith(("errors", "deleted")):
            return answer(404, _outcome("not-found", "sandbox: the file has expired"))
        if cfg["file_500"] and first and k == 1:
            return answer(500, _outcome("exception", "sandbox: file not ready"))
        headers = {}
        accept_enc = (handler.headers.get("Accept-Encoding") or "").lower()
        if cfg["gzip"] and "gzip" in accept_enc:
            body = gzip.compress(body, compresslevel=1)
            headers["Content-Encoding"] = "gzip"
            entry["gzip"] = True
        return answer(200, body, headers, NDJSON)
    return answer(404, _outcome("not-found", "sandbox: unknown bulk endpoint"))
