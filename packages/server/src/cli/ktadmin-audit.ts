import { Command } from 'commander';
import { loadKeytrusteeConf } from '../config';
import { confPaths } from '../confdir/paths';
import { connectNodeDb } from '../db/node-db';
import type { Db } from '../db/pool';
import { deriveAuditKey } from '../audit/audit-mac';
import type { AuditProblem } from '../audit/audit-chain-check';
import { exportAudit, parseSince, verifyAudit, type OnProgress } from '../audit/read-audit';
import { UsageError } from './common';

/** Default oldest age of an unchained row before verify calls it inserted (the chainer runs every second). */
const DEFAULT_MAX_UNCHAINED = '10m';

/** At most one progress line on stderr every this many ms. */
const PROGRESS_EVERY_MS = 2000;

function progress(what: string): OnProgress {
  let last = Date.now();
  return (rows) => {
    if (Date.now() - last < PROGRESS_EVERY_MS) return;
    last = Date.now();
    process.stderr.write(`${what}: ${rows} rows so far…\n`);
  };
}

/** Read-only: the node's own PostgreSQL as the owner role, like `ktadmin status` (works on either node). */
async function withAuditDb<T>(confdir: string, fn: (db: Db, key: Buffer) => Promise<T>): Promise<T> {
  const conf = loadKeytrusteeConf(confdir);
  const key = deriveAuditKey(confPaths(confdir).masterKey);
  const db = connectNodeDb(conf, confdir, { max: 1 });
  try {
    return await fn(db, key);
  } finally {
    await db.close();
  }
}

function describe(p: AuditProblem): string {
  const where = p.seq === null ? `row id ${p.id} (unchained)` : `row seq ${p.seq} (id ${p.id})`;
  return `${p.kind}: ${where} at ${p.at.toISOString()}: ${p.message}`;
}

/** Parses `--max-unchained-age` (a duration such as 10m) into ms. */
function parseAge(text: string): number {
  const now = new Date();
  try {
    return now.getTime() - parseSince(text, now).getTime();
  } catch {
    throw new UsageError(`--max-unchained-age "${text}" is not a duration such as 90s, 10m or 1h`);
  }
}

/** `ktadmin audit verify | export` (README "Audit trail"). */
export function addAuditCommands(program: Command, confdirOf: (cmd: Command) => string): void {
  const audit = program
    .command('audit')
    .description('check or export the audit trail (read-only; on either node)');

  audit
    .command('verify')
    .description(
      "recompute every audit row's MAC and the chain linking them; exit 0 with counts when intact, 1 naming the first changed, removed or inserted row",
    )
    .option(
      '--max-unchained-age <duration>',
      'an unchained row older than this counts as inserted (the active chains within about a second)',
      DEFAULT_MAX_UNCHAINED,
    )
    .action(async (o: { maxUnchainedAge: string }, cmd: Command) => {
      const maxUnchainedAgeMs = parseAge(o.maxUnchainedAge);
      const r = await withAuditDb(confdirOf(cmd), (db, key) =>
        verifyAudit({ pool: db.pool, key, maxUnchainedAgeMs, onProgress: progress('audit verify') }),
      );
      const last = r.lastSeq ? `last seq ${r.lastSeq} at ${r.lastAt?.toISOString()}` : 'no chained row yet';
      const summary = `${r.rows} rows: ${r.intact} chained and intact (${last}), ${r.pending} pending (not chained yet)`;
      if (!r.problems.length) {
        process.stdout.write(`audit trail intact: ${summary}\n`);
        process.stdout.write(
          'rows cut from the end leave no gap: compare the last seq with an earlier one (metric trustee_audit_chain_seq)\n',
        );
        return;
      }
      const kinds = new Map<string, number>();
      for (const p of r.problems) kinds.set(p.kind, (kinds.get(p.kind) ?? 0) + 1);
      process.stdout.write(`audit trail NOT intact: ${summary}\n`);
      for (const p of r.problems.slice(0, 20)) process.stdout.write(`  ${describe(p)}\n`);
      if (r.problems.length > 20) process.stdout.write(`  … and ${r.problems.length - 20} more\n`);
      process.stderr.write(
        `error: AUDIT_TAMPERED: ${r.problems.length} bad row(s) (${[...kinds].map(([k, n]) => `${n} ${k}`).join(', ')}); first: ${describe(r.problems[0])}\n`,
      );
      process.exitCode = 1;
    });

  audit
    .command('export')
    .description('print audit rows as JSON lines on stdout, oldest first (never a value or auth code)')
    .option('--since <when>', 'only rows from this far back (90s, 30m, 24h, 7d, 4w) or since an ISO time')
    .action(async (o: { since?: string }, cmd: Command) => {
      let since = new Date(0);
      if (o.since) {
        try {
          since = parseSince(o.since, new Date());
        } catch (e) {
          throw new UsageError(`--since: ${(e as Error).message}`);
        }
      }
      const n = await withAuditDb(confdirOf(cmd), (db) =>
        exportAudit({
          pool: db.pool,
          since,
          write: (text) =>
            new Promise<void>((resolve, reject) =>
              process.stdout.write(text, (e) => (e ? reject(e) : resolve())),
            ),
          onProgress: progress('audit export'),
        }),
      );
      process.stderr.write(`${n} audit rows exported\n`);
    });
}
