#!/usr/bin/python3
"""Test of the sandbox's fault injection (POST /_sandbox/fault, faults-clear, revoke-after)
at the wire level: starts the sandbox (repo fixtures + a tiny STU3 dataset) with a
throwaway RS384 client, then drives every fault kind with http.client, raw TLS sockets and
curl, and checks status lines, headers, bodies, resets, hangs, drips, skip/times/match
semantics, token-endpoint faults, revoke-after and the ctl.py commands.

Usage: /usr/bin/python3 test/sandbox/test_faults.py [--keep]
Prints one line per check and "N passed, N failed" last; exit status 1 on failure.
"""

import argparse
import base64
import email.utils
import http.client
import json
import os
import re
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import uuid

import jwt

HERE = os.path.dirname(os.path.abspath(__file__))
PY = "/usr/bin/python3"
CAMILA = "erXuFYUfucBZaryVksYEcMg3"
S1 = "Patient?family=Lopez&_count=100"                          # STU3 search, 2 patients
MS = "MedicationStatement?patient=%s&_count=100" % CAMILA       # STU3 search, 3 statements
TX = "Patient?address-state=TX&_count=100"                      # STU3, 3 pages
READ = "Patient/" + CAMILA
FAULT_JSON = "application/fhir+json; charset=utf-8"
HTTP_DATE = re.compile(r"^(Mon|Tue|Wed|Thu|Fri|Sat|Sun), \d\d (Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|"
                       r"Sep|Oct|Nov|Dec) \d{4} \d\d:\d\d:\d\d GMT$")
passed = failed = 0


def check(name, cond, detail=""):
    global passed, failed
    if cond:
        passed += 1
        print("ok   %s" % name)
    else:
        failed += 1
        print("FAIL %s %s" % (name, detail))
    sys.stdout.flush()


def sh(*args, env=None):
    return subprocess.run(list(args), capture_output=True, text=True, env=env)


class Sandbox:
    def __init__(self, d, port):
        self.d, self.port = d, port
        self.ctx = ssl.create_default_context(cafile=os.path.join(d, "ca.crt"))
        self.token = None
        self.env = dict(os.environ, EPIC_SANDBOX_DIR=d)

    def conn(self, timeout=10):
        return http.client.HTTPSConnection("localhost", self.port, context=self.ctx,
                                           timeout=timeout)

    def req(self, method, path, body=None, headers=None, conn=None, timeout=10):
        """One request; returns (status, headers dict, body). Raises on wire errors."""
        own = conn is None
        c = conn or self.conn(timeout)
        try:
            c.request(method, path, body=body, headers=headers or {})
            r = c.getresponse()
            data = r.read()
            return r.status, dict(r.getheaders()), data
        finally:
            if own:
                c.close()

    def auth(self):
        return {"Authorization": "Bearer " + self.token, "Accept": "application/json+fhir"}

    def get(self, rel, base="/api/FHIR/STU3/", **kw):
        return self.req("GET", base + rel, headers=self.auth(), **kw)

    def control(self, method, name, doc=None):
        body = json.dumps(doc).encode() if doc is not None else (b"" if method == "POST" else None)
        st, _, data = self.req(method, "/_sandbox/" + name, body=body,
                               headers={"Content-Type": "application/json"} if doc else {})
        return st, json.loads(data)

    def fault(self, **doc):
        st, got = self.control("POST", "fault", doc)
        if st != 200:
            raise RuntimeError("fault rejected: %s" % got)
        return got["fault"]

    def clear(self):
        return self.control("POST", "faults-clear")[1]

    def log(self):
        return self.control("GET", "log")[1]

    def reset(self):
        self.control("POST", "reset")

    def ctl(self, *args):
        return sh(PY, os.path.join(HERE, "ctl.py"), *args, env=self.env)

    def raw(self, rel, timeout=10, base="/api/FHIR/STU3/", auth=True):
        """A TLSRaw connection on which GET base+rel was sent (Connection: close)."""
        s = TLSRaw(self.ctx, self.port, timeout)
        hdr = "GET %s%s HTTP/1.1\r\nHost: localhost:%d\r\n" % (base, rel, self.port)
        if auth:
            hdr += "Authorization: Bearer %s\r\n" % self.token
        s.sendall((hdr + "Connection: close\r\n\r\n").encode())
        return s

    def new_token(self, key, aud):
        form = {"grant_type": "client_credentials",
                "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
                "client_assertion": assertion(key, aud)}
        return self.req("POST", "/oauth2/token", urllib.parse.urlencode(form),
                        {"Content-Type": "application/x-www-form-urlencoded"})


def assertion(key_pem, aud):
    now = int(time.time())
    return jwt.encode({"iss": "test-client", "sub": "test-client", "aud": aud, "exp": now + 240,
                       "jti": str(uuid.uuid4())}, key_pem, algorithm="RS384",
                      headers={"typ": "JWT", "kid": "rsa-1"})


class TLSRaw:
    """TLS over a plain socket through ssl.MemoryBIO, so that the kernel's errors reach
    the caller as they are: ssl.SSLSocket reports a TCP RST as a (suppressed) EOF with
    OpenSSL 3, while here a reset surfaces as ConnectionResetError from socket.recv."""

    def __init__(self, ctx, port, timeout):
        self.sock = socket.create_connection(("localhost", port), timeout=timeout)
        self.inc, self.out = ssl.MemoryBIO(), ssl.MemoryBIO()
        self.obj = ctx.wrap_bio(self.inc, self.out, server_hostname="localhost")
        while True:
            try:
                self.obj.do_handshake()
                break
            except ssl.SSLWantReadError:
                self._flush()
                self._fill()
        self._flush()

    def _flush(self):
        data = self.out.read()
        if data:
            self.sock.sendall(data)

    def _fill(self):
        data = self.sock.recv(65536)
        if data:
            self.inc.write(data)
        else:
            self.inc.write_eof()

    def settimeout(self, t):
        self.sock.settimeout(t)

    def sendall(self, data):
        self.obj.write(data)
        self._flush()

    def recv(self, n):
        """Decrypted bytes; b"" after the peer's close_notify; raises ssl.SSLEOFError on
        a FIN without close_notify and ConnectionResetError on a RST."""
        while True:
            try:
                return self.obj.read(n)
            except ssl.SSLWantReadError:
                self._flush()
                self._fill()
            except ssl.SSLZeroReturnError:
                return b""

    def close(self):
        self.sock.close()


def read_until_error(s):
    """Read a socket until EOF or an exception; returns (bytes, exception or None)."""
    buf = b""
    while True:
        try:
            chunk = s.recv(65536)
        except Exception as e:  # noqa: BLE001 - the exception is the result
            return buf, e
        if not chunk:
            return buf, None
        buf += chunk


def split_response(data):
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in lines[1:]:
        k, _, v = line.partition(":")
        headers[k.strip().lower()] = v.strip()
    return lines[0], headers, body


def max_depth(data):
    """Maximum nesting depth of a JSON text (iterative; strings skipped)."""
    depth = best = 0
    i, n = 0, len(data)
    while i < n:
        c = data[i]
        if c == 0x22:  # '"'
            i += 1
            while data[i] != 0x22:
                i += 2 if data[i] == 0x5C else 1
        elif c in (0x7B, 0x5B):
            depth += 1
            best = max(best, depth)
        elif c in (0x7D, 0x5D):
            depth -= 1
        i += 1
    return best if depth == 0 else -1


def wait_for(pred, timeout=3.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = pred()
        if got:
            return got
        time.sleep(0.05)
    return pred()


def faulted(sb, kind=None):
    return [e for e in sb.log() if e.get("fault") and (kind is None or e["fault"] == kind)]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--keep", action="store_true", help="leave the state dir in place")
    a = ap.parse_args()
    t0 = time.time()
    d = tempfile.mkdtemp(prefix="epic_faults_")
    os.chmod(d, 0o755)
    subprocess.run(["openssl", "genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048",
                    "-out", d + "/rsa.key"], check=True, stderr=subprocess.DEVNULL)
    subprocess.run(["openssl", "pkey", "-in", d + "/rsa.key", "-pubout", "-out", d + "/rsa.pub"],
                   check=True)
    with open(d + "/clients.json", "w") as f:
        json.dump({"clients": [{"client_id": "test-client", "keys": [
            {"kid": "rsa-1", "alg": "RS384", "public_key_file": d + "/rsa.pub"}]}]}, f)
    os.mkdir(d + "/ds")
    with open(d + "/ds/patients.json", "w") as f:
        json.dump([{"resourceType": "Patient", "id": "ds%d" % i, "gender": "female",
                    "birthDate": "1990-01-0%d" % i, "name": [{"family": "Data"}]}
                   for i in range(1, 4)], f)
    key = open(d + "/rsa.key").read()
    r = sh(os.path.join(HERE, "start.sh"), d, "--dataset", "STU3=" + d + "/ds")
    if r.returncode != 0:
        print(r.stderr)
        sys.exit(1)
    port = int(r.stdout.strip())
    print("sandbox on port %d, state dir %s" % (port, d))
    sb = Sandbox(d, port)
    stopped = False
    try:
        aud = "https://localhost:%d/oauth2/token" % port
        st, _, body = sb.new_token(key, aud)
        if st != 200:
            raise SystemExit("no token: %s %s" % (st, body))
        sb.token = json.loads(body)["access_token"]
        run_checks(sb, key, aud)
        stopped = check_shutdown_with_hang(sb)
    finally:
        if not stopped:
            sh(os.path.join(HERE, "stop.sh"), d)
    check("whole test under 60 s", time.time() - t0 < 60, "%.1f s" % (time.time() - t0))
    print("%d passed, %d failed" % (passed, failed))
    if not a.keep:
        subprocess.run(["rm", "-rf", d])
    sys.exit(1 if failed else 0)


def run_checks(sb, key, aud):
    # real responses, for comparisons
    st, hd, real_s1 = sb.get(S1)
    check("baseline S1 200", st == 200 and len(json.loads(real_s1)["entry"]) >= 2, st)
    real_s1_entries = json.loads(real_s1)["entry"]
    st, _, real_ms = sb.get(MS)
    check("baseline MS 200", st == 200, st)

    check_status(sb)
    check_semantics(sb)
    check_close(sb)
    check_reset(sb, real_s1)
    check_hang(sb)
    check_drip(sb, real_s1)
    check_body(sb, real_s1, real_s1_entries, real_ms)
    check_token(sb, key, aud)
    check_revoke_after(sb, key, aud)
    check_ctl(sb)
    check_validation(sb)


# --------------------------------------------------------------------------------------

def check_status(sb):
    sb.clear()
    sb.reset()
    c = sb.conn()
    sb.fault(match="Patient?", kind="status", status=503, headers={"Retry-After": "1"},
             body={"resourceType": "OperationOutcome", "issue": [{"severity": "error",
                                                                  "code": "transient"}]})
    st, hd, body = sb.get(S1, conn=c)
    check("status 503 + Retry-After: 1 + JSON body", st == 503 and hd.get("Retry-After") == "1"
          and hd.get("Content-Type") == FAULT_JSON
          and json.loads(body)["issue"][0]["code"] == "transient", (st, hd, body))
    st, hd, body = sb.get(S1, conn=c)
    check("times defaults to 1; keep-alive connection still usable", st == 200, st)
    c.close()

    sb.fault(match="Patient?", kind="status", status=429, headers={"Retry-After": "date+30"})
    st, hd, body = sb.get(S1)
    ra = hd.get("Retry-After", "")
    delta = (email.utils.parsedate_to_datetime(ra).timestamp() - time.time()
             if HTTP_DATE.match(ra) else None)
    check("429 Retry-After date+30 is an IMF-fixdate ~30 s ahead",
          st == 429 and delta is not None and 27 <= delta <= 31 and body == b""
          and hd.get("Content-Length") == "0", (st, ra, delta))

    sb.fault(match="Patient?", kind="status", status=500, body="<html><body>boom</body></html>",
             content_type="text/html")
    st, hd, body = sb.get(S1)
    check("500 with HTML string body as-is", st == 500 and hd.get("Content-Type") == "text/html"
          and body == b"<html><body>boom</body></html>", (st, hd, body))
    sb.fault(match="Patient?", kind="status", status=502, body="plain")
    st, hd, body = sb.get(S1)
    check("502 string body defaults to text/plain", st == 502 and body == b"plain"
          and hd.get("Content-Type", "").startswith("text/plain"), (st, hd))
    codes = [400, 401, 403, 404, 504]
    for code in codes:
        sb.fault(match="fhir", kind="status", status=code)
    got = [sb.get(S1)[0] for _ in codes]
    check("queued faults apply in order (400 401 403 404 504)", got == codes, got)
    check("then normal again", sb.get(S1)[0] == 200)
    lines = [(e["status"], e.get("fault")) for e in sb.log()]
    check("faulted requests are logged with their status and fault=status",
          lines[:2] == [(503, "status"), (200, None)] and len(lines) == 2 + 1 + 2 + 5 + 1
          and all(f == "status" for s, f in lines if s != 200), lines)


def check_semantics(sb):
    sb.clear()
    sb.reset()
    sb.fault(match="Patient?", kind="status", status=500, skip=1, times=2)
    got = []
    for _ in range(4):
        got.append(sb.get(S1)[0])
        got.append(sb.get(MS)[0])
    check("skip=1 times=2 on Patient?; MedicationStatement untouched",
          got == [200, 200, 500, 200, 500, 200, 200, 200], got)
    check("exhausted fault leaves the queue", sb.control("GET", "faults")[1]["faults"] == [])

    sb.fault(match="MedicationStatement?", kind="status", status=502, times=-1)
    got = [sb.get(MS)[0] for _ in range(3)]
    sb.reset()
    got.append(sb.get(MS)[0])
    check("times=-1 persists, also across reset", got == [502] * 4, got)
    check("reset cleared the log but not the fault",
          [(e["status"], e.get("fault")) for e in sb.log()] == [(502, "status")])
    res = sb.clear()
    check("faults-clear reports the cleared fault", res.get("cleared") == 1, res)
    check("after faults-clear: 200", sb.get(MS)[0] == 200)

    sb.fault(match="fhir", kind="status", status=503, times=3)
    got = [sb.get("metadata")[0],
           sb.get(".well-known/smart-configuration")[0],
           sb.get(READ)[0],
           sb.get("Patient?family=Data", base="/dataset/STU3/")[0],
           sb.get(READ, base="/api/FHIR/R4/")[0],
           sb.get(READ)[0]]
    check('match "fhir": not metadata/discovery; reads, dataset and R4 searches yes',
          got == [200, 200, 503, 503, 503, 200], got)

    sb.fault(match="metadata", kind="status", status=500)
    got = [sb.get(READ)[0], sb.get("metadata")[0], sb.get("metadata")[0]]
    check("path prefix can target metadata", got == [200, 500, 200], got)

    sb.fault(match="Patient?identifier=urn:oid:1.2.840", kind="status", status=418)
    enc = "Patient?identifier=urn%3Aoid%3A1.2.840.114350.1.13.0.1.7.5.737384.14%7C203713&_count=100"
    got = [sb.get(S1)[0], sb.get(enc)[0], sb.get(enc)[0]]
    check("prefix matched against the URL-decoded path too", got == [200, 418, 200], got)

    sb.fault(match="Patient?", kind="status", status=500)
    sb.fault(match="Patient?", kind="status", status=503, skip=1)
    got = [sb.get(S1)[0] for _ in range(3)]
    check("two faults: each counts matching requests since queued", got == [500, 503, 200], got)

    sb.fault(match="Patient?", kind="status", status=500, times=-1)
    sb.fault(match="fhir", kind="status", status=503, skip=1, times=-1)
    got = [sb.get(S1)[0], sb.get(MS)[0], sb.get(S1)[0], sb.get(MS)[0]]
    check("skip counts requests answered by other faults", got == [500, 503, 500, 503], got)
    res = sb.clear()
    check("faults-clear cleared 2", res.get("cleared") == 2, res)


def check_close(sb):
    sb.clear()
    sb.reset()
    sb.fault(match="Patient?", kind="close")
    try:
        sb.get(S1)
        err = None
    except Exception as e:  # noqa: BLE001
        err = e
    check("close: http.client sees RemoteDisconnected",
          isinstance(err, http.client.RemoteDisconnected), repr(err))
    sb.fault(match="Patient?", kind="close")
    r = sh("curl", "-sS", "-o", "/dev/null", "-w", "%{http_code}", "--cacert", sb.d + "/ca.crt",
           "-H", "Authorization: Bearer " + sb.token,
           "https://localhost:%d/api/FHIR/STU3/%s" % (sb.port, S1))
    check("close: curl says Empty reply from server (exit 52)",
          r.returncode == 52 and r.stdout == "000" and "Empty reply" in r.stderr,
          (r.returncode, r.stdout, r.stderr))
    sb.fault(match="Patient?", kind="close")
    s = sb.raw(S1)
    data, err = read_until_error(s)
    s.close()
    check("close: no byte of a response, TLS close_notify then EOF", data == b"" and err is None,
          (data, err))
    lg = sb.log()
    check("close logged with status 0 fault=close",
          [(e["status"], e.get("fault")) for e in lg] == [(0, "close")] * 3, lg)
    check("next request fine", sb.get(S1)[0] == 200)


def check_reset(sb, real):
    sb.clear()
    sb.reset()
    sb.fault(match="Patient?", kind="reset_mid_body")
    s = sb.raw(S1)
    data, err = read_until_error(s)
    s.close()
    line, hd, body = split_response(data)
    check("reset_mid_body: ConnectionResetError mid-read", isinstance(err, ConnectionResetError),
          repr(err))
    check("reset_mid_body: 200 + full Content-Length + first half of the real body",
          line.startswith("HTTP/1.1 200") and hd.get("content-length") == str(len(real))
          and body == real[:len(real) // 2], (line, hd, len(body), len(real)))
    sb.fault(match="Patient?", kind="reset_mid_body")
    c = sb.conn()
    c.request("GET", "/api/FHIR/STU3/" + S1, headers=sb.auth())
    r = c.getresponse()
    got = b""
    err = None
    try:
        while True:
            chunk = r.read(256)
            if not chunk:
                break
            got += chunk
    except Exception as e:  # noqa: BLE001
        err = e
    c.close()
    # ssl.SSLSocket (OpenSSL 3) reports the RST as a ragged EOF, so http.client only sees
    # the body end short of its Content-Length; TLSRaw above shows the reset itself.
    check("reset_mid_body via http.client: 200, body stops at half the Content-Length",
          r.status == 200 and r.getheader("Content-Length") == str(len(real))
          and got == real[:len(real) // 2]
          and (err is None or isinstance(err, (ConnectionError, ssl.SSLError,
                                               http.client.IncompleteRead))),
          (r.status, repr(err), len(got)))
    lg = sb.log()
    sb.fault(match="Patient?", kind="reset_mid_body")
    r = sh("curl", "-sS", "-o", "/dev/null", "--cacert", sb.d + "/ca.crt",
           "-H", "Authorization: Bearer " + sb.token,
           "https://localhost:%d/api/FHIR/STU3/%s" % (sb.port, S1))
    check("reset_mid_body: curl says Connection reset by peer (exit 56)",
          r.returncode == 56 and "reset by peer" in r.stderr, (r.returncode, r.stderr))
    lg = sb.log()
    check("reset_mid_body logged with status 200",
          [(e["status"], e.get("fault")) for e in lg] == [(200, "reset_mid_body")] * 3, lg)


def check_hang(sb):
    sb.clear()
    sb.reset()
    sb.fault(match="Patient?", kind="hang")
    out = {}

    def hung_client():
        t = time.monotonic()
        try:
            sb.get(S1, timeout=1)
            out["err"] = None
        except Exception as e:  # noqa: BLE001
            out["err"] = e
        out["elapsed"] = time.monotonic() - t

    th = threading.Thread(target=hung_client)
    th.start()
    wait_for(lambda: faulted(sb, "hang"), 2)
    t = time.monotonic()
    st = sb.get(S1)[0]
    other = time.monotonic() - t
    still_hanging = th.is_alive()
    th.join(5)
    check("hang: another client is served meanwhile", st == 200 and other < 0.8
          and still_hanging, (st, other, still_hanging))
    check("hang: client times out after ~1 s", isinstance(out.get("err"), (socket.timeout,
                                                                           TimeoutError))
          and 0.9 <= out["elapsed"] < 2.0, out)
    end = wait_for(lambda: [e.get("fault_end") for e in faulted(sb, "hang")
                            if e.get("fault_end")], 2)
    check("hang: server notices the client gave up", end == ["client_gone"], end)
    check("hang logged with status 0", [e["status"] for e in faulted(sb, "hang")] == [0])

    sb.fault(match="fhir", kind="hang")
    out.clear()

    def released_client():
        t = time.monotonic()
        try:
            sb.get(READ, timeout=20)
            out["err"] = None
        except Exception as e:  # noqa: BLE001
            out["err"] = e
        out["elapsed"] = time.monotonic() - t

    th = threading.Thread(target=released_client)
    th.start()
    wait_for(lambda: len(faulted(sb, "hang")) == 2, 2)
    time.sleep(0.3)
    res = sb.clear()
    th.join(5)
    check("faults-clear releases a hanging connection (closed without response)",
          res.get("released") == 1 and isinstance(out.get("err"), http.client.RemoteDisconnected)
          and out["elapsed"] < 1.5, (res, out))


def check_drip(sb, real):
    sb.clear()
    sb.reset()
    sb.fault(match="Patient?", kind="drip", interval_ms=100)
    s = sb.raw(S1)
    t = time.monotonic()
    data = b""
    while b"\r\n\r\n" not in data:
        data += s.recv(65536)
    head_time = time.monotonic() - t
    line, hd, body = split_response(data)
    got = len(body)
    s.settimeout(0.2)
    t = time.monotonic()
    while time.monotonic() - t < 1.0:
        try:
            chunk = s.recv(65536)
        except (socket.timeout, TimeoutError):
            continue
        if not chunk:
            break
        got += len(chunk)
        body += chunk
    check("drip: head at once with the real Content-Length",
          head_time < 0.5 and line.startswith("HTTP/1.1 200")
          and hd.get("content-length") == str(len(real)), (head_time, line, hd))
    check("drip: ~1 byte per 100 ms (7..13 bytes in 1 s)", 7 <= got <= 13
          and body == real[:len(body)], got)
    s.close()
    end = wait_for(lambda: [e.get("fault_end") for e in faulted(sb, "drip")
                            if e.get("fault_end")], 3)
    check("drip: stops when the client disconnects", end == ["client_gone"], end)

    sb.fault(match="Patient?", kind="drip", interval_ms=50, headers_too=True)
    s = sb.raw(S1)
    s.settimeout(0.2)
    data = b""
    t = time.monotonic()
    while time.monotonic() - t < 0.5:
        try:
            chunk = s.recv(65536)
        except (socket.timeout, TimeoutError):
            continue
        if not chunk:
            break
        data += chunk
    s.close()
    check("drip headers_too: even the status line is dripped (~10 bytes in 0.5 s)",
          5 <= len(data) <= 13 and b"HTTP/1.1 200 OK"[:len(data)] == data, data)

    # a short body completes, and the connection stays usable
    sb.fault(match="metadata", kind="drip", interval_ms=1)
    c = sb.conn()
    st, hd, body = sb.get("metadata", conn=c)
    ok = st == 200 and json.loads(body)["resourceType"] == "CapabilityStatement"
    check("drip with 1 ms completes a valid response; keep-alive continues",
          ok and sb.get(S1, conn=c)[0] == 200, (st, body[:60]))
    c.close()
    sb.clear()


def check_body(sb, real_s1, real_entries, real_ms):
    sb.clear()
    sb.reset()

    def once(rel=S1, base="/api/FHIR/STU3/", **fault):
        sb.fault(match="Patient?" if rel.startswith("Patient") else "fhir", kind="body", **fault)
        return sb.get(rel, base=base)

    st, hd, body = once(raw='{"resourceType": "Bundle", ')
    check("body raw: malformed JSON verbatim, 200, application/fhir+json",
          st == 200 and body == b'{"resourceType": "Bundle", '
          and hd.get("Content-Type") == FAULT_JSON, (st, hd, body))
    bad = b'{"resourceType": "Bundle", "id": "\xff\xfe\xc3"}'
    st, hd, body = once(raw_b64=base64.b64encode(bad).decode())
    check("body raw_b64: exact bytes", st == 200 and body == bad, body)

    st, hd, body = once(variant="truncated")
    check("variant truncated: first half, matching Content-Length",
          st == 200 and body == real_s1[:len(real_s1) // 2]
          and hd.get("Content-Length") == str(len(real_s1) // 2), (st, len(body)))
    st, hd, body = once(variant="not_bundle")
    check("variant not_bundle: a Patient", st == 200
          and json.loads(body)["resourceType"] == "Patient")
    st, hd, body = once(variant="batch_bundle")
    doc = json.loads(body)
    check("variant batch_bundle: type batch, real entries", doc["resourceType"] == "Bundle"
          and doc["type"] == "batch" and doc["entry"] == real_entries)
    st, hd, body = once(variant="wrong_type_entry")
    doc = json.loads(body)
    check("variant wrong_type_entry: searchset, first entry an Observation",
          doc["type"] == "searchset" and doc["entry"][0]["resource"]["resourceType"]
          == "Observation" and doc["entry"][1:] == real_entries)
    st, hd, body = once(variant="wrong_value_type")
    pats = [e["resource"] for e in json.loads(body)["entry"]
            if e["resource"]["resourceType"] == "Patient"]
    check("variant wrong_value_type (Patient): birthDate 19870912, gender 42",
          len(pats) >= 2 and all(p["birthDate"] == 19870912 and p["gender"] == 42 for p in pats),
          pats)
    st, hd, body = once(MS, variant="wrong_value_type")
    mss = [e["resource"] for e in json.loads(body)["entry"]
           if e["resource"]["resourceType"] == "MedicationStatement"]
    check("variant wrong_value_type (MedicationStatement): status 7, effective* true",
          len(mss) == 3 and all(m["status"] == 7 and (m.get("effectiveDateTime") is True or
                                                      m["effectivePeriod"]["start"] is True)
                                for m in mss), mss)
    real_ms_doc = json.loads(real_ms)
    same = [{k: v for k, v in e["resource"].items() if k not in
             ("status", "effectiveDateTime", "effectivePeriod")} for e in real_ms_doc["entry"]
            if e["resource"]["resourceType"] == "MedicationStatement"]
    check("variant wrong_value_type keeps the rest of the real resources",
          same == [{k: v for k, v in m.items() if k not in
                    ("status", "effectiveDateTime", "effectivePeriod")} for m in mss])
    st, hd, body = once(variant="invalid_utf8")
    try:
        body.decode("utf-8")
        decodes = True
    except UnicodeDecodeError:
        decodes = False
    check("variant invalid_utf8: \\xff\\xfe inside the first string value",
          not decodes and body.startswith(b'{"resourceType": "\xff\xfeBundle"')
          and body.replace(b"\xff\xfe", b"", 1) == real_s1
          and hd.get("Content-Length") == str(len(real_s1) + 2), body[:40])
    st, hd, body = once(variant="deep")
    depth = max_depth(body)
    check("variant deep: valid JSON nested >= 100000 levels", st == 200 and depth >= 100000
          and body.startswith(b'{"resourceType": "Bundle", "type": "searchset"')
          and b'"resource": {"resourceType":"Patient","id":"eFaultDeepNesting0000003",'
              b'"extension":[{"extension":[{"extension":[' in body, depth)
    st, hd, body = once(variant="deep", depth=3)
    doc = json.loads(body)
    check("variant deep depth=3 parses", doc["entry"][0]["resource"]["extension"][0]
          ["extension"][0]["extension"][0]["valueString"] == "bottom", doc)
    st, hd, body = once(variant="html")
    check("variant html: 200 text/html", st == 200 and hd.get("Content-Type") == "text/html"
          and b"<html>" in body, (st, hd))
    st, hd, body = once(variant="huge", size=300000)
    doc = json.loads(body)
    n = len(real_entries)
    check("variant huge size=300000: valid searchset of the real entries repeated",
          300000 < len(body) < 300000 + len(json.dumps(real_entries)) + 200
          and hd.get("Content-Length") == str(len(body)) and doc["type"] == "searchset"
          and doc["total"] == len(doc["entry"]) and len(doc["entry"]) % n == 0
          and all(doc["entry"][i] == real_entries[i % n] for i in range(len(doc["entry"]))),
          len(body))
    t = time.monotonic()
    st, hd, body = once(variant="huge")
    el = time.monotonic() - t
    check("variant huge default: > 50 MiB, correct length, fast", st == 200
          and 50 * 1024 * 1024 < len(body) < 50 * 1024 * 1024 + 10000
          and body.endswith(b"}]}") and el < 8, (len(body), el))
    del body
    st, hd, body = once(variant="not_bundle", status=500, content_type="application/json",
                        headers={"X-Fault": "yes"})
    check("body fault with status/content_type/headers overrides", st == 500
          and hd.get("Content-Type") == "application/json" and hd.get("X-Fault") == "yes")
    st, hd, body = once("Patient?family=Data", base="/dataset/STU3/", variant="truncated")
    check("variant on the dataset base uses the dataset's answer", st == 200 and body
          == sb.get("Patient?family=Data", base="/dataset/STU3/")[2][:len(body)] and body)
    kinds = [(e["status"], e.get("fault"), e.get("fault_variant")) for e in sb.log()
             if e.get("fault")]
    check("every body fault logged (fault=body, fault_variant)", len(kinds) == 16
          and all(k[1] == "body" for k in kinds) and kinds[2] == (200, "body", "truncated"),
          kinds)


def check_token(sb, key, aud):
    sb.clear()
    sb.reset()

    def tok(**fault):
        sb.fault(match="token", **fault)
        return sb.new_token(key, aud)

    st, hd, body = tok(kind="status", status=500, body="<html><body>Internal</body></html>",
                       content_type="text/html")
    check("token: 500 HTML", st == 500 and hd.get("Content-Type") == "text/html"
          and body.startswith(b"<html>"), (st, hd))
    st, hd, body = tok(kind="status", status=200, body="this is not json",
                       content_type="application/json")
    check("token: 200 non-JSON", st == 200 and body == b"this is not json")
    st, hd, body = tok(kind="status", status=400, body={"error": "invalid_scope",
                                                        "error_description": "nope"})
    check("token: 400 invalid_scope JSON", st == 400 and hd.get("Content-Type")
          == "application/json" and json.loads(body)["error"] == "invalid_scope")
    st, hd, body = tok(kind="status", status=401, body={"error": "invalid_client"})
    check("token: 401 invalid_client", st == 401 and json.loads(body) == {"error":
                                                                         "invalid_client"})
    try:
        tok(kind="close")
        err = None
    except Exception as e:  # noqa: BLE001
        err = e
    check("token: close", isinstance(err, http.client.RemoteDisconnected), repr(err))
    st, hd, body = tok(kind="body", variant="truncated")
    check("token: truncated real token response", st == 200 and body.startswith(
        b'{"access_token": "') and not body.endswith(b"}"), body[:20])
    st, hd, body = tok(kind="status", status=503, skip=1)
    st2, _, _ = sb.new_token(key, aud)
    check("token: skip=1 lets the first through", st == 200 and st2 == 503, (st, st2))
    sb.fault(match="token", kind="status", status=503, times=-1)
    check("token fault does not touch FHIR", sb.get(S1)[0] == 200)
    sb.clear()
    sb.fault(match="fhir", kind="status", status=503, times=-1)
    st, _, body = sb.new_token(key, aud)
    check('"fhir" fault does not touch the token endpoint', st == 200)
    sb.clear()
    sb.token = json.loads(body)["access_token"]
    lines = sb.ctl("log").stdout.splitlines()
    check("token faults in ctl log", lines[:6] == [
        "token POST oauth2/token 500 fault=status", "token POST oauth2/token 200 fault=status",
        "token POST oauth2/token 400 fault=status", "token POST oauth2/token 401 fault=status",
        "token POST oauth2/token 0 fault=close", "token POST oauth2/token 200 fault=body"]
        and lines[6:9] == ["token POST oauth2/token 200",
                           "token POST oauth2/token 503 fault=status",
                           "fhir GET Patient?family=Lopez&_count=100 200"], lines)


def check_revoke_after(sb, key, aud):
    sb.clear()
    sb.reset()
    st, got = sb.control("POST", "revoke-after?n=2")
    path, got, hds = TX, [], []
    prefix = "https://localhost:%d/api/FHIR/STU3/" % sb.port
    while path and len(got) < 5:
        st, hd, body = sb.get(path)
        got.append(st)
        hds.append(hd)
        path = None
        if st == 200:
            nxt = [l["url"] for l in json.loads(body)["link"] if l["relation"] == "next"]
            path = nxt[0][len(prefix):] if nxt else None
            last = path
    check("revoke-after n=2: paged search 200, 200, 401", got == [200, 200, 401]
          and "invalid_token" in hds[2].get("WWW-Authenticate", ""), got)
    st, _, body = sb.new_token(key, aud)
    sb.token = json.loads(body)["access_token"]
    check("a new token serves page 3", sb.get(last)[0] == 200)
    lg = [e for e in sb.log() if e["kind"] == "fhir"]
    marked = [bool(e.get("revoked_before")) for e in lg]
    check("the revoking request is marked in the log", marked == [False, False, True, False],
          lg)

    sb.fault(match="Patient?", kind="status", status=503)
    sb.control("POST", "revoke-after?n=1")
    got = [sb.get(S1)[0], sb.get(MS)[0], sb.get(S1)[0]]
    check("faulted and failed requests do not count toward revoke-after",
          got == [503, 200, 401], got)
    st, _, body = sb.new_token(key, aud)
    sb.token = json.loads(body)["access_token"]
    sb.control("POST", "revoke-after?n=0")
    sb.clear()
    check("faults-clear cancels a pending revoke-after", sb.get(S1)[0] == 200)


def check_ctl(sb):
    sb.clear()
    sb.reset()
    r = sb.ctl("fault", json.dumps({"match": "Patient/", "kind": "status", "status": 503,
                                    "headers": {"Retry-After": "2"}}))
    check("ctl fault", r.returncode == 0 and r.stdout == "", (r.returncode, r.stdout, r.stderr))
    r = sb.ctl("faults")
    check("ctl faults lists it", r.returncode == 0 and json.loads(r.stdout)["faults"][0]["match"]
          == "Patient/")
    sb.get(READ)
    sb.get(READ)
    r = sb.ctl("log")
    check("ctl log format", r.stdout == "fhir GET Patient/%s 503 fault=status\n"
          "fhir GET Patient/%s 200\n" % (CAMILA, CAMILA), repr(r.stdout))
    r = sb.ctl("fault", "{not json")
    check("ctl fault rejects non-JSON", r.returncode != 0 and r.stderr)
    r = sb.ctl("fault", '{"match": "fhir", "kind": "explode"}')
    check("ctl fault reports a rejected fault", r.returncode != 0 and "kind" in r.stderr,
          r.stderr)
    sb.ctl("fault", '{"match": "fhir", "kind": "status", "status": 500, "times": -1}')
    r = sb.ctl("faults-clear")
    check("ctl faults-clear", r.returncode == 0 and sb.get(READ)[0] == 200)
    r = sb.ctl("revoke-after", "0")
    check("ctl revoke-after 0 -> next FHIR request 401", r.returncode == 0
          and sb.get(READ)[0] == 401)
    r = sb.ctl("count", "fhir")
    check("ctl count includes faulted requests", r.stdout == "4\n", r.stdout)


def check_validation(sb):
    bad = [{"match": "fhir"},
           {"match": "fhir", "kind": "status"},
           {"match": "fhir", "kind": "status", "status": 99},
           {"match": "", "kind": "close"},
           {"match": "fhir", "kind": "close", "times": 0},
           {"match": "fhir", "kind": "close", "skip": -1},
           {"match": "fhir", "kind": "close", "status": 500},
           {"match": "fhir", "kind": "body"},
           {"match": "fhir", "kind": "body", "raw": "x", "variant": "html"},
           {"match": "fhir", "kind": "body", "variant": "nope"},
           {"match": "fhir", "kind": "body", "raw_b64": "!!"},
           {"match": "fhir", "kind": "drip", "interval_ms": 0},
           {"match": "fhir", "kind": "hang", "seconds": 601},
           {"match": "fhir", "kind": "status", "status": 500, "headers": {"X": 1}},
           {"match": "fhir", "kind": "status", "status": 500, "headers": {"X": "a\r\nB: c"}}]
    codes = [sb.control("POST", "fault", b)[0] for b in bad]
    check("invalid faults rejected with 400", codes == [400] * len(bad), codes)
    check("nothing queued by invalid faults", sb.control("GET", "faults")[1]["faults"] == [])


def check_shutdown_with_hang(sb):
    sb.clear()
    sb.fault(match="fhir", kind="hang")
    out = {}

    def client():
        try:
            sb.get(S1, timeout=30)
        except Exception as e:  # noqa: BLE001
            out["err"] = e

    th = threading.Thread(target=client, daemon=True)
    th.start()
    wait_for(lambda: faulted(sb, "hang"), 2)
    pid = int(open(sb.d + "/pid").read())
    t = time.monotonic()
    sh(os.path.join(HERE, "stop.sh"), sb.d)
    el = time.monotonic() - t
    th.join(3)
    gone = not os.path.exists("/proc/%d" % pid) or \
        "sandbox.py" not in open("/proc/%d/cmdline" % pid).read()
    check("shutdown is not blocked by a hanging connection", gone and el < 3
          and "err" in out, (el, out))
    return True


if __name__ == "__main__":
    main()
