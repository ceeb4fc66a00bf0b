import { createHash, randomBytes, randomUUID, timingSafeEqual } from 'node:crypto';
import type { ClientBase } from 'pg';
import { withClient } from '../db/pool';
import { selectClient, updateClientState, type ClientState } from '../db/sql/clients';
import {
  insertOrg,
  selectOrg,
  selectOrgs,
  updateOrgContacts,
  updateOrgSecret,
  type OrgRow,
} from '../db/sql/orgs';
import { appendAudit, processActor, type AuditActor } from '../audit/append-audit';
import { runWrite, type WritePathOptions } from '../db/write-path';
import { AppError, toAppError } from '../errors';
import type { KeyHierarchy } from '../keys/key-hierarchy';
import { contactLink, contactRegistrationMail } from '../mail/mail-messages';
import { insertOutboxMail } from '../mail/mail-outbox';
import { insertContactToken } from './contact-tokens';

/** Org names: no spaces or special characters (hyphens and underscores allowed), as the seed says. */
export const ORG_NAME_RE = /^[A-Za-z0-9][A-Za-z0-9_-]{0,62}$/;
const EMAIL_RE = /^[^\s@,]+@[^\s@,]+\.[^\s@,]+$/;

export interface OrgServices {
  write: WritePathOptions;
  keys: KeyHierarchy;
  /** Clients awaiting approval allowed per org (registration); unset: no cap (admin tools). */
  maxPendingPerOrg?: number;
  /** `https://HOST:PORT` of this node, for the link in contact mail (nodePublicUrl). */
  publicUrl?: string;
}

export function secretAad(orgName: string): Buffer {
  return Buffer.from(`trustee-org-auth-v1\u0000${orgName}`, 'utf8');
}

export function validateOrgName(name: string): string {
  if (!ORG_NAME_RE.test(name)) {
    throw new AppError(
      'INVALID_REQUEST',
      `invalid organization name "${name}": use letters, digits, hyphens and underscores only (no spaces), at most 63 characters`,
    );
  }
  return name;
}

export function parseContacts(list: string): string[] {
  const contacts = list.split(',');
  for (const c of contacts) {
    if (!EMAIL_RE.test(c)) {
      throw new AppError(
        'INVALID_REQUEST',
        `invalid contact "${c}": give e-mail addresses separated by commas, without spaces`,
      );
    }
  }
  return contacts;
}

/** An auto-generated auth secret: 16 random bytes, base64 (the seed shows `/qFiICsyYqMLhdTznNY3Nw==`). */
export function generateAuthSecret(): string {
  return randomBytes(16).toString('base64');
}

/** What `add` did, and which contacts are new (each gets the contact mail). */
export interface AddOrgResult {
  outcome: 'created' | 'updated';
  newContacts: string[];
}

/**
 * Creates the org, or adds contacts to an existing one (the original's repeated `add`). Each new
 * contact gets a 12-hour key-page token and the "KeyTrustee Contact Registration" mail, queued
 * in the same write (mail/mail-outbox.ts): no org without its mail, no mail without its org.
 */
export async function addOrg(
  svc: OrgServices,
  name: string,
  given: string[],
  who: AuditActor = processActor(),
): Promise<AddOrgResult> {
  validateOrgName(name);
  const contacts = [...new Set(given)];
  return runWrite(svc.write, async (c, tx) => {
    const existing = await selectOrg(c, name, { forUpdate: true });
    let outcome: AddOrgResult['outcome'] = 'updated';
    let newContacts = contacts;
    if (existing) {
      newContacts = contacts.filter((x) => !existing.contacts.includes(x));
      await updateOrgContacts(c, name, [...existing.contacts, ...newContacts]);
      await appendAudit(c, tx, {
        who,
        action: 'org.contacts',
        org: name,
        subject: name,
        detail: `${newContacts.length} added`,
      });
    } else {
      const sealed = await svc.keys.seal(Buffer.from(generateAuthSecret(), 'utf8'), secretAad(name));
      await insertOrg(c, { uuid: orgUuid(), name, sealedSecret: sealed.blob, keyId: sealed.keyId, contacts });
      await appendAudit(c, tx, { who, action: 'org.add', org: name, subject: name });
      outcome = 'created';
    }
    const org = existing ?? (await selectOrg(c, name));
    if (org && svc.publicUrl) {
      for (const contact of newContacts) {
        const { token, expiresAt } = await insertContactToken(c, org.id, contact);
        const mail = contactRegistrationMail({
          org: name,
          link: contactLink(svc.publicUrl, token),
          expiresAt,
        });
        await insertOutboxMail(c, svc.keys, {
          orgId: org.id,
          recipient: contact,
          payload: { kind: 'contact-registration', mail },
        });
      }
    }
    return { outcome, newContacts };
  });
}

/** 43 base62 characters, like the seed's uuid field. */
function orgUuid(): string {
  const alphabet = '0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz';
  const bytes = createHash('sha512').update(randomUUID()).update(randomBytes(32)).digest();
  let out = '';
  for (let i = 0; out.length < 43; i++) out += alphabet[bytes[i % bytes.length] % 62];
  return out;
}

export async function setAuthSecret(
  svc: OrgServices,
  name: string,
  secret: string,
  who: AuditActor = processActor(),
): Promise<void> {
  validateOrgName(name);
  if (secret.length > 256)
    throw new AppError('INVALID_REQUEST', 'the authorization code is limited to 256 characters');
  await runWrite(svc.write, async (c, tx) => {
    const sealed = await svc.keys.seal(Buffer.from(secret, 'utf8'), secretAad(name));
    if ((await updateOrgSecret(c, name, sealed.blob, sealed.keyId)) === 0) {
      throw new AppError('NOT_FOUND', `no organization named ${name}`);
    }
    // Never the code; only whether clients are now approved without one.
    await appendAudit(c, tx, {
      who,
      action: 'org.set-auth',
      org: name,
      subject: name,
      detail: secret === '' ? 'automatic approval' : null,
    });
  });
}

export async function openAuthSecret(keys: KeyHierarchy, org: OrgRow): Promise<string> {
  return (await keys.open(org.auth_secret_key_id, org.auth_secret_sealed, secretAad(org.name))).toString(
    'utf8',
  );
}

/** Constant-time comparison of codes (hash first so lengths never leak). */
export function authCodesMatch(given: string, expected: string): boolean {
  const a = createHash('sha256').update(given, 'utf8').digest();
  const b = createHash('sha256').update(expected, 'utf8').digest();
  return timingSafeEqual(a, b);
}

/** The `keytrustee-orgtool list` shape of the original product. */
export interface OrgListing {
  auth_secret: string;
  contacts: string[];
  creation: string;
  expiration: string;
  key_info: unknown;
  name: string;
  state: number;
  uuid: string;
}

function isoSeconds(d: Date): string {
  return d.toISOString().slice(0, 19);
}

export async function listOrgs(svc: OrgServices): Promise<Record<string, OrgListing>> {
  const rows = await withClient(svc.write.db.pool, (c) => selectOrgs(c)).catch((e: unknown) => {
    throw toAppError(e);
  });
  const out: Record<string, OrgListing> = {};
  for (const o of rows) {
    out[o.name] = {
      auth_secret: await openAuthSecret(svc.keys, o),
      contacts: o.contacts,
      creation: isoSeconds(o.creation),
      expiration: isoSeconds(o.expiration),
      key_info: o.key_info ?? null,
      name: o.name,
      state: o.state,
      uuid: o.uuid,
    };
  }
  return out;
}

/** Sets a client's state with the normal write (both nodes; refused during an outage). */
export async function setClientState(
  svc: Pick<OrgServices, 'write'>,
  fingerprint: string,
  state: ClientState,
  who: AuditActor = processActor(),
): Promise<void> {
  await runWrite(svc.write, async (c: ClientBase, tx) => {
    const existing = await selectClient(c, fingerprint);
    if (!existing) throw new AppError('NOT_FOUND', `no client with fingerprint ${fingerprint}`);
    await updateClientState(c, fingerprint, state);
    await appendAudit(c, tx, {
      who,
      action: state === 'disabled' ? 'client.disable' : 'client.enable',
      org: existing.org_name,
      subject: fingerprint,
      detail: `was ${existing.state}, now ${state}`,
    });
  });
}
