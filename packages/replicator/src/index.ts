export { ReplicatorError, type ReplicatorErrorCode } from './errors';
export { findPgBinDir, missingBinaries, REQUIRED_PG_BINARIES } from './postgres/binaries';
export {
  ensurePgOsUser,
  DEFAULT_PG_OS_USER,
  SERVICE_ACCOUNT_SHELL,
  serviceAccountHome,
  type RunAs,
} from './postgres/os-user';
export {
  createPgInstance,
  localConnection,
  ensureSocketDir,
  DB_NAME,
  DB_SUPERUSER,
  DEFAULT_DB_PORT,
  type PgInstance,
  type PgInstanceOptions,
} from './postgres/instance';
export {
  INITDB_TEMPLATE_ENV,
  initDataDir,
  makeInitdbTemplate,
  prepareDataDir,
  writeHba,
} from './postgres/initdb';
export {
  startPostgres,
  stopPostgres,
  reloadPostgres,
  waitReady,
  readPostmasterPid,
  parsePostmasterPidFile,
} from './postgres/postmaster';
export { connectLocal, ensureDatabase, ensureRole } from './postgres/database';
export { runMigrations, readMigrations, MIN_SERVER_VERSION_NUM, type Migration } from './postgres/migrate';
export {
  baseHbaRules,
  renderHba,
  renderHbaLine,
  renderConf,
  quoteConfValue,
  productSettings,
  socketDirFor,
  socketSettings,
  socketPermissionsFor,
  renderSocketDirectories,
  LIBPQ_DEFAULT_SOCKET_DIR,
  DEFAULT_MAX_SLOT_WAL_KEEP_SIZE,
  type HbaRule,
  type SocketAccess,
} from './postgres/settings';
export { parseLsn, formatLsn, compareLsn, lsnDiffBytes } from './postgres/lsn';
export {
  bootstrapActiveReplication,
  ensureReplicationSlot,
  dropReplicationSlot,
  grantRewindAccess,
  addPeerHbaRules,
  rewindHbaRules,
  REWIND_DATABASE,
  replicationHbaRules,
  mergeHbaRules,
  slotNameFor,
  isLoopbackAddress,
  REPLICATION_ROLE,
  type ActiveReplicationOptions,
  type ActiveReplicationResult,
  type ReplicationHbaOptions,
} from './postgres/replication-role';
export { passfilePath, renderPassfileLine, writePassfile, type PassfileEntry } from './postgres/passfile';
export {
  writeStandbyConfig,
  upgradeStandbyTls,
  peerLinkTls,
  renderPrimaryConninfo,
  renderConninfo,
  quoteConninfoValue,
  standbySettings,
  renderAutoConf,
  renderRecoveryConf,
  standbyConfigKind,
  clearStandbyConfig,
  hasStandbyConfig,
  readPgMajor,
  PRIMARY_TCP_USER_TIMEOUT_MS,
  type StandbyConfigKind,
  type StandbyConfigOptions,
  type StandbyConfigResult,
} from './postgres/standby-config';
export { takeBasebackup, type BasebackupOptions, type BasebackupResult } from './postgres/basebackup';
export {
  enableSyncReplication,
  setSyncStandby,
  disableSyncReplication,
  waitForSyncStandby,
  renderSyncStandbyNames,
  describeSyncWait,
  type SyncStandbyPolicy,
  type SyncWaitOptions,
} from './postgres/sync-replication';
export {
  readReplicationState,
  summarizeReplication,
  type ReplicationState,
  type SlotInfo,
  type ReplicationSummary,
  type ReplicationLinkState,
  type StandbyInfo,
  type StandbyState,
  type SyncState,
  type WalReceiverInfo,
} from './replication-state';
export { promoteStandby, readTimeline, type PromoteResult } from './postgres/promote';
export { rewindFrom, isRewindImpossible, type RewindOptions } from './postgres/rewind';
export { readControlData, parseControlData, isRecoveryState, type ControlData } from './postgres/controldata';
export { TIMELINE_SQL_EXPRESSION } from './postgres/timeline';
