--
-- memory: repeated scans keep the backend's memory flat (pages, parsed
-- JSON, compiled paths and curl buffers are all released)
--
\i sql/include/setup.sql
\i sql/include/dataset.sql

-- one resource per page: each scan of the 200 patients is 200 requests
ALTER SERVER dataset OPTIONS (ADD page_size '1');
CREATE FUNCTION pg_temp.rss_kb() RETURNS bigint LANGUAGE sql AS
  $$ SELECT (regexp_match(pg_read_file('/proc/self/status'), 'VmRSS:\s+(\d+)'))[1]::bigint $$;
CREATE FUNCTION pg_temp.scan_pages(n int) RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE total bigint := 0; c bigint;
BEGIN
  FOR i IN 1..n LOOP
    SELECT count(*) INTO c FROM patients;
    total := total + c;
  END LOOP;
  RETURN total;
END $$;

-- warm up (1,000 pages), then measure across another 1,000 pages
SELECT pg_temp.scan_pages(5) AS resources_read;
SELECT pg_temp.rss_kb() AS rss_before \gset
SELECT pg_temp.scan_pages(5) AS resources_read;
SELECT pg_temp.rss_kb() AS rss_after \gset
SELECT :rss_after - :rss_before < 4096 AS memory_flat_within_4mb;
-- the same for joins (parameterized rescans) and the jsonb column
SELECT pg_temp.rss_kb() AS rss_before \gset
SELECT count(*), sum(length(resource::text)) > 0 AS has_resources
  FROM (SELECT p.resource FROM patients p JOIN medication_statements m ON m.patient_id = p.id
        WHERE p.state = 'TX') s;
SELECT count(*), sum(length(resource::text)) > 0 AS has_resources
  FROM (SELECT p.resource FROM patients p JOIN medication_statements m ON m.patient_id = p.id
        WHERE p.state = 'TX') s;
SELECT pg_temp.rss_kb() AS rss_mid \gset
SELECT count(*), sum(length(resource::text)) > 0 AS has_resources
  FROM (SELECT p.resource FROM patients p JOIN medication_statements m ON m.patient_id = p.id
        WHERE p.state = 'TX') s;
SELECT count(*), sum(length(resource::text)) > 0 AS has_resources
  FROM (SELECT p.resource FROM patients p JOIN medication_statements m ON m.patient_id = p.id
        WHERE p.state = 'TX') s;
SELECT pg_temp.rss_kb() AS rss_after \gset
SELECT :rss_after - :rss_mid < 2048 AS join_memory_flat_within_2mb;

RESET search_path;
DROP SCHEMA ds CASCADE;
DROP SERVER dataset CASCADE;
