-- A backup taken on the passive holds ACCESS SHARE locks for the whole pg_dump. VACUUM truncating
-- empty pages at a table's end takes ACCESS EXCLUSIVE on the active, and replaying that lock on the
-- passive waits for the dump: replay stalls, and every remote_apply commit waits with it (writes
-- would end WRITE_IN_DOUBT). Tables never give their tail pages back, so no such lock is ever
-- replayed. (max_standby_streaming_delay bounds any other replay conflict: the dump is cancelled.)
alter table orgs set (vacuum_truncate = false);
alter table clients set (vacuum_truncate = false);
alter table deposits set (vacuum_truncate = false);
alter table write_barrier set (vacuum_truncate = false);
alter table cluster_identity set (vacuum_truncate = false);
