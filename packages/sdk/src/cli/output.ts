import type { Deposit, RegistrationResult } from '../client';
import type { ClusterStatus, DepositListItem, PutResult } from '../types';

/** Where the CLI writes; injectable so tests run it in-process. */
export interface CliIo {
  stdout: NodeJS.WritableStream;
  stderr: NodeJS.WritableStream;
  env: NodeJS.ProcessEnv;
  /** Answers to confirmation questions (`destroy` without --yes); none = nothing confirms. */
  stdin?: NodeJS.ReadableStream;
}

/** Human by default, one JSON document with --json. */
export interface Output {
  io: CliIo;
  json: boolean;
}

export function write(o: Output, json: unknown, human: string): void {
  o.io.stdout.write(o.json ? `${JSON.stringify(json, null, 2)}\n` : human);
}

export function printRegistration(o: Output, r: RegistrationResult): void {
  const next =
    r.state === 'pending'
      ? `client is pending: ask an administrator to run\n  keytrustee-orgtool enable-client --fingerprint ${r.fingerprint}\n`
      : '';
  write(
    o,
    { fingerprint: r.fingerprint, state: r.state, configPath: r.configPath, endpoints: r.config.endpoints },
    `registered ${r.fingerprint} (${r.state})\nconfig written to ${r.configPath}\n${next}`,
  );
}

export function printPut(o: Output, r: PutResult): void {
  write(o, r, `stored ${r.name} version ${r.version}\n`);
}

/** Without --json the value bytes go to stdout exactly as stored by put (no newline added). */
export function printDeposit(o: Output, d: Deposit, wroteToFile: boolean): void {
  if (o.json) {
    write(
      o,
      {
        name: d.name,
        version: d.version,
        value: d.value.toString('base64'),
        metadata: d.metadata,
        createdAt: d.createdAt,
        encrypted: d.encrypted,
        source: d.source,
      },
      '',
    );
  } else if (!wroteToFile) {
    o.io.stdout.write(d.value);
  }
}

export function printList(o: Output, items: DepositListItem[]): void {
  const human = items.map((i) => `${i.name}\t${i.version}\t${i.createdAt.toISOString()}\n`).join('');
  write(o, items, human);
}

export function printStatus(o: Output, s: ClusterStatus): void {
  const lines = s.endpoints.map((e) => {
    if (e.health === undefined)
      return `${e.url}\tunreachable\t${e.error?.code ?? ''}: ${e.error?.message ?? ''}\n`;
    const h = e.health;
    const repl = `${h.replication.state ?? '-'}/${h.replication.syncState ?? '-'} lag=${h.replication.lagBytes ?? '-'}B`;
    return `${e.url}\t${h.role}\twritable=${h.writable ? 'yes' : 'no'}\tdb=${h.db}\treplication=${repl}\tbreaker=${e.breaker}\t${e.latencyMs}ms\n`;
  });
  write(o, s, lines.join('') + `active: ${s.active ?? 'none'}\n`);
}
