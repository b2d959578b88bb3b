--
-- faults: the fault matrix.  For each fault the sandbox injects, the outcome
-- (rows, or SQLSTATE and message), that it ended within a generous bound,
-- that the session still works afterwards, and how many FHIR requests were
-- made (retries included).  The table at the end has one line per fault.
--
\i sql/include/setup.sql
\i sql/include/sandbox.sql
ALTER SERVER sandbox OPTIONS (ADD max_retries '2', ADD timeout '2', ADD connect_timeout '2');
-- warm the token cache so that counts below are of FHIR requests only
SELECT count(*) FROM patients WHERE id = 'erXuFYUfucBZaryVksYEcMg3';

\i sql/include/fault_case.sql

-- after each case: clear faults, check the session, record the request count
CREATE FUNCTION pg_temp.finish_case(requests int) RETURNS void LANGUAGE plpgsql AS $$
DECLARE ok boolean;
BEGIN
  BEGIN
    PERFORM count(*) FROM patients WHERE id = 'eq081-VQEgP8drUUqCWzHfw3';
    ok := true;
  EXCEPTION WHEN OTHERS THEN
    ok := false;
  END;
  UPDATE fault_results SET usable_after = ok, requests = finish_case.requests
   WHERE seq = (SELECT max(seq) FROM fault_results);
END $$;

\set one_patient 'SELECT * FROM patients WHERE id = ''erXuFYUfucBZaryVksYEcMg3'''
\set three_pages 'SELECT * FROM medication_statements WHERE patient_id = ''eq081-VQEgP8drUUqCWzHfw3'''

-- 429 twice with Retry-After in seconds, then success
\! $EPIC_CTL reset
\! $EPIC_CTL fault '{"match": "fhir", "kind": "status", "status": 429, "headers": {"Retry-After": "1"}, "times": 2}'
SELECT pg_temp.run_case('429 x2, Retry-After: 1', :'one_patient', 10);
\set n `$EPIC_CTL count fhir`
\! $EPIC_CTL faults-clear
SELECT pg_temp.finish_case(:n);

-- 503 with Retry-After as an HTTP-date, then success
\! $EPIC_CTL reset
\! $EPIC_CTL fault '{"match": "fhir", "kind": "status", "status": 503, "headers": {"Retry-After": "date+1"}}'
SELECT pg_temp.run_case('503, Retry-After: HTTP-date', :'one_patient', 10);
\set n `$EPIC_CTL count fhir`
\! $EPIC_CTL faults-clear
SELECT pg_temp.finish_case(:n);

-- 503 that never ends: max_retries (2) retries, then an error naming the status
\! $EPIC_CTL reset
\! $EPIC_CTL fault '{"match": "fhir", "kind": "status", "status": 503, "headers": {"Retry-After": "0"}, "times": -1}'
SELECT pg_temp.run_case('503 forever', :'one_patient', 10);
\set n `$EPIC_CTL count fhir`
\! $EPIC_CTL faults-clear
SELECT pg_temp.finish_case(:n);

-- a Retry-After beyond what epic_fdw waits for ends the retries at once
\! $EPIC_CTL reset
\! $EPIC_CTL fault '{"match": "fhir", "kind": "status", "status": 429, "headers": {"Retry-After": "3600"}, "times": -1}'
SELECT pg_temp.run_case('429, Retry-After: 3600', :'one_patient', 5);
\set n `$EPIC_CTL count fhir`
\! $EPIC_CTL faults-clear
SELECT pg_temp.finish_case(:n);

-- 500, 502, 504 once each: retried with backoff
\! $EPIC_CTL reset
\! $EPIC_CTL fault '{"match": "fhir", "kind": "status", "status": 500}'
SELECT pg_temp.run_case('500 once', :'one_patient', 10);
\set n `$EPIC_CTL count fhir`
\! $EPIC_CTL faults-clear
SELECT pg_temp.finish_case(:n);
\! $EPIC_CTL reset
\! $EPIC_CTL fault '{"match": "fhir", "kind": "status", "status": 502}'
SELECT pg_temp.run_case('502 once', :'one_patient', 10);
\set n `$EPIC_CTL count fhir`
\! $EPIC_CTL faults-clear
SELECT pg_temp.finish_case(:n);
\! $EPIC_CTL reset
\! $EPIC_CTL fault '{"match": "fhir", "kind": "status", "status": 504, "body": {"resourceType": "OperationOutcome", "issue": [{"severity": "error", "code": "timeout", "diagnostics": "upstream timed out"}]}, "times": -1}'
SELECT pg_temp.run_case('504 forever', :'one_patient', 10);
\set n `$EPIC_CTL count fhir`
\! $EPIC_CTL faults-clear
SELECT pg_temp.finish_case(:n);

-- the connection closed without an answer, and reset in the middle of a
-- page (page 2 of 3): retried, every row exactly once
\! $EPIC_CTL reset
\! $EPIC_CTL fault '{"match": "fhir", "kind": "close"}'
SELECT pg_temp.run_case('closed without answer', :'one_patient', 10);
\set n `$EPIC_CTL count fhir`
\! $EPIC_CTL faults-clear
SELECT pg_temp.finish_case(:n);
\! $EPIC_CTL reset
\! $EPIC_CTL fault '{"match": "MedicationStatement?sessionID=", "kind": "reset_mid_body"}'
SELECT pg_temp.run_case('reset mid-body on page 2',
  'SELECT DISTINCT id FROM medication_statements WHERE patient_id = ''eq081-VQEgP8drUUqCWzHfw3''', 10);
\set n `$EPIC_CTL count fhir`
\! $EPIC_CTL faults-clear
SELECT pg_temp.finish_case(:n);
\! $EPIC_CTL reset
\! $EPIC_CTL fault '{"match": "MedicationStatement?sessionID=", "kind": "reset_mid_body"}'
SELECT pg_temp.run_case('reset mid-body, all rows', :'three_pages', 10);
\set n `$EPIC_CTL count fhir`
\! $EPIC_CTL faults-clear
SELECT pg_temp.finish_case(:n);

-- a server that accepts and never answers, and one that drips a byte a
-- second: each ends after timeout (2 s), not retried
\! $EPIC_CTL reset
\! $EPIC_CTL fault '{"match": "fhir", "kind": "hang"}'
SELECT pg_temp.run_case('accepts, never answers', :'one_patient', 6);
\set n `$EPIC_CTL count fhir`
\! $EPIC_CTL faults-clear
SELECT pg_temp.finish_case(:n);
\! $EPIC_CTL reset
\! $EPIC_CTL fault '{"match": "fhir", "kind": "drip", "interval_ms": 500}'
SELECT pg_temp.run_case('drips one byte per 500 ms', :'one_patient', 6);
\set n `$EPIC_CTL count fhir`
\! $EPIC_CTL faults-clear
SELECT pg_temp.finish_case(:n);

-- the token is revoked after page 2: a 401 on page 3, one new token, the
-- scan continues with every row once
\! $EPIC_CTL reset
\! $EPIC_CTL revoke-after 2
SELECT pg_temp.run_case('401 on page 3', 'SELECT DISTINCT id FROM medication_statements WHERE patient_id = ''eq081-VQEgP8drUUqCWzHfw3''', 10);
\set n `$EPIC_CTL count fhir`
\set tokens `$EPIC_CTL count token`
\! $EPIC_CTL faults-clear
SELECT pg_temp.finish_case(:n);
SELECT :tokens AS token_requests_for_401_on_page_3;

-- answers that are not what FHIR promises
\! $EPIC_CTL reset
\! $EPIC_CTL fault '{"match": "fhir", "kind": "body", "raw": "{\"resourceType\": \"Bundle\", \"type\": "}'
SELECT pg_temp.run_case('malformed JSON', :'one_patient', 5);
\set n `$EPIC_CTL count fhir`
\! $EPIC_CTL faults-clear
SELECT pg_temp.finish_case(:n);
\! $EPIC_CTL reset
\! $EPIC_CTL fault '{"match": "fhir", "kind": "body", "variant": "truncated"}'
SELECT pg_temp.run_case('truncated JSON', :'one_patient', 5);
\set n `$EPIC_CTL count fhir`
\! $EPIC_CTL faults-clear
SELECT pg_temp.finish_case(:n);
\! $EPIC_CTL reset
\! $EPIC_CTL fault '{"match": "fhir", "kind": "body", "variant": "not_bundle"}'
SELECT pg_temp.run_case('JSON that is not a Bundle', :'one_patient', 5);
\set n `$EPIC_CTL count fhir`
\! $EPIC_CTL faults-clear
SELECT pg_temp.finish_case(:n);
\! $EPIC_CTL reset
\! $EPIC_CTL fault '{"match": "fhir", "kind": "body", "variant": "batch_bundle"}'
SELECT pg_temp.run_case('Bundle of type batch', :'one_patient', 5);
\set n `$EPIC_CTL count fhir`
\! $EPIC_CTL faults-clear
SELECT pg_temp.finish_case(:n);
\! $EPIC_CTL reset
\! $EPIC_CTL fault '{"match": "fhir", "kind": "body", "variant": "wrong_type_entry"}'
SELECT pg_temp.run_case('entry of another resource type', :'one_patient', 5);
\set n `$EPIC_CTL count fhir`
\! $EPIC_CTL faults-clear
SELECT pg_temp.finish_case(:n);
\! $EPIC_CTL reset
\! $EPIC_CTL fault '{"match": "fhir", "kind": "body", "variant": "wrong_value_type"}'
SELECT pg_temp.run_case('number where a date is expected', :'one_patient', 5);
\set n `$EPIC_CTL count fhir`
\! $EPIC_CTL faults-clear
SELECT pg_temp.finish_case(:n);
\! $EPIC_CTL reset
\! $EPIC_CTL fault '{"match": "fhir", "kind": "body", "variant": "wrong_value_type"}'
SELECT pg_temp.run_case('number where a code is expected', 'SELECT id, status FROM medication_statements WHERE patient_id = ''erXuFYUfucBZaryVksYEcMg3''', 5);
\set n `$EPIC_CTL count fhir`
\! $EPIC_CTL faults-clear
SELECT pg_temp.finish_case(:n);
\! $EPIC_CTL reset
\! $EPIC_CTL fault '{"match": "fhir", "kind": "body", "variant": "invalid_utf8"}'
SELECT pg_temp.run_case('invalid UTF-8', :'one_patient', 5);
\set n `$EPIC_CTL count fhir`
\! $EPIC_CTL faults-clear
SELECT pg_temp.finish_case(:n);
\! $EPIC_CTL reset
\! $EPIC_CTL fault '{"match": "fhir", "kind": "body", "variant": "deep"}'
SELECT pg_temp.run_case('JSON nested 100,000 deep', :'one_patient', 5);
\set n `$EPIC_CTL count fhir`
\! $EPIC_CTL faults-clear
SELECT pg_temp.finish_case(:n);
\! $EPIC_CTL reset
\! $EPIC_CTL fault '{"match": "fhir", "kind": "body", "variant": "html"}'
SELECT pg_temp.run_case('HTML page with 200', :'one_patient', 5);
\set n `$EPIC_CTL count fhir`
\! $EPIC_CTL faults-clear
SELECT pg_temp.finish_case(:n);
ALTER SERVER sandbox OPTIONS (ADD max_response_size '1048576');
SELECT count(*) FROM patients WHERE id = 'erXuFYUfucBZaryVksYEcMg3';
\! $EPIC_CTL reset
\! $EPIC_CTL fault '{"match": "fhir", "kind": "body", "variant": "huge", "size": 5000000}'
SELECT pg_temp.run_case('page over max_response_size', :'one_patient', 5);
\set n `$EPIC_CTL count fhir`
\! $EPIC_CTL faults-clear
SELECT pg_temp.finish_case(:n);
ALTER SERVER sandbox OPTIONS (DROP max_response_size);

-- the token endpoint fails (each case needs a new token: ALTER USER MAPPING
-- drops the cached one)
\! $EPIC_CTL reset
ALTER USER MAPPING FOR CURRENT_USER SERVER sandbox OPTIONS (SET key_id 'rs1');
\! $EPIC_CTL fault '{"match": "token", "kind": "status", "status": 401, "body": {"error": "invalid_client", "error_description": "The client assertion could not be verified."}}'
SELECT pg_temp.run_case('token: invalid_client', :'one_patient', 5);
\set n `$EPIC_CTL count fhir`
\! $EPIC_CTL faults-clear
SELECT pg_temp.finish_case(:n);
\! $EPIC_CTL reset
ALTER USER MAPPING FOR CURRENT_USER SERVER sandbox OPTIONS (SET key_id 'rs1');
\! $EPIC_CTL fault '{"match": "token", "kind": "status", "status": 400, "body": {"error": "invalid_scope", "error_description": "The requested scope is not allowed."}}'
SELECT pg_temp.run_case('token: invalid_scope', :'one_patient', 5);
\set n `$EPIC_CTL count fhir`
\! $EPIC_CTL faults-clear
SELECT pg_temp.finish_case(:n);
\! $EPIC_CTL reset
ALTER USER MAPPING FOR CURRENT_USER SERVER sandbox OPTIONS (SET key_id 'rs1');
\! $EPIC_CTL fault '{"match": "token", "kind": "status", "status": 500, "body": "<html><body>Internal Server Error</body></html>", "content_type": "text/html", "times": -1}'
SELECT pg_temp.run_case('token: 500 with HTML', :'one_patient', 10);
\set n `$EPIC_CTL count token`
\! $EPIC_CTL faults-clear
SELECT pg_temp.finish_case(:n);
\! $EPIC_CTL reset
ALTER USER MAPPING FOR CURRENT_USER SERVER sandbox OPTIONS (SET key_id 'rs1');
\! $EPIC_CTL fault '{"match": "token", "kind": "status", "status": 200, "body": "access_token=abc&token_type=bearer", "content_type": "text/plain"}'
SELECT pg_temp.run_case('token: 200 that is not JSON', :'one_patient', 5);
\set n `$EPIC_CTL count token`
\! $EPIC_CTL faults-clear
SELECT pg_temp.finish_case(:n);

-- nothing listens; the host name does not resolve
CREATE SERVER refused FOREIGN DATA WRAPPER epic_fdw
  OPTIONS (fhir_url 'https://127.0.0.1:1/fhir/', fhir_version 'STU3', token_url 'https://127.0.0.1:1/token',
           max_retries '2', connect_timeout '2');
CREATE USER MAPPING FOR CURRENT_USER SERVER refused
  OPTIONS (client_id 'epic-fdw-rs384', private_key_file :'rsa_key');
CREATE FOREIGN TABLE refused_patients (id text) SERVER refused OPTIONS (resource 'Patient');
SELECT pg_temp.run_case('connection refused', 'SELECT * FROM refused_patients WHERE id = ''x''', 10);
SELECT pg_temp.finish_case(0);
CREATE SERVER nxdomain FOREIGN DATA WRAPPER epic_fdw
  OPTIONS (fhir_url 'https://fhir.epic-fdw-test.invalid/fhir/', fhir_version 'STU3',
           token_url 'https://fhir.epic-fdw-test.invalid/token', max_retries '1', connect_timeout '2');
CREATE USER MAPPING FOR CURRENT_USER SERVER nxdomain
  OPTIONS (client_id 'epic-fdw-rs384', private_key_file :'rsa_key');
CREATE FOREIGN TABLE nxdomain_patients (id text) SERVER nxdomain OPTIONS (resource 'Patient');
SELECT pg_temp.run_case('DNS failure', 'SELECT * FROM nxdomain_patients WHERE id = ''x''', 10);
SELECT pg_temp.finish_case(0);

-- the whole matrix, one line per fault
SELECT fault, outcome, within_bound, usable_after, requests FROM fault_results ORDER BY seq;

-- a value of the wrong type: the error names the column and the resource
\! $EPIC_CTL fault '{"match": "fhir", "kind": "body", "variant": "wrong_value_type"}'
SELECT * FROM patients WHERE id = 'erXuFYUfucBZaryVksYEcMg3';
\! $EPIC_CTL faults-clear

-- query cancel interrupts a transfer promptly (statement_timeout, and
-- pg_cancel_backend from another session); the session goes on, its token
-- and connection intact
ALTER SERVER sandbox OPTIONS (SET timeout '60');
SELECT count(*) FROM patients WHERE id = 'erXuFYUfucBZaryVksYEcMg3';
\! $EPIC_CTL reset
\! $EPIC_CTL fault '{"match": "fhir", "kind": "hang"}'
SELECT clock_timestamp() AS t0 \gset
SET statement_timeout = '1s';
SELECT * FROM patients WHERE id = 'erXuFYUfucBZaryVksYEcMg3';
RESET statement_timeout;
SELECT clock_timestamp() - :'t0' < interval '4 s' AS cancelled_within_4s;
\! $EPIC_CTL faults-clear
SELECT name FROM patients WHERE id = 'erXuFYUfucBZaryVksYEcMg3';
\! $EPIC_CTL fault '{"match": "fhir", "kind": "hang"}'
SELECT pg_backend_pid() AS pid \gset
\setenv CANCEL_PID :pid
\! (sleep 1; psql -X -q -At -c "SELECT query FROM pg_stat_activity WHERE pid = $CANCEL_PID" > "$EPIC_SANDBOX_DIR/../activity.txt"; psql -X -q -At -c "SELECT pg_cancel_backend($CANCEL_PID)" > /dev/null) &
SELECT clock_timestamp() AS t0 \gset
SELECT * FROM patients WHERE id = 'erXuFYUfucBZaryVksYEcMg3';
SELECT clock_timestamp() - :'t0' < interval '5 s' AS cancelled_within_5s;
\! $EPIC_CTL faults-clear
\! cat "$EPIC_SANDBOX_DIR/../activity.txt"
SELECT name FROM patients WHERE id = 'erXuFYUfucBZaryVksYEcMg3';
\! $EPIC_CTL log | grep -c token

-- ALTER/DROP of one server or user mapping drops the cached token of that
-- mapping only
CREATE SERVER other FOREIGN DATA WRAPPER epic_fdw
  OPTIONS (fhir_url :'fhir_url', fhir_version 'STU3', ca_file :'ca_file');
CREATE USER MAPPING FOR CURRENT_USER SERVER other
  OPTIONS (client_id 'epic-fdw-rs384', private_key_file :'rsa_key', key_id 'rs1');
CREATE FOREIGN TABLE other_patients (id text) SERVER other OPTIONS (resource 'Patient');
SELECT count(*) FROM other_patients WHERE id = 'erXuFYUfucBZaryVksYEcMg3';
\! $EPIC_CTL reset
ALTER SERVER sandbox OPTIONS (SET timeout '30');
SELECT count(*) FROM patients WHERE id = 'erXuFYUfucBZaryVksYEcMg3';
SELECT count(*) FROM other_patients WHERE id = 'erXuFYUfucBZaryVksYEcMg3';
\! $EPIC_CTL count token
ALTER USER MAPPING FOR CURRENT_USER SERVER other OPTIONS (SET key_id 'rs1');
SELECT count(*) FROM patients WHERE id = 'erXuFYUfucBZaryVksYEcMg3';
SELECT count(*) FROM other_patients WHERE id = 'erXuFYUfucBZaryVksYEcMg3';
\! $EPIC_CTL count token
DROP USER MAPPING FOR CURRENT_USER SERVER sandbox;
SELECT count(*) FROM patients WHERE id = 'erXuFYUfucBZaryVksYEcMg3';
CREATE USER MAPPING FOR CURRENT_USER SERVER sandbox
  OPTIONS (client_id 'epic-fdw-rs384', private_key_file :'rsa_key', key_id 'rs1');
SELECT count(*) FROM patients WHERE id = 'erXuFYUfucBZaryVksYEcMg3';
SELECT count(*) FROM other_patients WHERE id = 'erXuFYUfucBZaryVksYEcMg3';
\! $EPIC_CTL count token

DROP SERVER sandbox, other, refused, nxdomain CASCADE;
