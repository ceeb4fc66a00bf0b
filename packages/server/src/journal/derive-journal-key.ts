import { hkdfSync } from 'node:crypto';
import { readSecretFile } from '../confdir/secret-files';
import { JournalError } from './journal-error';

/** HKDF info: a journal key is never usable as the at-rest key, nor the other way round. */
const JOURNAL_KEY_INFO = 'trustee change journal v1';

/**
 * A key for one purpose (`info`), HKDF-SHA256 of the node's at-rest master key (the confdir's
 * `trustee-master.key`, 32 base64 bytes, shared by both nodes and kept in every backup), so what
 * either node wrote with it is checkable wherever that confdir is restored. `material` is the
 * file path, or the raw 32 key bytes; `invalid` makes the error for material of the wrong size.
 */
export function deriveMasterSubkey(
  material: string | Buffer,
  info: string,
  invalid: (message: string) => Error,
): Buffer {
  const ikm =
    typeof material === 'string'
      ? Buffer.from(readSecretFile(material).toString('utf8').trim(), 'base64')
      : material;
  if (ikm.length !== 32) {
    const what = typeof material === 'string' ? `master key file ${material}` : 'master key material';
    throw invalid(`${what} does not hold 32 bytes (found ${ikm.length})`);
  }
  return Buffer.from(hkdfSync('sha256', ikm, Buffer.alloc(0), info, 32));
}

/** The change journal's key (deriveMasterSubkey, info "trustee change journal v1"). */
export function deriveJournalKey(material: string | Buffer): Buffer {
  return deriveMasterSubkey(material, JOURNAL_KEY_INFO, (m) => new JournalError('JOURNAL_INVALID', m));
}
