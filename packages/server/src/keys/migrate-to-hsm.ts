import { request } from 'node:https';
import type { ClientBase } from 'pg';
import { depositAad } from '../deposits/deposits';
import { runWrite } from '../db/write-path';
import type { NodeServices } from '../node/node-services';
import { secretAad } from '../orgs/orgs';

/** The seed's rule for names that can move to the HSM: a letter or digit first, then only letters, digits, - . _ */
export const HSM_NAME_RE = /^[A-Za-z0-9][A-Za-z0-9._-]*$/;

/** The seed's prompt, verbatim. */
export const MIGRATION_PROMPT = `Some deposits were found that will need to be moved to the HSM.

        Note that although this operation can be interrupted, once complete,
        items stored in the HSM must remain there!

Do you want to perform this migration now? [y/N]: `;

/** The seed's caution: said after a migration and in --help. */
export const NO_WAY_BACK = `There is no path for migrating keys from the HSM back to the master key file: once moved, every
value is sealed with a data key that only the HSM's key-encryption key unwraps. To stop using
the HSM: back up the data protected by the keys, delete the keys, disable the HSM, create new
keys, and restore the data from the backup.`;

export class MigrationError extends Error {
  override name = 'MigrationError';
}

export interface PendingMigration {
  deposits: number;
  orgs: number;
  /** Deposits still sealed with the master key file whose names break HSM_NAME_RE. */
  /** The first BAD_NAMES_SHOWN non-conforming names (by name); badNameCount counts them all. */
  badNames: { owner: string; name: string }[];
  badNameCount: number;
}

/** Non-conforming names listed by a refused migration (all are counted). */
export const BAD_NAMES_SHOWN = 1000;

/** What is still sealed with the master key file (key id `file:…`). */
export async function readPendingMigration(c: ClientBase): Promise<PendingMigration> {
  const d = await c.query<{ n: string }>(
    `select count(*) as n from deposits where key_id like 'file:%' and sealed_value is not null`,
  );
  const o = await c.query<{ n: string }>(
    `select count(*) as n from orgs where auth_secret_key_id like 'file:%'`,
  );
  const names = await c.query<{ owner_fp: string; name: string }>(
    `select distinct owner_fp, name from deposits
      where key_id like 'file:%' and sealed_value is not null and name !~ $1 order by name limit $2`,
    [HSM_NAME_RE.source, BAD_NAMES_SHOWN],
  );
  const bad =
    names.rows.length < BAD_NAMES_SHOWN
      ? names.rows.length
      : Number(
          (
            await c.query<{ n: string }>(
              `select count(*) as n from (select distinct owner_fp, name from deposits
                where key_id like 'file:%' and sealed_value is not null and name !~ $1) s`,
              [HSM_NAME_RE.source],
            )
          ).rows[0].n,
        );
  return {
    deposits: Number(d.rows[0].n),
    orgs: Number(o.rows[0].n),
    badNames: names.rows.map((r) => ({ owner: r.owner_fp, name: r.name })),
    badNameCount: bad,
  };
}

/** Which key hierarchy a node's server runs with (its /v1/health `atRestKeys`), or why unknown. */
export function readServerKeys(url: string, timeoutMs = 3000): Promise<'hsm' | 'file' | 'unreachable'> {
  return new Promise((resolve) => {
    const req = request(
      new URL('/v1/health', url),
      { rejectUnauthorized: false, agent: false, timeout: timeoutMs },
      (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (d: string) => (body += d));
        res.on('end', () => {
          try {
            resolve((JSON.parse(body) as { atRestKeys?: string }).atRestKeys === 'hsm' ? 'hsm' : 'file');
          } catch {
            resolve('file');
          }
        });
      },
    );
    req.on('error', () => resolve('unreachable'));
    req.on('timeout', () => req.destroy());
    req.end();
  });
}

/**
 * Moves the rows still sealed with the master key file to HSM data keys, `batchSize` rows per
 * write (each batch commits on both nodes, so every row is readable on both nodes before, during
 * and after). Resumable: the rows' own key ids say what is left, so an interrupted run is simply
 * run again. `svc.keys` must be the HSM hierarchy (it opens `file:` rows with the master key).
 */
export async function migrateToHsm(
  svc: NodeServices,
  opts: { batchSize: number; pauseMs?: number; onProgress?: (done: number, total: number) => void },
): Promise<{ deposits: number; orgs: number }> {
  const pending = await svc.db.pool.connect().then(async (c) => {
    try {
      return await readPendingMigration(c);
    } finally {
      c.release();
    }
  });
  const total = pending.deposits;
  let done = 0;
  for (let guard = 0; guard < total + 1; guard++) {
    const moved = await runWrite(svc.write, async (c) => {
      const { rows } = await c.query<{
        id: string;
        owner_fp: string;
        name: string;
        version: number;
        sealed_value: Buffer;
        key_id: string;
      }>(
        `select id, owner_fp, name, version, sealed_value, key_id from deposits
          where key_id like 'file:%' and sealed_value is not null order by id limit $1 for update`,
        [opts.batchSize],
      );
      for (const r of rows) {
        const aad = depositAad(r.owner_fp, r.name, r.version);
        const value = await svc.keys.open(r.key_id, r.sealed_value, aad);
        const sealed = await svc.keys.seal(value, aad);
        value.fill(0);
        await c.query('update deposits set sealed_value = $2, key_id = $3 where id = $1', [
          r.id,
          sealed.blob,
          sealed.keyId,
        ]);
      }
      return rows.length;
    });
    // No skip locked above: a row another transaction holds is waited for (the write path bounds
    // the wait), so an empty batch means none is left, never "the rest was locked".
    if (moved === 0) break;
    done += moved;
    opts.onProgress?.(done, total);
    if (opts.pauseMs) await new Promise((r) => setTimeout(r, opts.pauseMs));
  }
  const orgs = await runWrite(svc.write, async (c) => {
    const { rows } = await c.query<{
      id: string;
      name: string;
      auth_secret_sealed: Buffer;
      auth_secret_key_id: string;
    }>(
      `select id, name, auth_secret_sealed, auth_secret_key_id from orgs where auth_secret_key_id like 'file:%' for update`,
    );
    for (const r of rows) {
      const aad = secretAad(r.name);
      const value = await svc.keys.open(r.auth_secret_key_id, r.auth_secret_sealed, aad);
      const sealed = await svc.keys.seal(value, aad);
      await c.query('update orgs set auth_secret_sealed = $2, auth_secret_key_id = $3 where id = $1', [
        r.id,
        sealed.blob,
        sealed.keyId,
      ]);
    }
    return rows.length;
  });
  return { deposits: done, orgs };
}
