--
-- faultinject: allocation failures inside libcurl callbacks and failing
-- curl_multi calls.  Needs a build with -DEPIC_FAULT_INJECTION (scripts/asan.sh
-- makes one; the production build has no such settings), so it is not in the
-- Makefile's REGRESS list.
--
\i sql/include/setup.sql
\i sql/include/dataset.sql
SET statement_timeout = '60s';
-- warm the token cache: the failures below hit FHIR transfers
SELECT count(*) FROM patients WHERE gender = 'female' AND birthdate < '1960-01-01';

-- the Nth allocation inside a write or header callback fails: the transfer
-- fails cleanly (53200), and the session and its connection stay usable
CREATE TEMP TABLE alloc_results (n int, outcome text, usable_after bigint);
DO $$
DECLARE
  outcome text;
  usable bigint;
BEGIN
  FOR n IN 1 .. 12 LOOP
    PERFORM set_config('epic_fdw.fault_alloc_fail_after', n::text, false);
    BEGIN
      PERFORM count(*) FROM patients WHERE gender = 'male';
      outcome := 'rows';
    EXCEPTION WHEN OTHERS THEN
      outcome := SQLSTATE || ': ' || SQLERRM;
    END;
    PERFORM set_config('epic_fdw.fault_alloc_fail_after', '0', false);
    SELECT count(*) INTO usable FROM patients;
    INSERT INTO alloc_results VALUES (n, outcome, usable);
  END LOOP;
END $$;
-- every injected failure gave a clean out-of-memory error (which allocation
-- fails depends on how the network delivers the body), and every query after
-- it read all 200 patients
SELECT bool_and(outcome IN ('rows', '53200: out of memory while receiving a FHIR response')) AS clean,
       bool_or(outcome <> 'rows') AS some_failed,
       min(usable_after) AS min_rows_after, max(usable_after) AS max_rows_after
  FROM alloc_results;

-- a failing curl_multi_perform is an error, not a busy loop
SET epic_fdw.fault_multi_fail_after = 3;
SELECT pg_temp.sqlstate_of($$SELECT count(*) FROM patients$$) AS multi_failure;
RESET epic_fdw.fault_multi_fail_after;
SELECT count(*) AS patients FROM patients;

SET client_min_messages = warning;
DROP SCHEMA ds CASCADE;
DROP SERVER dataset CASCADE;
RESET client_min_messages;
