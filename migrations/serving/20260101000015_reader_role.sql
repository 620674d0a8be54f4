-- betflow_reader: a read-only role for dashboards (Grafana) with USAGE on the
-- serving schema and SELECT on its tables and views, now and later (default
-- privileges of the role that runs the migrations). It cannot log in until an
-- operator gives it a password (compose.yaml's grafana-reader service does).
-- Creating a role needs CREATEROLE: a migration user without it leaves a
-- notice and the role to the operator (README, "Grafana").
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'betflow_reader') THEN
        CREATE ROLE betflow_reader NOLOGIN;
    END IF;
    GRANT USAGE ON SCHEMA serving TO betflow_reader;
    GRANT SELECT ON ALL TABLES IN SCHEMA serving TO betflow_reader;
    ALTER DEFAULT PRIVILEGES IN SCHEMA serving GRANT SELECT ON TABLES TO betflow_reader;
EXCEPTION WHEN insufficient_privilege THEN
    RAISE NOTICE 'betflow_reader was not created: the migration user lacks CREATEROLE';
END $$;
