/* epic_fdw--0.1--0.2.sql: SQL on FHIR ViewDefinitions */

\echo Use "ALTER EXTENSION epic_fdw UPDATE TO '0.2'" to load this file. \quit

CREATE FUNCTION epic_fdw_view_ddl(view_definition jsonb, table_name text, server_name text)
RETURNS text
AS 'MODULE_PATHNAME', 'epic_fdw_view_ddl'
LANGUAGE C STABLE PARALLEL SAFE;

COMMENT ON FUNCTION epic_fdw_view_ddl(jsonb, text, text) IS
'CREATE FOREIGN TABLE statement for a SQL on FHIR ViewDefinition (table_name NULL: the view''s name)';
