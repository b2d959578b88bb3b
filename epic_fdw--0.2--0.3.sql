/* epic_fdw--0.2--0.3.sql: upgrade of epic_fdw from 0.2 to 0.3 */

\echo Use "ALTER EXTENSION epic_fdw UPDATE TO '0.3'" to load this file. \quit

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
