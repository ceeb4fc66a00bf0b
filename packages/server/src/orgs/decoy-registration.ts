import { createHash, createHmac, createPrivateKey } from 'node:crypto';

/** Decoys remembered (fingerprint → org and certificate), so a re-send gets the same bytes. */
const DEFAULT_CACHE_SIZE = 4096;

/**
 * Registration for an organization that does not exist answers exactly like a known one
 * without its code (issue 10, finding 5): 200 `pending` with a certificate signed by the
 * cluster CA (the same signature work), stored nowhere. This keeps what makes the decoy look
 * real afterwards:
 * - its serial number is an HMAC of the client fingerprint under a key derived from the cluster
 *   identity key (same on both nodes and across restarts), so the server recognises a decoy
 *   certificate and answers it CLIENT_PENDING like a real pending client, while to anyone else
 *   the serial is as random as a real one;
 * - the certificate is remembered (bounded, in memory), so sending the same CSR again returns
 *   the same bytes, as a stored pending client does, and the key then counts as registered in
 *   that org: sending it for any other org answers "registered in another organization";
 * - the answer takes about as long as a real pending registration (which also waits for its
 *   replicated write): the decoy waits out a moving average of those.
 */
export interface Decoy {
  /** The (unknown) organization it was handed out for. */
  org: string;
  certificate: string;
}

export class DecoyRegistrations {
  private readonly macKey: Buffer;
  private readonly cache = new Map<string, Decoy>();
  private readonly cacheSize: number;
  private averageMs = 0;

  constructor(identityKeyPem: string, opts: { cacheSize?: number } = {}) {
    const der = createPrivateKey(identityKeyPem).export({ type: 'pkcs8', format: 'der' });
    this.macKey = createHash('sha256').update('trustee-decoy-serial-v1\u0000').update(der).digest();
    this.cacheSize = opts.cacheSize ?? DEFAULT_CACHE_SIZE;
  }

  /** Serial (hex, 16 bytes, positive) of the decoy certificate for this client fingerprint. */
  serialFor(fingerprint: string): string {
    const b = createHmac('sha256', this.macKey).update(fingerprint, 'utf8').digest().subarray(0, 16);
    b[0] &= 0x7f;
    // Like a random serial, never starting with a zero byte (DER would drop it).
    if (b[0] === 0) b[0] = 0x01;
    return b.toString('hex');
  }

  /** True when `serialHex` (any case, leading zeros or not) is this fingerprint's decoy serial. */
  isDecoy(serialHex: string, fingerprint: string): boolean {
    const norm = (h: string) => h.toLowerCase().replace(/^0+/, '');
    return norm(serialHex) === norm(this.serialFor(fingerprint));
  }

  /** The decoy already handed out for this fingerprint, if still remembered. */
  remembered(fingerprint: string): Decoy | undefined {
    return this.cache.get(fingerprint);
  }

  remember(fingerprint: string, decoy: Decoy): void {
    if (this.cache.size >= this.cacheSize) {
      // Oldest first (Map keeps insertion order).
      const oldest = this.cache.keys().next().value;
      if (oldest !== undefined) this.cache.delete(oldest);
    }
    this.cache.set(fingerprint, decoy);
  }

  /** Records how long a real pending registration took (after the org lookup), ms. */
  observePending(ms: number): void {
    this.averageMs = this.averageMs === 0 ? ms : this.averageMs * 0.8 + ms * 0.2;
  }

  /** How much longer a decoy that has spent `elapsedMs` should wait to look like a real one. */
  remainingMs(elapsedMs: number): number {
    return Math.max(0, Math.min(this.averageMs, 5_000) - elapsedMs);
  }
}
