-- Deposit lifecycle and quotas (issue 16).
--
-- Destroy: `DELETE /v1/deposits/NAME?destroy=true` sets sealed_value, key_id, metadata and
-- request_hash (a keyed digest of the value: a guess-confirmation oracle for low-entropy values)
-- to NULL on every version and stamps destroyed_at; the row itself (name, version, created_at,
-- idempotency key) stays as the record that the version existed. The UPDATE reaches the passive
-- by streaming replication and the change journal by logical decoding like every other write.
alter table deposits add column destroyed_at timestamptz;
-- Size of the value as the client sent it (bytes), for the byte quota. NULL on rows written before
-- this migration: they count octet_length(sealed_value) instead (see deposit_usage below).
alter table deposits add column value_bytes int check (value_bytes >= 0);
-- 0001's unnamed `check (deleted or sealed_value is not null)` is deposits_check.
alter table deposits drop constraint deposits_check;
alter table deposits add constraint deposits_value_check
  check (deleted or destroyed_at is not null or sealed_value is not null);
alter table deposits add constraint deposits_destroyed_check
  check (destroyed_at is null or sealed_value is null);

-- Per-client usage counters for the quotas. A write never updates them: it appends its change to
-- deposit_usage_delta in its own transaction (no row is shared, so no write waits for another's
-- lock — a row lock would be held through the commit's wait for the passive, and a hung passive
-- would then stack one client's concurrent writes one commit-wait after the other), and checks
-- counter + pending deltas. keytrusteed on the active folds the deltas into the counter about
-- once a second (deposits/usage-compaction.ts). The check is O(1 + deltas since the last fold).
--   live_deposits: names whose latest version is not a tombstone (QUOTA_MAX_DEPOSITS)
--   value_bytes:   bytes of every version still holding a value (QUOTA_MAX_BYTES)
create table deposit_usage (
  owner_fp text primary key references clients(fingerprint),
  live_deposits int not null default 0 check (live_deposits >= 0),
  value_bytes bigint not null default 0 check (value_bytes >= 0)
);
insert into deposit_usage (owner_fp, live_deposits, value_bytes)
select owner_fp,
       (select count(*) from (select distinct on (l.name) l.deleted from deposits l
                               where l.owner_fp = d.owner_fp order by l.name, l.version desc) latest
         where not latest.deleted),
       coalesce(sum(coalesce(d.value_bytes, octet_length(d.sealed_value))), 0)
  from deposits d group by d.owner_fp;

create table deposit_usage_delta (
  id bigserial primary key,
  owner_fp text not null,
  live_deposits int not null,
  value_bytes bigint not null
);
create index deposit_usage_delta_owner_idx on deposit_usage_delta (owner_fp);

alter table deposit_usage replica identity default;
alter table deposit_usage_delta replica identity default;
alter table deposit_usage set (vacuum_truncate = false);
-- The journal replays the counters with the rows they count (restore = backup + journal).
alter publication trustee_journal add table deposit_usage, deposit_usage_delta;

grant select, insert, update on deposit_usage to keytrustee_app;
grant select, insert, delete on deposit_usage_delta to keytrustee_app;
grant usage, select on sequence deposit_usage_delta_id_seq to keytrustee_app;
