#!/usr/bin/env python3
"""Checks of server.mjs's own front (not of Medplum, not of epic_fdw): SMART
discovery, the token endpoint's client-assertion checks (a real signature
check with the registered RS384 / ES384 keys, iss/sub/aud/exp/jti), bearer
tokens on FHIR requests, and paging with absolute _offset next links.

Usage: selftest.py ORIGIN CA_FILE KEYS_DIR SEED.json
Prints ok / not ok lines and "N passed, N failed" last.
"""
import json
import ssl
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid

import jwt

ORIGIN, CA, KEYS, SEED = sys.argv[1:5]
BASE = ORIGIN + "/fhir/R4/"
TOKEN_URL = ORIGIN + "/oauth2/token"
CTX = ssl.create_default_context(cafile=CA)
ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
results = []


def check(name, cond, detail=""):
    results.append(bool(cond))
    print("%s - %s%s" % ("ok" if cond else "not ok", name, "" if cond else ": " + str(detail)))


def http(url, data=None, headers=None):
    """(status, headers, parsed JSON body or raw text)"""
    req = urllib.request.Request(url, data=data, headers=headers or {})
    try:
        with urllib.request.urlopen(req, context=CTX, timeout=30) as r:
            status, hdrs, body = r.status, r.headers, r.read()
    except urllib.error.HTTPError as e:
        status, hdrs, body = e.code, e.headers, e.read()
    try:
        return status, hdrs, json.loads(body)
    except ValueError:
        return status, hdrs, body.decode("utf-8", "replace")


def key(name):
    with open("%s/%s.pem" % (KEYS, name)) as f:
        return f.read()


def assertion(client="epic-fdw-rs384", alg="RS384", kid="rs1", keyname="rs384", **over):
    now = int(time.time())
    claims = {"iss": client, "sub": client, "aud": TOKEN_URL, "exp": now + 240,
              "jti": str(uuid.uuid4())}
    for k, v in over.items():
        if v is None:
            claims.pop(k, None)
        else:
            claims[k] = v
    return jwt.encode(claims, key(keyname), algorithm=alg, headers={"kid": kid} if kid else None)


def token_request(a, **extra):
    form = {"grant_type": "client_credentials", "client_assertion_type": ASSERTION_TYPE,
            "client_assertion": a}
    form.update(extra)
    return http(TOKEN_URL, urllib.parse.urlencode(form).encode(),
                {"Content-Type": "application/x-www-form-urlencoded"})


def rejected(name, a, want_status=401, want_error="invalid_client", **extra):
    s, _, body = token_request(a, **extra)
    check("token endpoint rejects " + name,
          s == want_status and isinstance(body, dict) and body.get("error") == want_error,
          "%s %s" % (s, body))


s, _, doc = http(BASE + ".well-known/smart-configuration")
check("smart-configuration names the token endpoint",
      s == 200 and doc.get("token_endpoint") == TOKEN_URL and
      "private_key_jwt" in doc.get("token_endpoint_auth_methods_supported", []), doc)

s, h, _ = http(BASE + "Patient")
check("FHIR search without a token is 401 with a Bearer challenge",
      s == 401 and "invalid_token" in (h.get("WWW-Authenticate") or ""), s)
s, _, _ = http(BASE + "Patient", headers={"Authorization": "Bearer not-a-token"})
check("FHIR search with an unknown token is 401", s == 401, s)

s, _, body = token_request(assertion())
check("RS384 assertion gets a bearer token", s == 200 and body.get("token_type") == "bearer", body)
tok = body.get("access_token") if isinstance(body, dict) else None
s, _, body = token_request(assertion("epic-fdw-es384", "ES384", "ec1", "es384"))
check("ES384 assertion gets a bearer token", s == 200 and body.get("access_token"), body)
tok_es = body.get("access_token") if isinstance(body, dict) else None

rejected("a signature by another key", assertion(keyname="wrong"))
good = assertion()
parts = good.split(".")
claims = json.loads(jwt.utils.base64url_decode(parts[1]))
claims["exp"] += 1
forged = parts[0] + "." + jwt.utils.base64url_encode(json.dumps(claims).encode()).decode() + "." + parts[2]
rejected("a payload changed after signing", forged)
rejected("an ES384 signature from the RSA client's key id",
         assertion("epic-fdw-rs384", "ES384", "rs1", "es384"))
rejected("an HS384 assertion", jwt.encode({"iss": "epic-fdw-rs384", "sub": "epic-fdw-rs384",
                                           "aud": TOKEN_URL, "exp": int(time.time()) + 60,
                                           "jti": "h1"}, "secret", algorithm="HS384"))
rejected("an unknown client", assertion(client="nobody", iss="nobody", sub="nobody"))
rejected("an unknown kid", assertion(kid="rs9"))
rejected("a wrong aud", assertion(aud=ORIGIN + "/other/token"))
rejected("sub different from iss", assertion(sub="someone-else"))
rejected("an expired assertion", assertion(exp=int(time.time()) - 60))
rejected("exp more than 5 minutes ahead", assertion(exp=int(time.time()) + 900))
rejected("a missing jti", assertion(jti=None))
replay = assertion()
s1, _, _ = token_request(replay)
check("a fresh assertion is accepted once", s1 == 200, s1)
rejected("a replayed jti", replay)
rejected("a client_id that is not the iss", assertion(), client_id="epic-fdw-es384")
rejected("a scope the client may not have",
         assertion("epic-fdw-scoped"), 400, "invalid_scope", scope="system/Observation.read")
rejected("another grant type", assertion(), 400, "unsupported_grant_type",
         grant_type="authorization_code")

auth = {"Authorization": "Bearer %s" % tok}
s, _, b = http(BASE + "Patient/pat-0001", headers=auth)
check("read with the RS384 client's token", s == 200 and b.get("id") == "pat-0001", s)
s, _, b = http(BASE + "Patient/pat-0001", headers={"Authorization": "Bearer %s" % tok_es})
check("read with the ES384 client's token", s == 200 and b.get("id") == "pat-0001", s)

# paging: every patient exactly once through absolute next links
with open(SEED, encoding="utf-8") as f:
    want = sorted(r["id"] for r in json.load(f) if r["resourceType"] == "Patient")
url = BASE + "Patient?_count=7"
got, pages, absolute = [], 0, True
while url and pages < 100:
    s, _, b = http(url, headers=auth)
    if s != 200:
        break
    pages += 1
    got += [e["resource"]["id"] for e in b.get("entry", [])]
    nxt = [lk["url"] for lk in b.get("link", []) if lk.get("relation") == "next"]
    url = nxt[0] if nxt else None
    if url and not url.startswith(BASE + "Patient?"):
        absolute = False
check("paging with _count=7 returns every patient once in %d pages" % pages,
      sorted(got) == want and pages == (len(want) + 6) // 7, "%d ids, %d pages" % (len(got), pages))
check("next links are absolute URLs on the server's base", absolute)
s, _, b = http(BASE + "Patient?_count=100", headers=auth)
check("_count above the page cap gets a smaller page and a next link",
      s == 200 and len(b.get("entry", [])) < 100 and
      any(lk.get("relation") == "next" for lk in b.get("link", [])), s)

# Medplum's own reading of `name` (why issue 12's defect 1 shows on this server)
s, _, b = http(BASE + "Patient?name=Robert", headers=auth)
ids = [e["resource"]["id"] for e in b.get("entry", [])]
check("Medplum matches name=Robert on the given name of 'Bobby Tables'", "pat-0001" in ids, ids)
s, _, b = http(BASE + "Patient?name=Bobby", headers=auth)
ids = [e["resource"]["id"] for e in b.get("entry", [])]
check("Medplum does not match name=Bobby (HumanName.text only)", "pat-0001" not in ids, ids)

print("%d passed, %d failed" % (results.count(True), results.count(False)))
sys.exit(0 if all(results) else 1)
