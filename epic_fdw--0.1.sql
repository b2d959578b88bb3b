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
