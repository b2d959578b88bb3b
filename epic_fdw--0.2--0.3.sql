/* epic_fdw--0.2--0.3.sql */

\echo Use "ALTER EXTENSION epic_fdw UPDATE TO '0.3'" to load this file. \quit

-- --- connections (as postgres_fdw offers) -----------------------------------
-- This backend's cached connections: one row per user mapping used.
CREATE FUNCTION epic_fdw_get_connections(
  OUT server_name text, OUT user_name text, OUT valid boolean,
  OUT token_expires_at timestamptz, OUT connections int, OUT requests bigint)
RETURNS SETOF record
AS 'MODULE_PATHNAME', 'epic_fdw_get_connections'
LANGUAGE C STRICT PARALLEL RESTRICTED;

-- Close this backend's connections (and tokens) to a server, or to all.
CREATE FUNCTION epic_fdw_disconnect(server name)
RETURNS boolean
AS 'MODULE_PATHNAME', 'epic_fdw_disconnect'
LANGUAGE C STRICT PARALLEL RESTRICTED;

CREATE FUNCTION epic_fdw_disconnect_all()
RETURNS boolean
AS 'MODULE_PATHNAME', 'epic_fdw_disconnect_all'
LANGUAGE C STRICT PARALLEL RESTRICTED;
