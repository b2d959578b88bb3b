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

-- --- column comments for BI tools --------------------------------------------
-- COMMENT ON COLUMN statements for an epic_fdw foreign table: each column's
-- FHIRPath and search parameter.
CREATE FUNCTION epic_fdw_column_comments(foreign_table regclass)
RETURNS SETOF text
AS 'MODULE_PATHNAME', 'epic_fdw_column_comments'
LANGUAGE C STRICT STABLE;

-- IMPORT FOREIGN SCHEMA can only create tables: this event trigger adds the
-- comments to the epic_fdw tables an import created.  A table whose comments
-- cannot be made keeps none (a WARNING says why); the import itself stands.
CREATE FUNCTION epic_fdw_comment_imported_tables()
RETURNS event_trigger
LANGUAGE plpgsql AS $$
DECLARE
  obj record;
  stmt text;
  -- the extension is relocatable: find its schema now
  ext_schema name := (SELECT n.nspname FROM pg_extension e
                        JOIN pg_namespace n ON n.oid = e.extnamespace
                       WHERE e.extname = 'epic_fdw');
BEGIN
  FOR obj IN
    SELECT c.objid FROM pg_event_trigger_ddl_commands() c
      JOIN pg_foreign_table ft ON ft.ftrelid = c.objid
      JOIN pg_foreign_server s ON s.oid = ft.ftserver
      JOIN pg_foreign_data_wrapper w ON w.oid = s.srvfdw
      JOIN pg_proc h ON h.oid = w.fdwhandler
     WHERE c.object_type = 'foreign table' AND h.proname = 'epic_fdw_handler'
  LOOP
    BEGIN
      FOR stmt IN EXECUTE format('SELECT %I.epic_fdw_column_comments($1)', ext_schema)
                  USING obj.objid::regclass LOOP
        EXECUTE stmt;
      END LOOP;
    EXCEPTION WHEN OTHERS THEN
      RAISE WARNING 'epic_fdw: no column comments on %: %', obj.objid::regclass, SQLERRM;
    END;
  END LOOP;
END $$;

CREATE EVENT TRIGGER epic_fdw_import_comments ON ddl_command_end
  WHEN TAG IN ('IMPORT FOREIGN SCHEMA')
  EXECUTE FUNCTION epic_fdw_comment_imported_tables();

-- ---------------------------------------------------------------------------
-- Bulk Data export (bulk tables, src/bulk.c)
-- ---------------------------------------------------------------------------

-- The last export this session ran for a bulk table (NULL if none): the
-- manifest's transactionTime (the next refresh's _since), the kick-off
-- request, the table type's files and resources read, the resources the
-- export's error files report, and the ids of the table type's resources
-- the manifest lists as deleted.
CREATE FUNCTION epic_fdw_last_export(
    tbl regclass,
    OUT transaction_time timestamptz,
    OUT request text,
    OUT files int,
    OUT resources bigint,
    OUT errors int,
    OUT deleted text[])
RETURNS record
AS 'MODULE_PATHNAME', 'epic_fdw_last_export'
LANGUAGE C STRICT VOLATILE;

-- End of the Bulk Data export block.
