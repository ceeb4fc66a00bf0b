/**
 * The OpenPGP public key a backup is encrypted to: an armored key file, or a recipient (name,
 * e-mail or fingerprint) looked up in the service account's GnuPG keyring (`GNUPGHOME` or
 * ~/.gnupg) with the real `gpg`, as the seed's `ktbackup.sh --gpg-recipient` does.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { openpgp, type PublicKey } from './openpgp';

export class BackupError extends Error {
  override name = 'BackupError';
  constructor(
    readonly code:
      | 'RECIPIENT_NOT_FOUND'
      | 'RECIPIENT_AMBIGUOUS'
      | 'RECIPIENT_UNUSABLE'
      | 'DUMP_FAILED'
      | 'ARCHIVE_INVALID'
      | 'DECRYPT_FAILED'
      | 'RESTORE_REFUSED',
    message: string,
    opts: { cause?: unknown } = {},
  ) {
    super(message, { cause: opts.cause });
  }
}

/** Exports the recipient's public key from the GnuPG keyring (armored), or undefined when gpg has none. */
function exportFromKeyring(recipient: string, gnupgHome?: string): string | undefined {
  const r = spawnSync('gpg', ['--batch', '--armor', '--export', '--', recipient], {
    encoding: 'utf8',
    timeout: 30_000,
    ...(gnupgHome ? { env: { ...process.env, GNUPGHOME: gnupgHome } } : {}),
  });
  if (r.error) {
    throw new BackupError(
      'RECIPIENT_NOT_FOUND',
      `cannot run gpg to look up "${recipient}" (${r.error.message}); install gnupg or pass an armored public key file`,
    );
  }
  return r.stdout.includes('BEGIN PGP PUBLIC KEY BLOCK') ? r.stdout : undefined;
}

/**
 * Resolves `--gpg-recipient` to exactly one OpenPGP public key that can encrypt. `gnupgHome`
 * names the keyring (keytrustee.conf BACKUP_GNUPGHOME); default GNUPGHOME or ~/.gnupg.
 */
export async function resolveRecipientKey(
  recipient: string,
  opts: { gnupgHome?: string } = {},
): Promise<PublicKey> {
  const fromFile = existsSync(recipient) ? readFileSync(recipient, 'utf8') : undefined;
  const armored = fromFile ?? exportFromKeyring(recipient, opts.gnupgHome);
  if (!armored) {
    const home = opts.gnupgHome ?? process.env.GNUPGHOME ?? '~/.gnupg';
    throw new BackupError(
      'RECIPIENT_NOT_FOUND',
      `no public key for "${recipient}" in the GnuPG keyring of this account (${home}); import it first: gpg --import /path/to/recipient.pub`,
    );
  }
  let keys: PublicKey[];
  try {
    keys = (await openpgp.readKeys({ armoredKeys: armored })) as PublicKey[];
  } catch (e) {
    throw new BackupError(
      'RECIPIENT_UNUSABLE',
      `cannot read the public key for "${recipient}": ${(e as Error).message}`,
      {
        cause: e,
      },
    );
  }
  if (keys.length !== 1) {
    const fps = keys.map((k) => k.getFingerprint().toUpperCase()).join(', ');
    throw new BackupError(
      'RECIPIENT_AMBIGUOUS',
      `"${recipient}" matches ${keys.length} keys (${fps}); give the fingerprint of the one to encrypt to`,
    );
  }
  const key = keys[0];
  try {
    await key.getEncryptionKey();
  } catch (e) {
    throw new BackupError(
      'RECIPIENT_UNUSABLE',
      `the key ${key.getFingerprint().toUpperCase()} for "${recipient}" has no usable encryption key (expired, revoked or sign-only): ${(e as Error).message}`,
      { cause: e },
    );
  }
  return key;
}
