#!/usr/bin/python3
"""epic_fdw recording proxy: records a FHIR session as a sandbox recording (fixture) file.

It sits between epic_fdw and a real FHIR server (e.g. your Epic non-production
environment), passes every FHIR GET through, and appends each exchange to a JSON file in
the sandbox's fixture format, so that the session can be replayed offline with
`test/sandbox/start.sh DIR --recording FILE`.

Usage:
  /usr/bin/python3 record.py --state-dir DIR --upstream FHIR_BASE_URL --out FILE
      [--append] [--upstream-ca CA.pem] [--fhir-version STU3|R4] [--auth forward|own]
      [--client-id ID --private-key KEY.pem [--key-id KID] [--alg RS384|ES384]
       [--token-url URL] [--scope S]] [--scrub FIELD ...] [--token-lifetime SECONDS]
      [--upstream-timeout SECONDS]

It listens on https://localhost:PORT (127.0.0.1, a free port, a throwaway CA and server
certificate created in DIR as by sandbox.py; DIR/pid, then DIR/port written once it
serves) and answers:

  GET  /fhir/.well-known/smart-configuration   token_endpoint = this proxy's /oauth2/token
  POST /oauth2/token                           --auth forward: passed unchanged to the
                                               upstream token endpoint; --auth own: any
                                               well-formed client_credentials request gets
                                               a local opaque token (NOT verified)
  GET  /fhir/<rest>                            forwarded to <FHIR_BASE_URL><rest>, answered
                                               and recorded

Point epic_fdw at it with fhir_url 'https://localhost:PORT/fhir/' and ca_file 'DIR/ca.crt'.

Recording: one {"request": {...}, "response": {...}} object per FHIR exchange (method,
fhir_version, path relative to the base with the query exactly as sent, accept; status,
Content-Type/WWW-Authenticate/Retry-After, body as parsed JSON, string or null), with
absolute URLs of the upstream base rewritten to
https://fhir.epic.com/interconnect-fhir-oauth/api/FHIR/<VERSION>/ (what the sandbox
rewrites on replay). The file (mode 0600) is rewritten atomically after every exchange.
Not recorded: token exchanges, discovery, 401 answers (authentication, not data),
upstream connection failures. A later exchange for the same request replaces the
earlier one, except that a transient error (429, 5xx) never replaces another answer.

Secrets (Authorization headers, tokens, assertions, keys, token request and response
bodies) are never recorded or logged; logged FHIR paths omit the query string.

Only the Python standard library plus Debian's python3-jwt (PyJWT) and
python3-cryptography are used.
"""

import argparse
import email.utils
import http.client
import json
import os
import signal
import secrets
import socket
import ssl
import sys
import threading
import time
import urllib.parse
import uuid

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import sandbox as sb  # noqa: E402

RECORDED_FHIR_ORIGIN = sb.RECORDED_FHIR_ORIGIN
ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
DEFAULT_SCOPE = "system/Patient.read system/MedicationStatement.read"
RECORDED_HEADERS = ("Content-Type", "WWW-Authenticate", "Retry-After")
INVALID_TOKEN_CHALLENGE = ('Bearer error="invalid_token", error_description="The access token '
                           'provided is expired, revoked, malformed, or invalid for other reasons."')
USER_AGENT = "epic-fdw-record/1.0"
MAX_IDLE_CONNECTIONS = 8


def warn(msg):
    sys.stderr.write("record: %s\n" % msg)
    sys.stderr.flush()


def outcome(code, diagnostics):
    return {"resourceType": "OperationOutcome",
            "issue": [{"severity": "error", "code": code, "diagnostics": diagnostics}]}


# --------------------------------------------------------------------------------------
# Rewriting and scrubbing
# --------------------------------------------------------------------------------------

def rewrite_strings(value, old, new):
    """Recursively replace `old` by `new` inside every string of a parsed JSON value."""
    if isinstance(value, str):
        return value.replace(old, new) if old in value else value
    if isinstance(value, list):
        return [rewrite_strings(v, old, new) for v in value]
    if isinstance(value, dict):
        return {k: rewrite_strings(v, old, new) for k, v in value.items()}
    return value


def rewrite_bytes(payload, old, new):
    """Replace a base URL in a raw body, also in its JSON-escaped form (https:\\/\\/...)."""
    if not payload:
        return payload
    out = payload.replace(old.encode("utf-8"), new.encode("utf-8"))
    esc_old = old.replace("/", "\\/").encode("utf-8")
    if esc_old in out:
        out = out.replace(esc_old, new.replace("/", "\\/").encode("utf-8"))
    return out


def placeholder(value):
    """A value of the same JSON type as `value`, carrying no information."""
    if isinstance(value, bool):
        return False
    if isinstance(value, (int, float)):
        return 0
    if isinstance(value, str):
        return "***"
    if isinstance(value, dict):
        return {}
    if isinstance(value, list):
        return []
    return None


def scrub(value, fields):
    """Replace the value of every object member named in `fields` (recursively)."""
    if isinstance(value, list):
        return [scrub(v, fields) for v in value]
    if isinstance(value, dict):
        return {k: placeholder(v) if k in fields else scrub(v, fields) for k, v in value.items()}
    return value


def is_json_type(ctype):
    ctype = (ctype or "").split(";")[0].strip().lower()
    return ctype == "application/json" or ctype.endswith("+json") or ctype == "text/json"


def parse_body(payload, ctype):
    """(body for the recording, is_json): parsed JSON when JSON, else a string, None when
    empty."""
    if not payload:
        return None, False
    text = payload.decode("utf-8", errors="replace")
    if is_json_type(ctype) or text.lstrip()[:1] in ("{", "["):
        try:
            return json.loads(text), True
        except ValueError:
            pass
    return text, False


# --------------------------------------------------------------------------------------
# The recording file
# --------------------------------------------------------------------------------------

def is_transient(status):
    return status == 429 or 500 <= status <= 599


class Recording:
    def __init__(self, path, append):
        self.path = os.path.abspath(path)
        self.lock = threading.Lock()
        self.items = []     # [key, serialized JSON text]
        self.index = {}     # key -> position in items
        self.status = {}    # key -> recorded status
        if os.path.exists(self.path):
            if not append:
                raise SystemExit("record: %s exists; remove it or pass --append" % self.path)
            with open(self.path, encoding="utf-8") as f:
                old = json.load(f)
            if not isinstance(old, list):
                raise SystemExit("record: %s is not a JSON array" % self.path)
            for item in old:
                self._put(item)
            warn("appending to %s (%d exchange(s) already recorded)" % (self.path, len(old)))
        d = os.path.dirname(self.path)
        if not os.path.isdir(d):
            raise SystemExit("record: directory %s does not exist" % d)
        self.write()

    @staticmethod
    def key(item):
        req = item["request"]
        resource, query = sb.split_path(req["path"])
        return (req.get("method", "GET").upper(), req.get("fhir_version"), resource, query)

    def _put(self, item):
        """Add or replace; returns a short word for the log."""
        k = self.key(item)
        status = int(item["response"].get("status", 200))
        text = json.dumps(item, ensure_ascii=False, indent=1)
        if k in self.index:
            if is_transient(status) and not is_transient(self.status[k]):
                return "not recorded (transient error; keeping the earlier answer)"
            self.items[self.index[k]][1] = text
            self.status[k] = status
            return "re-recorded #%d" % (self.index[k] + 1)
        self.index[k] = len(self.items)
        self.items.append([k, text])
        self.status[k] = status
        return "recorded #%d" % len(self.items)

    def add(self, item):
        with self.lock:
            what = self._put(item)
            self.write()
            return what

    def write(self):
        """Atomically replace the file with the current array (caller holds the lock or
        runs single-threaded)."""
        tmp = "%s.tmp.%d" % (self.path, os.getpid())
        data = "[\n" + ",\n".join(t for _, t in self.items) + ("\n]\n" if self.items else "]\n")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(data.encode("utf-8"))
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o600)
        os.replace(tmp, self.path)

    def __len__(self):
        with self.lock:
            return len(self.items)


# --------------------------------------------------------------------------------------
# Upstream HTTP
# --------------------------------------------------------------------------------------

class UpstreamError(Exception):
    def __init__(self, status, msg):
        super().__init__(msg)
        self.status = status


class Upstream:
    """HTTPS client for one upstream origin with a small keep-alive pool."""

    def __init__(self, base, ca_file, timeout):
        u = urllib.parse.urlsplit(base)
        if u.scheme != "https" or not u.hostname:
            raise SystemExit("record: --upstream must be an https:// URL, got %r" % base)
        if u.query or u.fragment:
            raise SystemExit("record: --upstream must not have a query string or fragment")
        self.base = base if base.endswith("/") else base + "/"
        self.host, self.port = u.hostname, u.port or 443
        self.path_prefix = urllib.parse.urlsplit(self.base).path
        try:
            self.ctx = ssl.create_default_context(cafile=ca_file)
        except (OSError, ssl.SSLError) as e:
            raise SystemExit("record: cannot load --upstream-ca %s: %s" % (ca_file, e))
        self.ca_file = ca_file
        self.timeout = timeout
        self.lock = threading.Lock()
        self.idle = {}   # (host, port) -> [connections]

    def _conn(self, host, port, fresh):
        if not fresh:
            with self.lock:
                pool = self.idle.get((host, port))
                if pool:
                    return pool.pop(), True
        return http.client.HTTPSConnection(host, port, context=self.ctx,
                                           timeout=self.timeout), False

    def _release(self, host, port, conn):
        with self.lock:
            pool = self.idle.setdefault((host, port), [])
            if len(pool) < MAX_IDLE_CONNECTIONS:
                pool.append(conn)
                return
        conn.close()

    def request(self, method, url, headers, body=None):
        """(status, {lower-case header: value}, body bytes). Raises UpstreamError."""
        u = urllib.parse.urlsplit(url)
        if u.scheme != "https":
            raise UpstreamError(502, "refusing a non-https upstream URL")
        host, port = u.hostname, u.port or 443
        target = u.path or "/"
        if u.query:
            target += "?" + u.query
        headers = dict(headers, **{"User-Agent": USER_AGENT})
        # a POST is never retried (a client assertion's jti may only be used once)
        for attempt in (1, 2):
            conn, reused = self._conn(host, port, fresh=(method != "GET"))
            try:
                conn.request(method, target, body=body, headers=headers)
                resp = conn.getresponse()
                data = resp.read()
            except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError) as e:
                conn.close()
                if reused and attempt == 1:
                    continue
                raise UpstreamError(502, "upstream connection failed: %s" % type(e).__name__)
            except socket.timeout:
                conn.close()
                raise UpstreamError(504, "upstream did not answer within %g s" % self.timeout)
            except ssl.SSLError as e:
                conn.close()
                raise UpstreamError(502, "TLS with upstream failed: %s" % e.reason)
            except (OSError, http.client.HTTPException) as e:
                conn.close()
                raise UpstreamError(502, "upstream request failed: %s" % e)
            hdrs = {}
            for k, v in resp.getheaders():
                k = k.lower()
                hdrs[k] = hdrs[k] + ", " + v if k in hdrs and k != "www-authenticate" else v
            if resp.will_close:
                conn.close()
            else:
                self._release(host, port, conn)
            return resp.status, hdrs, data
        raise UpstreamError(502, "upstream connection failed")

    def close(self):
        with self.lock:
            for pool in self.idle.values():
                for c in pool:
                    c.close()
            self.idle.clear()


# --------------------------------------------------------------------------------------
# Upstream authentication
# --------------------------------------------------------------------------------------

class UpstreamAuth:
    """Token endpoint discovery (both modes) and, in own mode, the proxy's own SMART
    Backend Services client: signs assertions, caches the token."""

    def __init__(self, upstream, args, key):
        self.upstream = upstream
        self.args = args
        self.key = key
        self.lock = threading.Lock()
        self.token_url = args.token_url
        self.token = None
        self.refresh_at = 0.0

    def get_token_url(self):
        with self.lock:
            if self.token_url:
                return self.token_url
        url = self.upstream.base + ".well-known/smart-configuration"
        status, _, body = self.upstream.request("GET", url, {"Accept": "application/json"})
        if status != 200:
            raise UpstreamError(502, "upstream smart-configuration: HTTP %d (pass --token-url)"
                                % status)
        try:
            found = json.loads(body.decode("utf-8"))["token_endpoint"]
            if not isinstance(found, str) or not found:
                raise TypeError
        except (ValueError, KeyError, TypeError, UnicodeDecodeError):
            raise UpstreamError(502, "upstream smart-configuration has no token_endpoint "
                                "(pass --token-url)")
        found = urllib.parse.urljoin(self.upstream.base, found)
        if not found.startswith("https://"):
            raise UpstreamError(502, "upstream token endpoint is not https: %s" % found)
        with self.lock:
            if not self.token_url:
                self.token_url = found
                warn("upstream token endpoint: %s" % found)
            return self.token_url

    def assertion(self, token_url):
        now = int(time.time())
        claims = {"iss": self.args.client_id, "sub": self.args.client_id, "aud": token_url,
                  "jti": str(uuid.uuid4()), "iat": now, "nbf": now, "exp": now + 240}
        headers = {"typ": "JWT"}
        if self.args.key_id:
            headers["kid"] = self.args.key_id
        return jwt.encode(claims, self.key, algorithm=self.args.alg, headers=headers)

    def get(self, stale=None):
        """The current upstream access token; a new one when none is cached, it is about
        to expire, or it is `stale` (the token upstream just answered 401 to)."""
        with self.lock:
            if self.token is not None and stale is not None and self.token == stale:
                self.token = None
            if self.token is not None and time.time() < self.refresh_at:
                return self.token
            token_url = self.token_url
        if token_url is None:
            token_url = self.get_token_url()
        with self.lock:
            # another thread may have refreshed meanwhile
            if self.token is not None and time.time() < self.refresh_at and self.token != stale:
                return self.token
            form = {"grant_type": "client_credentials",
                    "client_assertion_type": ASSERTION_TYPE,
                    "client_assertion": self.assertion(token_url)}
            if self.args.scope:
                form["scope"] = self.args.scope
            status, hdrs, body = self.upstream.request(
                "POST", token_url, {"Content-Type": "application/x-www-form-urlencoded",
                                    "Accept": "application/json"},
                urllib.parse.urlencode(form).encode("ascii"))
            try:
                doc = json.loads(body.decode("utf-8")) if body else {}
            except (ValueError, UnicodeDecodeError):
                doc = {}
            if not isinstance(doc, dict):
                doc = {}
            if status != 200 or not isinstance(doc.get("access_token"), str) \
                    or not doc["access_token"]:
                # error and error_description are not secret (RFC 6749 §5.2)
                err = doc.get("error") if isinstance(doc.get("error"), str) else None
                desc = doc.get("error_description") \
                    if isinstance(doc.get("error_description"), str) else None
                msg = "upstream token request failed: HTTP %d%s%s" % (
                    status, " " + err if err else "", ": " + desc[:300] if desc else "")
                warn(msg)
                raise UpstreamError(502, msg)
            lifetime = doc.get("expires_in")
            if isinstance(lifetime, bool) or not isinstance(lifetime, (int, float)) \
                    or lifetime <= 0:
                lifetime = 300
            margin = min(60.0, max(1.0, lifetime / 10.0))
            self.token = doc["access_token"]
            self.refresh_at = time.time() + lifetime - margin
            warn("upstream token obtained (expires in %d s)" % lifetime)
            return self.token


# --------------------------------------------------------------------------------------
# State and HTTP handler
# --------------------------------------------------------------------------------------

def stock_fixture_keys():
    """Keys of the fixtures start.sh always loads before a --recording (first loaded wins
    in the sandbox), to warn when a recorded exchange will be shadowed on replay."""
    repo = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    fx = sb.Fixtures()
    for v in ("stu3", "r4"):
        d = os.path.join(repo, "test", "fixtures", v)
        if os.path.isdir(d):
            try:
                fx.load_dir(d)
            except (SystemExit, OSError, ValueError, KeyError):
                pass
    return frozenset(fx.table)


class State:
    def __init__(self, args, upstream, auth, recording, version):
        self.args = args
        self.upstream = upstream
        self.auth = auth
        self.recording = recording
        self.version = version
        self.scrub = frozenset(args.scrub)
        self.recorded_base = RECORDED_FHIR_ORIGIN + version + "/"
        self.lock = threading.Lock()
        self.tokens = {}   # own mode: local token -> expiry
        self.stock = stock_fixture_keys()

    def issue_local_token(self):
        token = secrets.token_urlsafe(32)
        with self.lock:
            now = time.time()
            self.tokens = {t: e for t, e in self.tokens.items() if e > now}
            self.tokens[token] = now + self.args.token_lifetime
        return token

    def local_token_ok(self, token):
        with self.lock:
            e = self.tokens.get(token)
            return e is not None and time.time() < e


class Handler(sb.Handler):
    server_version = "epic-fdw-record/1.0"

    def send(self, status, body=b"", headers=None, content_type=None, note=""):
        if isinstance(body, str):
            body = body.encode("utf-8")
        # logged before answering, so the line exists once the client has the answer;
        # never the query string (search parameters may be PHI), never headers
        sys.stderr.write("record: %s %s -> %d%s\n" % (self.command, self.path.split("?")[0],
                                                       status, note and " " + note))
        sys.stderr.flush()
        self.send_response_only(status)
        self.send_header("Date", email.utils.formatdate(usegmt=True))
        have_ct = False
        for k, v in (headers or {}).items():
            if k.lower() in ("date", "content-length", "transfer-encoding", "connection"):
                continue
            if k.lower() == "content-type":
                have_ct = True
            self.send_header(k, v)
        if content_type and not have_ct:
            self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        if self.command != "HEAD" and body:
            self.wfile.write(body)
        self.wfile.flush()

    def send_json(self, status, obj, headers=None, content_type="application/json", note=""):
        self.send(status, json.dumps(obj).encode("utf-8"), headers, content_type, note)

    def proxy_base(self):
        return "https://%s/fhir/" % self.host()

    def proxy_token_url(self):
        return "https://%s/oauth2/token" % self.host()

    def dispatch(self, method):
        self.read_body_cached = self.read_body() if method != "GET" else b""
        raw_path = self.path.partition("?")[0]
        if raw_path == "/oauth2/token":
            return self.token(method)
        if raw_path.startswith("/fhir/"):
            rest = self.path[len("/fhir/"):]
            if rest.partition("?")[0] == ".well-known/smart-configuration":
                return self.discovery(method)
            if method != "GET":
                return self.send_json(405, outcome("not-supported", "record.py: only GET is "
                                                   "proxied"), content_type=sb.FHIR_JSON)
            return self.fhir(rest)
        self.send_json(404, {"error": "not_found", "error_description": "no such endpoint "
                             "(the FHIR base is /fhir/)"})

    # -- discovery and token ---------------------------------------------------------------

    def discovery(self, method):
        if method != "GET":
            return self.send_json(405, {"error": "method not allowed"})
        doc = {
            "token_endpoint": self.proxy_token_url(),
            "token_endpoint_auth_methods_supported": ["private_key_jwt"],
            "token_endpoint_auth_signing_alg_values_supported": ["RS384", "ES384"],
            "grant_types_supported": ["client_credentials"],
            "capabilities": ["client-confidential-asymmetric"],
        }
        self.send_json(200, doc)

    def token(self, method):
        st = self.server.state
        headers = {"Cache-Control": "no-store", "Pragma": "no-cache"}
        if method != "POST":
            return self.send_json(405, {"error": "invalid_request", "error_description":
                                        "the token endpoint only accepts POST"}, headers)
        if st.args.auth == "forward":
            return self.token_forward(headers)
        return self.token_own(headers)

    def token_forward(self, headers):
        st = self.server.state
        try:
            token_url = st.auth.get_token_url()
            status, hdrs, body = st.upstream.request(
                "POST", token_url,
                {"Content-Type": self.headers.get("Content-Type")
                 or "application/x-www-form-urlencoded", "Accept": "application/json"},
                self.read_body_cached)
        except UpstreamError as e:
            return self.send_json(e.status, {"error": "temporarily_unavailable",
                                             "error_description": "record.py: %s" % e},
                                  headers, note="(token request not forwarded)")
        out = dict(headers)
        for h in ("Content-Type", "Retry-After", "WWW-Authenticate"):
            if hdrs.get(h.lower()):
                out[h] = hdrs[h.lower()]
        # the body (token or error) is passed through, never logged or recorded
        self.send(status, body, out, note="(forwarded to upstream token endpoint)")

    def token_own(self, headers):
        st = self.server.state

        def reject(status, error, desc):
            return self.send_json(status, {"error": error, "error_description": desc}, headers,
                                  note="(%s)" % error)

        ctype = (self.headers.get("Content-Type") or "").split(";")[0].strip().lower()
        if ctype != "application/x-www-form-urlencoded":
            return reject(400, "invalid_request",
                          "Content-Type must be application/x-www-form-urlencoded")
        try:
            form = dict(urllib.parse.parse_qsl(self.read_body_cached.decode("utf-8"),
                                               keep_blank_values=True))
        except UnicodeDecodeError:
            return reject(400, "invalid_request", "body is not UTF-8")
        if form.get("grant_type") != "client_credentials":
            return reject(400, "unsupported_grant_type", "grant_type must be client_credentials")
        if form.get("client_assertion_type") != ASSERTION_TYPE:
            return reject(400, "invalid_request",
                          "client_assertion_type must be " + ASSERTION_TYPE)
        assertion = form.get("client_assertion")
        if not assertion:
            return reject(400, "invalid_request", "client_assertion is missing")
        # Well-formedness only: record.py is a local development tool and does NOT verify
        # the signature, issuer or audience of the assertion.
        try:
            header = jwt.get_unverified_header(assertion)
            claims = jwt.decode(assertion, options={"verify_signature": False})
        except jwt.exceptions.PyJWTError:
            return reject(400, "invalid_client", "client_assertion is not a well-formed JWT")
        if not isinstance(claims, dict) or not isinstance(claims.get("iss"), str):
            return reject(400, "invalid_client", "client_assertion has no iss")
        if header.get("alg") not in ("RS384", "ES384"):
            return reject(400, "invalid_client", "client_assertion alg must be RS384 or ES384")
        token = st.issue_local_token()
        self.send_json(200, {"access_token": token, "token_type": "bearer",
                             "expires_in": st.args.token_lifetime,
                             "scope": form.get("scope") or st.args.scope or DEFAULT_SCOPE},
                       headers, note="(local token issued, client %s)" % claims["iss"][:80])

    # -- FHIR --------------------------------------------------------------------------------

    def fhir(self, rest):
        st = self.server.state
        up = st.upstream
        headers = {}
        accept = self.headers.get("Accept")
        if accept:
            headers["Accept"] = accept
        used = None
        if st.args.auth == "own":
            auth = self.headers.get("Authorization") or ""
            scheme, _, token = auth.partition(" ")
            if scheme.lower() != "bearer" or not st.local_token_ok(token.strip()):
                return self.send(401, b"", {"WWW-Authenticate": INVALID_TOKEN_CHALLENGE},
                                 note="(local token missing or expired; not forwarded)")
            headers["Epic-Client-ID"] = st.args.client_id
        else:
            if self.headers.get("Authorization"):
                headers["Authorization"] = self.headers.get("Authorization")
            if self.headers.get("Epic-Client-ID"):
                headers["Epic-Client-ID"] = self.headers.get("Epic-Client-ID")
        url = up.base + rest
        try:
            for attempt in (1, 2):
                if st.args.auth == "own":
                    used = st.auth.get(stale=used)
                    headers["Authorization"] = "Bearer " + used
                status, hdrs, payload = up.request("GET", url, headers)
                if status == 401 and st.args.auth == "own" and attempt == 1:
                    warn("upstream answered 401; getting a new upstream token")
                    continue
                break
        except UpstreamError as e:
            return self.send_json(e.status, outcome("transient", "record.py: %s" % e),
                                  content_type=sb.FHIR_JSON, note="(not recorded)")

        ctype = hdrs.get("content-type")
        # what the client gets: the upstream answer with upstream URLs pointing at the proxy
        out_headers = {}
        for h in RECORDED_HEADERS:
            if hdrs.get(h.lower()) is not None:
                out_headers[h] = hdrs[h.lower()].replace(up.base, self.proxy_base())
        body_out = rewrite_bytes(payload, up.base, self.proxy_base())
        if st.auth.token_url:
            body_out = rewrite_bytes(body_out, st.auth.token_url, self.proxy_token_url())

        if status == 401:
            note = "(not recorded: authentication failure)"
        else:
            item = self.recorded_item(rest, accept, status, hdrs, payload, ctype)
            note = "(%s)" % st.recording.add(item)
            if Recording.key(item) in st.stock:
                note += (" (the same request is also a stock fixture; on replay the "
                         "recording is loaded first and wins)")
        self.send(status, body_out, out_headers, note=note)

    def recorded_item(self, rest, accept, status, hdrs, payload, ctype):
        st = self.server.state
        old, new = st.upstream.base, st.recorded_base
        body, is_json = parse_body(payload, ctype)
        if is_json:
            body = rewrite_strings(body, old, new)
            if st.scrub:
                body = scrub(body, st.scrub)
        elif isinstance(body, str):
            body = body.replace(old, new)
        rec_headers = {}
        for h in RECORDED_HEADERS:
            v = hdrs.get(h.lower())
            if v is not None:
                rec_headers[h] = v.replace(old, new)
        req = {"method": "GET", "fhir_version": st.version, "path": rest}
        if accept:
            req["accept"] = accept
        return {"request": req, "response": {"status": status, "headers": rec_headers,
                                             "body": body}}


# --------------------------------------------------------------------------------------
# main
# --------------------------------------------------------------------------------------

def load_private_key(path, alg):
    try:
        with open(path, "rb") as f:
            key = serialization.load_pem_private_key(f.read(), password=None)
    except (OSError, ValueError, TypeError) as e:
        raise SystemExit("record: cannot load --private-key %s: %s" % (path, type(e).__name__))
    if alg == "RS384" and not isinstance(key, rsa.RSAPrivateKey):
        raise SystemExit("record: --alg RS384 needs an RSA private key")
    if alg == "ES384" and not (isinstance(key, ec.EllipticCurvePrivateKey)
                               and key.curve.name == "secp384r1"):
        raise SystemExit("record: --alg ES384 needs an EC P-384 private key")
    return key


def guess_version(upstream, ap):
    """STU3/R4 from the base URL's last path segment, else from upstream metadata."""
    last = [s for s in upstream.path_prefix.split("/") if s]
    if last and last[-1].upper() in ("STU3", "R4"):
        return last[-1].upper()
    try:
        status, _, body = upstream.request("GET", upstream.base + "metadata",
                                           {"Accept": "application/fhir+json"})
        fv = json.loads(body.decode("utf-8")).get("fhirVersion", "") if status == 200 else ""
    except (UpstreamError, ValueError, UnicodeDecodeError, AttributeError):
        fv = ""
    if fv.startswith("3."):
        return "STU3"
    if fv.startswith("4."):
        return "R4"
    ap.error("cannot tell the FHIR version of %s; pass --fhir-version" % upstream.base)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--state-dir", required=True)
    ap.add_argument("--upstream", required=True, metavar="FHIR_BASE_URL")
    ap.add_argument("--out", required=True, metavar="FILE")
    ap.add_argument("--append", action="store_true",
                    help="add to an existing recording instead of refusing to overwrite it")
    ap.add_argument("--upstream-ca", help="CA file to verify the upstream (default: system CAs)")
    ap.add_argument("--upstream-timeout", type=float, default=60.0)
    ap.add_argument("--fhir-version", choices=("STU3", "R4"))
    ap.add_argument("--auth", choices=("forward", "own"), default="forward")
    ap.add_argument("--client-id")
    ap.add_argument("--private-key")
    ap.add_argument("--key-id")
    ap.add_argument("--alg", choices=("RS384", "ES384"), default="RS384")
    ap.add_argument("--token-url", help="upstream token endpoint (default: discovered)")
    ap.add_argument("--scope")
    ap.add_argument("--token-lifetime", type=int, default=300,
                    help="lifetime of the local tokens issued in --auth own mode")
    ap.add_argument("--scrub", action="append", default=[], metavar="FIELD",
                    help="replace the value of every JSON member FIELD in recorded bodies")
    args = ap.parse_args()

    key = None
    if args.auth == "own":
        if not args.client_id or not args.private_key:
            ap.error("--auth own needs --client-id and --private-key")
        key = load_private_key(args.private_key, args.alg)
    elif args.client_id or args.private_key:
        ap.error("--client-id/--private-key are only used with --auth own")
    if args.token_url and not args.token_url.startswith("https://"):
        ap.error("--token-url must be an https:// URL")
    if args.token_lifetime < 1:
        ap.error("--token-lifetime must be >= 1")

    state_dir = os.path.abspath(args.state_dir)
    if not os.path.isdir(state_dir):
        os.makedirs(state_dir)
        os.chmod(state_dir, 0o755)
    try:
        os.unlink(os.path.join(state_dir, "port"))
    except FileNotFoundError:
        pass

    upstream = Upstream(args.upstream, args.upstream_ca, args.upstream_timeout)
    version = args.fhir_version or guess_version(upstream, ap)
    recording = Recording(args.out, args.append)
    auth = UpstreamAuth(upstream, args, key)

    crt, keyfile = sb.ensure_tls_material(state_dir)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(crt, keyfile)

    state = State(args, upstream, auth, recording, version)
    server = sb.Server(("127.0.0.1", 0), Handler, ctx, state)
    port = server.server_address[1]

    def stop(signum, frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)

    pid_p = os.path.join(state_dir, "pid")
    port_p = os.path.join(state_dir, "port")
    sb._write_file(pid_p, b"%d\n" % os.getpid(), 0o644)
    sb._write_file(port_p, b"%d\n" % port, 0o644)
    warn("recording %s %s (auth %s) into %s%s" % (
        version, upstream.base, args.auth, recording.path,
        "; scrubbing " + ", ".join(sorted(state.scrub)) if state.scrub else ""))
    warn("listening on https://localhost:%d/fhir/ (pid %d)" % (port, os.getpid()))
    try:
        server.serve_forever(poll_interval=0.2)
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
        upstream.close()
        for p in (port_p, pid_p):
            try:
                os.unlink(p)
            except FileNotFoundError:
                pass
        warn("stopped (%d exchange(s) in %s)" % (len(recording), recording.path))


if __name__ == "__main__":
    main()
