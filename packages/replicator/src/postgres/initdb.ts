import { execFileSync } from 'node:child_process';
import {
  accessSync,
  appendFileSync,
  chmodSync,
  chownSync,
  constants,
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  statSync,
  unlinkSync,
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

/** initdb's arguments besides `-D DIR`: data checksums, UTF-8, the Trustee superuser. */
const INITDB_ARGS = [
  '-U',
  DB_SUPERUSER,
  '--data-checksums',
  '--encoding=UTF8',
  '--locale=C.UTF-8',
  '--auth-local=trust',
  '--auth-host=scram-sha-256',
];

/**
 * Names a pristine initdb output (made by makeInitdbTemplate) that initDataDir copies instead of
 * running initdb: the test suite makes one per run, so each of its ~50 databases costs a copy
 * (~0.1 s) rather than an initdb (~1 s of CPU). Every copy shares the template's system
 * identifier, which only matters between clusters that never meet. Not for production.
 */
export const INITDB_TEMPLATE_ENV = 'TRUSTEE_INITDB_TEMPLATE';
/** What a template records of how it was made; a copy is refused unless it matches. */
const TEMPLATE_MARK = 'trustee-initdb-template.json';

function templateMark(inst: PgInstance): string {
  return JSON.stringify({ binDir: inst.binDir, args: INITDB_ARGS, runAs: inst.runAs?.uid ?? null });
}

/** Runs initdb into `inst.dataDir` (empty) and marks it as a template for INITDB_TEMPLATE_ENV. */
export async function makeInitdbTemplate(inst: PgInstance): Promise<void> {
  prepareDataDir(inst);
  await runPgTool(join(inst.binDir, 'initdb'), ['-D', inst.dataDir, ...INITDB_ARGS], {
    runAs: inst.runAs,
    timeoutMs: 120_000,
  });
  writeFileSync(join(inst.dataDir, TEMPLATE_MARK), templateMark(inst));
}

/** Copies the template (owner and modes kept) into the empty data dir, or says why it cannot. */
function copyInitdbTemplate(template: string, inst: PgInstance): void {
  const mark = join(template, TEMPLATE_MARK);
  if (!existsSync(mark) || readFileSync(mark, 'utf8') !== templateMark(inst)) {
    throw new ReplicatorError(
      'INITDB_TEMPLATE_MISMATCH',
      `${INITDB_TEMPLATE_ENV}=${template} is not an initdb template made with these binaries, arguments and OS user; unset it to run initdb`,
    );
  }
  execFileSync('cp', ['-a', '--', `${template}/.`, inst.dataDir], { stdio: 'pipe' });
  unlinkSync(join(inst.dataDir, TEMPLATE_MARK));
}

/** initdb with data checksums and the Trustee superuser, then the product's settings and pg_hba rules. */
export async function initDataDir(inst: PgInstance, extraHba: HbaRule[] = []): Promise<void> {
  prepareDataDir(inst);
  const template = process.env[INITDB_TEMPLATE_ENV];
  if (template) copyInitdbTemplate(template, inst);
  else
    await runPgTool(join(inst.binDir, 'initdb'), ['-D', inst.dataDir, ...INITDB_ARGS], {
      runAs: inst.runAs,
      timeoutMs: 120_000,
    });
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
