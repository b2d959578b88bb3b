/* epic_fdw--0.1.sql */

-- complain if script is sourced in psql, rather than via CREATE EXTENSION
\echo Use "CREATE EXTENSION epic_fdw" to load this file. \quit

CREATE FUNCTION epic_fdw_handler()
RETURNS fdw_handler
AS 'MODULE_PATHNAME'
LANGUAGE C STRICT;

CREATE FUNCTION epic_fdw_validator(text[], oid)
RETURNS void
AS 'MODULE_PATHNAME'
LANGUAGE C STRICT;

CREATE FOREIGN DATA WRAPPER epic_fdw
  HANDLER epic_fdw_handler
  VALIDATOR epic_fdw_validator;

COMMENT ON FOREIGN DATA WRAPPER epic_fdw IS 'FHIR servers (Epic and others) over SMART Backend Services';

-- The JWK Set to publish at the jku URL registered with the authorization
-- server: the public half of the current user's mapping key, plus extra PEM
-- public keys (key rotation).
CREATE FUNCTION epic_fdw_public_jwks(server name, additional_public_keys text[] DEFAULT '{}')
RETURNS jsonb
AS 'MODULE_PATHNAME'
LANGUAGE C;

-- Step-by-step check of a server for the current user: token endpoint
-- discovery, a token request, and the server's metadata (FHIR version).
CREATE FUNCTION epic_fdw_check(server name,
  OUT step text, OUT request text, OUT status int, OUT duration_ms float8,
  OUT ok boolean, OUT detail text, OUT hint text)
RETURNS SETOF record
AS 'MODULE_PATHNAME'
LANGUAGE C STRICT;
