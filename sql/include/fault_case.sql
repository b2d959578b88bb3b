-- Fault cases of faults.sql and bulk.sql: run_case(fault, query, bound_s) runs
-- query and records in fault_results its rows, or its SQLSTATE and message,
-- and whether it ended within bound_s seconds.
CREATE TEMP TABLE fault_results (
  seq serial, fault text, outcome text, within_bound boolean, usable_after boolean,
  requests int);
CREATE FUNCTION pg_temp.run_case(fault text, query text, bound_s float8) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
  t0 timestamptz := clock_timestamp();
  n bigint;
  outcome text;
BEGIN
  BEGIN
    -- count(q.*) makes every column be computed
    EXECUTE 'SELECT count(q.*) FROM (' || query || ') q' INTO n;
    outcome := format('%s rows', n);
  EXCEPTION WHEN OTHERS THEN
    outcome := format('%s: %s', SQLSTATE, SQLERRM);
  END;
  INSERT INTO fault_results (fault, outcome, within_bound)
  VALUES (fault, outcome, clock_timestamp() - t0 < make_interval(secs => bound_s));
END $$;
