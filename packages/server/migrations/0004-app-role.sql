-- Least privilege (issue 10, finding 8): keytrusteed answers requests as `keytrustee_app`, a
-- login role that can read and write the product's rows and nothing else: no DDL, no superuser
-- functions (COPY … PROGRAM, pg_read_file, ALTER SYSTEM), no replication. Migrations, the job
-- runner's own schema, the change journal, backups and the admin commands keep the owner role
-- (`keytrustee`, the cluster's superuser). Roles live in the cluster catalog, so this reaches the
-- passive through replication like every other change. Local connections authenticate by the
-- socket's permissions (group keytrustee); host connections by SCRAM, and this role has no
-- password: it cannot log in over the network at all.
do $$
begin
  if not exists (select 1 from pg_roles where rolname = 'keytrustee_app') then
    create role keytrustee_app login nosuperuser nocreatedb nocreaterole noreplication nobypassrls
      connection limit 64;
  end if;
end
$$;

-- PostgreSQL 15 no longer lets PUBLIC create in schema public; say it anyway (an upgraded
-- cluster may carry the old default).
revoke create on schema public from public;
grant usage on schema public to keytrustee_app;

-- Requests read everything they answer from, and write clients and deposits. Revocation on a
-- surviving node and registration update clients; organizations are managed by the admin tools
-- (owner role), never changed by a request. Nothing is ever deleted by a request (a DELETE of a
-- deposit is a tombstone row).
grant select on orgs, clients, deposits, cluster_identity, write_barrier, trustee_migrations to keytrustee_app;
grant insert, update on clients, deposits to keytrustee_app;
grant update on write_barrier to keytrustee_app;
grant usage, select on sequence deposits_id_seq to keytrustee_app;

-- The node decision reads replication state: pg_stat_replication's positions and the WAL
-- receiver need pg_read_all_stats (part of pg_monitor), the passive's timeline reads
-- pg_control_checkpoint() and pg_ls_waldir().
grant pg_monitor to keytrustee_app;
grant execute on function pg_control_checkpoint() to keytrustee_app;
