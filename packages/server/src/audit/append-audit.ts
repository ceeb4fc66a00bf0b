import { randomBytes } from 'node:crypto';
import { hostname, userInfo } from 'node:os';
import { basename } from 'node:path';
import type { ClientBase } from 'pg';
import { insertAuditRow } from '../db/sql/audit';
import type { WriteTx } from '../db/write-path';
import { auditRowMac, type AuditActorKind, type AuditFields } from './audit-mac';

/** What was done. Writes; `client.auth` only ever appears in aggregate rows of failures. */
export type AuditAction =
  | 'deposit.put'
  | 'deposit.delete'
  | 'deposit.destroy'
  | 'deposit.prune'
  | 'client.register'
  | 'client.auth'
  | 'client.enable'
  | 'client.disable'
  | 'org.add'
  | 'org.contacts'
  | 'org.set-auth'
  | 'kek.rotate'
  | 'mail.retry'
  | 'restore'
  | 'promote'
  | 'single-node-writes';

/** Who did it and from where. */
export interface AuditActor {
  kind: AuditActorKind;
  /** Client fingerprint, or the admin command (`keytrustee-orgtool add`), or `keytrusteed`. */
  name: string;
  /** The operating-system account running an admin command. */
  osUser?: string | null;
  /** Client address as the server saw it (after TRUSTED_PROXIES), or the CLI's host name. */
  source?: string | null;
}

/** One audit row. Never a deposit value, never an auth code. */
export interface AuditEntry {
  who: AuditActor;
  action: AuditAction;
  org?: string | null;
  /** Which deposit, organization or client. */
  subject?: string | null;
  /** The deposit version the action wrote. */
  subjectVersion?: number | null;
  /** 'ok' (the default) or a stable error code (aggregates of refusals). */
  result?: string;
  /** Events this row stands for (aggregates), default 1. */
  count?: number;
  /** Default now; an aggregate row carries its window's start. */
  at?: Date;
  detail?: string | null;
}

/** The MAC'd fields of an entry (fresh uid; `writeMode` from the write's transaction, if any). */
export function auditFields(entry: AuditEntry, writeMode: AuditFields['writeMode']): AuditFields {
  return {
    uid: randomBytes(16),
    at: entry.at ?? new Date(),
    actorKind: entry.who.kind,
    actor: entry.who.name,
    osUser: entry.who.osUser ?? null,
    action: entry.action,
    org: entry.org ?? null,
    subject: entry.subject ?? null,
    subjectVersion: entry.subjectVersion ?? null,
    source: entry.who.source ?? null,
    result: entry.result ?? 'ok',
    count: entry.count ?? 1,
    writeMode,
    detail: entry.detail ?? null,
  };
}

/**
 * Appends the audit row of a write, inside its runWrite transaction (`c`, `tx` are runWrite's
 * callback arguments): it commits, replicates and rolls back with the change. One INSERT and no
 * shared row, so concurrent writes never wait for each other here; the chainer links rows later.
 */
export async function appendAudit(c: ClientBase, tx: WriteTx, entry: AuditEntry): Promise<void> {
  if (!tx.auditKey) throw new Error('the write path has no audit key (WritePathOptions.auditKey)');
  const fields = auditFields(entry, tx.writeMode);
  await insertAuditRow(c, fields, auditRowMac(tx.auditKey, fields));
}

/**
 * Appends a row outside the write path, for admin actions on a node that cannot replicate right
 * now (promote, restore): committed locally (`synchronous_commit = local` for this transaction);
 * it reaches the passive with the rest of the WAL once one streams.
 */
export async function appendLocalAudit(c: ClientBase, key: Buffer, entry: AuditEntry): Promise<void> {
  const fields = auditFields(entry, 'single-node');
  await c.query('begin');
  try {
    await c.query('set local synchronous_commit = local');
    await insertAuditRow(c, fields, auditRowMac(key, fields));
    await c.query('commit');
  } catch (e) {
    await c.query('rollback').catch(() => undefined);
    throw e;
  }
}

/** The operating-system account running this process. */
export function osUserName(): string {
  try {
    return userInfo().username;
  } catch {
    return `uid ${process.getuid?.() ?? '?'}`;
  }
}

/** An admin command as audit actor: `keytrustee-orgtool add`, run by this OS user on this host. */
export function adminActor(command: string): AuditActor {
  return { kind: 'admin', name: command, osUser: osUserName(), source: hostname() };
}

/** This process as audit actor (library callers that name no command): its script's name. */
export function processActor(): AuditActor {
  return adminActor(basename(process.argv[1] ?? process.title).replace(/\.[cm]?js$/, ''));
}
