import { createHash, randomBytes } from 'node:crypto';
import type { ClientBase } from 'pg';

/**
 * The 12-hour links of the seed's "KeyTrustee Contact Registration" mail
 * (`https://<host>:11371/?q=TOKEN`). The token is 32 random bytes (43 base64url characters, the
 * seed's link shows 43 letters and digits); only its SHA-256 is stored, and it is used once.
 * Table: migrations/0007-org-contacts.sql.
 */
export const CONTACT_TOKEN_TTL_MS = 12 * 60 * 60 * 1000;
const TOKEN_RE = /^[A-Za-z0-9_-]{43}$/;

export type ContactTokenStatus = 'valid' | 'expired' | 'used' | 'unknown';

export interface ContactTokenRow {
  org_id: string;
  org_name: string;
  contact: string;
  expires_at: Date;
  used_at: Date | null;
}

export function tokenHash(token: string): Buffer {
  return createHash('sha256').update(token, 'utf8').digest();
}

/** True when the text can be a token at all (checked before any query). */
export function isTokenShaped(token: string): boolean {
  return TOKEN_RE.test(token);
}

/** Creates a token for one contact of an org; call inside the write path's transaction. */
export async function insertContactToken(
  c: ClientBase,
  orgId: string,
  contact: string,
  ttlMs: number = CONTACT_TOKEN_TTL_MS,
): Promise<{ token: string; expiresAt: Date }> {
  const token = randomBytes(32).toString('base64url');
  const { rows } = await c.query<{ expires_at: Date }>(
    `insert into contact_tokens (token_hash, org_id, contact, expires_at)
     values ($1, $2, $3, now() + make_interval(secs => $4::double precision / 1000))
     returning expires_at`,
    [tokenHash(token), orgId, contact, ttlMs],
  );
  return { token, expiresAt: rows[0].expires_at };
}

/** Reads a token (either node): its org and contact, and whether it can still be used. */
export async function selectContactToken(
  c: ClientBase,
  token: string,
  opts: { forUpdate?: boolean } = {},
): Promise<{ status: ContactTokenStatus; row?: ContactTokenRow }> {
  if (!isTokenShaped(token)) return { status: 'unknown' };
  const { rows } = await c.query<ContactTokenRow & { expired: boolean }>(
    `select t.org_id, o.name as org_name, t.contact, t.expires_at, t.used_at, t.expires_at <= now() as expired
       from contact_tokens t join orgs o on o.id = t.org_id
      where t.token_hash = $1${opts.forUpdate ? ' for update of t' : ''}`,
    [tokenHash(token)],
  );
  const r = rows[0];
  if (!r) return { status: 'unknown' };
  const { expired, ...row } = r;
  return { status: row.used_at ? 'used' : expired ? 'expired' : 'valid', row };
}

/**
 * Uses a token once and stores the contact's public key, in the write path's transaction (the
 * active). Answers the token's status: anything but 'valid' stored nothing.
 */
export async function useContactToken(
  c: ClientBase,
  token: string,
  key: { fingerprint: string; armored: string },
): Promise<{ status: ContactTokenStatus; row?: ContactTokenRow }> {
  const found = await selectContactToken(c, token, { forUpdate: true });
  if (found.status !== 'valid' || !found.row) return found;
  await c.query(`update contact_tokens set used_at = now() where token_hash = $1`, [tokenHash(token)]);
  await c.query(
    `insert into contact_keys (org_id, contact, fingerprint, armored_public_key) values ($1, $2, $3, $4)
     on conflict (org_id, contact) do update
       set fingerprint = excluded.fingerprint, armored_public_key = excluded.armored_public_key, uploaded_at = now()`,
    [found.row.org_id, found.row.contact, key.fingerprint, key.armored],
  );
  return found;
}

/** The contact's uploaded public key, if any (pending-client notices are encrypted to it). */
export async function selectContactKey(
  c: ClientBase,
  orgId: string,
  contact: string,
): Promise<{ fingerprint: string; armored: string } | undefined> {
  const { rows } = await c.query<{ fingerprint: string; armored_public_key: string }>(
    `select fingerprint, armored_public_key from contact_keys where org_id = $1 and contact = $2`,
    [orgId, contact],
  );
  return rows[0] ? { fingerprint: rows[0].fingerprint, armored: rows[0].armored_public_key } : undefined;
}
