import { openpgp } from '../backup/openpgp';

/**
 * What a contact pastes on the key page (`/?q=TOKEN`, issue 15), checked before anything is
 * stored: one armored OpenPGP public key that parses, is neither revoked nor expired, and has a
 * key that can encrypt (pending-client notices are encrypted to it).
 */
export interface ContactKey {
  /** Upper-case hex fingerprint of the primary key (as `gpg --fingerprint`, without spaces). */
  fingerprint: string;
  /** The key re-armored by openpgp: only the parsed packets, never the pasted text itself. */
  armored: string;
}

export type ContactKeyProblem =
  | 'private-key'
  | 'not-a-public-key'
  | 'several-keys'
  | 'revoked'
  | 'expired'
  | 'no-encryption-key'
  | 'too-large';

/** Why a pasted key was refused; carries no part of the text (it may be a private key). */
export class ContactKeyRejected extends Error {
  constructor(readonly problem: ContactKeyProblem) {
    super(`contact key rejected: ${problem}`);
    this.name = 'ContactKeyRejected';
  }
}

/** Largest armored key stored (contact_keys.armored_public_key's check, 0007). */
export const MAX_ARMORED_KEY_CHARS = 65536;

/**
 * Any armor header of secret material: an OpenPGP private key block, or a PEM private key
 * (`BEGIN RSA PRIVATE KEY`, `BEGIN ENCRYPTED PRIVATE KEY`, …) pasted into the wrong form.
 */
const PRIVATE_ARMOR = /-----BEGIN [A-Z0-9 ]*PRIVATE KEY[A-Z ]*-----/;

/** True when the text holds secret key material (checked before any parsing). */
export function looksPrivate(text: string): boolean {
  return PRIVATE_ARMOR.test(text);
}

/**
 * Parses and checks a pasted key; throws ContactKeyRejected naming the problem. openpgp's own
 * error messages are never passed on: they may quote key ids, and the caller shows our wording.
 */
export async function readContactKey(text: string, now: Date = new Date()): Promise<ContactKey> {
  if (looksPrivate(text)) throw new ContactKeyRejected('private-key');
  // openpgp reads the first armored block and ignores the rest: refuse a second one here.
  if ((text.match(/-----BEGIN PGP /g) ?? []).length > 1) throw new ContactKeyRejected('several-keys');
  let keys: Awaited<ReturnType<typeof openpgp.readKeys>>;
  try {
    keys = await openpgp.readKeys({ armoredKeys: text });
  } catch {
    throw new ContactKeyRejected('not-a-public-key');
  }
  // A secret-key packet under a PUBLIC armor header is still a private key.
  if (keys.some((k) => k.isPrivate())) throw new ContactKeyRejected('private-key');
  if (keys.length !== 1) throw new ContactKeyRejected('several-keys');
  const key = keys[0];
  if (await key.isRevoked(undefined, undefined, now)) throw new ContactKeyRejected('revoked');
  const expires = await key.getExpirationTime();
  if (expires instanceof Date && expires.getTime() <= now.getTime()) throw new ContactKeyRejected('expired');
  try {
    await key.verifyPrimaryKey(now);
  } catch {
    // A primary key whose self-signatures do not verify (or expired by another route).
    throw new ContactKeyRejected('not-a-public-key');
  }
  try {
    await key.getEncryptionKey(undefined, now);
  } catch {
    throw new ContactKeyRejected('no-encryption-key');
  }
  const armored = key.armor();
  if (armored.length > MAX_ARMORED_KEY_CHARS) throw new ContactKeyRejected('too-large');
  return { fingerprint: key.getFingerprint().toUpperCase(), armored };
}
