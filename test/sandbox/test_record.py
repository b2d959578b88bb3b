#!/usr/bin/python3
"""Record -> replay round trip for test/sandbox/record.py.

Starts a sandbox with a small generated STU3 dataset as the "upstream", puts record.py in
front of it (--auth own, then --auth forward, then with --scrub), acts as the FHIR client
(searches incl. paged ones, reads, errors), then replays the recording with a second
sandbox (--recording FILE) and checks that the same requests give the same bundles.
Also checks that no token, assertion or private-key text is recorded or logged.

Usage: /usr/bin/python3 test/sandbox/test_record.py [--keep]
Prints one line per check and "N passed, N failed" last; exit status 1 on failure.
"""

import argparse
import copy
import http.client
import json
import os
import shutil
import signal
import ssl
import subprocess
import sys
import tempfile
import time
import urllib.parse
import uuid

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
PY = "/usr/bin/python3"
RECORDED_ORIGIN = "https://fhir.epic.com/interconnect-fhir-oauth/api/FHIR/"
CLIENT_ID, KID = "record-test-client", "rec-1"
CAMILA, DERRICK, DESIREE = ("erXuFYUfucBZaryVksYEcMg3", "eq081-VQEgP8drUUqCWzHfw3",
                            "eAB3mDIBBcyUKviyzrxsnAw3")
SYNTH = ("ew9diEVd0j1zi.MQXC6F-by3", "eGnwBprnGaKqPIQl0rdDXum3")   # generated patients
ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"

# the client's session: searches (several paged with a small _count), reads, errors
# (none of them equals a stock fixture in test/fixtures/: start.sh loads those first and
# the sandbox answers the first loaded fixture for a request)
QUERIES = [
    "Patient?family=Lopez&_count=50",
    "Patient?gender=female&_count=5",
    "Patient?birthdate=ge1960-01-01&_count=4",
    "Patient?address-state=TX&_count=3",
    "Patient?given=Camila",
    "Patient?_id=" + CAMILA,
    "Patient?identifier=urn%3Aoid%3A1.2.840.114350.1.13.0.1.7.5.737384.14%7C203713",
    "MedicationStatement?patient=%s&_count=1" % CAMILA,
    "MedicationStatement?status=active&_count=10",
    "MedicationStatement?patient=" + DESIREE,
    "Patient?family=Nobody-At-All",
    "Patient?no-such-param=1",
    "Patient/" + SYNTH[0],
    "Patient/" + SYNTH[1],
    "Patient/eDoesNotExist000000000003",
]
REVOKE_BEFORE = 6   # the upstream revokes its tokens before this query (refresh on 401)

passed = failed = 0
secrets_seen = []   # every token/assertion the test saw or the sandboxes issued


def check(name, cond, detail=""):
    global passed, failed
    if cond:
        passed += 1
        print("ok   %s" % name)
    else:
        failed += 1
        d = str(detail)
        print("FAIL %s %s" % (name, d[:1500]))
    return cond


class Client:
    def __init__(self, ca_file, port):
        self.port = port
        self.ctx = ssl.create_default_context(cafile=ca_file)
        self.conn = None

    def req(self, method, path, body=None, headers=None):
        for attempt in (1, 2):
            if self.conn is None:
                self.conn = http.client.HTTPSConnection("localhost", self.port,
                                                        context=self.ctx, timeout=20)
            try:
                self.conn.request(method, path, body=body, headers=headers or {})
                r = self.conn.getresponse()
                data = r.read()
                if r.will_close:
                    self.conn.close()
                    self.conn = None
                return r.status, {k.lower(): v for k, v in r.getheaders()}, data
            except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError):
                self.conn.close()
                self.conn = None
                if attempt == 2:
                    raise

    def close(self):
        if self.conn is not None:
            self.conn.close()
            self.conn = None

    def token(self, key_pem, aud):
        """POST a signed client assertion; returns (status, parsed body)."""
        now = int(time.time())
        a = jwt.encode({"iss": CLIENT_ID, "sub": CLIENT_ID, "aud": aud, "exp": now + 240,
                        "jti": str(uuid.uuid4())}, key_pem, algorithm="RS384",
                       headers={"typ": "JWT", "kid": KID})
        secrets_seen.append(a)
        form = urllib.parse.urlencode({"grant_type": "client_credentials",
                                       "client_assertion_type": ASSERTION_TYPE,
                                       "client_assertion": a,
                                       "scope": "system/Patient.read"})
        st, _, body = self.req("POST", "/oauth2/token", form,
                               {"Content-Type": "application/x-www-form-urlencoded"})
        doc = json.loads(body) if body else None
        if st == 200:
            secrets_seen.append(doc["access_token"])
        return st, doc


def sh(*args, env=None):
    return subprocess.run(list(args), capture_output=True, text=True, env=env, timeout=60)


def normalize(value, base):
    """Replace the server-specific FHIR base in every string by 'BASE/'."""
    if isinstance(value, str):
        return value.replace(base, "BASE/")
    if isinstance(value, list):
        return [normalize(v, base) for v in value]
    if isinstance(value, dict):
        return {k: normalize(v, base) for k, v in value.items()}
    return value


def parse(body):
    if not body:
        return None
    try:
        return json.loads(body)
    except ValueError:
        return body.decode("utf-8", "replace")


def session(client, path_prefix, base, token, hooks=None):
    """Run QUERIES (following next links); returns {query: [(status, normalized doc)]} and
    the number of requests made."""
    out, n = {}, 0
    hdr = {"Authorization": "Bearer " + token, "Accept": "application/fhir+json"}
    for i, q in enumerate(QUERIES):
        if hooks and i in hooks:
            hooks[i]()
        pages, rel = [], q
        while rel is not None and len(pages) < 50:
            st, _, body = client.req("GET", path_prefix + rel, headers=hdr)
            n += 1
            doc = parse(body)
            pages.append((st, normalize(doc, base)))
            rel = None
            if isinstance(doc, dict) and doc.get("resourceType") == "Bundle":
                nxt = [ln["url"] for ln in doc.get("link", []) if ln.get("relation") == "next"]
                if nxt:
                    if not nxt[0].startswith(base):
                        pages.append(("next link not under %s" % base, nxt[0]))
                    else:
                        rel = nxt[0][len(base):]
        out[q] = pages
    return out, n


def entries(doc):
    return doc.get("entry") if isinstance(doc, dict) else doc


def start_proxy(d, out, *extra):
    os.makedirs(d, exist_ok=True)
    log = open(os.path.join(d, "record.log"), "ab")
    p = subprocess.Popen([PY, os.path.join(HERE, "record.py"), "--state-dir", d, "--out", out]
                         + list(extra), stdout=log, stderr=subprocess.STDOUT,
                         stdin=subprocess.DEVNULL)
    log.close()
    port_p = os.path.join(d, "port")
    deadline = time.time() + 20
    while time.time() < deadline:
        if os.path.exists(port_p) and os.path.getsize(port_p):
            with open(port_p) as f:
                return p, int(f.read())
        if p.poll() is not None:
            break
        time.sleep(0.05)
    with open(os.path.join(d, "record.log")) as f:
        sys.stderr.write(f.read())
    p.kill()
    raise SystemExit("record.py did not start")


def stop_proxy(p):
    p.send_signal(signal.SIGTERM)
    try:
        return p.wait(timeout=10)
    except subprocess.TimeoutExpired:
        p.kill()
        p.wait()
        return None


def start_sandbox(d, clients_json, *extra):
    os.makedirs(d, exist_ok=True)
    os.chmod(d, 0o755)
    shutil.copy(clients_json, os.path.join(d, "clients.json"))
    r = sh(os.path.join(HERE, "start.sh"), d, *extra)
    if r.returncode != 0:
        sys.stderr.write(r.stderr)
        raise SystemExit("sandbox did not start")
    return int(r.stdout.strip())


def read(path):
    with open(path, encoding="utf-8", errors="replace") as f:
        return f.read()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--keep", action="store_true", help="leave the temporary directory")
    a = ap.parse_args()
    t0 = time.time()
    tmp = tempfile.mkdtemp(prefix="epic_record_")
    os.chmod(tmp, 0o755)
    up_dir, rep_dir = os.path.join(tmp, "upstream"), os.path.join(tmp, "replay")
    started = []
    try:
        run(tmp, up_dir, rep_dir, started)
    finally:
        for kind, x in started:
            if kind == "sandbox":
                sh(os.path.join(HERE, "stop.sh"), x)
            elif x.poll() is None:
                stop_proxy(x)
        if a.keep:
            print("temporary files in %s" % tmp)
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    check("finished in < 60 s", time.time() - t0 < 60, "%.1f s" % (time.time() - t0))
    print("%d passed, %d failed" % (passed, failed))
    sys.exit(1 if failed else 0)


def run(tmp, up_dir, rep_dir, started):
    # client key registered with both sandboxes; the proxy uses the same credentials
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption()).decode("ascii")
    key_p, pub_p = os.path.join(tmp, "client.key"), os.path.join(tmp, "client.pub")
    with open(key_p, "w") as f:
        f.write(key_pem)
    os.chmod(key_p, 0o600)
    with open(pub_p, "wb") as f:
        f.write(key.public_key().public_bytes(serialization.Encoding.PEM,
                                              serialization.PublicFormat.SubjectPublicKeyInfo))
    clients_p = os.path.join(tmp, "clients.json")
    with open(clients_p, "w") as f:
        json.dump({"clients": [{"client_id": CLIENT_ID, "keys": [
            {"kid": KID, "alg": "RS384", "public_key_file": pub_p}]}]}, f)
    ds = os.path.join(tmp, "ds")
    r = sh(PY, os.path.join(REPO, "test/dataset/generate.py"), "--version", "STU3",
           "--patients", "40", "--statements-per-patient", "2", "--out", ds)
    if not check("dataset generated", r.returncode == 0, r.stderr):
        return

    # ---- upstream sandbox ---------------------------------------------------------------
    up_port = start_sandbox(up_dir, clients_p, "--dataset", "STU3=" + ds)
    started.append(("sandbox", up_dir))
    up_base = "https://localhost:%d/dataset/STU3/" % up_port
    up_ca = os.path.join(up_dir, "ca.crt")
    up_env = dict(os.environ, EPIC_SANDBOX_DIR=up_dir)
    ctl = lambda *args: sh(PY, os.path.join(HERE, "ctl.py"), *args, env=up_env)  # noqa: E731

    # ---- recording proxy, --auth own ------------------------------------------------------
    rec = os.path.join(tmp, "session.json")
    px_dir = os.path.join(tmp, "proxy")
    proxy, px_port = start_proxy(px_dir, rec, "--upstream", up_base, "--upstream-ca", up_ca,
                                 "--auth", "own", "--client-id", CLIENT_ID,
                                 "--private-key", key_p, "--key-id", KID, "--alg", "RS384",
                                 "--scope", "system/Patient.read system/MedicationStatement.read")
    started.append(("proxy", proxy))
    px_base = "https://localhost:%d/fhir/" % px_port
    pc = Client(os.path.join(px_dir, "ca.crt"), px_port)
    check("proxy wrote pid", read(os.path.join(px_dir, "pid")).strip() == str(proxy.pid))
    st, _, body = pc.req("GET", "/fhir/.well-known/smart-configuration")
    disc = parse(body)
    check("proxy discovery points at its own token endpoint", st == 200 and
          disc["token_endpoint"] == "https://localhost:%d/oauth2/token" % px_port, (st, disc))
    st, doc = pc.token(key_pem, disc["token_endpoint"])
    check("proxy issues a local token (own mode)", st == 200 and doc["token_type"] == "bearer"
          and doc["expires_in"] > 0, (st, doc))
    px_token = doc["access_token"]
    st, _, body = pc.req("POST", "/oauth2/token", "grant_type=password",
                         {"Content-Type": "application/x-www-form-urlencoded"})
    check("proxy rejects a malformed token request", st == 400
          and parse(body)["error"] == "unsupported_grant_type", (st, body))
    st, hd, _ = pc.req("GET", "/fhir/Patient/" + CAMILA)
    check("proxy: no local token -> 401, not forwarded", st == 401
          and "invalid_token" in hd.get("www-authenticate", ""), st)
    check("recording starts as an empty array", json.loads(read(rec)) == [])

    def revoke():
        before = int(ctl("count", "token").stdout)
        ctl("revoke")
        revoke.before = before

    recorded, n_proxy = session(pc, "/fhir/", px_base, px_token, {REVOKE_BEFORE: revoke})
    after = int(ctl("count", "token").stdout)
    check("proxy fetched a new upstream token after upstream 401", after == revoke.before + 1,
          (revoke.before, after))
    paged = {q: len(p) for q, p in recorded.items() if len(p) > 1}
    check("paged searches followed next links through the proxy", len(paged) >= 4
          and sum(paged.values()) >= 12, paged)
    bad_next = [p for ps in recorded.values() for p in ps if isinstance(p[0], str)]
    check("next links point at the proxy", not bad_next, bad_next)
    check("statuses as expected", recorded["Patient?no-such-param=1"][0][0] == 400
          and recorded["Patient/eDoesNotExist000000000003"][0][0] == 404
          and all(p[0] == 200 for q, ps in recorded.items() for p in ps
                  if q not in ("Patient?no-such-param=1", "Patient/eDoesNotExist000000000003")),
          {q: [p[0] for p in ps] for q, ps in recorded.items()})
    check("bundles have entries", len(entries(recorded["Patient?gender=female&_count=5"][0][1]))
          == 5 and recorded["Patient/" + SYNTH[0]][0][1]["id"] == SYNTH[0])

    # the proxy is transparent: first pages equal the upstream's own answers
    uc = Client(up_ca, up_port)
    st, doc = uc.token(key_pem, "https://localhost:%d/oauth2/token" % up_port)
    direct, _ = session(uc, "/dataset/STU3/", up_base, doc["access_token"])

    def no_uuid(doc):
        # the "no results" outcome entry gets a random urn:uuid fullUrl on every search
        doc = copy.deepcopy(doc)
        for e in (entries(doc) if isinstance(doc, dict) else None) or []:
            if str(e.get("fullUrl", "")).startswith("urn:uuid:"):
                e["fullUrl"] = "urn:uuid:*"
        return entries(doc)

    diffs = [q for q in QUERIES if no_uuid(direct[q][0][1]) != no_uuid(recorded[q][0][1])
             or direct[q][0][0] != recorded[q][0][0]]
    check("proxied answers equal direct upstream answers", not diffs, diffs)
    uc.close()

    pc.close()
    rc = stop_proxy(proxy)
    check("proxy stops cleanly on SIGTERM", rc == 0 and not os.path.exists(px_dir + "/port")
          and not os.path.exists(px_dir + "/pid") and "stopped" in read(px_dir + "/record.log"),
          rc)

    # ---- the recording file ------------------------------------------------------------------
    items = json.loads(read(rec))
    check("recording: one exchange per FHIR request (401s and tokens not recorded)",
          isinstance(items, list) and len(items) == n_proxy, (len(items), n_proxy))
    check("recording: file mode 0600", os.stat(rec).st_mode & 0o777 == 0o600,
          oct(os.stat(rec).st_mode))
    shape_ok = all(set(i) == {"request", "response"} and i["request"]["method"] == "GET"
                   and i["request"]["fhir_version"] == "STU3"
                   and not i["request"]["path"].startswith(("/", "https:"))
                   and i["request"].get("accept") == "application/fhir+json"
                   and set(i["response"]) == {"status", "headers", "body"}
                   and i["response"]["headers"].get("Content-Type", "").startswith(
                       "application/fhir+json") for i in items)
    check("recording: fixture format", shape_ok, items[0] if items else None)
    check("recording: query kept exactly as sent",
          any(i["request"]["path"] == QUERIES[6] for i in items))
    paths = [i["request"]["path"] for i in items]
    check("recording: next-link pages recorded as their own exchanges",
          sum(1 for p in paths if "_getpages=" in p) >= 8, paths)
    text = read(rec)
    check("recording: upstream base rewritten to the Epic origin",
          "localhost:%d" % up_port not in text and "localhost:%d" % px_port not in text
          and RECORDED_ORIGIN + "STU3/Patient/" + CAMILA in text)
    check("recording: errors recorded with their bodies",
          any(i["response"]["status"] == 400 and i["response"]["body"]["resourceType"]
              == "OperationOutcome" for i in items))
    check("recording: --append needed to reuse the file", sh(
        PY, os.path.join(HERE, "record.py"), "--state-dir", os.path.join(tmp, "px_x"),
        "--upstream", up_base, "--out", rec).returncode != 0)

    # ---- replay ---------------------------------------------------------------------------
    rep_port = start_sandbox(rep_dir, clients_p, "--recording", rec)
    started.append(("sandbox", rep_dir))
    rc_ = Client(os.path.join(rep_dir, "ca.crt"), rep_port)
    st, doc = rc_.token(key_pem, "https://localhost:%d/oauth2/token" % rep_port)
    check("replay sandbox issues a token", st == 200, (st, doc))
    rep_base = "https://localhost:%d/api/FHIR/STU3/" % rep_port
    replayed, n_rep = session(rc_, "/api/FHIR/STU3/", rep_base, doc["access_token"])
    rlog = read(os.path.join(rep_dir, "sandbox.log"))
    check("replay loaded every recorded exchange", "loaded %d fixture(s) from %s"
          % (len(items), rec) in rlog and "duplicate fixture" not in rlog,
          [ln for ln in rlog.splitlines() if "fixture" in ln])
    check("replay made the same number of requests", n_rep == n_proxy, (n_rep, n_proxy))
    for q in QUERIES:
        check("replay identical: %s (%d page(s))" % (q, len(recorded[q])),
              replayed[q] == recorded[q], (replayed[q], recorded[q]))
    rc_.close()

    # ---- --auth forward -----------------------------------------------------------------------
    rec_fwd = os.path.join(tmp, "forward.json")
    fw_dir = os.path.join(tmp, "proxy_fwd")
    fwd, fw_port = start_proxy(fw_dir, rec_fwd, "--upstream", up_base, "--upstream-ca", up_ca)
    started.append(("proxy", fwd))
    fc = Client(os.path.join(fw_dir, "ca.crt"), fw_port)
    st, doc = fc.token(key_pem, "https://localhost:%d/oauth2/token" % fw_port)
    check("forward: assertion with the proxy's aud is rejected upstream (passed through)",
          st == 401 and doc["error"] == "invalid_client" and "aud" in doc["error_description"],
          (st, doc))
    st, doc = fc.token(key_pem, "https://localhost:%d/oauth2/token" % up_port)
    check("forward: upstream token obtained through the proxy", st == 200, (st, doc))
    st, _, body = fc.req("GET", "/fhir/Patient/" + CAMILA,
                         headers={"Authorization": "Bearer " + doc["access_token"]})
    check("forward: FHIR read with the client's token", st == 200
          and parse(body)["id"] == CAMILA, st)
    st, hd, _ = fc.req("GET", "/fhir/Patient/" + DERRICK)
    check("forward: upstream 401 passed through", st == 401
          and "invalid_token" in hd.get("www-authenticate", ""), st)
    fc.close()
    check("forward: proxy stops cleanly", stop_proxy(fwd) == 0)
    fitems = json.loads(read(rec_fwd))
    check("forward: only the successful read recorded", [i["request"]["path"] for i in fitems]
          == ["Patient/" + CAMILA], fitems)

    # ---- --scrub ------------------------------------------------------------------------------
    rec_s = os.path.join(tmp, "scrubbed.json")
    sc_dir = os.path.join(tmp, "proxy_scrub")
    scp, sc_port = start_proxy(sc_dir, rec_s, "--upstream", up_base, "--upstream-ca", up_ca,
                               "--auth", "own", "--client-id", CLIENT_ID, "--private-key",
                               key_p, "--key-id", KID, "--scrub", "telecom", "--scrub",
                               "birthDate", "--scrub", "deceasedBoolean", "--scrub",
                               "maritalStatus", "--scrub", "value")
    started.append(("proxy", scp))
    sc = Client(os.path.join(sc_dir, "ca.crt"), sc_port)
    st, doc = sc.token(key_pem, "https://localhost:%d/oauth2/token" % sc_port)
    hdr = {"Authorization": "Bearer " + doc["access_token"]}
    st, _, body = sc.req("GET", "/fhir/Patient?family=Lopez&_count=100", headers=hdr)
    live = parse(body)
    st2, _, _ = sc.req("GET", "/fhir/MedicationStatement?patient=%s&_count=100" % CAMILA,
                       headers=hdr)
    sc.req("GET", "/fhir/Patient/" + CAMILA, headers=hdr)   # also a stock fixture
    sc.close()
    check("scrub: the live client still gets real values", st == 200 and st2 == 200
          and live["entry"][0]["resource"]["telecom"]
          and live["entry"][0]["resource"]["birthDate"] == "1987-09-12")
    stop_proxy(scp)
    sitems = json.loads(read(rec_s))
    pats = [e["resource"] for e in sitems[0]["response"]["body"]["entry"]]
    meds = [e["resource"] for e in sitems[1]["response"]["body"]["entry"]]
    check("scrub: list -> [] (telecom)", pats and all(p.get("telecom", []) == [] for p in pats)
          and "telecom" in pats[0])
    check("scrub: string -> \"***\" (birthDate, identifier.value)",
          all(p["birthDate"] == "***" for p in pats)
          and all(i["value"] == "***" for p in pats for i in p["identifier"]))
    check("scrub: boolean -> false (deceasedBoolean)",
          all(p["deceasedBoolean"] is False for p in pats if "deceasedBoolean" in p))
    check("scrub: object -> {} (maritalStatus)", all(p["maritalStatus"] == {} for p in pats))
    doses = [d["doseQuantity"]["value"] for m in meds for d in m.get("dosage", [])
             if "doseQuantity" in d]
    check("scrub: number -> 0 (doseQuantity.value)", doses and all(v == 0 for v in doses),
          doses)
    check("proxy notes a recorded request that is also a stock fixture",
          "GET /fhir/Patient/%s -> 200 (recorded #3) (the same request is also a stock fixture"
          % CAMILA in read(os.path.join(sc_dir, "record.log"))
          and "also a stock fixture" not in read(os.path.join(px_dir, "record.log")))
    check("scrub: other members untouched", pats[0]["id"] == CAMILA
          and pats[0]["name"][0]["family"] == "Lopez")
    stext = read(rec_s)
    check("scrub: no real values left", "1987-09-12" not in stext and "469-555-5555"
          not in stext and "203713" not in stext)

    # ---- secrets ----------------------------------------------------------------------------
    client_made = set(secrets_seen)
    for d in (up_dir, rep_dir):
        out = sh(PY, os.path.join(HERE, "ctl.py"), "secrets",
                 env=dict(os.environ, EPIC_SANDBOX_DIR=d)).stdout.split()
        secrets_seen.extend(out)
        if d == up_dir:
            own = [s for s in out if s.count(".") == 2 and s not in client_made]
            claims = [jwt.decode(s, options={"verify_signature": False}) for s in own]
            check("secrets: the proxy signed its own upstream assertions (3 tokens)",
                  len(own) == 3 and all(c["iss"] == CLIENT_ID and c["aud"] ==
                                        "https://localhost:%d/oauth2/token" % up_port
                                        and c["exp"] - time.time() <= 300 for c in claims),
                  claims)
    secrets_seen.append(px_token)
    key_lines = [ln for ln in key_pem.splitlines() if ln and not ln.startswith("-----")]
    needles = set(secrets_seen)
    needles.update(s.split(".")[2] for s in secrets_seen if s.count(".") == 2)
    needles.update(key_lines)
    files = [rec, rec_fwd, rec_s, os.path.join(px_dir, "record.log"),
             os.path.join(fw_dir, "record.log"), os.path.join(sc_dir, "record.log"),
             os.path.join(up_dir, "sandbox.log"), os.path.join(rep_dir, "sandbox.log")]
    for p in files:
        t = read(p)
        leaked = [n[:12] + "..." for n in needles if n and n in t]
        words = [w for w in ("access_token", "client_assertion", "Authorization",
                             "PRIVATE KEY", "eyJ") if w in t]
        check("secrets: none in %s" % os.path.relpath(p, tmp), not leaked and not words,
              (leaked, words))
    log = read(os.path.join(px_dir, "record.log"))
    check("proxy log omits query strings", "family=Lopez" not in log and "_getpages" not in log
          and "GET /fhir/Patient -> 200" in log)


if __name__ == "__main__":
    main()
