/**
 * The at-rest key hierarchy behind one interface: a master key file in the confdir, or data
 * keys wrapped by a key-encryption key (KEK) held in an HSM (hsm-key-hierarchy.ts). The key id
 * records which key sealed each row, so a migration can re-seal rows batch by batch.
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

/** The key of a row is not there or does not open it (tampered, moved, another cluster's key). */
export class KeyUnavailableError extends Error {
  override name = 'KeyUnavailableError';
}

/**
 * The HSM could not be used right now (token removed, device error, service unreachable):
 * `reason` is a short code safe for logs, answers and metric labels (e.g. CKR_DEVICE_ERROR,
 * TOKEN_NOT_PRESENT, ECONNREFUSED); never a PIN or key material.
 */
export class HsmUnavailableError extends Error {
  override name = 'HsmUnavailableError';
  constructor(
    readonly reason: string,
    message: string,
    opts?: { cause?: unknown },
  ) {
    super(message, opts);
  }
}
