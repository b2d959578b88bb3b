-- A server for the sandbox's dataset (searches with real FHIR semantics over
-- 200 generated STU3 patients and their medication statements), and the two
-- built-in tables.
CREATE SERVER dataset FOREIGN DATA WRAPPER epic_fdw
  OPTIONS (fhir_url :'dataset_url', fhir_version 'STU3', ca_file :'ca_file',
           mrn_system 'urn:oid:1.2.840.114350.1.13.0.1.7.5.737384.14');
CREATE USER MAPPING FOR CURRENT_USER SERVER dataset
  OPTIONS (client_id 'epic-fdw-rs384', private_key_file :'rsa_key', key_id 'rs1');
CREATE SCHEMA ds;
IMPORT FOREIGN SCHEMA fhir FROM SERVER dataset INTO ds;
SET search_path = ds, public;
