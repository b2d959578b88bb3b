--
-- bulk_memory: a Bulk Data export of about 200 MB scanned with the backend's
-- peak memory (VmHWM) growing at most 32 MB between 10% and 100% of the scan
-- (files are spooled to temporary files and read back in chunks of lines).
--
\i sql/include/setup.sql
\! $EPIC_CTL dataset bigpop R4 test/bulk/population.json
-- 5 members x 10,000 copies of ~4 kB: 50,000 Patients, in 10 files
\! $EPIC_CTL bulk '{"retry_after": "0", "repeat": 10000, "pad": 4000, "file_size": 5000}'
SELECT replace(:'dataset_url_r4', '/dataset/R4/', '/dataset/bigpop/') AS big_url \gset
CREATE SERVER big_bulk FOREIGN DATA WRAPPER epic_fdw
  OPTIONS (fhir_url :'big_url', fhir_version 'R4', ca_file :'ca_file');
CREATE USER MAPPING FOR CURRENT_USER SERVER big_bulk
  OPTIONS (client_id 'epic-fdw-rs384', private_key_file :'rsa_key', key_id 'rs1');
CREATE FOREIGN TABLE big_patients (id text, family text, last_updated timestamptz, resource jsonb)
  SERVER big_bulk OPTIONS (resource 'Patient', bulk_group 'diabetics');
CREATE FUNCTION pg_temp.hwm_kb() RETURNS bigint LANGUAGE sql AS
  $$ SELECT (regexp_match(pg_read_file('/proc/self/status'), 'VmHWM:\s+(\d+)'))[1]::bigint $$;
-- read every row (with its jsonb), noting VmHWM at 10% and at the end
CREATE TEMP TABLE hwm (rows bigint, bytes bigint, at10 bigint, at100 bigint);
DO $$
DECLARE
  r record;
  n bigint := 0;
  bytes bigint := 0;
  at10 bigint;
BEGIN
  FOR r IN SELECT id, family, resource FROM big_patients LOOP
    n := n + 1;
    bytes := bytes + octet_length(r.resource::text);
    IF n = 5000 THEN
      at10 := pg_temp.hwm_kb();
    END IF;
  END LOOP;
  INSERT INTO hwm VALUES (n, bytes, at10, pg_temp.hwm_kb());
END $$;
SELECT rows, bytes > 200000000 AS over_200mb, at100 - at10 <= 32 * 1024 AS hwm_growth_within_32mb
  FROM hwm;
SELECT files, resources FROM epic_fdw_last_export('big_patients');
\! $EPIC_CTL bulk '{}'
