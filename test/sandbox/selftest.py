#!/usr/bin/python3
"""Self-test of the epic_fdw sandbox: starts it with throwaway RSA/EC client keys, checks
discovery, token issuance and rejection, bearer enforcement, every fixture request,
URL rewriting, and the ctl.py commands; stops it again.

Usage: /usr/bin/python3 test/sandbox/selftest.py [--recording FILE]
       (with --recording, also loads that recording and reads R4 Patient/eAB3mDIBBcyUKviyzrxsnAw3)
Prints one line per check and "N passed, N failed" at the end; exit status 1 on failure.
"""

import argparse
import http.client
import json
import os
import ssl
import subprocess
import sys
import tempfile
import time
import urllib.parse
import uuid

import jwt

HERE = os.path.dirname(os.path.abspath(__file__))
PY = "/usr/bin/python3"
CAMILA, DERRICK = "erXuFYUfucBZaryVksYEcMg3", "eq081-VQEgP8drUUqCWzHfw3"
passed = failed = 0


def check(name, cond, detail=""):
    global passed, failed
    if cond:
        passed += 1
        print("ok   %s" % name)
    else:
        failed += 1
        print("FAIL %s %s" % (name, detail))


class Client:
    def __init__(self, state_dir, port):
        self.port = port
        self.ctx = ssl.create_default_context(cafile=os.path.join(state_dir, "ca.crt"))
        self.conn = None

    def req(self, method, path, body=None, headers=None):
        for attempt in (1, 2):
            if self.conn is None:
                self.conn = http.client.HTTPSConnection("localhost", self.port, context=self.ctx,
                                                        timeout=10)
            try:
                self.conn.request(method, path, body=body, headers=headers or {})
                r = self.conn.getresponse()
                data = r.read()
                return r.status, dict(r.getheaders()), data
            except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError):
                self.conn.close()
                self.conn = None
                if attempt == 2:
                    raise

    def token(self, assertion, scope=None, extra=None):
        form = {"grant_type": "client_credentials",
                "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
                "client_assertion": assertion}
        if scope:
            form["scope"] = scope
        form.update(extra or {})
        st, hd, body = self.req("POST", "/oauth2/token", urllib.parse.urlencode(form),
                                {"Content-Type": "application/x-www-form-urlencoded"})
        return st, hd, json.loads(body) if body else None


def assertion(key_pem, alg, kid, client_id, aud, exp_in=240, jti=None, **over):
    now = int(time.time())
    claims = {"iss": client_id, "sub": client_id, "aud": aud, "exp": now + exp_in,
              "jti": jti or str(uuid.uuid4())}
    claims.update(over)
    headers = {"typ": "JWT"}
    if kid is not None:
        headers["kid"] = kid
    return jwt.encode(claims, key_pem, algorithm=alg, headers=headers)


def sh(*args, env=None):
    return subprocess.run(list(args), capture_output=True, text=True, env=env)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--recording")
    ap.add_argument("--keep", action="store_true", help="leave the state dir in place")
    a = ap.parse_args()

    d = tempfile.mkdtemp(prefix="epic_sandbox_")
    os.chmod(d, 0o755)
    for name, args in (("rsa", ["-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048"]),
                       ("ec", ["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-384"]),
                       ("other", ["-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048"])):
        subprocess.run(["openssl", "genpkey"] + args + ["-out", "%s/%s.key" % (d, name)], check=True,
                       stderr=subprocess.DEVNULL)
        subprocess.run(["openssl", "pkey", "-in", "%s/%s.key" % (d, name), "-pubout",
                        "-out", "%s/%s.pub" % (d, name)], check=True)
    clients = {"clients": [
        {"client_id": "test-client",
         "keys": [{"kid": "rsa-1", "alg": "RS384", "public_key_file": d + "/rsa.pub"},
                  {"kid": "ec-1", "alg": "ES384", "public_key_file": d + "/ec.pub"}]},
        {"client_id": "scoped-client", "scopes": ["system/Patient.read"],
         "keys": [{"kid": "rsa-1", "alg": "RS384", "public_key_file": d + "/rsa.pub"}]}]}
    with open(d + "/clients.json", "w") as f:
        json.dump(clients, f)
    keys = {n: open("%s/%s.key" % (d, n)).read() for n in ("rsa", "ec", "other")}

    extra = ["--recording", a.recording] if a.recording else []
    r = sh(os.path.join(HERE, "start.sh"), d, *extra)
    if r.returncode != 0:
        print(r.stderr)
        sys.exit(1)
    port = int(r.stdout.strip())
    print("sandbox on port %d, state dir %s" % (port, d))
    env = dict(os.environ, EPIC_SANDBOX_DIR=d)
    try:
        run_checks(d, port, keys, env, a.recording)
    finally:
        sh(os.path.join(HERE, "stop.sh"), d)
        check("stop.sh removed pid and port", not os.path.exists(d + "/pid")
              and not os.path.exists(d + "/port"))
    print("%d passed, %d failed" % (passed, failed))
    if not a.keep:
        subprocess.run(["rm", "-rf", d])
    sys.exit(1 if failed else 0)


def run_checks(d, port, keys, env, recording):
    c = Client(d, port)
    host = "localhost:%d" % port
    aud = "https://%s/oauth2/token" % host
    mode = lambda p: oct(os.stat(p).st_mode & 0o777)  # noqa: E731
    check("ca.crt world-readable, ca.key private",
          mode(d + "/ca.crt") == "0o644" and mode(d + "/ca.key") == "0o600")

    # curl verifies TLS with the CA
    r = sh("curl", "-sS", "--cacert", d + "/ca.crt",
           "https://localhost:%d/api/FHIR/STU3/metadata" % port)
    check("curl --cacert verifies TLS (localhost)", r.returncode == 0 and "3.0.2" in r.stdout, r.stderr)
    r = sh("curl", "-sS", "--cacert", d + "/ca.crt",
           "https://127.0.0.1:%d/api/FHIR/R4/metadata" % port)
    check("curl --cacert verifies TLS (127.0.0.1)", r.returncode == 0 and "4.0.1" in r.stdout, r.stderr)
    r = sh("curl", "-sS", "https://localhost:%d/api/FHIR/R4/metadata" % port)
    check("curl without the CA fails", r.returncode != 0)

    for v in ("STU3", "R4"):
        st, hd, body = c.req("GET", "/api/FHIR/%s/.well-known/smart-configuration" % v)
        doc = json.loads(body)
        check("discovery %s" % v, st == 200 and doc["token_endpoint"] == aud
              and doc["token_endpoint_auth_signing_alg_values_supported"] == ["RS384", "ES384"])

    # tokens
    st, hd, tok = c.token(assertion(keys["rsa"], "RS384", "rsa-1", "test-client", aud))
    check("RS384 token", st == 200 and tok["token_type"] == "bearer" and tok["expires_in"] == 300
          and hd.get("Cache-Control") == "no-store", (st, tok))
    rs_token = tok["access_token"]
    st, hd, tok = c.token(assertion(keys["ec"], "ES384", "ec-1", "test-client", aud),
                          scope="system/Patient.read")
    check("ES384 token", st == 200 and tok["scope"] == "system/Patient.read", (st, tok))
    st, hd, tok = c.token(assertion(keys["ec"], "ES384", None, "test-client", aud))
    check("ES384 token without kid", st == 200, (st, tok))

    def rejected(name, st_tok, status, error, desc_part):
        st, hd, tok = st_tok
        check(name, st == status and tok["error"] == error and desc_part in tok["error_description"],
              (st, tok))

    rejected("wrong key", c.token(assertion(keys["other"], "RS384", "rsa-1", "test-client", aud)),
             401, "invalid_client", "signature verification failed")
    rejected("unknown kid", c.token(assertion(keys["rsa"], "RS384", "nope", "test-client", aud)),
             401, "invalid_client", "unknown kid")
    rejected("unknown client", c.token(assertion(keys["rsa"], "RS384", "rsa-1", "who", aud)),
             401, "invalid_client", "unknown client_id")
    rejected("wrong aud", c.token(assertion(keys["rsa"], "RS384", "rsa-1", "test-client",
                                            "https://example.com/oauth2/token")),
             401, "invalid_client", "aud")
    rejected("expired", c.token(assertion(keys["rsa"], "RS384", "rsa-1", "test-client", aud,
                                          exp_in=-60)), 401, "invalid_client", "expired")
    rejected("exp too far", c.token(assertion(keys["rsa"], "RS384", "rsa-1", "test-client", aud,
                                              exp_in=900)), 401, "invalid_client", "5 minutes")
    rejected("sub != iss", c.token(assertion(keys["rsa"], "RS384", "rsa-1", "test-client", aud,
                                             sub="x")), 401, "invalid_client", "sub")
    rejected("RS256 alg", c.token(jwt.encode({"iss": "test-client"}, keys["rsa"], "RS256")),
             401, "invalid_client", "alg")
    rejected("jti too long", c.token(assertion(keys["rsa"], "RS384", "rsa-1", "test-client", aud,
                                               jti="x" * 152)), 401, "invalid_client", "151")
    a1 = assertion(keys["rsa"], "RS384", "rsa-1", "test-client", aud, jti="fixed-jti-1")
    st1 = c.token(a1)[0]
    rejected("jti replay", c.token(a1), 401, "invalid_client", "jti already used")
    check("first use of jti accepted", st1 == 200)
    rejected("bad grant_type", c.token("x", extra={"grant_type": "password"}),
             400, "unsupported_grant_type", "client_credentials")
    rejected("bad assertion type", c.token("x", extra={"client_assertion_type": "foo"}),
             400, "invalid_request", "client_assertion_type")
    rejected("missing assertion", c.token(""), 400, "invalid_request", "client_assertion")
    rejected("scope not allowed", c.token(
        assertion(keys["rsa"], "RS384", "rsa-1", "scoped-client", aud),
        scope="system/Patient.read system/Observation.read"), 400, "invalid_scope", "Observation")
    st, _, tok = c.token(assertion(keys["rsa"], "RS384", "rsa-1", "scoped-client", aud),
                         scope="system/Patient.read")
    check("allowed scope", st == 200)

    # bearer enforcement
    st, hd, body = c.req("GET", "/api/FHIR/STU3/Patient/" + CAMILA)
    check("no token -> 401", st == 401 and body == b"" and 'error="invalid_token"'
          in hd.get("WWW-Authenticate", ""), (st, hd))
    st, hd, body = c.req("GET", "/api/FHIR/STU3/Patient/" + CAMILA,
                         headers={"Authorization": "Bearer not-a-token"})
    check("bad token -> 401", st == 401)
    auth = {"Authorization": "Bearer " + rs_token, "Accept": "application/json+fhir"}

    def get(path, version="STU3"):
        st, hd, body = c.req("GET", "/api/FHIR/%s/%s" % (version, path), headers=auth)
        try:
            doc = json.loads(body) if body else None
        except ValueError:
            doc = body.decode()
        return st, hd, doc

    def ids(doc, rt="Patient"):
        return [e["resource"]["id"] for e in doc.get("entry", [])
                if e["search"]["mode"] == "match" and e["resource"]["resourceType"] == rt]

    def outcomes(doc):
        return [i["details"]["coding"][0]["code"] for e in doc.get("entry", [])
                if e["search"]["mode"] == "outcome" for i in e["resource"]["issue"]]

    all_ids = ["erXuFYUfucBZaryVksYEcMg3", "eq081-VQEgP8drUUqCWzHfw3", "eAB3mDIBBcyUKviyzrxsnAw3",
               "egqBHVfQlt4Bw3XGXoxVxHg3", "eIXesllypH3M9tAA5WdJftQ3", "e0w0LEDCYtfckT6N.CkJKCw3",
               "eh2xYHuzl9nkSFVvV3osUHg3", "e1LopesFuzzyMatch0000003"]
    for pid in all_ids:
        st, hd, doc = get("Patient/" + pid)
        check("read Patient/%s" % pid, st == 200 and doc["id"] == pid
              and hd.get("Content-Type") == "application/json+fhir; charset=utf-8")
        st, hd, doc = get("Patient?_count=100&_id=" + pid)  # reordered on purpose
        check("search _id=%s" % pid, st == 200 and ids(doc) == [pid] and outcomes(doc) == ["4119"]
              and doc["total"] == 1)
    st, _, doc = get("Patient/e0w0LEDCYtfckT6N.CkJKCw3")
    check("Warren partial birthDate", doc["birthDate"] == "1955")

    searches = [
        ("Patient?telecom=469-555-5555&birthdate=1987-09-12&gender=female&_count=100", [CAMILA]),
        ("Patient?family=Lopez&_count=100", [CAMILA, "e1LopesFuzzyMatch0000003"]),
        ("Patient?given=Camila&_count=100", [CAMILA, "e1LopesFuzzyMatch0000003"]),
        ("Patient?birthdate=1973-06-03&_count=100", [DERRICK]),
        ("Patient?gender=male&birthdate=1973-06-03&_count=100", [DERRICK]),
        ("Patient?telecom=785-555-5555&_count=100", [DERRICK]),
        ("Patient?telecom=camila.lopez%40example.com&_count=100", [CAMILA]),
        ("Patient?telecom=camila.lopez@example.com&_count=100", [CAMILA]),
        ("Patient?address-postalcode=75043&_count=100", [CAMILA, "e1LopesFuzzyMatch0000003"]),
        ("Patient?identifier=urn:oid:1.2.840.114350.1.13.0.1.7.5.737384.14|203713&_count=100",
         [CAMILA]),
        ("Patient?identifier=urn%3Aoid%3A1.2.840.114350.1.13.0.1.7.5.737384.14%7C203713&_count=100",
         [CAMILA]),
    ]
    for path, want in searches:
        st, _, doc = get(path)
        check("search %s" % path, st == 200 and ids(doc) == want, (st, doc if st != 200 else ids(doc)))

    st, _, doc = get("Patient?_count=100")
    check("Patient without criteria -> 400 59159", st == 400
          and doc["issue"][0]["details"]["coding"][0]["code"] == "59159"
          and doc["issue"][0]["code"] == "required")

    # paging with rewritten next links
    prefix = "https://%s/api/FHIR/STU3/" % host
    path, pages = "Patient?address-state=TX&_count=100", []
    while path:
        st, _, doc = get(path)
        pages.append((st, ids(doc), outcomes(doc)))
        nxt = [l["url"] for l in doc["link"] if l["relation"] == "next"]
        selfl = [l["url"] for l in doc["link"] if l["relation"] == "self"][0]
        check("self link rewritten", selfl.startswith(prefix), selfl)
        path = None
        if nxt:
            check("next link rewritten to %s" % prefix, nxt[0].startswith(prefix), nxt[0])
            path = nxt[0][len(prefix):]
    check("TX paging 2+2+1", [len(p[1]) for p in pages] == [2, 2, 1] and len(
        set(sum((p[1] for p in pages), []))) == 5 and pages[2][2] == ["4119"], pages)
    st, _, doc = get("Patient?address-city=GARLAND&_count=100")
    nxt = [l["url"] for l in doc["link"] if l["relation"] == "next"]
    check("foreign next link not rewritten", ids(doc) == [CAMILA] and nxt ==
          ["https://evil.example.net/api/FHIR/STU3/Patient?sessionID=12-EVIL"], nxt)
    check("fullUrl rewritten", doc["entry"][0]["fullUrl"] == prefix + "Patient/" + CAMILA)

    # medication statements
    st, _, doc = get("MedicationStatement?patient=%s&_count=100" % CAMILA)
    ms = [e["resource"] for e in doc["entry"] if e["search"]["mode"] == "match"]
    check("Camila 3 statements", st == 200 and len(ms) == 3 and outcomes(doc) == ["4119"]
          and ms[0]["medicationReference"]["display"] == "Lisinopril 10 MG Oral Tablet"
          and ms[1]["effectiveDateTime"] == "2020-01-15"
          and "text" not in ms[2]["medicationCodeableConcept"] and ms[2]["status"] == "completed")
    path, pages = "MedicationStatement?patient=%s&_count=100" % DERRICK, []
    while path:
        st, _, doc = get(path)
        pages.append((len(ids(doc, "MedicationStatement")), outcomes(doc)))
        nxt = [l["url"] for l in doc["link"] if l["relation"] == "next"]
        path = nxt[0][len(prefix):] if nxt else None
    check("Derrick 2+2+1 with 4119 on pages 1 and 3",
          pages == [(2, ["4119"]), (0 + 2, []), (1, ["4119"])], pages)
    st, _, doc = get("MedicationStatement?patient=eAB3mDIBBcyUKviyzrxsnAw3&_count=100")
    check("Desiree no results 4101", st == 200 and doc["total"] == 0 and outcomes(doc) == ["4101"])
    st, _, doc = get("MedicationStatement?patient=e0w0LEDCYtfckT6N.CkJKCw3&_count=100")
    check("Warren partial dates", st == 200 and doc["entry"][0]["resource"]["effectiveDateTime"]
          == "2019-03" and doc["entry"][0]["resource"]["dateAsserted"] == "2019")
    st, _, doc = get("MedicationStatement?patient=eh2xYHuzl9nkSFVvV3osUHg3&_count=100")
    check("Olivia 403 4118", st == 403 and doc["issue"][0]["details"]["coding"][0]["code"] == "4118")
    st, _, doc = get("MedicationStatement?patient=egqBHVfQlt4Bw3XGXoxVxHg3&_count=100")
    check("Elijah suppressed 59204", st == 200 and len(ids(doc, "MedicationStatement")) == 1
          and outcomes(doc) == ["59204"])
    st, _, doc = get("MedicationStatement?patient=eIXesllypH3M9tAA5WdJftQ3&status=active%2Con-hold"
                     "%2Ccompleted%2Cstopped&_count=100")
    check("Linda status search", st == 200 and sorted(e["resource"]["status"] for e in doc["entry"]
          if e["search"]["mode"] == "match") == ["active", "stopped"])

    # errors
    st, hd, doc = get("Coverage?patient=%s&_count=100" % CAMILA)
    check("Coverage 403 empty + insufficient_scope", st == 403 and doc is None
          and "insufficient_scope" in hd.get("WWW-Authenticate", ""))
    st, _, doc = get("Observation?patient=%s&_count=100" % CAMILA)
    check("Observation 400 59159", st == 400 and doc["issue"][0]["details"]["coding"][0]["code"]
          == "59159")
    st, hd, doc = get("Practitioner?_count=100")
    check("Practitioner 404 HTML", st == 404 and hd.get("Content-Type") == "text/html"
          and "<html" in doc)
    st, _, doc = get("Encounter?patient=Nobody&_count=100")
    check("unmatched -> 404 OperationOutcome", st == 404 and doc["issue"][0]["code"] == "not-found"
          and "no recorded response for GET Encounter?patient=Nobody" in doc["issue"][0]["diagnostics"])

    # R4
    st, _, doc = get("Patient/" + CAMILA, "R4")
    check("R4 read Camila", st == 200 and doc["id"] == CAMILA)
    st, _, doc = get("Patient/" + DERRICK, "R4")
    check("R4 read Derrick", st == 200 and doc["id"] == DERRICK)
    st, _, doc = get("Patient?phone=469-555-5555&gender=female&birthdate=1987-09-12&_count=100", "R4")
    check("R4 IVR search", st == 200 and ids(doc) == [CAMILA])
    st, _, doc = get("Patient?_id=%s&_count=100" % CAMILA, "R4")
    check("R4 _id search", st == 200 and ids(doc) == [CAMILA])
    if recording:
        st, _, doc = get("Patient/eAB3mDIBBcyUKviyzrxsnAw3", "R4")
        check("recording: R4 Patient/eAB3mDIBBcyUKviyzrxsnAw3", st == 200
              and doc["name"][0]["family"] == "Powell")
        st, _, doc = get("Observation?category=vital-signs&patient=eAB3mDIBBcyUKviyzrxsnAw3&_count=50",
                         "R4")
        nxt = [l["url"] for l in doc["link"] if l["relation"] == "next"]
        check("recording: next link rewritten", nxt and nxt[0].startswith(
            "https://%s/api/FHIR/R4/Observation?sessionID=" % host), nxt)

    # ctl.py
    ctl = lambda *a: sh(PY, os.path.join(HERE, "ctl.py"), *a, env=env)  # noqa: E731
    # the Epic-like registry behind the fixtures: Groups, Epic's Patient criteria, 414
    for version in ("STU3", "R4"):
        st, _, grp = get("Group/registry-all", version)
        members = [m["entity"]["reference"] for m in (grp or {}).get("member", [])]
        check("%s registry Group read" % version, st == 200 and len(members) == 600
              and all(m.startswith("Patient/") for m in members), (st, len(members)))
        st, _, doc = get("Patient?_id=%s&_count=100" % ",".join(
            m.split("/")[1] for m in members[100:110]), version)
        check("%s registry patients by _id" % version,
              st == 200 and sorted(ids(doc)) == sorted(m.split("/")[1] for m in members[100:110]))
        st, _, doc = get("Group/registry-empty", version)
        check("%s empty Group" % version, st == 200 and "member" not in doc)
        st, _, doc = get("Group/registry-mixed", version)
        kinds = [m["entity"].get("reference", "-").split("/")[0] for m in doc["member"]]
        check("%s mixed Group" % version,
              kinds == ["Patient", "Practitioner", "Device", "Patient", "Patient", "-"], kinds)
        st, _, doc = get("Group/no-such-group", version)
        check("%s unknown Group -> 404" % version, st == 404)
        for q in ("Patient?active=true&_count=100", "Patient?_count=50", "Patient"):
            st, _, doc = get(q, version)
            check("%s %s -> 400 59159" % (version, q), st == 400
                  and doc["issue"][0]["details"]["coding"][0]["code"] == "59159", (st, doc))
        st, _, doc = get("Patient?family=Zz&gender=female", version)
        check("%s Patient with criteria" % version, st == 200 and ids(doc) == [])
        st, _, doc = get("Patient?family=Nobody&_count=100", version)
        check("%s registry answers unrecorded searches" % version, st == 200 and ids(doc) == [])
    long_ids = ",".join(["e" + "x" * 23] * 200)
    st, _, doc = get("Patient?_id=" + long_ids)
    check("URL over 2048 bytes -> 414", st == 414 and doc["issue"][0]["code"] == "too-long",
          (st, doc))
    st, _, doc = get("Patient?_id=" + ",".join([CAMILA] * 70))
    check("URL under 2048 bytes -> 200", st == 200 and ids(doc) == [CAMILA], st)
    check("ctl max-url-length", ctl("max-url-length", "10000").returncode == 0)
    st, _, doc = get("Patient?_id=" + long_ids)
    check("URL under a raised limit -> 200", st == 200, st)
    check("ctl longest-url", int(ctl("longest-url").stdout) > 4800, ctl("longest-url").stdout)
    ctl("max-url-length", "2048")
    r = ctl("reset")
    check("ctl reset", r.returncode == 0 and ctl("log").stdout == "")
    get("Patient?identifier=urn%3Aoid%3A1.2.840.114350.1.13.0.1.7.5.737384.14%7C203713&_count=100")
    get("Patient/" + CAMILA)
    c.req("GET", "/api/FHIR/STU3/metadata")
    c.token(assertion(keys["rsa"], "RS384", "rsa-1", "test-client", aud))
    r = ctl("log")
    want = ("fhir GET Patient?identifier=urn:oid:1.2.840.114350.1.13.0.1.7.5.737384.14|203713"
            "&_count=100 200\n"
            "fhir GET Patient/erXuFYUfucBZaryVksYEcMg3 200\n"
            "metadata GET metadata 200\n"
            "token POST oauth2/token 200\n")
    check("ctl log", r.stdout == want, repr(r.stdout))
    check("ctl count fhir", ctl("count", "fhir").stdout == "2\n")
    check("ctl count fhir Patient", ctl("count", "fhir", "Patient").stdout == "2\n")
    check("ctl count fhir Pat", ctl("count", "fhir", "Pat").stdout == "0\n")
    check("ctl count token", ctl("count", "token").stdout == "1\n")
    raw = json.loads(c.req("GET", "/_sandbox/log")[2])
    secret_free = all("access_token" not in json.dumps(e) and rs_token not in json.dumps(e)
                      for e in raw)
    check("log entries carry alg/kid/client_id, no secrets",
          raw[-1]["alg"] == "RS384" and raw[-1]["kid"] == "rsa-1"
          and raw[-1]["client_id"] == "test-client" and secret_free, raw[-1])
    check("ctl revoke", ctl("revoke").returncode == 0)
    st, hd, _ = get("Patient/" + CAMILA)
    check("revoked token -> 401", st == 401 and "invalid_token" in hd.get("WWW-Authenticate", ""))
    check("ctl token-lifetime", ctl("token-lifetime", "1").returncode == 0)
    st, _, tok = c.token(assertion(keys["rsa"], "RS384", "rsa-1", "test-client", aud))
    check("short token lifetime", st == 200 and tok["expires_in"] == 1)
    auth["Authorization"] = "Bearer " + tok["access_token"]
    st1 = get("Patient/" + CAMILA)[0]
    time.sleep(1.2)
    st2 = get("Patient/" + CAMILA)[0]
    check("token expires", st1 == 200 and st2 == 401, (st1, st2))
    ctl("token-lifetime", "300")
    log = open(d + "/sandbox.log").read()
    check("no secrets in sandbox.log", rs_token not in log and a1 not in log
          and a1.split(".")[2] not in log)
    r = sh(PY, os.path.join(HERE, "ctl.py"), "log",
           env=dict(env, EPIC_SANDBOX_DIR="/nonexistent"))
    check("ctl fails when unreachable", r.returncode != 0 and r.stderr)


if __name__ == "__main__":
    main()
