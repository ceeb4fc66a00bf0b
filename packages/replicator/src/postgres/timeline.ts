/**
 * The timeline a node is on, as one SQL expression. An active: the WAL insertion timeline
 * (`pg_walfile_name` of the current position). A standby: its last restartpoint may still be on
 * the previous timeline after following a switch, and `pg_stat_wal_receiver` is empty when it is
 * not streaming, so take the newest timeline it has WAL or a history file for (pg_wal names start
 * with the timeline id) — needs a superuser or pg_monitor for `pg_ls_waldir()`.
 */
export const TIMELINE_SQL_EXPRESSION = `case when pg_is_in_recovery()
  then greatest((select timeline_id from pg_control_checkpoint()),
                (select received_tli from pg_stat_wal_receiver),
                (select max(('x' || substr(name, 1, 8))::bit(32)::int) from pg_ls_waldir() where name ~ '^[0-9A-F]{8}'))
  else ('x' || substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8))::bit(32)::int end`;
