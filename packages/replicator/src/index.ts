export { ReplicatorError, type ReplicatorErrorCode } from './errors';
export { findPgBinDir, missingBinaries, REQUIRED_PG_BINARIES } from './postgres/binaries';
export { ensurePgOsUser, DEFAULT_PG_OS_USER, type RunAs } from './postgres/os-user';
export {
  createPgInstance,
  localConnection,
  DB_NAME,
  DB_SUPERUSER,
  DEFAULT_DB_PORT,
  type PgInstance,
  type PgInstanceOptions,
} from './postgres/instance';
export { initDataDir, prepareDataDir, writeHba } from './postgres/initdb';
export { startPostgres, stopPostgres, reloadPostgres, waitReady, readPostmasterPid } from './postgres/postmaster';
export { connectLocal, ensureDatabase, ensureRole } from './postgres/database';
export { runMigrations, readMigrations, MIN_SERVER_VERSION_NUM, type Migration } from './postgres/migrate';
export { baseHbaRules, renderHba, renderConf, productSettings, type HbaRule } from './postgres/settings';
