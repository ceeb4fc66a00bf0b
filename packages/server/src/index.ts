export {
  startServer,
  checkSecretFiles,
  connectNodeDb,
  DB_APP_ROLE,
  StartupError,
  MIGRATIONS_DIR,
  VERSION,
  type RunningServer,
  type StartOptions,
} from './server';
export { createApp } from './app';
export { loadKeytrusteeConf, keytrusteeConfSchema, ConfigError, type KeytrusteeConf } from './config';
export {
  initConfdir,
  InitError,
  type InitKeys,
  type InitOptions,
  type InitResult,
} from './confdir/init-confdir';
export { confPaths, pidFilePath, CONF_FILE } from './confdir/paths';
export { updateKeytrusteeConf } from './confdir/update-conf';
export { assertSecretFileMode, InsecureFileError } from './confdir/secret-files';
export { keyFingerprint, FINGERPRINT_RE } from './crypto/fingerprint';
export { AppError, HTTP_STATUS, toAppError, type ErrorCode } from './errors';
export { createLogger, type Logger } from './logger';
export { readJournal, type ReadJournalOptions, type TruncatedTail } from './journal/read-journal';
export { replayJournal, type ReplayOptions, type ReplayResult } from './journal/replay-journal';
export { deriveJournalKey } from './journal/derive-journal-key';
export {
  journalNeedsFreshBackup,
  recordJournalBackup,
  readGapState,
  type BackupPosition,
  type GapState,
} from './journal/journal-gap';
export { JournalError, type JournalErrorCode } from './journal/journal-error';
export {
  createJournalConsumer,
  type JournalConsumer,
  type JournalConsumerOptions,
} from './journal/journal-consumer';
export type {
  JournalRecord,
  JournalTransaction,
  JournalGap,
  JournalChange,
  JournalPosition,
} from './journal/journal-record';
export {
  setupLocalCluster,
  stopLocalDatabases,
  spawnNodeServer,
  waitForHealth,
  localNodeSpecs,
  type LocalCluster,
  type LocalNodeSpec,
  type LocalClusterOptions,
} from './node/local-cluster';
export {
  bootstrapActiveDb,
  bootstrapPassiveDb,
  addStandbyOnActive,
  enableSynchronousReplication,
  nodeInstance,
  standbyNameFor,
  parseHostPort,
} from './node/bootstrap-db';
export { openNodeServices, type NodeServices } from './node/node-services';
export { addOrg, listOrgs, setAuthSecret, setClientState, type OrgListing } from './orgs/orgs';
export { readNodeStatus, formatNodeStatus, type NodeStatus } from './node/node-status';
export { createJobRunner, type JobRunner, type JobRunnerOptions } from './jobs/job-runner';
export { enqueueBackupNow, BackupNowError, type BackupNowResult } from './jobs/backup-now';
export { backupSettings, buildBackupCrontab, type BackupSettings } from './jobs/backup-schedule';
