--
-- bulk_cron: the scheduled refresh of a bulk table with pg_cron (the test
-- cluster preloads it, see scripts/lib.sh): a job that CALLs the refresh
-- procedure in this database, whose run is asserted in cron.job_run_details
-- and in the local table.  pg_cron 1.4 has minute granularity: the job runs
-- at the next full minute, so this file waits up to 90 s for it.  It is last
-- in the REGRESS list, so that the job's requests disturb no other test.
--
\i sql/include/setup.sql
\! $EPIC_CTL dataset cronpop R4 test/bulk/population.json
\! $EPIC_CTL bulk '{"retry_after": "0"}'
SELECT replace(:'dataset_url_r4', '/dataset/R4/', '/dataset/cronpop/') AS cron_url \gset
CREATE SERVER cron_bulk FOREIGN DATA WRAPPER epic_fdw
  OPTIONS (fhir_url :'cron_url', fhir_version 'R4', ca_file :'ca_file');
CREATE USER MAPPING FOR CURRENT_USER SERVER cron_bulk
  OPTIONS (client_id 'epic-fdw-rs384', private_key_file :'rsa_key', key_id 'rs1');
CREATE FOREIGN TABLE cron_patients (id text, family text, last_updated timestamptz, resource jsonb)
  SERVER cron_bulk OPTIONS (resource 'Patient', bulk_group 'diabetics');

-- first load, and the export's transactionTime for the next refresh
CREATE TABLE cron_local AS SELECT * FROM cron_patients;
ALTER TABLE cron_local ADD PRIMARY KEY (id);
CREATE TABLE cron_state (since timestamptz NOT NULL);
INSERT INTO cron_state SELECT transaction_time FROM epic_fdw_last_export('cron_patients');
CREATE PROCEDURE cron_refresh() LANGUAGE plpgsql AS $$
DECLARE
  t timestamptz := (SELECT since FROM cron_state);
  e record;
BEGIN
  INSERT INTO cron_local SELECT * FROM cron_patients WHERE last_updated > t
    ON CONFLICT (id) DO UPDATE
      SET family = EXCLUDED.family, last_updated = EXCLUDED.last_updated,
          resource = EXCLUDED.resource;
  SELECT * INTO e FROM epic_fdw_last_export('cron_patients');
  DELETE FROM cron_local WHERE id = ANY (e.deleted);
  UPDATE cron_state SET since = e.transaction_time;
END $$;
SELECT id, family FROM cron_local ORDER BY id;

-- the server changes: p1 renamed, p5 deleted
\! $EPIC_CTL bulk-update cronpop '{"upsert": [{"resourceType": "Patient", "id": "p1", "name": [{"family": "Alvarez-Ruiz"}]}], "delete": [{"type": "Patient", "id": "p5"}]}'
\! $EPIC_CTL reset

-- schedule the refresh (pg_cron lives in the database named by
-- cron.database_name, here postgres) and wait for its first run
SELECT current_database() AS regress_db \gset
\c postgres
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS pg_cron;
RESET client_min_messages;
SELECT cron.schedule_in_database('epic-bulk-refresh', '* * * * *', 'CALL cron_refresh()',
                                 :'regress_db') > 0 AS scheduled;
DO $$
BEGIN
  FOR i IN 1..180 LOOP
    EXIT WHEN EXISTS (SELECT FROM cron.job_run_details d JOIN cron.job j USING (jobid)
                       WHERE j.jobname = 'epic-bulk-refresh'
                         AND d.status IN ('succeeded', 'failed'));
    PERFORM pg_sleep(0.5);
  END LOOP;
END $$;
SELECT d.status, d.return_message, d.database
  FROM cron.job_run_details d JOIN cron.job j USING (jobid)
 WHERE j.jobname = 'epic-bulk-refresh' ORDER BY d.runid LIMIT 1;
SELECT cron.unschedule('epic-bulk-refresh');
\c :regress_db

-- the job refreshed the local table: p1 renamed, p5 gone, with _since sent
SELECT id, family FROM cron_local ORDER BY id;
SELECT since > now() - interval '1 hour' AS since_advanced FROM cron_state;
\! $EPIC_CTL log | grep -c 'export?_type=Patient&_since='
\! $EPIC_CTL bulk '{}'
