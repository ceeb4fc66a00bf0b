import {
  accessSync,
  appendFileSync,
  chmodSync,
  chownSync,
  constants,
  existsSync,
  mkdirSync,
  readdirSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { dirname, join } from 'node:path';
import { ReplicatorError } from '../errors';
import { DB_SUPERUSER, ensureSocketDir, type PgInstance } from './instance';
import { runPgTool } from './run';
import { baseHbaRules, nodeSettings, productSettings, renderConf, renderHba, type HbaRule } from './settings';

/**
 * Creates (or re-owns) an empty data directory for the PostgreSQL OS user with mode 0700.
 * Refuses a non-empty directory: bootstrapping over existing data would destroy it.
 */
export function prepareDataDir(inst: PgInstance): void {
  if (existsSync(inst.dataDir) && readdirSync(inst.dataDir).length > 0) {
    throw new ReplicatorError(
      'DATA_DIR_EXISTS',
      `data directory ${inst.dataDir} is not empty; refusing to overwrite it (remove it first or use another --pg-rootdir)`,
    );
  }
  mkdirSync(inst.dataDir, { recursive: true, mode: 0o700 });
  if (inst.runAs) chownSync(inst.dataDir, inst.runAs.uid, inst.runAs.gid);
  chmodSync(inst.dataDir, 0o700);
  assertTraversable(dirname(inst.dataDir), inst);
  ensureSocketDir(inst);
}

/** Every parent must let the PostgreSQL user through (x bit), or initdb fails with a cryptic error. */
function assertTraversable(dir: string, inst: PgInstance): void {
  if (!inst.runAs) {
    accessSync(dir, constants.X_OK);
    return;
  }
  for (let d = dir; ; d = dirname(d)) {
    const st = statSync(d);
    const owned = st.uid === inst.runAs.uid;
    const ok = owned
      ? (st.mode & 0o100) !== 0
      : st.gid === inst.runAs.gid
        ? (st.mode & 0o010) !== 0
        : (st.mode & 0o001) !== 0;
    if (!ok) {
      throw new ReplicatorError(
        'DATA_DIR_INACCESSIBLE',
        `directory ${d} is not traversable by OS user ${inst.runAs.user}; run: chmod o+x ${d}`,
      );
    }
    if (d === dirname(d)) return;
  }
}

/** initdb with data checksums and the Trustee superuser, then the product's settings and pg_hba rules. */
export async function initDataDir(inst: PgInstance, extraHba: HbaRule[] = []): Promise<void> {
  prepareDataDir(inst);
  await runPgTool(
    join(inst.binDir, 'initdb'),
    [
      '-D',
      inst.dataDir,
      '-U',
      DB_SUPERUSER,
      '--data-checksums',
      '--encoding=UTF8',
      '--locale=C.UTF-8',
      '--auth-local=trust',
      '--auth-host=scram-sha-256',
    ],
    { runAs: inst.runAs, timeoutMs: 120_000 },
  );
  appendFileSync(join(inst.dataDir, 'postgresql.conf'), renderConf(productSettings(), 'product settings'));
  appendFileSync(
    join(inst.dataDir, 'postgresql.conf'),
    renderConf(
      nodeSettings(inst.port, inst.listenAddresses, inst.dataDir),
      'node settings (overridden at start)',
    ),
  );
  writeHba(inst, [...baseHbaRules(), ...extraHba]);
}

/** Rewrites pg_hba.conf (caller reloads). */
export function writeHba(inst: PgInstance, rules: HbaRule[]): void {
  const file = join(inst.dataDir, 'pg_hba.conf');
  writeFileSync(file, renderHba(rules), { mode: 0o600 });
  if (inst.runAs) chownSync(file, inst.runAs.uid, inst.runAs.gid);
}
