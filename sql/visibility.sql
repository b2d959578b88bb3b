--
-- visibility: what a backend's connections and scans are doing (the
-- Extension wait event, progress NOTICEs, the connection functions)
--
\i sql/include/setup.sql
\i sql/include/dataset.sql

-- the connection functions: this backend's cached connections
SELECT * FROM epic_fdw_get_connections();
SELECT count(*) FROM patients WHERE gender = 'female';
SELECT server_name, user_name, valid, token_expires_at > now() AS token_valid,
       connections, requests > 0 AS made_requests
  FROM epic_fdw_get_connections();
-- an option change marks it invalid until the next use rebuilds it
ALTER SERVER dataset OPTIONS (ADD page_size '50');
SELECT server_name, valid, token_expires_at IS NULL AS token_dropped FROM epic_fdw_get_connections();
SELECT count(*) FROM patients WHERE gender = 'male';
SELECT server_name, valid, connections FROM epic_fdw_get_connections();
-- disconnect closes the TCP connections and drops the token
SELECT epic_fdw_disconnect('dataset');
SELECT server_name, valid, token_expires_at IS NULL AS no_token, connections
  FROM epic_fdw_get_connections();
SELECT epic_fdw_disconnect('dataset') AS again;
-- a connection in use by an open scan is not closed
BEGIN;
DECLARE c CURSOR FOR SELECT id FROM patients;
FETCH 1 FROM c \g /dev/null
SELECT epic_fdw_disconnect('dataset') AS while_in_use;
SELECT epic_fdw_disconnect_all() AS all_while_in_use;
CLOSE c;
COMMIT;
SELECT epic_fdw_disconnect_all() AS after_close;
SELECT pg_temp.sqlstate_of($$SELECT epic_fdw_disconnect('no_such_server')$$) AS unknown_server;
SELECT epic_fdw_disconnect(NULL) IS NULL AS null_server;

-- the wait event: a backend waiting for the FHIR server shows
-- wait_event_type = 'Extension' (PostgreSQL 15's only extension event)
CREATE EXTENSION IF NOT EXISTS dblink;
SELECT dblink_connect('waiter', format('dbname=%s host=%s port=%s application_name=regress_epic_waiter',
       current_database(), current_setting('unix_socket_directories'), current_setting('port'))) AS connected;
\! $EPIC_CTL latency 3000
SELECT dblink_send_query('waiter', 'SELECT count(*) FROM ds.patients WHERE id = ''x''') AS sent;
-- poll until the other backend is inside its FHIR request
DO $$
BEGIN
  FOR i IN 1 .. 50 LOOP
    EXIT WHEN EXISTS (SELECT 1 FROM pg_stat_activity
                       WHERE application_name = 'regress_epic_waiter' AND wait_event_type = 'Extension');
    PERFORM pg_sleep(0.1);
  END LOOP;
END $$;
SELECT state, wait_event_type, wait_event FROM pg_stat_activity
 WHERE application_name = 'regress_epic_waiter';
SELECT * FROM dblink_get_result('waiter') AS t(n bigint);
\! $EPIC_CTL latency 0
SELECT dblink_disconnect('waiter');

-- progress NOTICEs: off by default; on, at most every progress_interval
SHOW epic_fdw.progress;
SHOW epic_fdw.progress_interval;
ALTER SERVER dataset OPTIONS (SET page_size '10');
SELECT current_database() AS db \gset
\setenv PGDATABASE :db
\! $EPIC_CTL latency 30
\! psql -X -q -d "$PGDATABASE" -c "SET search_path = ds; SET epic_fdw.progress = on; SET epic_fdw.progress_interval = 50; SELECT count(*) FROM patients" 2>&1 | grep -c 'NOTICE:  epic_fdw progress: patients: [0-9]* requests, [0-9]* pages, [0-9]* resources, [0-9]* bytes, [0-9]* in flight' | awk '{ print ($1 >= 2 ? "progress reported" : "no progress: " $1) }'
\! psql -X -q -d "$PGDATABASE" -c "SET search_path = ds; SET epic_fdw.progress = on; SET epic_fdw.progress_interval = '1h'; SELECT count(*) FROM patients" 2>&1 | grep -c 'epic_fdw progress' 
\! psql -X -q -d "$PGDATABASE" -c "SET search_path = ds; SELECT count(*) FROM patients" 2>&1 | grep -c 'epic_fdw progress'
\! $EPIC_CTL latency 0

-- column comments for BI tools: epic_fdw_view_ddl emits them, and the
-- extension's event trigger adds them after IMPORT FOREIGN SCHEMA
SELECT epic_fdw_view_ddl('{"resource":"Patient","name":"pt","select":[{"column":[
  {"name":"id","path":"getResourceKey()"},
  {"name":"family","path":"name.family.first()","description":"The first family name",
   "tag":[{"name":"epic_fdw/search_param","value":"family:string"}]}]}]}', NULL, 'dataset');
SELECT attname, col_description(attrelid, attnum)
  FROM pg_attribute WHERE attrelid = 'ds.patients'::regclass AND attnum > 0
   AND attname IN ('id', 'family', 'name', 'birthdate') ORDER BY attnum;
CREATE SCHEMA other_import;
IMPORT FOREIGN SCHEMA fhir LIMIT TO (conditions) FROM SERVER dataset INTO other_import;
SELECT count(*) AS commented_columns,
       count(*) FILTER (WHERE col_description(attrelid, attnum) LIKE 'FHIRPath: %') AS with_fhirpath
  FROM pg_attribute WHERE attrelid = 'other_import.conditions'::regclass AND attnum > 0;
SELECT pg_temp.sqlstate_of($$SELECT epic_fdw_column_comments('pg_class')$$) AS not_ours;
DROP SCHEMA other_import CASCADE;

SET client_min_messages = warning;
DROP SCHEMA ds CASCADE;
DROP SERVER dataset CASCADE;
RESET client_min_messages;
