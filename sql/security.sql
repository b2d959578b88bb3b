--
-- security: file-naming options are superuser-only, secrets stay private
--
\i sql/include/setup.sql

CREATE ROLE regress_epic_user LOGIN;
GRANT USAGE ON FOREIGN DATA WRAPPER epic_fdw TO regress_epic_user;
CREATE SCHEMA regress_epic AUTHORIZATION regress_epic_user;
SET ROLE regress_epic_user;

-- a non-superuser cannot name files on the database server
CREATE SERVER user_server FOREIGN DATA WRAPPER epic_fdw
  OPTIONS (fhir_url :'fhir_url', fhir_version 'STU3', ca_file '/etc/passwd');
CREATE SERVER user_server FOREIGN DATA WRAPPER epic_fdw
  OPTIONS (fhir_url :'fhir_url', fhir_version 'STU3');
CREATE USER MAPPING FOR CURRENT_USER SERVER user_server
  OPTIONS (client_id 'epic-fdw-rs384', private_key_file '/var/lib/postgresql/.ssh/id_rsa');
ALTER SERVER user_server OPTIONS (ADD ca_file '/etc/ssl/private/key.pem');
SELECT pg_temp.sqlstate_of($$ALTER SERVER user_server OPTIONS (ADD ca_file '/tmp/x')$$);
-- an inline key is allowed (it is the user's own secret)
\set ec_pem `cat "$EPIC_EC_KEY"`
CREATE USER MAPPING FOR CURRENT_USER SERVER user_server
  OPTIONS (client_id 'epic-fdw-es384', private_key :'ec_pem', algorithm 'ES384', key_id 'ec1');
RESET ROLE;

-- a superuser may set them
ALTER SERVER user_server OPTIONS (ADD ca_file :'ca_file');
CREATE USER MAPPING FOR postgres SERVER user_server
  OPTIONS (client_id 'epic-fdw-rs384', private_key_file :'rsa_key', key_id 'rs1');

-- the mapping's options (the inline key) are visible to its user and to
-- superusers only, as for every foreign-data wrapper
CREATE ROLE regress_epic_other LOGIN;
SET ROLE regress_epic_other;
SELECT srvname, usename, umoptions IS NULL AS options_hidden
  FROM pg_user_mappings WHERE srvname = 'user_server' ORDER BY usename;
RESET ROLE;
SELECT srvname, usename, umoptions IS NULL AS options_hidden
  FROM pg_user_mappings WHERE srvname = 'user_server' ORDER BY usename;

-- the non-superuser's mapping works (its server's ca_file set by a superuser)
SET ROLE regress_epic_user;
CREATE FOREIGN TABLE regress_epic.my_patients (id text, name text) SERVER user_server
  OPTIONS (resource 'Patient');
SELECT * FROM regress_epic.my_patients WHERE id = 'eq081-VQEgP8drUUqCWzHfw3';
-- EXPLAIN shows the request, never a credential
EXPLAIN (VERBOSE, COSTS OFF) SELECT * FROM regress_epic.my_patients WHERE id = 'eq081-VQEgP8drUUqCWzHfw3';
SELECT line FROM pg_temp.explain_analyze($$SELECT * FROM regress_epic.my_patients WHERE id = 'eq081-VQEgP8drUUqCWzHfw3'$$) AS line;
RESET ROLE;

DROP SCHEMA regress_epic CASCADE;
DROP SERVER user_server CASCADE;
REVOKE USAGE ON FOREIGN DATA WRAPPER epic_fdw FROM regress_epic_user;
DROP ROLE regress_epic_user, regress_epic_other;
