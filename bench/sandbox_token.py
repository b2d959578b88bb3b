"""A bearer token from the sandbox's token endpoint, for the benchmarks' own
clients (the transfer limits): a SMART Backend Services client assertion
signed with the test key (PyJWT), exchanged at the token URL over HTTPS
verified with the test CA. Shared by bench.py and bulk.py."""
import http.client
import json
import ssl
import time
import urllib.parse
import uuid

import jwt


def get_token(token_url, key_file, ca_file, client="epic-fdw-rs384", kid="rs1"):
    now = int(time.time())
    with open(key_file, "rb") as f:
        key = f.read()
    assertion = jwt.encode({"iss": client, "sub": client, "aud": token_url,
                            "jti": uuid.uuid4().hex, "exp": now + 240}, key,
                           algorithm="RS384", headers={"kid": kid})
    u = urllib.parse.urlsplit(token_url)
    c = http.client.HTTPSConnection(u.hostname, u.port,
                                    context=ssl.create_default_context(cafile=ca_file))
    try:
        c.request("POST", u.path, urllib.parse.urlencode({
            "grant_type": "client_credentials",
            "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
            "client_assertion": assertion}), {"Content-Type": "application/x-www-form-urlencoded"})
        return json.loads(c.getresponse().read())["access_token"]
    finally:
        c.close()
