/**
 * Where the key-encryption keys live: a PKCS#11 token opened in this process
 * (pkcs11-kek.ts), or later the Key HSM service over HTTPS. A KEK never leaves it; data keys
 * are wrapped (encrypted) and unwrapped by it.
 */
export interface KekBackend {
  /** For logs and messages: the module and token label, never the PIN. */
  readonly description: string;
  /** Creates the KEK `label` on the token unless it exists; says which. */
  ensureKek(label: string): Promise<'created' | 'exists'>;
  hasKek(label: string): Promise<boolean>;
  /** AES-256-GCM under the KEK: iv(12) ‖ ciphertext ‖ tag(16), `aad` bound. */
  wrap(label: string, plaintext: Buffer, aad: Buffer): Promise<Buffer>;
  unwrap(label: string, wrapped: Buffer, aad: Buffer): Promise<Buffer>;
  close(): void;
}

/** HSM operations, for metrics: op name, seconds, and the error reason (a CKR_* code) if it failed. */
export type HsmObserver = (op: HsmOp, seconds: number, errorReason?: string) => void;

export type HsmOp = 'open' | 'find' | 'generate' | 'wrap' | 'unwrap';

export const HSM_OPS: readonly HsmOp[] = ['open', 'find', 'generate', 'wrap', 'unwrap'];
