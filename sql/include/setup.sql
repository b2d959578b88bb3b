-- Common setup for every test file: the extension, and where the sandbox is
-- (scripts/test.sh exports these; pg_regress echoes the variable names only,
-- so expected output does not depend on ports or paths).
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS epic_fdw;
RESET client_min_messages;
\getenv fhir_url EPIC_FHIR_URL_STU3
\getenv fhir_url_r4 EPIC_FHIR_URL_R4
\getenv dataset_url EPIC_DATASET_URL_STU3
\getenv dataset_url_r4 EPIC_DATASET_URL_R4
\getenv token_url EPIC_TOKEN_URL
\getenv ca_file EPIC_CA_FILE
\getenv rsa_key EPIC_RSA_KEY
\getenv ec_key EPIC_EC_KEY
\getenv wrong_key EPIC_WRONG_KEY
SET TimeZone = 'UTC';
SET DateStyle = 'ISO, YMD';
-- the SQLSTATE a statement fails with (or 'no error')
CREATE FUNCTION pg_temp.sqlstate_of(query text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
  EXECUTE query;
  RETURN 'no error';
EXCEPTION WHEN OTHERS THEN
  RETURN SQLSTATE;
END $$;
-- EXPLAIN ANALYZE without the lines that vary from run to run
CREATE FUNCTION pg_temp.explain_analyze(query text) RETURNS SETOF text LANGUAGE plpgsql AS $$
DECLARE line text;
BEGIN
  FOR line IN EXECUTE 'EXPLAIN (ANALYZE, VERBOSE, COSTS OFF, TIMING OFF, SUMMARY OFF) ' || query LOOP
    IF line !~ '(FHIR Bytes|HTTP Wait Time|Output:)' THEN
      RETURN NEXT line;
    END IF;
  END LOOP;
END $$;
