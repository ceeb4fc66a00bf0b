import { Command } from 'commander';
import { loadKeytrusteeConf } from '../config';
import { connectNodeDb } from '../db/node-db';
import { listUnsentMail, retryGivenUpMail, type OutboxEntry } from '../mail/mail-admin';
import { openNodeServices } from '../node/node-services';
import { UsageError } from './common';

const iso = (d: Date) => `${d.toISOString().slice(0, 19)}Z`;

function stateOf(e: OutboxEntry): string {
  if (e.state === 'waiting' && e.nextAttemptAt) return `waiting (next attempt ${iso(e.nextAttemptAt)})`;
  if (e.state === 'given up') return `GIVEN UP after ${e.attempts} attempts`;
  return e.state;
}

function table(rows: string[][]): string {
  const widths = rows[0].map((_, i) => Math.max(...rows.map((r) => r[i].length)));
  return rows
    .map((r) =>
      r
        .map((cell, i) => cell.padEnd(widths[i]))
        .join('  ')
        .trimEnd(),
    )
    .join('\n');
}

/** `ktadmin mail status | retry` (README "Organization contacts and mail"). */
export function addMailCommands(program: Command, confdirOf: (cmd: Command) => string): void {
  const mail = program
    .command('mail')
    .description(
      'contact mail and pending-client notices waiting in the outbox: list them, retry given-up ones',
    );

  mail
    .command('status')
    .description(
      'list unsent mail, oldest first: recipient, attempts, next attempt or GIVEN UP, the SMTP reply (read-only; either node)',
    )
    .option('--limit <n>', 'list at most this many rows', '50')
    .action(async (o: { limit: string }, cmd: Command) => {
      const limit = Number(o.limit);
      if (!Number.isInteger(limit) || limit < 1 || limit > 10_000)
        throw new UsageError(`--limit "${o.limit}" must be a whole number from 1 to 10000`);
      const confdir = confdirOf(cmd);
      const conf = loadKeytrusteeConf(confdir);
      const db = connectNodeDb(conf, confdir, { max: 1 });
      let r: Awaited<ReturnType<typeof listUnsentMail>>;
      try {
        const c = await db.pool.connect();
        try {
          r = await listUnsentMail(c, limit);
        } finally {
          c.release();
        }
      } finally {
        await db.close();
      }
      const smtp = conf.SMTP_URL
        ? 'SMTP_URL is set on this node'
        : 'SMTP_URL is NOT set on this node: nothing is sent from here';
      process.stdout.write(`${r.total} unsent mail(s), ${r.givenUp} given up; ${smtp}\n`);
      if (r.entries.length) {
        const rows = [['ID', 'KIND', 'ORG', 'RECIPIENT', 'QUEUED', 'STATE', 'LAST SMTP ERROR']];
        for (const e of r.entries)
          rows.push([e.id, e.kind, e.org, e.recipient, iso(e.createdAt), stateOf(e), e.lastError ?? '-']);
        process.stdout.write(`${table(rows)}\n`);
        if (r.total > r.entries.length)
          process.stdout.write(`… ${r.total - r.entries.length} more (--limit)\n`);
      }
      if (r.givenUp)
        process.stdout.write(
          `retry the given-up ones once the SMTP server accepts mail again: ktadmin --confdir ${confdir} mail retry\n`,
        );
    });

  mail
    .command('retry')
    .description(
      'on the active: give mail whose job used all its attempts a fresh set and send it now (all given-up rows, or --id)',
    )
    .option('--id <ids...>', 'only these outbox ids (from mail status)')
    .action(async (o: { id?: string[] }, cmd: Command) => {
      const svc = await openNodeServices(confdirOf(cmd));
      try {
        const ids = await retryGivenUpMail(svc.write, o.id);
        if (!ids.length) {
          process.stdout.write('no given-up mail: nothing to retry (ktadmin mail status lists what waits)\n');
          return;
        }
        process.stdout.write(
          `${ids.length} mail(s) queued again, attempts reset (outbox ids ${ids.join(', ')}): the active's job runner sends them now\n`,
        );
        if (!svc.conf.SMTP_URL)
          process.stdout.write('note: SMTP_URL is not set on this node: they are sent once it is\n');
        process.stdout.write('follow with: ktadmin mail status (and the keytrusteed log: "mail sent")\n');
      } finally {
        await svc.close();
      }
    });
}
