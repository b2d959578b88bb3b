-- bench/plpython.sql: the PL/Python baseline of bench/run.sh.
--
-- bench_plpy_patients() does in PL/Python what epic_fdw does for a full Patient scan:
-- gets a SMART Backend Services token itself (client assertion signed with PyJWT,
-- RS384), pages through the search following the Bundle's next links over one
-- keep-alive TLS connection (http.client, ssl context with the sandbox CA), parses
-- every page with json and returns the same 17 columns as epic_fdw's patients table,
-- with the resource as jsonb. Like epic_fdw it caches the token and the connection
-- per backend (in GD), so repeated calls in one session reuse both.
-- The column rules follow README.md "Built-in tables" (official name first, home
-- phone first, partial birth dates as NULL, MRN by mrn_system).

CREATE EXTENSION IF NOT EXISTS plpython3u;

CREATE OR REPLACE FUNCTION bench_plpy_patients(
    base_url text, token_url text, ca_file text, key_file text, client_id text, kid text,
    mrn_system text, page_size int DEFAULT 100)
RETURNS TABLE (id text, mrn text, family text, given text, name text, birthdate date,
               gender text, phone text, phones text[], email text, address_line text,
               city text, state text, postal_code text, active boolean, deceased boolean,
               resource jsonb)
LANGUAGE plpython3u AS $py$
import http.client, json, ssl, time, uuid, urllib.parse
import jwt

st = GD.setdefault("bench_fhir", {})
u = urllib.parse.urlsplit(base_url)

def connection():
    c = st.get("conn")
    if c is None:
        ctx = ssl.create_default_context(cafile=ca_file)
        c = http.client.HTTPSConnection(u.hostname, u.port or 443, context=ctx, timeout=60)
        st["conn"] = c
    return c

def request(method, path, body=None, headers=None):
    for attempt in (1, 2):
        c = connection()
        try:
            c.request(method, path, body=body, headers=headers or {})
            r = c.getresponse()
            data = r.read()
            if r.getheader("Connection", "").lower() == "close":
                c.close(); st.pop("conn", None)
            return r.status, data
        except (OSError, http.client.HTTPException):
            c.close(); st.pop("conn", None)
            if attempt == 2:
                raise

def token():
    t = st.get("token")
    if t and t[1] > time.time() + 30:
        return t[0]
    with open(key_file, "rb") as f:
        key = f.read()
    now = int(time.time())
    assertion = jwt.encode({"iss": client_id, "sub": client_id, "aud": token_url,
                            "jti": uuid.uuid4().hex, "exp": now + 240},
                           key, algorithm="RS384", headers={"kid": kid})
    body = urllib.parse.urlencode({
        "grant_type": "client_credentials",
        "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
        "client_assertion": assertion})
    tu = urllib.parse.urlsplit(token_url)
    status, data = request("POST", tu.path, body,
                           {"Content-Type": "application/x-www-form-urlencoded"})
    if status != 200:
        plpy.error("token request failed: HTTP %d" % status)
    d = json.loads(data)
    st["token"] = (d["access_token"], time.time() + int(d.get("expires_in", 300)))
    st["token_requests"] = st.get("token_requests", 0) + 1
    return d["access_token"]

def official(names):
    for n in names or ():
        if n.get("use") == "official":
            return n
    return (names or [None])[0]

def telecom(r, system):
    items = [t for t in r.get("telecom") or () if t.get("system") == system]
    for use in ("home", "mobile"):
        for t in items:
            if t.get("use") == use and "value" in t:
                return t["value"]
    for t in items:
        if "value" in t:
            return t["value"]
    return None

def fulldate(s):
    return s[:10] if isinstance(s, str) and len(s) >= 10 else None

def row(r):
    n = official(r.get("name"))
    fam = giv = nam = None
    if n:
        fam = n.get("family")
        g = n.get("given")
        giv = " ".join(g) if g else None
        nam = n.get("text") or " ".join((g or []) + ([fam] if fam else [])) or None
    mrn = None
    for i in r.get("identifier") or ():
        if i.get("system") == mrn_system:
            mrn = i.get("value"); break
    a = (r.get("address") or [None])[0] or {}
    line = a.get("line")
    deceased = r.get("deceasedBoolean")
    if deceased is None and "deceasedDateTime" in r:
        deceased = True
    return (r.get("id"), mrn, fam, giv, nam, fulldate(r.get("birthDate")), r.get("gender"),
            telecom(r, "phone"),
            [t["value"] for t in r.get("telecom") or ()
             if t.get("system") == "phone" and "value" in t] or None,
            telecom(r, "email"), line[0] if line else None, a.get("city"), a.get("state"),
            a.get("postalCode"), r.get("active"), deceased,
            json.dumps(r, ensure_ascii=False))

def pages():
    path = "%sPatient?_count=%d" % (u.path, page_size)
    while path:
        hdrs = {"Authorization": "Bearer " + token(), "Accept": "application/fhir+json"}
        status, data = request("GET", path, None, hdrs)
        if status == 401:
            st.pop("token", None)
            hdrs["Authorization"] = "Bearer " + token()
            status, data = request("GET", path, None, hdrs)
        if status != 200:
            plpy.error("FHIR request failed: HTTP %d" % status)
        b = json.loads(data)
        yield b
        path = None
        for l in b.get("link") or ():
            if l.get("relation") == "next":
                nu = urllib.parse.urlsplit(l["url"])
                path = nu.path + ("?" + nu.query if nu.query else "")

def rows():
    for b in pages():
        for e in b.get("entry") or ():
            r = e.get("resource") or {}
            if r.get("resourceType") == "Patient":
                yield row(r)

return rows()
$py$;
