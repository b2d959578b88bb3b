--
-- options: the validator checks every option at CREATE/ALTER
--
\i sql/include/setup.sql

-- the wrapper itself takes no options
ALTER FOREIGN DATA WRAPPER epic_fdw OPTIONS (fhir_url 'https://x.example/');

-- SERVER
CREATE SERVER s1 FOREIGN DATA WRAPPER epic_fdw;                           -- fhir_url required
CREATE SERVER s1 FOREIGN DATA WRAPPER epic_fdw OPTIONS (fhir_url 'http://fhir.example.org/');
CREATE SERVER s1 FOREIGN DATA WRAPPER epic_fdw OPTIONS (fhir_url 'https://fhir.example.org/R4?x=1');
CREATE SERVER s1 FOREIGN DATA WRAPPER epic_fdw OPTIONS (fhir_url 'https://fhir.example.org/', bogus 'x');
CREATE SERVER s1 FOREIGN DATA WRAPPER epic_fdw OPTIONS (fhir_url 'https://fhir.example.org/', fhir_version 'DSTU2');
CREATE SERVER s1 FOREIGN DATA WRAPPER epic_fdw OPTIONS (fhir_url 'https://fhir.example.org/', page_size '0');
CREATE SERVER s1 FOREIGN DATA WRAPPER epic_fdw OPTIONS (fhir_url 'https://fhir.example.org/', page_size 'ten');
CREATE SERVER s1 FOREIGN DATA WRAPPER epic_fdw OPTIONS (fhir_url 'https://fhir.example.org/', timeout '-1');
CREATE SERVER s1 FOREIGN DATA WRAPPER epic_fdw OPTIONS (fhir_url 'https://fhir.example.org/', token_url 'http://auth.example.org/token');
CREATE SERVER s1 FOREIGN DATA WRAPPER epic_fdw OPTIONS (fhir_url 'https://fhir.example.org/', scope '');
CREATE SERVER s1 FOREIGN DATA WRAPPER epic_fdw
  OPTIONS (fhir_url 'https://fhir.example.org/api/FHIR/R4', token_url 'https://fhir.example.org/oauth2/token',
           fhir_version 'R4', scope 'system/Patient.rs', page_size '50', connect_timeout '5', timeout '30',
           mrn_system 'urn:oid:1.2.3');
ALTER SERVER s1 OPTIONS (SET fhir_version 'STU3');
ALTER SERVER s1 OPTIONS (DROP fhir_url);                                   -- still required
ALTER SERVER s1 OPTIONS (ADD fhir_version 'R4');                           -- given twice

-- USER MAPPING
CREATE USER MAPPING FOR CURRENT_USER SERVER s1;                            -- client_id required
CREATE USER MAPPING FOR CURRENT_USER SERVER s1 OPTIONS (client_id 'c');    -- a key is required
CREATE USER MAPPING FOR CURRENT_USER SERVER s1 OPTIONS (client_id 'c', private_key_file '/k.pem', private_key 'x');
CREATE USER MAPPING FOR CURRENT_USER SERVER s1 OPTIONS (client_id 'c', private_key_file '/k.pem', algorithm 'HS256');
CREATE USER MAPPING FOR CURRENT_USER SERVER s1 OPTIONS (client_id 'c', private_key_file '/k.pem', jku 'http://x/jwks');
CREATE USER MAPPING FOR CURRENT_USER SERVER s1 OPTIONS (client_id 'c', private_key_file '/k.pem', password 'x');
-- an inline key is checked against the algorithm, and never echoed back
CREATE USER MAPPING FOR CURRENT_USER SERVER s1
  OPTIONS (client_id 'c', private_key '-----BEGIN PRIVATE KEY-----\nTOPSECRETTOPSECRET\n-----END PRIVATE KEY-----');
\set ec_pem `cat "$EPIC_EC_KEY"`
CREATE USER MAPPING FOR CURRENT_USER SERVER s1 OPTIONS (client_id 'c', private_key :'ec_pem');  -- EC key, RS384
CREATE USER MAPPING FOR CURRENT_USER SERVER s1 OPTIONS (client_id 'c', private_key :'ec_pem', algorithm 'ES384', key_id 'k1');
ALTER USER MAPPING FOR CURRENT_USER SERVER s1 OPTIONS (SET algorithm 'RS384');   -- key no longer fits
DROP USER MAPPING FOR CURRENT_USER SERVER s1;
CREATE USER MAPPING FOR CURRENT_USER SERVER s1
  OPTIONS (client_id 'c', private_key_file :'rsa_key', key_id 'k1', algorithm 'RS384', jku 'https://app.example.org/jwks.json');
-- files are checked at CREATE/ALTER: an absolute path to a readable regular file
ALTER USER MAPPING FOR CURRENT_USER SERVER s1 OPTIONS (SET private_key_file 'keys/key.pem');
ALTER USER MAPPING FOR CURRENT_USER SERVER s1 OPTIONS (SET private_key_file '/etc/epic/key.pem');
ALTER USER MAPPING FOR CURRENT_USER SERVER s1 OPTIONS (SET private_key_file '/etc');
ALTER SERVER s1 OPTIONS (ADD ca_file 'ca.crt');
ALTER SERVER s1 OPTIONS (ADD ca_file '/nonexistent/ca.crt');

-- FOREIGN TABLE and COLUMN
CREATE FOREIGN TABLE t1 (id text) SERVER s1 OPTIONS (resource 'patient');
CREATE FOREIGN TABLE t1 (id text) SERVER s1 OPTIONS (resource 'Patient', color 'blue');
CREATE FOREIGN TABLE t1 (id text) SERVER s1 OPTIONS (resource 'Patient', search 'status');
CREATE FOREIGN TABLE t1 (id text) SERVER s1 OPTIONS (resource 'Patient', search '_count=5');
CREATE FOREIGN TABLE t1 (id text) SERVER s1 OPTIONS (resource 'Patient', search 'a b=1');
CREATE FOREIGN TABLE t1 (id text) SERVER s1 OPTIONS (resource 'Patient', search 'name=a b');
CREATE FOREIGN TABLE t1 (id text OPTIONS (path 'name.where(use = ')) SERVER s1 OPTIONS (resource 'Patient');
CREATE FOREIGN TABLE t1 (id text OPTIONS (path 'name..family')) SERVER s1 OPTIONS (resource 'Patient');
CREATE FOREIGN TABLE t1 (id text OPTIONS (path 'name.frobnicate()')) SERVER s1 OPTIONS (resource 'Patient');
CREATE FOREIGN TABLE t1 (id text OPTIONS (colour 'x')) SERVER s1 OPTIONS (resource 'Patient');
CREATE FOREIGN TABLE t1 (id text, marital text OPTIONS (path 'maritalStatus.text'))
  SERVER s1 OPTIONS (resource 'MedicationStatement', search 'status=active,on-hold,completed,stopped');
ALTER FOREIGN TABLE t1 ALTER COLUMN marital OPTIONS (SET path 'name.where(use = ''official'').first().family');
ALTER FOREIGN TABLE t1 OPTIONS (SET resource 'Patient');

-- resolved when the table is used (the validator cannot see table names)
CREATE FOREIGN TABLE people (id text) SERVER s1;
EXPLAIN (COSTS OFF) SELECT * FROM people;
CREATE FOREIGN TABLE patients (id text, shoe_size int) SERVER s1;
EXPLAIN (COSTS OFF) SELECT * FROM patients;
DROP FOREIGN TABLE patients;
CREATE FOREIGN TABLE patients (id text, birthdate int) SERVER s1;
EXPLAIN (COSTS OFF) SELECT * FROM patients;
DROP FOREIGN TABLE patients;
-- a built-in column may be declared as text instead of its own type
CREATE FOREIGN TABLE patients (birthdate text, id text) SERVER s1;
EXPLAIN (VERBOSE, COSTS OFF) SELECT * FROM patients WHERE id = 'x';

DROP SERVER s1 CASCADE;
