/**
 * The server's own OpenPGP key, which signs contact mail and pending-client notices (seed:
 * "Import the Key Trustee Server's public GPG key to verify that the server is the sender").
 *
 * Where it lives: nowhere. It is derived (HKDF-SHA256) from the cluster identity key, which both
 * nodes already hold (DESIGN.md: copied with the confdir), with a fixed creation time, so both
 * nodes — and a confdir made before this key existed, and a promoted passive — sign with the
 * same Ed25519 key and export the same fingerprint, with no file to copy and no database row
 * that a write must create first. Deriving one way: the mail key reveals nothing of the identity
 * key. Rotating the identity key changes the mail key (admins import the new one).
 */
import { createHash, createPrivateKey, createPublicKey, hkdfSync } from 'node:crypto';
import { openpgp, type PrivateKey } from '../backup/openpgp';

/** Key creation time written into the key (part of its fingerprint): fixed, so both nodes agree. */
const KEY_CREATED = new Date('2020-01-01T00:00:00Z');
const HKDF_INFO = 'trustee-mail-signing-key-v1';
/** PKCS#8 DER prefix of a raw Ed25519 private key (RFC 8410). */
const ED25519_PKCS8_PREFIX = Buffer.from('302e020100300506032b657004220420', 'hex');

export interface ServerMailKey {
  privateKey: PrivateKey;
  /** Upper-case hex fingerprint. */
  fingerprint: string;
  armoredPublicKey: string;
}

const cache = new Map<string, Promise<ServerMailKey>>();

/** The mail key of the cluster whose identity key (PEM) is given; computed once per process. */
export function serverMailKey(identityKeyPem: string): Promise<ServerMailKey> {
  const id = createHash('sha256').update(identityKeyPem).digest('hex');
  let key = cache.get(id);
  if (!key) {
    key = deriveServerMailKey(identityKeyPem);
    cache.set(id, key);
    key.catch(() => cache.delete(id));
  }
  return key;
}

async function deriveServerMailKey(identityKeyPem: string): Promise<ServerMailKey> {
  const ikm = createPrivateKey(identityKeyPem).export({ format: 'der', type: 'pkcs8' });
  const seed = Buffer.from(hkdfSync('sha256', ikm, 'trustee', HKDF_INFO, 32));
  const publicRaw = createPublicKey(
    createPrivateKey({ key: Buffer.concat([ED25519_PKCS8_PREFIX, seed]), format: 'der', type: 'pkcs8' }),
  )
    .export({ format: 'der', type: 'spki' })
    .subarray(-32);
  // openpgp.js makes keys only from fresh randomness: generate one of the right shape (Ed25519,
  // no subkey: it only signs), put the derived material in, and re-read and re-sign it
  // (reformatKey), which recomputes the fingerprint and the self-signature over the new key.
  const { privateKey: shape } = await openpgp.generateKey({
    type: 'ecc',
    curve: 'curve25519Legacy',
    userIDs: [{ name: 'Trustee Key Trustee Server' }],
    subkeys: [],
    date: KEY_CREATED,
    format: 'object',
  });
  const packet = shape.keyPacket as unknown as {
    privateParams: { seed: Uint8Array };
    publicParams: { Q: Uint8Array };
  };
  packet.privateParams.seed = new Uint8Array(seed);
  // Q: 0x40 (native point format) then the 32-byte Ed25519 public key (RFC 4880bis, EdDSA).
  packet.publicParams.Q = new Uint8Array(Buffer.concat([Buffer.from([0x40]), publicRaw]));
  const reread = await openpgp.readPrivateKey({ binaryKey: shape.toPacketList().write() });
  const { privateKey } = await openpgp.reformatKey({
    privateKey: reread,
    userIDs: [{ name: 'Trustee Key Trustee Server' }],
    date: KEY_CREATED,
    format: 'object',
    // No random salt notation in the self-signature: Ed25519 is deterministic, so both nodes
    // export byte-identical public keys.
    config: { nonDeterministicSignaturesViaNotation: false },
  });
  return {
    privateKey,
    fingerprint: privateKey.getFingerprint().toUpperCase(),
    armoredPublicKey: privateKey.toPublic().armor(),
  };
}
