--
-- hardening: no backend crash or hang from any SQL, no credential sent where
-- a non-superuser pointed it
--
\i sql/include/setup.sql
\i sql/include/dataset.sql
SET statement_timeout = '60s';
-- the rows left in an open cursor
CREATE FUNCTION pg_temp.drain(c refcursor) RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE n bigint := 0; r record;
BEGIN
  LOOP
    FETCH c INTO r;
    EXIT WHEN NOT FOUND;
    n := n + 1;
  END LOOP;
  RETURN n;
END $$;

-- 1. A cached connection in use by an open scan survives an invalidation.
-- The cursor's next page is in flight (a prefetch) while the server's options
-- change and another scan of the same mapping runs: the cursor must go on
-- with its own transfers, not hang on a replaced client.
ALTER SERVER dataset OPTIONS (ADD page_size '10');
\! $EPIC_CTL latency 300
BEGIN;
DECLARE c CURSOR FOR SELECT id FROM patients;
FETCH 1 FROM c \g /dev/null
ALTER SERVER dataset OPTIONS (SET page_size '11');
SELECT count(*) FROM (SELECT id FROM conditions WHERE patient_id = 'x' LIMIT 1) s;
SELECT pg_temp.drain('c') + 1 AS cursor_rows;
CLOSE c;
COMMIT;
\! $EPIC_CTL latency 0
SELECT count(*) AS patients FROM patients;

-- 2. Catalog churn from a second session (a full cache reset in this one)
-- while a cursor over concurrent searches is open between fetches.
CREATE EXTENSION IF NOT EXISTS dblink;
SELECT dblink_connect('churn', format('dbname=%s host=%s port=%s', current_database(),
       current_setting('unix_socket_directories'), current_setting('port'))) AS connected;
ALTER SERVER dataset OPTIONS (ADD or_lists 'false', ADD max_concurrency '4');
CREATE TEMP TABLE forty AS SELECT id FROM patients ORDER BY id LIMIT 40;
SELECT count(*) AS expected FROM medication_statements
 WHERE patient_id = ANY (ARRAY(SELECT id FROM forty)) \gset
\! $EPIC_CTL latency 100
BEGIN;
DECLARE batch CURSOR FOR SELECT id FROM medication_statements
 WHERE patient_id = ANY (ARRAY(SELECT id FROM forty));
DECLARE paged CURSOR FOR SELECT id FROM patients;
FETCH 3 FROM batch \g /dev/null
FETCH 3 FROM paged \g /dev/null
-- a few thousand catalog changes by the other session overflow this one's
-- invalidation queue: the next catalog access resets every cache
SELECT count(dblink_exec('churn', format(
  'CREATE TEMP TABLE churn_%s (a int); DROP TABLE churn_%s', i, i)))
  FROM generate_series(1, 3000) i;
-- another scan of the same mapping, after the reset
SELECT count(*) AS one_patient FROM patients WHERE id = (SELECT id FROM forty LIMIT 1);
SELECT pg_temp.drain('batch') + 3 = :expected AS batch_rows_complete;
SELECT pg_temp.drain('paged') + 3 AS paged_rows;
COMMIT;
\! $EPIC_CTL latency 0
SELECT dblink_disconnect('churn');
-- the backend is alive and the connection usable
SELECT count(*) AS patients FROM patients;
ALTER SERVER dataset OPTIONS (DROP or_lists, DROP max_concurrency, DROP page_size);

-- 3. Every SQL-callable function with NULL in each argument, as a
-- non-superuser without USAGE on the server: a result or a clean error.
CREATE ROLE regress_epic_nobody LOGIN;
GRANT USAGE ON FOREIGN DATA WRAPPER epic_fdw TO regress_epic_nobody;
CREATE FUNCTION pg_temp.null_calls() RETURNS TABLE (call text, outcome text)
LANGUAGE plpgsql AS $$
DECLARE
  f record;
  args text[];
  q text;
  r text;
BEGIN
  FOR f IN
    SELECT p.oid::regprocedure::text AS sig, p.proname, p.pronargs,
           p.proargtypes::regtype[] AS types, p.proretset, p.prorettype::regtype::text AS rettype
      FROM pg_proc p JOIN pg_depend d ON d.classid = 'pg_proc'::regclass AND d.objid = p.oid
      JOIN pg_extension e ON d.refobjid = e.oid AND e.extname = 'epic_fdw'
     ORDER BY p.proname
  LOOP
    -- each argument NULL in turn (others: a plausible value), then all NULL
    FOR k IN 0 .. f.pronargs LOOP
      args := ARRAY[]::text[];
      FOR j IN 1 .. f.pronargs LOOP
        IF k = 0 OR j = k THEN
          args := args || format('NULL::%s', f.types[j - 1]);
        ELSIF f.types[j - 1] = 'name'::regtype THEN
          args := args || '''dataset''::name'::text;
        ELSIF f.types[j - 1] = 'jsonb'::regtype THEN
          args := args || '''{"resource":"Patient","select":[{"column":[{"name":"id","path":"id"}]}]}''::jsonb'::text;
        ELSIF f.types[j - 1] = 'text[]'::regtype THEN
          args := args || '''{}''::text[]'::text;
        ELSIF f.types[j - 1] = 'oid'::regtype THEN
          args := args || '0::oid'::text;
        ELSE
          args := args || format('''x''::%s', f.types[j - 1]);
        END IF;
      END LOOP;
      q := format('SELECT %s(%s)', f.proname, array_to_string(args, ', '));
      IF f.proretset THEN
        q := format('SELECT count(*) FROM %s(%s)', f.proname, array_to_string(args, ', '));
      END IF;
      IF f.rettype IN ('fdw_handler') THEN
        q := format('SELECT %s(%s) IS NULL', f.proname, array_to_string(args, ', '));
      END IF;
      BEGIN
        EXECUTE q INTO r;
        r := CASE WHEN r IS NULL THEN 'NULL' ELSE 'a value' END;
      EXCEPTION WHEN OTHERS THEN
        r := SQLSTATE || ': ' || SQLERRM;
      END;
      call := q;
      outcome := r;
      RETURN NEXT;
    END LOOP;
  END LOOP;
END $$;
GRANT EXECUTE ON FUNCTION pg_temp.null_calls() TO regress_epic_nobody;
SET ROLE regress_epic_nobody;
SELECT * FROM pg_temp.null_calls();
RESET ROLE;
-- with USAGE but no user mapping: a clean error, not a crash
GRANT USAGE ON FOREIGN SERVER dataset TO regress_epic_nobody;
SET ROLE regress_epic_nobody;
SELECT pg_temp.sqlstate_of($$SELECT epic_fdw_public_jwks('dataset')$$) AS jwks,
       pg_temp.sqlstate_of($$SELECT * FROM epic_fdw_check('dataset')$$) AS check;
RESET ROLE;
REVOKE USAGE ON FOREIGN SERVER dataset FROM regress_epic_nobody;

-- 4. No header injection: values that reach a request header or the JWT
-- header may not hold control characters
SELECT pg_temp.sqlstate_of(format($$ALTER SERVER dataset OPTIONS (ADD accept %L)$$,
         E'application/fhir+json\r\nX-Injected: 1')) AS accept_crlf,
       pg_temp.sqlstate_of(format($$ALTER USER MAPPING FOR CURRENT_USER SERVER dataset OPTIONS (SET client_id %L)$$,
         E'epic-fdw-rs384\nX-Injected: 1')) AS client_id_lf,
       pg_temp.sqlstate_of(format($$ALTER USER MAPPING FOR CURRENT_USER SERVER dataset OPTIONS (SET key_id %L)$$,
         E'rs1\r')) AS key_id_cr,
       pg_temp.sqlstate_of(format($$ALTER USER MAPPING FOR CURRENT_USER SERVER dataset OPTIONS (ADD jku %L)$$,
         E'https://example.org/jwks\t.json')) AS jku_tab;
ALTER SERVER dataset OPTIONS (ADD accept E'application/fhir+json\r\nX-Injected: 1');
-- the options are unchanged and still work
SELECT count(*) AS patients FROM patients WHERE id = (SELECT id FROM forty LIMIT 1);

-- 5. A huge expires_in does not overflow the token's renewal time: one
-- token serves several queries
\! $EPIC_CTL token-lifetime 9223372036854775807
ALTER SERVER dataset OPTIONS (ADD timeout '30');  -- drops the cached token
\! $EPIC_CTL reset
SELECT count(*) FROM patients WHERE id = (SELECT id FROM forty LIMIT 1);
SELECT count(*) FROM patients WHERE id = (SELECT id FROM forty OFFSET 1 LIMIT 1);
SELECT count(*) FROM patients WHERE id = (SELECT id FROM forty OFFSET 2 LIMIT 1);
\! $EPIC_CTL count token
\! $EPIC_CTL token-lifetime 3600
ALTER SERVER dataset OPTIONS (DROP timeout);

-- 6. A retry's wait (Retry-After) inside a batch of concurrent searches
-- keeps driving the other searches: their timeouts do not run out unread
ALTER SERVER dataset OPTIONS (ADD or_lists 'false', ADD max_retries '1');
SELECT count(*) AS expected5 FROM medication_statements
 WHERE patient_id = ANY (ARRAY(SELECT id FROM forty ORDER BY id LIMIT 5)) \gset
ALTER SERVER dataset OPTIONS (ADD timeout '2');
\! $EPIC_CTL latency 1000
\! $EPIC_CTL fault '{"match": "MedicationStatement?", "kind": "status", "status": 503, "headers": {"Retry-After": "3"}}'
SELECT count(*) = :expected5 AS all_rows FROM medication_statements
 WHERE patient_id = ANY (ARRAY(SELECT id FROM forty ORDER BY id LIMIT 5));
\! $EPIC_CTL latency 0
\! $EPIC_CTL faults-clear
ALTER SERVER dataset OPTIONS (DROP or_lists, DROP max_retries, DROP timeout);

-- 7. A resource returned by two searches of one scan is one row, whatever
-- the length of its id (a server may send ids longer than FHIR's 64)
\! echo '[{"resourceType":"Patient","id":"p-long-0123456789012345678901234567890123456789012345678901234567890123456789","name":[{"family":"Smith","given":["Ann"]}],"gender":"female"},{"resourceType":"Patient","id":"p-short","name":[{"family":"Smit","given":["Bo"]}],"gender":"male"}]' | $EPIC_CTL dataset longids STU3 -
SELECT replace(:'dataset_url', '/STU3/', '/longids/') AS longids_url \gset
CREATE SERVER longids FOREIGN DATA WRAPPER epic_fdw
  OPTIONS (fhir_url :'longids_url', fhir_version 'STU3', ca_file :'ca_file', or_lists 'false');
CREATE USER MAPPING FOR CURRENT_USER SERVER longids
  OPTIONS (client_id 'epic-fdw-rs384', private_key_file :'rsa_key', key_id 'rs1');
CREATE FOREIGN TABLE public.longid_patients (id text, family text) SERVER longids
  OPTIONS (resource 'Patient');
-- family=Smith and family=Smit (a prefix match) both return Ann Smith
\! $EPIC_CTL reset
SELECT length(id), family FROM public.longid_patients WHERE family IN ('Smith', 'Smit') ORDER BY family;
\! $EPIC_CTL count fhir Patient
DROP SERVER longids CASCADE;

-- 8. The credential rule: a key is never used where a non-superuser can
-- have chosen the endpoint or the client identity.
CREATE ROLE regress_epic_owner LOGIN;
GRANT USAGE ON FOREIGN DATA WRAPPER epic_fdw TO regress_epic_owner;
\set ec_pem `cat "$EPIC_EC_KEY"`
-- a server owned by a non-superuser (a superuser gave it the private CA)
CREATE SERVER owned FOREIGN DATA WRAPPER epic_fdw
  OPTIONS (fhir_url :'dataset_url', fhir_version 'STU3', ca_file :'ca_file');
ALTER SERVER owned OWNER TO regress_epic_owner;
GRANT USAGE ON FOREIGN SERVER owned TO regress_epic_nobody;
CREATE FOREIGN TABLE public.owned_patients (id text) SERVER owned OPTIONS (resource 'Patient');
GRANT SELECT ON public.owned_patients TO regress_epic_nobody, regress_epic_owner;
-- (a) a superuser's private_key_file on it is refused: the owner could
-- re-point fhir_url or token_url
CREATE USER MAPPING FOR regress_epic_owner SERVER owned
  OPTIONS (client_id 'epic-fdw-rs384', private_key_file :'rsa_key', key_id 'rs1');
SET ROLE regress_epic_owner;
\! $EPIC_CTL reset
SELECT count(*) FROM public.owned_patients WHERE id = 'x';
RESET ROLE;
-- (b) an inline key in another user's mapping is refused: the owner can
-- alter that mapping's client_id and jku
CREATE USER MAPPING FOR regress_epic_nobody SERVER owned
  OPTIONS (client_id 'epic-fdw-es384', private_key :'ec_pem', algorithm 'ES384', key_id 'ec1');
SET ROLE regress_epic_nobody;
SELECT count(*) FROM public.owned_patients WHERE id = 'x';
RESET ROLE;
-- no assertion reached any endpoint
\! $EPIC_CTL count token
-- (c) the owner's own inline key on the owner's server is used
DROP USER MAPPING FOR regress_epic_owner SERVER owned;
SET ROLE regress_epic_owner;
CREATE USER MAPPING FOR CURRENT_USER SERVER owned
  OPTIONS (client_id 'epic-fdw-es384', private_key :'ec_pem', algorithm 'ES384', key_id 'ec1');
SELECT count(*) FROM public.owned_patients WHERE id = 'x';
RESET ROLE;
\! $EPIC_CTL count token
-- (d) owned by a superuser again, the superuser's key file is used
ALTER SERVER owned OWNER TO CURRENT_USER;
CREATE USER MAPPING FOR CURRENT_USER SERVER owned
  OPTIONS (client_id 'epic-fdw-rs384', private_key_file :'rsa_key', key_id 'rs1');
SELECT count(*) FROM public.owned_patients WHERE id = 'x';
-- ... until a non-superuser becomes its owner (the cached token goes too)
ALTER SERVER owned OWNER TO regress_epic_owner;
SELECT pg_temp.sqlstate_of($$SELECT count(*) FROM public.owned_patients WHERE id = 'x'$$) AS after_owner_change;

DROP SERVER owned CASCADE;
DROP OWNED BY regress_epic_nobody, regress_epic_owner;
DROP ROLE regress_epic_nobody, regress_epic_owner;

SET client_min_messages = warning;
DROP SCHEMA ds CASCADE;
DROP SERVER dataset CASCADE;
RESET client_min_messages;
