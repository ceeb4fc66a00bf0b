/**
 * The at-rest key hierarchy behind one interface: today a master key file in the confdir,
 * later an HSM over PKCS#11 (the key id records which key sealed each row, so a migration can
 * re-seal rows batch by batch).
 */
export interface KeyHierarchy {
  /** Id of the key new rows are sealed with. */
  readonly currentKeyId: string;
  /** Encrypts and authenticates `plaintext`, binding `aad` (owner, name, version). */
  seal(plaintext: Buffer, aad: Buffer): Promise<{ keyId: string; blob: Buffer }>;
  /** Reverses seal; throws if the blob, the key id or the aad do not match. */
  open(keyId: string, blob: Buffer, aad: Buffer): Promise<Buffer>;
  /**
   * Keyed digest (HMAC-SHA-256) of request data, stored to recognise idempotent retries: an
   * unkeyed hash of a plaintext value would let anyone holding a dump test guesses of it.
   */
  digest(data: Buffer): Promise<Buffer>;
}

export class KeyUnavailableError extends Error {
  override name = 'KeyUnavailableError';
}
