#!/usr/bin/python3
"""epic_fdw test sandbox: an HTTPS FHIR + SMART Backend Services OAuth server on loopback.

It imitates the parts of Epic's FHIR API that epic_fdw talks to:

  GET  /api/FHIR/{STU3|R4}/.well-known/smart-configuration   (no auth)
  GET  /api/FHIR/{STU3|R4}/metadata                           (no auth)
  POST /oauth2/token            client_credentials + private_key_jwt (RS384/ES384),
                                assertion verified independently with PyJWT
  GET  /api/FHIR/{ver}/...      bearer token required; answered from fixtures
                                (recorded request/response pairs), else from the
                                version's Epic-like registry (below)
  GET  /dataset/{STU3|R4}/...   with --dataset VERSION=DIR: a directory of resources served
                                with real FHIR search semantics (see dataset.py); same
                                token checking, discovery and metadata as /api/FHIR/
  GET  /dataset/{NAME}/...      a named ad-hoc dataset (POST /_sandbox/dataset), served
                                the same way
  /_sandbox/...                 control endpoints for tests (reset, revoke, log,
                                token-lifetime, latency, expire-pages, fault, faults,
                                faults-clear, revoke-after, dataset)

Named datasets (for conformance runners): POST /_sandbox/dataset?name=NAME&version=STU3|R4
[&rules=epic|lenient] with a JSON array of resources, a Bundle or one resource as the body
(re)registers the dataset NAME ([A-Za-z0-9_-]+, not a FHIR version name) under
/dataset/NAME/: reads, searches, paging, metadata of that version and token checks as for
--dataset, and every resource type is searchable with _id and _count (a type it has none
of gives an empty searchset). Epic's required search parameters (dataset.check_required)
apply only with rules=epic: a conformance runner needs plain searches of any type. With
rules=lenient an unknown search parameter is ignored with a "not-supported" outcome issue
and left out of the self link (FHIR's default handling=lenient).
Answers {"ok", "name", "version", "rules", "counts": {type: n}}; 400 for a bad name,
version or body. DELETE /_sandbox/dataset?name=NAME drops it (404 if unknown); requests
to it then answer 404. GET /_sandbox/datasets lists every dataset with its counts.

The Epic-shaped endpoint /api/FHIR/{STU3|R4}/ also holds an Epic-like registry: 600
generated patients (test/dataset/generate.py --patients 600 --seed 13 --types none: their
medication statements (STU3) or requests (R4)) and the Groups registry-all (all 600),
registry-sample, registry-500, registry-empty and registry-mixed (members that are not
Patients). A
request no fixture answers goes to the registry when it is a read or search of a type the
registry holds (Patient, Group, MedicationStatement / MedicationRequest); searches there
follow Epic's rules, Patient.Search's "not enough criteria" (59159) included. Other types
still answer 404 "no recorded response".

Every FHIR request (both endpoints) whose absolute URL is longer than max_url_length bytes
(default 2048; POST /_sandbox/max-url-length?bytes=N) is answered 414 with an
OperationOutcome, as IIS in front of Epic would; the log records each request's URL length.

Fault injection (POST /_sandbox/fault with a JSON object; see parse_fault() below for the
full contract): a queued fault makes upcoming matching requests (match "fhir", "token" or a
path prefix relative to the FHIR base) misbehave on the wire: an HTTP status of choice,
a closed connection, a TCP RST in the middle of the body, a hang, a byte-by-byte drip, or
a replacement body (malformed, wrong-shaped, invalid UTF-8, deeply nested, HTML, huge).

Usage:
  /usr/bin/python3 sandbox.py --state-dir DIR --clients CLIENTS.json \
      --fixtures FIXDIR [--fixtures FIXDIR2 ...] [--recording FILE ...] \
      [--token-lifetime SECONDS] [--dataset VERSION=DIR ...] [--latency-ms N]

At start it creates (if missing) a throwaway CA and a localhost server certificate in
DIR, binds 127.0.0.1 on a free port, writes DIR/pid and then DIR/port (atomically, once
it is ready to serve) and runs until SIGTERM/SIGINT.

Secrets (access tokens, client assertions) are never logged, neither in the request
log nor on stderr.

Only the Python standard library plus Debian's python3-jwt (PyJWT) and
python3-cryptography are used.
"""

import argparse
import base64
import copy
import datetime
import email.utils
import fcntl
import glob
import http.server
import ipaddress
import json
import os
import re
import secrets
import select
import signal
import socket
import ssl
import struct
import sys
import threading
import termios
import time
import urllib.parse

import jwt

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bulk as bulk_mod  # noqa: E402
import dataset as dataset_mod  # noqa: E402
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

RECORDED_FHIR_ORIGIN = "https://fhir.epic.com/interconnect-fhir-oauth/api/FHIR/"
FHIR_VERSIONS = {"STU3": "3.0.2", "R4": "4.0.1", "DSTU2": "1.0.2"}
FHIR_JSON = "application/json+fhir; charset=utf-8"
DEFAULT_SCOPE = "system/Patient.read system/MedicationStatement.read"
ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
MAX_EXP_AHEAD = 300
DEFAULT_MAX_URL_LENGTH = 2048
REGISTRY_PATIENTS = 600
REGISTRY_TYPES = ("Patient", "Group", "MedicationStatement", "MedicationRequest")
SKEW = 5
NAME_RE = re.compile(r"^[A-Za-z0-9_-]+$")
INVALID_TOKEN_CHALLENGE = ('Bearer error="invalid_token", error_description="The access token '
                           'provided is expired, revoked, malformed, or invalid for other reasons."')


def warn(msg):
    sys.stderr.write("sandbox: %s\n" % msg)
    sys.stderr.flush()


# --------------------------------------------------------------------------------------
# TLS material
# --------------------------------------------------------------------------------------

def _write_file(path, data, mode):
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(data)
    os.chmod(tmp, mode)
    os.replace(tmp, path)


def ensure_tls_material(state_dir):
    """Create ca.key/ca.crt and server.key/server.crt in state_dir unless present.

    Certificates are world-readable (the PostgreSQL backend runs as `postgres` and must
    read ca.crt); private keys are 0600. Returns (server.crt path, server.key path)."""
    ca_key_p = os.path.join(state_dir, "ca.key")
    ca_crt_p = os.path.join(state_dir, "ca.crt")
    srv_key_p = os.path.join(state_dir, "server.key")
    srv_crt_p = os.path.join(state_dir, "server.crt")
    now = datetime.datetime.now(datetime.timezone.utc)
    not_before = now - datetime.timedelta(days=1)
    not_after = now + datetime.timedelta(days=30)
    pem = serialization.Encoding.PEM

    regenerate_ca = not (os.path.exists(ca_key_p) and os.path.exists(ca_crt_p))
    if regenerate_ca:
        ca_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "epic_fdw sandbox test CA")])
        ca_crt = (x509.CertificateBuilder()
                  .subject_name(ca_name).issuer_name(ca_name)
                  .public_key(ca_key.public_key())
                  .serial_number(x509.random_serial_number())
                  .not_valid_before(not_before).not_valid_after(not_after)
                  .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
                  .add_extension(x509.KeyUsage(digital_signature=False, content_commitment=False,
                                               key_encipherment=False, data_encipherment=False,
                                               key_agreement=False, key_cert_sign=True,
                                               crl_sign=True, encipher_only=False,
                                               decipher_only=False), critical=True)
                  .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()),
                                 critical=False)
                  .sign(ca_key, hashes.SHA256()))
        _write_file(ca_key_p, ca_key.private_bytes(pem, serialization.PrivateFormat.PKCS8,
                                                   serialization.NoEncryption()), 0o600)
        _write_file(ca_crt_p, ca_crt.public_bytes(pem), 0o644)
    if regenerate_ca or not (os.path.exists(srv_key_p) and os.path.exists(srv_crt_p)):
        with open(ca_key_p, "rb") as f:
            ca_key = serialization.load_pem_private_key(f.read(), password=None)
        with open(ca_crt_p, "rb") as f:
            ca_crt = x509.load_pem_x509_certificate(f.read())
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        crt = (x509.CertificateBuilder()
               .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]))
               .issuer_name(ca_crt.subject)
               .public_key(key.public_key())
               .serial_number(x509.random_serial_number())
               .not_valid_before(not_before).not_valid_after(not_after)
               .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
               .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
               .add_extension(x509.SubjectAlternativeName([
                   x509.DNSName("localhost"),
                   x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
               .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
                              critical=False)
               .sign(ca_key, hashes.SHA256()))
        _write_file(srv_key_p, key.private_bytes(pem, serialization.PrivateFormat.PKCS8,
                                                 serialization.NoEncryption()), 0o600)
        _write_file(srv_crt_p, crt.public_bytes(pem), 0o644)
    return srv_crt_p, srv_key_p


# --------------------------------------------------------------------------------------
# Fixtures
# --------------------------------------------------------------------------------------

def split_path(path):
    """'Patient?b=1&a=2' -> ('Patient', sorted multiset of URL-decoded (name, value))."""
    resource, _, query = path.partition("?")
    resource = urllib.parse.unquote(resource).strip("/")
    pairs = urllib.parse.parse_qsl(query, keep_blank_values=True)
    return resource, tuple(sorted(pairs))


class Fixtures:
    def __init__(self):
        self.table = {}

    def load_file(self, path):
        with open(path, encoding="utf-8") as f:
            items = json.load(f)
        if not isinstance(items, list):
            raise SystemExit("sandbox: %s: expected a JSON array of exchanges" % path)
        n = 0
        for i, item in enumerate(items):
            req, resp = item.get("request"), item.get("response")
            if not isinstance(req, dict) or not isinstance(resp, dict):
                raise SystemExit("sandbox: %s[%d]: needs request and response objects" % (path, i))
            method = req.get("method", "GET").upper()
            version = req.get("fhir_version")
            resource, query = split_path(req["path"])
            key = (method, version, resource, query)
            if key in self.table:
                warn("duplicate fixture %s %s %s in %s[%d] ignored (first loaded wins)"
                     % (method, version, req["path"], path, i))
                continue
            self.table[key] = resp
            n += 1
        return n

    def load_dir(self, d):
        files = sorted(glob.glob(os.path.join(d, "*.json")))
        if not files:
            warn("no *.json fixtures in %s" % d)
        return sum(self.load_file(p) for p in files)

    def lookup(self, method, version, relpath):
        resource, query = split_path(relpath)
        return self.table.get((method, version, resource, query))


def rewrite(value, new_prefix):
    """Recursively rewrite strings starting with the recorded origin."""
    if isinstance(value, str):
        if value.startswith(RECORDED_FHIR_ORIGIN):
            return new_prefix + value[len(RECORDED_FHIR_ORIGIN):]
        return value
    if isinstance(value, list):
        return [rewrite(v, new_prefix) for v in value]
    if isinstance(value, dict):
        return {k: rewrite(v, new_prefix) for k, v in value.items()}
    return value


# --------------------------------------------------------------------------------------
# Clients (clients.json, reloaded when it changes)
# --------------------------------------------------------------------------------------

def load_public_key(path):
    with open(path, "rb") as f:
        data = f.read()
    try:
        return serialization.load_pem_public_key(data)
    except ValueError:
        pass
    try:
        return serialization.load_pem_private_key(data, password=None).public_key()
    except (ValueError, TypeError):
        pass
    return x509.load_pem_x509_certificate(data).public_key()


class Clients:
    def __init__(self, path):
        self.path = path
        self.mtime = None
        self.clients = {}
        self.lock = threading.Lock()
        self.reload(force=True)

    def reload(self, force=False):
        try:
            mtime = os.stat(self.path).st_mtime_ns
        except OSError as e:
            if force:
                raise SystemExit("sandbox: cannot read clients file %s: %s" % (self.path, e))
            return
        if not force and mtime == self.mtime:
            return
        try:
            with open(self.path, encoding="utf-8") as f:
                doc = json.load(f)
            clients = {}
            for c in doc.get("clients", []):
                keys = []
                for k in c.get("keys", []):
                    alg = k.get("alg")
                    if alg not in ("RS384", "ES384"):
                        raise ValueError("client %s key %s: alg must be RS384 or ES384"
                                         % (c.get("client_id"), k.get("kid")))
                    keys.append({"kid": k.get("kid"), "alg": alg,
                                 "key": load_public_key(k["public_key_file"])})
                if c.get("jwks_file"):
                    # a JWK Set document, as the client would host it at its jku URL
                    with open(c["jwks_file"], encoding="utf-8") as jf:
                        jwks = json.load(jf)
                    for jwk in jwks.get("keys", []):
                        if jwk.get("alg") not in ("RS384", "ES384"):
                            raise ValueError("client %s JWK %s: alg must be RS384 or ES384"
                                             % (c.get("client_id"), jwk.get("kid")))
                        keys.append({"kid": jwk.get("kid"), "alg": jwk["alg"],
                                     "key": jwt.PyJWK(jwk).key})
                clients[c["client_id"]] = {"scopes": c.get("scopes"), "keys": keys,
                                           "jku": c.get("jku")}
        except Exception as e:  # noqa: BLE001 - report any config problem
            if force:
                raise SystemExit("sandbox: bad clients file %s: %s" % (self.path, e))
            warn("bad clients file %s (keeping previous): %s" % (self.path, e))
            return
        self.clients = clients
        self.mtime = mtime
        warn("loaded %d client(s) from %s" % (len(clients), self.path))

    def get(self, client_id):
        with self.lock:
            self.reload()
            return self.clients.get(client_id)


# --------------------------------------------------------------------------------------
# Shared state
# --------------------------------------------------------------------------------------

class AssertionError_(Exception):
    def __init__(self, status, error, description):
        super().__init__(description)
        self.status, self.error, self.description = status, error, description


class State:
    def __init__(self, clients, fixtures, token_lifetime, datasets=None, latency_ms=0,
                 registries=None):
        self.clients = clients
        self.registries = dict(registries or {})   # FHIR version -> the Epic-like registry
        self.max_url_length = DEFAULT_MAX_URL_LENGTH
        self.fixtures = fixtures
        self.token_lifetime = token_lifetime
        # name -> dataset.Dataset: --dataset VERSION=DIR ones under their version, named
        # ad-hoc ones (POST /_sandbox/dataset) under their name; use get/set/drop_dataset
        self.datasets = dict(datasets or {})
        self.latency_ms = latency_ms
        self.lock = threading.Lock()
        self.tokens = {}      # token -> {"client_id", "expires", "revoked"}
        self.jtis = set()     # (iss, jti)
        self.assertions = []  # every client assertion received (for the secrets check)
        self.log = []
        self.seq = 0
        self.faults = []           # queued faults (dicts from parse_fault + counters)
        self.fault_seq = 0
        self.release = threading.Event()   # set (and replaced) by faults-clear
        self.holding = 0           # connections currently hanging or dripping
        self.revoke_after = None   # successful FHIR requests left before revoking

    # -- datasets -------------------------------------------------------------------------

    def get_dataset(self, name):
        with self.lock:
            return self.datasets.get(name)

    def set_dataset(self, ds):
        """Register (or replace) ds under ds.name; returns the replaced one or None."""
        with self.lock:
            old = self.datasets.get(ds.name)
            self.datasets[ds.name] = ds
            return old

    def drop_dataset(self, name):
        with self.lock:
            return self.datasets.pop(name, None)

    def all_datasets(self):
        with self.lock:
            return list(self.datasets.values())

    def add_log(self, entry):
        """Append a copy of entry to the log; returns the stored dict (update it only
        under self.lock)."""
        with self.lock:
            self.seq += 1
            entry = dict(entry, seq=self.seq)
            self.log.append(entry)
            return entry

    def update_log(self, stored, **fields):
        with self.lock:
            stored.update(fields)

    # -- faults ---------------------------------------------------------------------------

    def add_fault(self, fault):
        with self.lock:
            self.fault_seq += 1
            fault = dict(fault, id=self.fault_seq, seen=0, applied=0)
            self.faults.append(fault)
            return dict(fault)

    def pick_fault(self, target, rel):
        """The fault to apply to this request, or None.

        target is "token" or the FHIR request kind (fhir, metadata, discovery); rel is the
        path relative to the FHIR base (None for the token endpoint). Every queued fault
        that matches counts the request (`seen`): the first `skip` matching requests since
        it was queued pass it by, whoever answers them. Of the matching faults past their
        skip, the earliest queued one answers the request (`applied`); a fault leaves the
        queue once it has answered `times` requests. So faults queued one after another
        for the same match apply one after another."""
        with self.lock:
            chosen = None
            for f in self.faults:
                if not fault_matches(f["match"], target, rel):
                    continue
                f["seen"] += 1
                if f["seen"] <= f["skip"]:
                    continue
                if chosen is None:
                    chosen = f
                    f["applied"] += 1
            self.faults = [f for f in self.faults
                           if f["times"] == -1 or f["applied"] < f["times"]]
            return dict(chosen) if chosen is not None else None

    def clear_faults(self):
        with self.lock:
            n = len(self.faults)
            self.faults = []
            self.revoke_after = None
            ev, self.release = self.release, threading.Event()
            released = self.holding
        ev.set()
        return n, released

    def revoke_due(self):
        """Called before the token check of every FHIR request: revokes all tokens when
        revoke-after's budget of successful requests is used up."""
        with self.lock:
            if self.revoke_after is None or self.revoke_after > 0:
                return 0
            self.revoke_after = None
            n = 0
            for t in self.tokens.values():
                if not t["revoked"]:
                    t["revoked"] = True
                    n += 1
            return n

    def count_success(self):
        with self.lock:
            if self.revoke_after is not None and self.revoke_after > 0:
                self.revoke_after -= 1

    def issue_token(self, client_id):
        token = secrets.token_urlsafe(32)
        with self.lock:
            lifetime = self.token_lifetime
            self.tokens[token] = {"client_id": client_id, "expires": time.time() + lifetime,
                                  "revoked": False}
        return token, lifetime

    def check_token(self, token):
        with self.lock:
            t = self.tokens.get(token)
            if t is None or t["revoked"] or time.time() >= t["expires"]:
                return None
            return t["client_id"]

    def revoke_all(self):
        with self.lock:
            n = 0
            for t in self.tokens.values():
                if not t["revoked"]:
                    t["revoked"] = True
                    n += 1
            return n

    def use_jti(self, iss, jti):
        with self.lock:
            if (iss, jti) in self.jtis:
                return False
            self.jtis.add((iss, jti))
            return True

    def verify_assertion(self, assertion, token_url, info):
        """Verify a SMART client assertion; returns client config or raises AssertionError_.

        `info` receives the (non-secret) header alg/kid and client_id for the log."""
        def fail(desc):
            raise AssertionError_(401, "invalid_client", desc)

        try:
            header = jwt.get_unverified_header(assertion)
        except jwt.exceptions.PyJWTError as e:
            fail("malformed client assertion: %s" % e)
        alg, kid, typ = header.get("alg"), header.get("kid"), header.get("typ")
        info["alg"], info["kid"] = alg, kid
        if alg not in ("RS384", "ES384"):
            fail("unsupported client assertion alg %r (expected RS384 or ES384)" % (alg,))
        if typ is not None and typ != "JWT":
            fail("client assertion typ must be JWT, got %r" % (typ,))
        try:
            unverified = jwt.decode(assertion, options={"verify_signature": False})
        except jwt.exceptions.PyJWTError as e:
            fail("malformed client assertion: %s" % e)
        iss = unverified.get("iss")
        if not isinstance(iss, str) or not iss:
            fail("client assertion has no iss claim")
        info["client_id"] = iss
        client = self.clients.get(iss)
        if client is None:
            fail("unknown client_id %r" % iss)

        if client.get("jku") and header.get("jku") != client["jku"]:
            fail("jku %r does not match the registered JWK Set URL" % (header.get("jku"),))
        if kid is not None:
            cands = [k for k in client["keys"] if k["kid"] == kid]
            if not cands:
                fail("unknown kid %r for client %r" % (kid, iss))
            cands = [k for k in cands if k["alg"] == alg]
            if not cands:
                fail("key %r is registered for a different alg than %s" % (kid, alg))
        else:
            cands = [k for k in client["keys"] if k["alg"] == alg]
            if not cands:
                fail("no key registered for client %r with alg %s" % (iss, alg))
        want_type = rsa.RSAPublicKey if alg == "RS384" else ec.EllipticCurvePublicKey
        cands = [k for k in cands if isinstance(k["key"], want_type)]
        if not cands:
            fail("registered key type does not match alg %s" % alg)

        claims = None
        for k in cands:
            try:
                claims = jwt.decode(assertion, k["key"], algorithms=[alg], audience=token_url,
                                    issuer=iss, leeway=SKEW,
                                    options={"require": ["exp", "iss", "sub", "aud", "jti"]})
                break
            except jwt.exceptions.InvalidSignatureError:
                continue
            except jwt.exceptions.ExpiredSignatureError:
                fail("client assertion has expired (exp is in the past)")
            except jwt.exceptions.InvalidAudienceError:
                fail("client assertion aud must be %s" % token_url)
            except jwt.exceptions.InvalidIssuerError:
                fail("client assertion iss is invalid")
            except jwt.exceptions.MissingRequiredClaimError as e:
                fail("client assertion is missing the required %r claim" % e.claim)
            except jwt.exceptions.ImmatureSignatureError as e:
                fail("client assertion is not yet valid: %s" % e)
            except jwt.exceptions.PyJWTError as e:
                fail("client assertion rejected: %s" % e)
        if claims is None:
            fail("client assertion signature verification failed")

        now = time.time()
        if claims.get("sub") != iss:
            fail("client assertion sub must equal iss")
        exp = claims["exp"]
        if not isinstance(exp, int) or isinstance(exp, bool):
            fail("client assertion exp must be an integer (seconds since the epoch)")
        if exp > now + MAX_EXP_AHEAD + SKEW:
            fail("client assertion exp is more than 5 minutes in the future")
        for claim in ("nbf", "iat"):
            v = claims.get(claim)
            if v is not None:
                if not isinstance(v, (int, float)) or isinstance(v, bool):
                    fail("client assertion %s must be a number" % claim)
                if v > now + SKEW:
                    fail("client assertion %s is in the future" % claim)
                if exp - v > MAX_EXP_AHEAD + SKEW:
                    fail("client assertion exp - %s exceeds 5 minutes" % claim)
        jti = claims["jti"]
        if not isinstance(jti, str) or not jti:
            fail("client assertion jti must be a non-empty string")
        if len(jti) > 151:
            fail("client assertion jti is longer than 151 characters")
        if not self.use_jti(iss, jti):
            fail("jti already used")
        return iss, client


# --------------------------------------------------------------------------------------
# HTTP
# --------------------------------------------------------------------------------------

class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "epic-fdw-sandbox/1.0"
    sys_version = ""
    timeout = 120  # idle keep-alive connections are dropped after this

    # -- plumbing ------------------------------------------------------------------------

    def setup(self):
        super().setup()
        try:
            self.connection.do_handshake()
        except (ssl.SSLError, OSError) as e:
            warn("TLS handshake with %s failed: %s" % (self.client_address[0], e))
            self.close_connection = True
            self._handshake_failed = True
        else:
            self._handshake_failed = False

    def handle(self):
        if self._handshake_failed:
            return
        try:
            super().handle()
        except (ssl.SSLError, ConnectionError, socket.timeout):
            self.close_connection = True

    def log_message(self, fmt, *args):  # noqa: D401 - BaseHTTPRequestHandler API
        pass  # our own concise line is written in send(); never echo headers

    def host(self):
        return self.headers.get("Host") or "localhost:%d" % self.server.server_address[1]

    def send(self, status, body=b"", headers=None, content_type=None):
        if isinstance(body, str):
            body = body.encode("utf-8")
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
        sys.stderr.write("sandbox: %s %s -> %d\n" % (self.command, self.path.split("?")[0], status))
        sys.stderr.flush()

    def send_json(self, status, obj, headers=None, content_type="application/json"):
        self.send(status, json.dumps(obj).encode("utf-8"), headers, content_type)

    def read_body(self):
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n > 0 else b""

    # -- dispatch -------------------------------------------------------------------------

    def do_GET(self):
        self.dispatch("GET")

    def do_POST(self):
        self.dispatch("POST")

    def do_PUT(self):
        self.dispatch("PUT")

    def do_DELETE(self):
        self.dispatch("DELETE")

    def dispatch(self, method):
        if method != "GET":
            self.read_body_cached = self.read_body()
        else:
            self.read_body_cached = b""
        raw_path, _, query = self.path.partition("?")
        if raw_path.startswith("/_sandbox/"):
            return self.control(method, raw_path[len("/_sandbox/"):], query)
        if raw_path == "/oauth2/token":
            return self.token(method)
        if raw_path.startswith("/_bulk/"):
            return bulk_mod.serve(self, method, raw_path)  # Bulk Data jobs and files (bulk.py)
        if raw_path.startswith("/api/FHIR/"):
            rest = self.path[len("/api/FHIR/"):]
            version, _, rel = rest.partition("/")
            return self.fhir(method, version, rel)
        if raw_path.startswith("/dataset/"):
            rest = self.path[len("/dataset/"):]
            name, _, rel = rest.partition("/")
            return self.fhir(method, name, rel, dataset=True)
        self.send_json(404, {"error": "not_found", "error_description": "no such endpoint"})

    # -- control --------------------------------------------------------------------------

    def set_state_int(self, params, param, attr):
        """Set the sandbox state's `attr` from the non-negative integer query parameter `param`."""
        st = self.server.state
        try:
            value = int(params[param])
            if value < 0:
                raise ValueError
        except (KeyError, ValueError):
            return self.send_json(400, {"error": "%s must be a non-negative integer" % param})
        with st.lock:
            setattr(st, attr, value)
        return self.send_json(200, {"ok": True, attr: value})

    def control(self, method, name, query):
        st = self.server.state
        params = dict(urllib.parse.parse_qsl(query, keep_blank_values=True))
        if method == "POST" and name == "reset":
            with st.lock:
                st.log.clear()
                st.seq = 0
            return self.send_json(200, {"ok": True})
        if method == "POST" and name == "revoke":
            return self.send_json(200, {"ok": True, "revoked": st.revoke_all()})
        if method == "GET" and name == "log":
            with st.lock:
                entries = copy.deepcopy(st.log)
            return self.send_json(200, entries)
        if method == "POST" and name == "token-lifetime":
            return self.set_state_int(params, "seconds", "token_lifetime")
        if method == "POST" and name == "latency":
            return self.set_state_int(params, "ms", "latency_ms")
        if method == "POST" and name == "max-url-length":
            return self.set_state_int(params, "bytes", "max_url_length")
        if method == "POST" and name == "expire-pages":
            n = sum(ds.expire_pages() for ds in st.all_datasets())
            return self.send_json(200, {"ok": True, "expired": n})
        if name == "dataset" and method in ("POST", "DELETE"):
            return self.control_dataset(method, params)
        if name.startswith("bulk") and bulk_mod.control(self, method, name, params):
            return None
        if method == "GET" and name == "datasets":
            return self.send_json(200, {ds.name: {
                "version": ds.version,
                "rules": "epic" if ds.epic_rules else "lenient" if ds.lenient else "none",
                "counts": ds.counts()} for ds in st.all_datasets()})
        if method == "GET" and name == "secrets":
            # For the test suite's leak check only: every token issued and every
            # assertion received, so it can grep logs and outputs for them.
            with st.lock:
                out = {"tokens": list(st.tokens), "assertions": list(st.assertions)}
            return self.send_json(200, out)
        if method == "GET" and name == "health":
            return self.send_json(200, {"ok": True})
        if method == "POST" and name == "fault":
            try:
                doc = json.loads(self.read_body_cached.decode("utf-8"))
                fault = st.add_fault(parse_fault(doc))
            except (ValueError, UnicodeDecodeError) as e:
                return self.send_json(400, {"error": "bad fault: %s" % e})
            warn("fault queued: %s" % json.dumps(
                {k: v for k, v in fault.items() if k not in ("raw", "raw_b64")}))
            return self.send_json(200, {"ok": True, "fault": fault})
        if method == "GET" and name == "faults":
            with st.lock:
                out = {"faults": copy.deepcopy(st.faults), "revoke_after": st.revoke_after,
                       "holding": st.holding}
            return self.send_json(200, out)
        if method == "POST" and name == "faults-clear":
            n, released = st.clear_faults()
            return self.send_json(200, {"ok": True, "cleared": n, "released": released})
        if method == "POST" and name == "revoke-after":
            return self.set_state_int(params, "n", "revoke_after")
        return self.send_json(404, {"error": "unknown control endpoint %s %s" % (method, name)})

    def control_dataset(self, method, params):
        """POST/DELETE /_sandbox/dataset: named ad-hoc datasets (see the module docstring)."""
        st = self.server.state
        name = params.get("name", "")
        if not NAME_RE.match(name) or name in FHIR_VERSIONS:
            return self.send_json(400, {"error": "name must match [A-Za-z0-9_-]+ and not be a "
                                        "FHIR version (STU3, R4, DSTU2), got %r" % name})
        if method == "DELETE":
            if st.drop_dataset(name) is None:
                return self.send_json(404, {"error": "no dataset named %s" % name})
            warn("dataset %s deleted" % name)
            return self.send_json(200, {"ok": True, "name": name})
        version = params.get("version", "")
        if version not in ("STU3", "R4"):
            return self.send_json(400, {"error": "version must be STU3 or R4, got %r" % version})
        rules = params.get("rules", "none")
        if rules not in ("none", "epic", "lenient"):
            return self.send_json(400, {"error": "rules must be none, epic or lenient, got %r"
                                        % rules})
        try:
            doc = json.loads(self.read_body_cached.decode("utf-8"))
        except (ValueError, UnicodeDecodeError) as e:
            return self.send_json(400, {"error": "body is not JSON: %s" % e})
        if not isinstance(doc, (list, dict)):
            return self.send_json(400, {"error": "body must be a JSON array of resources, a "
                                        "Bundle or a resource"})
        try:
            ds = dataset_mod.Dataset(version, resources=dataset_mod.resource_items(doc),
                                     name=name, any_type=True, epic_rules=rules == "epic",
                                     lenient=rules == "lenient")
        except dataset_mod.LoadError as e:
            return self.send_json(400, {"error": "bad dataset: %s" % e})
        replaced = st.set_dataset(ds)
        warn("dataset %s (%s) %s: %s" % (name, version, "replaced" if replaced else "loaded",
                                         ds.summary() or "empty"))
        return self.send_json(200, {"ok": True, "name": name, "version": version,
                                    "rules": rules, "counts": ds.counts()})

    # -- OAuth token endpoint -------------------------------------------------------------

    def token(self, method):
        st = self.server.state
        entry = {"method": method, "kind": "token", "fhir_version": None, "path": "oauth2/token"}
        fault = st.pick_fault("token", None)
        if fault is not None and not fault_needs_real(fault):
            return self.apply_fault(fault, entry, None, "https://%s/" % self.host())
        real = self.token_response(method, entry)
        if fault is not None:
            return self.apply_fault(fault, entry, real, "https://%s/" % self.host())
        st.add_log(dict(entry, status=real[0]))
        self.send(*real)

    def token_response(self, method, entry):
        """The token endpoint's answer: (status, body, headers, content_type); fills entry."""
        st = self.server.state
        headers = {"Cache-Control": "no-store", "Pragma": "no-cache"}

        def reply(status, obj):
            if "error" in obj:
                entry["error"] = obj["error"]
                entry["error_description"] = obj.get("error_description")
                warn("token request from client %s rejected: %s: %s"
                     % (entry.get("client_id"), obj["error"], obj.get("error_description")))
            return status, json.dumps(obj).encode("utf-8"), headers, "application/json"

        if method != "POST":
            return reply(405, {"error": "invalid_request",
                               "error_description": "the token endpoint only accepts POST"})
        ctype = (self.headers.get("Content-Type") or "").split(";")[0].strip().lower()
        if ctype != "application/x-www-form-urlencoded":
            return reply(400, {"error": "invalid_request", "error_description":
                               "Content-Type must be application/x-www-form-urlencoded"})
        try:
            pairs = urllib.parse.parse_qsl(self.read_body_cached.decode("utf-8"),
                                           keep_blank_values=True, strict_parsing=False)
        except UnicodeDecodeError:
            return reply(400, {"error": "invalid_request", "error_description": "body is not UTF-8"})
        form = {}
        for k, v in pairs:
            if k in form:
                return reply(400, {"error": "invalid_request",
                                   "error_description": "parameter %s repeated" % k})
            form[k] = v
        if form.get("grant_type") != "client_credentials":
            return reply(400, {"error": "unsupported_grant_type", "error_description":
                               "grant_type must be client_credentials"})
        if form.get("client_assertion_type") != ASSERTION_TYPE:
            return reply(400, {"error": "invalid_request", "error_description":
                               "client_assertion_type must be " + ASSERTION_TYPE})
        assertion = form.get("client_assertion")
        if not assertion:
            return reply(400, {"error": "invalid_request",
                               "error_description": "client_assertion is missing"})
        token_url = "https://%s/oauth2/token" % self.host()
        info = {}
        try:
            with st.lock:
                st.assertions.append(assertion)
            client_id, client = st.verify_assertion(assertion, token_url, info)
        except AssertionError_ as e:
            entry.update(info)
            return reply(e.status, {"error": e.error, "error_description": e.description})
        entry.update(info)
        if form.get("client_id") not in (None, client_id):
            return reply(401, {"error": "invalid_client",
                               "error_description": "client_id does not match the assertion iss"})
        scope = form.get("scope")
        if scope is not None and client.get("scopes") is not None:
            bad = [s for s in scope.split() if s not in client["scopes"]]
            if bad:
                return reply(400, {"error": "invalid_scope", "error_description":
                                   "scope not allowed for this client: %s" % " ".join(bad)})
        token, lifetime = st.issue_token(client_id)
        return reply(200, {"access_token": token, "token_type": "bearer", "expires_in": lifetime,
                           "scope": scope if scope else DEFAULT_SCOPE})

    # -- FHIR -----------------------------------------------------------------------------

    def fhir(self, method, version, rel, dataset=False):
        """version: the path segment after /api/FHIR/ or /dataset/ (for a dataset its name,
        which is its version for --dataset ones)."""
        st = self.server.state
        if st.latency_ms > 0:
            time.sleep(st.latency_ms / 1000.0)
        ds = None
        name = version
        if dataset:
            ds = st.get_dataset(name)
            if ds is not None:
                version = ds.version
        rel_noquery = rel.split("?")[0]
        if rel_noquery == ".well-known/smart-configuration":
            kind = "discovery"
        elif rel_noquery == "metadata":
            kind = "metadata"
        else:
            kind = "fhir"
        entry = {"method": method, "kind": kind, "fhir_version": version, "path": rel}
        url_len = len(("https://%s" % self.host()).encode("utf-8")) + len(self.path.encode("utf-8"))
        entry["url_length"] = url_len
        if dataset:
            entry["base"] = "dataset"
            if name != version:
                entry["dataset"] = name
        for h, f in (("Epic-Client-ID", "epic_client_id"), ("Accept", "accept")):
            if self.headers.get(h) is not None:
                entry[f] = self.headers.get(h)
        base_url = "https://%s/%s/%s/" % (self.host(), "dataset" if dataset else "api/FHIR",
                                          name)
        if url_len > st.max_url_length:
            # as IIS would (its default limits are lower still): the URL is refused
            # before anything else looks at the request
            st.add_log(dict(entry, status=414))
            return self.send_json(414, outcome(
                "too-long", "sandbox: request URL of %d bytes is longer than the limit of %d"
                % (url_len, st.max_url_length)), content_type=FHIR_JSON)
        fault = st.pick_fault(kind, rel)
        if fault is not None and not fault_needs_real(fault):
            return self.apply_fault(fault, entry, None, base_url)
        real = self.fhir_response(method, version, rel, dataset, kind, entry, ds, base_url)
        if fault is not None:
            return self.apply_fault(fault, entry, real, base_url)
        st.add_log(dict(entry, status=real[0]))
        self.send(*real)

    def fhir_response(self, method, version, rel, dataset, kind, entry, ds=None, base_url=None):
        """The FHIR answer: (status, body, headers, content_type); fills entry. For a
        dataset request, ds is the dataset (None: there is none of that name) and base_url
        its base."""
        st = self.server.state

        def done(status, body=b"", headers=None, content_type=None):
            return status, body, headers, content_type

        if dataset and ds is None:
            msg = ("sandbox: no dataset for FHIR version %s" if version in FHIR_VERSIONS
                   else "sandbox: no dataset named %s") % version
            return done(404, json.dumps(outcome("not-found", msg)), content_type=FHIR_JSON)
        if version not in FHIR_VERSIONS:
            return done(404, json.dumps(outcome("not-found", "sandbox: unknown FHIR version %s"
                                                % version)), content_type=FHIR_JSON)
        if kind == "discovery" and method == "GET":
            doc = {
                "token_endpoint": "https://%s/oauth2/token" % self.host(),
                "token_endpoint_auth_methods_supported": ["private_key_jwt"],
                "token_endpoint_auth_signing_alg_values_supported": ["RS384", "ES384"],
                "grant_types_supported": ["client_credentials"],
                "scopes_supported": ["system/Patient.read", "system/Patient.rs",
                                     "system/MedicationStatement.read",
                                     "system/MedicationStatement.rs",
                                     "system/MedicationRequest.read", "system/Observation.read"],
                "capabilities": ["client-confidential-asymmetric", "permission-v1",
                                 "permission-v2"],
            }
            return done(200, json.dumps(doc), content_type="application/json")
        if kind == "metadata" and method == "GET":
            doc = capability_statement(version, self.host())
            return done(200, json.dumps(doc), content_type=FHIR_JSON)

        revoked = st.revoke_due()
        if revoked:
            entry["revoked_before"] = revoked
            warn("revoke-after: revoked %d token(s)" % revoked)
        auth = self.headers.get("Authorization") or ""
        scheme, _, token = auth.partition(" ")
        client_id = None
        if scheme.lower() == "bearer" and token.strip():
            client_id = st.check_token(token.strip())
        if client_id is None:
            return done(401, b"", {"WWW-Authenticate": INVALID_TOKEN_CHALLENGE})
        entry["client_id"] = client_id

        if dataset and bulk_mod.is_kickoff(rel):
            return done(*bulk_mod.kickoff(self, method, ds, rel, base_url))
        if dataset:
            status, payload = ds.handle(method, rel, base_url)
            if 200 <= status < 300:
                st.count_success()
            return done(status, payload, content_type=dataset_mod.FHIR_JSON_STD)

        resp = st.fixtures.lookup(method, version, rel)
        reg = st.registries.get(version)
        if resp is None and reg is not None and \
                urllib.parse.unquote(rel.partition("?")[0]).strip("/").split("/")[0] \
                in REGISTRY_TYPES:
            entry["registry"] = True
            status, payload = reg.handle(method, rel, base_url)
            if 200 <= status < 300:
                st.count_success()
            return done(status, payload, content_type=dataset_mod.FHIR_JSON_STD)
        if resp is None:
            msg = "sandbox: no recorded response for %s %s" % (method, rel)
            sys.stderr.write(msg + "\n")
            return done(404, json.dumps(outcome("not-found", msg)), content_type=FHIR_JSON)
        new_prefix = "https://%s/api/FHIR/" % self.host()
        headers = {k: rewrite(v, new_prefix) for k, v in (resp.get("headers") or {}).items()}
        body = resp.get("body")
        ctype = None
        if body is None:
            payload = b""
        elif isinstance(body, str):
            payload = body.replace(RECORDED_FHIR_ORIGIN, new_prefix).encode("utf-8")
        else:
            payload = json.dumps(rewrite(body, new_prefix), ensure_ascii=False).encode("utf-8")
            ctype = FHIR_JSON
        status = int(resp.get("status", 200))
        if 200 <= status < 300:
            st.count_success()
        return done(status, payload, headers, content_type=ctype)

    # -- faults ---------------------------------------------------------------------------

    def apply_fault(self, f, entry, real, base_url):
        """Answer (or not) according to fault f. real is the normal answer
        (status, body, headers, content_type) when fault_needs_real(f), else None."""
        st = self.server.state
        kind = f["kind"]
        entry = dict(entry, fault=kind, fault_id=f["id"])
        if f.get("variant"):
            entry["fault_variant"] = f["variant"]
        where = "%s %s" % (self.command, self.path.split("?")[0])
        warn("%s -> fault %s%s" % (where, kind, ":" + f["variant"] if f.get("variant") else ""))
        if real is not None:
            status, payload, rheaders, rctype = real
            if isinstance(payload, str):
                payload = payload.encode("utf-8")

        if kind == "status":
            body = f.get("body")
            ctype = f.get("content_type")
            if body is None:
                payload = b""
            elif isinstance(body, str):
                payload = body.encode("utf-8")
                ctype = ctype or "text/plain; charset=utf-8"
            else:
                payload = json.dumps(body).encode("utf-8")
                ctype = ctype or ("application/json" if entry["kind"] == "token" else FAULT_JSON)
            st.add_log(dict(entry, status=f["status"]))
            return self.send(f["status"], payload, fault_headers(f["headers"]), ctype)

        if kind == "close":
            st.add_log(dict(entry, status=0))
            return self.drop_connection(rst=False)

        if kind == "reset_mid_body":
            st.add_log(dict(entry, status=status))
            self.close_connection = True
            self.wfile.write(head_bytes(status, len(payload), rheaders, rctype)
                             + payload[:len(payload) // 2])
            return self.drop_connection(rst=True)

        if kind == "hang":
            stored = st.add_log(dict(entry, status=0))
            end = self.hold(lambda ev: self.wait_hanging(ev, f["seconds"]))
            st.update_log(stored, fault_end=end)
            return self.drop_connection(rst=False)

        if kind == "drip":
            stored = st.add_log(dict(entry, status=status))
            head = head_bytes(status, len(payload), rheaders, rctype, self.close_connection)
            if f["headers_too"]:
                data = head + payload
            else:
                self.wfile.write(head)
                data = payload
            end = self.hold(lambda ev: self.drip(ev, data, f["interval_ms"] / 1000.0))
            st.update_log(stored, fault_end=end)
            if end != "complete":
                return self.drop_connection(rst=False)
            return None

        # kind == "body"
        variant = f.get("variant")
        ctype = f.get("content_type") or ("text/html" if variant == "html" else FAULT_JSON)
        headers = fault_headers(f["headers"])
        st.add_log(dict(entry, status=f["status"]))
        if variant == "huge":
            prefix, unit, reps, suffix = huge_layout(payload, f.get("size", DEFAULT_HUGE))
            length = len(prefix) + reps * (len(unit) + 1) - 1 + len(suffix)
            self.wfile.write(head_bytes(f["status"], length, headers, ctype,
                                        self.close_connection) + prefix + unit)
            per_block = max(1, (1 << 20) // (len(unit) + 1))
            block = (b"," + unit) * per_block
            left = reps - 1
            while left >= per_block:
                self.wfile.write(block)
                left -= per_block
            self.wfile.write((b"," + unit) * left + suffix)
            return None
        if variant == "deep":
            body = deep_body(base_url, f.get("depth", DEFAULT_DEPTH))
        elif variant is not None:
            body = body_variant(variant, payload if real is not None else None, base_url)
        elif "raw_b64" in f:
            body = base64.b64decode(f["raw_b64"])
        else:
            body = f["raw"].encode("utf-8")
        return self.send(f["status"], body, headers, ctype)

    def hold(self, fn):
        """Run fn(release_event) while counting this connection as held."""
        st = self.server.state
        with st.lock:
            st.holding += 1
            ev = st.release
        try:
            return fn(ev)
        finally:
            with st.lock:
                st.holding -= 1

    def wait_hanging(self, ev, seconds):
        """Keep the connection open without answering; returns why it ended: "released"
        (faults-clear), "client_gone" or "timeout". Whatever the client sends is read
        from the raw socket and discarded."""
        deadline = time.monotonic() + min(seconds, MAX_HOLD_SECONDS)
        raw = socket.socket(fileno=os.dup(self.connection.fileno()))
        try:
            while True:
                if ev.is_set():
                    return "released"
                left = deadline - time.monotonic()
                if left <= 0:
                    return "timeout"
                r, _, _ = select.select([raw], [], [], min(0.1, left))
                if r:
                    try:
                        if not raw.recv(65536, socket.MSG_DONTWAIT):
                            return "client_gone"
                    except BlockingIOError:
                        pass
                    except OSError:
                        return "client_gone"
        finally:
            raw.close()

    def drip(self, ev, data, interval):
        """Send data one byte per interval; returns "complete", "released", "client_gone"
        or "timeout"."""
        deadline = time.monotonic() + MAX_HOLD_SECONDS
        for i in range(len(data)):
            if i and ev.wait(interval):
                return "released"
            if time.monotonic() > deadline:
                return "timeout"
            try:
                self.wfile.write(data[i:i + 1])
            except (OSError, ValueError):
                return "client_gone"
        return "complete"

    def drop_connection(self, rst):
        """End the connection without (the rest of) a response: a TLS close_notify and a
        FIN (curl: "Empty reply from server"), or with rst a bare TCP RST (SO_LINGER
        {1, 0}) once what was written has left the send queue (curl: "Connection reset by
        peer")."""
        self.close_connection = True
        sock = self.connection
        try:
            if not rst:
                sock.settimeout(0)   # send our close_notify; never wait for the peer's
                try:
                    sock.unwrap()
                except (ssl.SSLError, OSError, ValueError):
                    pass
            else:
                deadline = time.monotonic() + 2
                buf = struct.pack("i", 0)
                while time.monotonic() < deadline:
                    try:
                        queued = struct.unpack("i", fcntl.ioctl(sock.fileno(), termios.TIOCOUTQ,
                                                                buf))[0]
                    except OSError:
                        break
                    if queued == 0:
                        break
                    time.sleep(0.005)
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        except OSError:
            pass
        try:
            self.rfile.close()   # drop the makefile() reference so close() really closes
        except OSError:
            pass
        try:
            sock.close()
        except OSError:
            pass


def outcome(code, diagnostics, severity="error"):
    return {"resourceType": "OperationOutcome",
            "issue": [{"severity": severity, "code": code, "diagnostics": diagnostics}]}


def capability_statement(version, host):
    return {
        "resourceType": "CapabilityStatement",
        "status": "active",
        "date": "2025-12-01",
        "publisher": "epic_fdw sandbox",
        "kind": "instance",
        "software": {"name": "epic_fdw sandbox"},
        "fhirVersion": FHIR_VERSIONS[version],
        "format": ["json"],
        "rest": [{
            "mode": "server",
            "security": {
                "extension": [{
                    "url": "http://fhir-registry.smarthealthit.org/StructureDefinition/oauth-uris",
                    "extension": [{"url": "token",
                                   "valueUri": "https://%s/oauth2/token" % host}]}],
                "service": [{"coding": [{
                    "system": "http://hl7.org/fhir/restful-security-service",
                    "code": "SMART-on-FHIR"}]}]},
            "resource": [{"type": t, "interaction": [{"code": "read"}, {"code": "search-type"}]}
                         for t in ("Patient", "MedicationStatement", "MedicationRequest",
                                   "Observation")],
        }],
    }


# --------------------------------------------------------------------------------------
# Fault injection
# --------------------------------------------------------------------------------------

FAULT_KINDS = ("status", "close", "reset_mid_body", "hang", "drip", "body")
BODY_VARIANTS = ("truncated", "not_bundle", "batch_bundle", "wrong_type_entry",
                 "wrong_value_type", "invalid_utf8", "deep", "html", "huge")
# variants built from the response the sandbox would have sent without the fault
REAL_VARIANTS = ("truncated", "batch_bundle", "wrong_type_entry", "wrong_value_type",
                 "invalid_utf8", "huge")
FAULT_JSON = "application/fhir+json; charset=utf-8"
MAX_HOLD_SECONDS = 600
DEFAULT_HUGE = 50 * 1024 * 1024
DEFAULT_DEPTH = 100000

FAULT_PATIENT = {"resourceType": "Patient", "id": "eFaultInjectedPatient0003", "active": True,
                 "name": [{"use": "official", "text": "Injected Fault",
                           "family": "Fault", "given": ["Injected"]}],
                 "gender": "female", "birthDate": "1987-09-12"}
FAULT_OBSERVATION = {"resourceType": "Observation", "id": "eFaultInjectedObservation3",
                     "status": "final", "code": {"text": "Injected observation"},
                     "subject": {"reference": "Patient/eFaultInjectedPatient0003"},
                     "valueQuantity": {"value": 42, "unit": "kg"}}
FAULT_HTML = (b"<!DOCTYPE html>\n<html><head><title>503 Service Unavailable</title></head>\n"
              b"<body><h1>Service Unavailable</h1><p>The server is temporarily unable to "
              b"service your request. Please try again later.</p></body></html>\n")


def parse_fault(doc):
    """Validate a fault request; returns the normalised fault or raises ValueError.

    Common fields: match ("fhir" | "token" | path prefix relative to the FHIR base, matched
    against the raw and the URL-decoded path), skip (>= 0, default 0), times (>= 1 or -1 =
    until faults-clear, default 1), kind, plus per kind:
      status          status (100-599, required), headers, body, content_type
      close           -
      reset_mid_body  -
      hang            seconds (default and cap 600)
      drip            interval_ms (default 1000), headers_too (default false: the head is
                      sent at once, only the body is dripped)
      body            exactly one of raw, raw_b64, variant; size (huge), depth (deep),
                      status (default 200), headers, content_type
    Unknown fields are rejected (typos in a fault matrix would otherwise go unnoticed).
    A header value "date+N" / "date-N" becomes the HTTP-date N seconds from the moment the
    response is sent."""
    if not isinstance(doc, dict):
        raise ValueError("the fault must be a JSON object")

    def integer(name, default, lo, hi=None, extra=()):
        v = doc.get(name, default)
        if isinstance(v, bool) or not isinstance(v, int) or \
                (v not in extra and (v < lo or (hi is not None and v > hi))):
            raise ValueError("%s must be an integer %s%s" % (
                name, ">= %d" % lo if hi is None else "in %d..%d" % (lo, hi),
                "".join(" or %d" % e for e in extra)))
        return v

    kind = doc.get("kind")
    if kind not in FAULT_KINDS:
        raise ValueError("kind must be one of %s" % ", ".join(FAULT_KINDS))
    match = doc.get("match")
    if not isinstance(match, str) or not match:
        raise ValueError('match must be "fhir", "token" or a path prefix such as "Patient?"')
    f = {"kind": kind, "match": match.lstrip("/"), "skip": integer("skip", 0, 0),
         "times": integer("times", 1, 1, extra=(-1,))}
    allowed = {"kind", "match", "skip", "times"}
    if kind in ("status", "body"):
        allowed |= {"status", "headers", "content_type"}
        f["status"] = integer("status", 200 if kind == "body" else None, 100, 599)
        headers = doc.get("headers", {})
        if not isinstance(headers, dict) or not all(
                isinstance(k, str) and isinstance(v, str) for k, v in headers.items()):
            raise ValueError("headers must be an object of strings")
        for k, v in headers.items():
            if not re.match(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$", k) or "\r" in v or "\n" in v:
                raise ValueError("bad header %r" % k)
        f["headers"] = headers
        ct = doc.get("content_type")
        if ct is not None and not isinstance(ct, str):
            raise ValueError("content_type must be a string")
        f["content_type"] = ct
    if kind == "status":
        allowed.add("body")
        if "body" in doc:
            f["body"] = doc["body"]
    elif kind == "hang":
        allowed.add("seconds")
        f["seconds"] = integer("seconds", MAX_HOLD_SECONDS, 1, MAX_HOLD_SECONDS)
    elif kind == "drip":
        allowed |= {"interval_ms", "headers_too"}
        f["interval_ms"] = integer("interval_ms", 1000, 1, 600000)
        f["headers_too"] = doc.get("headers_too", False)
        if not isinstance(f["headers_too"], bool):
            raise ValueError("headers_too must be a boolean")
    elif kind == "body":
        allowed |= {"raw", "raw_b64", "variant", "size", "depth"}
        given = [k for k in ("raw", "raw_b64", "variant") if k in doc]
        if len(given) != 1:
            raise ValueError("a body fault takes exactly one of raw, raw_b64, variant")
        if "raw" in doc:
            if not isinstance(doc["raw"], str):
                raise ValueError("raw must be a string")
            f["raw"] = doc["raw"]
        elif "raw_b64" in doc:
            try:
                base64.b64decode(doc["raw_b64"], validate=True)
            except (TypeError, ValueError):
                raise ValueError("raw_b64 must be valid base64")
            f["raw_b64"] = doc["raw_b64"]
        else:
            if doc["variant"] not in BODY_VARIANTS:
                raise ValueError("variant must be one of %s" % ", ".join(BODY_VARIANTS))
            f["variant"] = doc["variant"]
        if "size" in doc:
            f["size"] = integer("size", None, 1)
        if "depth" in doc:
            f["depth"] = integer("depth", None, 1, 10000000)
    unknown = sorted(set(doc) - allowed)
    if unknown:
        raise ValueError("unknown field(s) for a %s fault: %s" % (kind, ", ".join(unknown)))
    return f


def fault_matches(match, target, rel):
    if match == "token":
        return target == "token"
    if match == "fhir":
        return target == "fhir"
    if target == "token" or rel is None:
        return False
    return rel.startswith(match) or urllib.parse.unquote(rel).startswith(match)


def fault_needs_real(f):
    return f["kind"] in ("reset_mid_body", "drip") or \
        (f["kind"] == "body" and f.get("variant") in REAL_VARIANTS)


def fault_headers(headers):
    """Expand "date+N" header values into HTTP-dates."""
    out = {}
    for k, v in (headers or {}).items():
        m = re.match(r"^date([+-]\d+)$", v.strip())
        if m:
            v = email.utils.formatdate(time.time() + int(m.group(1)), usegmt=True)
        out[k] = v
    return out


def _parse_json(payload):
    try:
        return json.loads(payload.decode("utf-8"))
    except (ValueError, UnicodeDecodeError, AttributeError):
        return None


def _dumps(doc):
    return json.dumps(doc, ensure_ascii=False).encode("utf-8")


def _real_entries(payload):
    """Entries of the real response: a Bundle's entries, a single resource wrapped as a
    match entry, or (if neither) the synthetic fault Patient."""
    doc = _parse_json(payload)
    if isinstance(doc, dict) and doc.get("resourceType") == "Bundle" \
            and isinstance(doc.get("entry"), list) and doc["entry"]:
        return doc["entry"]
    if isinstance(doc, dict) and isinstance(doc.get("resourceType"), str) \
            and doc["resourceType"] not in ("Bundle", "OperationOutcome"):
        return [{"resource": doc, "search": {"mode": "match"}}]
    return [{"resource": copy.deepcopy(FAULT_PATIENT), "search": {"mode": "match"}}]


def _wrong_value_types(res):
    if not isinstance(res, dict):
        return
    rt = res.get("resourceType")
    if rt == "Patient":
        res["birthDate"] = 19870912
        res["gender"] = 42
    elif rt == "MedicationStatement":
        res["status"] = 7
        if isinstance(res.get("effectivePeriod"), dict):
            res["effectivePeriod"]["start"] = True
        if "effectiveDateTime" in res or not isinstance(res.get("effectivePeriod"), dict):
            res["effectiveDateTime"] = True


def body_variant(variant, real, base_url):
    """The replacement body (bytes) of a non-streamed body variant; real is the real
    response's payload (bytes) or None."""
    if variant == "truncated":
        return real[:len(real) // 2]
    if variant == "not_bundle":
        return _dumps(FAULT_PATIENT)
    if variant == "html":
        return FAULT_HTML
    if variant == "batch_bundle":
        doc = _parse_json(real)
        if isinstance(doc, dict) and doc.get("resourceType") == "Bundle":
            doc["type"] = "batch"
        else:
            doc = {"resourceType": "Bundle", "type": "batch", "entry": _real_entries(real)}
        return _dumps(doc)
    if variant == "wrong_type_entry":
        doc = _parse_json(real)
        if not (isinstance(doc, dict) and doc.get("resourceType") == "Bundle"):
            doc = {"resourceType": "Bundle", "type": "searchset", "entry": _real_entries(real)}
        doc["type"] = "searchset"
        doc["entry"] = [{"fullUrl": base_url + "Observation/" + FAULT_OBSERVATION["id"],
                         "resource": FAULT_OBSERVATION, "search": {"mode": "match"}}] + \
            list(doc.get("entry") or [])
        return _dumps(doc)
    if variant == "wrong_value_type":
        doc = _parse_json(real)
        if isinstance(doc, dict) and doc.get("resourceType") == "Bundle":
            for e in doc.get("entry") or []:
                if isinstance(e, dict):
                    _wrong_value_types(e.get("resource"))
        elif isinstance(doc, dict):
            _wrong_value_types(doc)
        else:
            doc = copy.deepcopy(FAULT_PATIENT)
            _wrong_value_types(doc)
        return _dumps(doc)
    if variant == "invalid_utf8":
        body = real if real else _dumps(FAULT_PATIENT)
        m = re.search(rb'":\s*"', body)
        pos = m.end() if m else 0
        return body[:pos] + b"\xff\xfe" + body[pos:]
    raise ValueError(variant)


def deep_body(base_url, depth):
    """A valid searchset whose first entry's resource has extensions nested depth deep."""
    rid = "eFaultDeepNesting0000003"
    head = _dumps({"resourceType": "Bundle", "type": "searchset", "total": 1})[:-1]
    inner = (b'{"resourceType":"Patient","id":"' + rid.encode() + b'","extension":['
             + b'{"extension":[' * (depth - 1) + b'{"url":"http://example.org/deep",'
             b'"valueString":"bottom"}' + b"]}" * (depth - 1) + b"]}")
    return (head + b', "entry": [{"fullUrl": ' + json.dumps(base_url + "Patient/" + rid).encode()
            + b', "resource": ' + inner + b', "search": {"mode": "match"}}]}')


def huge_layout(real, size):
    """(prefix, unit, reps, suffix): prefix + unit + (b"," + unit) * (reps - 1) + suffix is
    a valid searchset of the real entries repeated, longer than size bytes."""
    entries = _real_entries(real)
    unit = b",".join(_dumps(e) for e in entries)
    reps = 1
    for _ in range(5):   # the prefix length depends on the total's digits
        prefix = b'{"resourceType": "Bundle", "type": "searchset", "total": %d, "entry": [' \
            % (reps * len(entries))
        reps = max(1, (size - len(prefix) - 1) // (len(unit) + 1) + 1)
    prefix = b'{"resourceType": "Bundle", "type": "searchset", "total": %d, "entry": [' \
        % (reps * len(entries))
    return prefix, unit, reps, b"]}"


def head_bytes(status, length, headers=None, content_type=None, close=False):
    reason = http.server.BaseHTTPRequestHandler.responses.get(status, ("",))[0]
    lines = ["HTTP/1.1 %d %s" % (status, reason),
             "Date: " + email.utils.formatdate(usegmt=True)]
    have_ct = False
    for k, v in (headers or {}).items():
        if k.lower() in ("date", "content-length", "transfer-encoding", "connection"):
            continue
        if k.lower() == "content-type":
            have_ct = True
        lines.append("%s: %s" % (k, v))
    if content_type and not have_ct:
        lines.append("Content-Type: " + content_type)
    if length is not None:
        lines.append("Content-Length: %d" % length)
    if close:
        lines.append("Connection: close")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


class Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = False
    request_queue_size = 64

    def __init__(self, addr, handler, ssl_ctx, state):
        self.ssl_ctx = ssl_ctx
        self.state = state
        super().__init__(addr, handler)

    def get_request(self):
        sock, addr = self.socket.accept()
        # Headers and body are separate writes: without TCP_NODELAY, Nagle + the client's
        # delayed ACK add ~40 ms to every response (fatal for benchmarks).
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        # The handshake runs in the handler thread (Handler.setup), never in accept().
        return self.ssl_ctx.wrap_socket(sock, server_side=True,
                                        do_handshake_on_connect=False), addr

    def handle_error(self, request, client_address):
        exc = sys.exc_info()[1]
        if isinstance(exc, (ssl.SSLError, ConnectionError, socket.timeout)):
            return
        super().handle_error(request, client_address)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--state-dir", required=True)
    ap.add_argument("--clients", required=True)
    ap.add_argument("--fixtures", action="append", default=[])
    ap.add_argument("--recording", action="append", default=[])
    ap.add_argument("--token-lifetime", type=int, default=300)
    ap.add_argument("--dataset", action="append", default=[], metavar="VERSION=DIR",
                    help="serve the resources in DIR under /dataset/VERSION/ (STU3 or R4)")
    ap.add_argument("--no-registry", action="store_true",
                    help="no Epic-like registry behind /api/FHIR/ (recorded fixtures only)")
    ap.add_argument("--latency-ms", type=int, default=0,
                    help="sleep this long before answering every FHIR request")
    args = ap.parse_args()
    if args.latency_ms < 0:
        ap.error("--latency-ms must be >= 0")

    state_dir = os.path.abspath(args.state_dir)
    if not os.path.isdir(state_dir):
        os.makedirs(state_dir)
        os.chmod(state_dir, 0o755)
    for stale in ("port",):
        try:
            os.unlink(os.path.join(state_dir, stale))
        except FileNotFoundError:
            pass

    fixtures = Fixtures()
    # recordings first: the first response loaded for a request wins, and a
    # user's recording must not be shadowed by the project's own fixtures
    for f in args.recording:
        n = fixtures.load_file(f)
        warn("loaded %d fixture(s) from %s" % (n, f))
    for d in args.fixtures:
        n = fixtures.load_dir(d)
        warn("loaded %d fixture(s) from %s" % (n, d))
    clients = Clients(args.clients)
    datasets = {}
    for spec in args.dataset:
        version, sep, d = spec.partition("=")
        if not sep or version not in ("STU3", "R4") or not d:
            ap.error("--dataset takes VERSION=DIR with VERSION STU3 or R4, got %r" % spec)
        if version in datasets:
            ap.error("--dataset %s given twice" % version)
        t0 = time.time()
        datasets[version] = dataset_mod.Dataset(version, d, name=version)
        warn("dataset %s from %s: %s (%.1f s)" % (version, d, datasets[version].summary(),
                                                  time.time() - t0))

    registries = {}
    if not args.no_registry:
        sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                        "..", "dataset"))
        import generate as generate_mod  # noqa: E402
        for version in ("STU3", "R4"):
            d = os.path.join(state_dir, "registry", version.lower())
            if not os.path.exists(os.path.join(d, "Group.ndjson")):
                generate_mod.main(["--version", version, "--patients", str(REGISTRY_PATIENTS),
                                   "--statements-per-patient", "5", "--seed", "13",
                                   "--types", "none", "--out", d])
            registries[version] = dataset_mod.Dataset(version, d, name=version,
                                                      patient_criteria=True)
            warn("registry %s: %s" % (version, registries[version].summary()))

    crt, key = ensure_tls_material(state_dir)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(crt, key)

    state = State(clients, fixtures, args.token_lifetime, datasets, args.latency_ms,
                  registries)
    server = Server(("127.0.0.1", 0), Handler, ctx, state)
    port = server.server_address[1]

    def stop(signum, frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)

    pid_p = os.path.join(state_dir, "pid")
    port_p = os.path.join(state_dir, "port")
    _write_file(pid_p, b"%d\n" % os.getpid(), 0o644)
    _write_file(port_p, b"%d\n" % port, 0o644)  # the socket is already listening
    warn("listening on https://localhost:%d (pid %d)" % (port, os.getpid()))
    try:
        server.serve_forever(poll_interval=0.2)
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
        for p in (port_p, pid_p):
            try:
                os.unlink(p)
            except FileNotFoundError:
                pass
        warn("stopped")


if __name__ == "__main__":
    main()
