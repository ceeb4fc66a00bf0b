import { TrusteeError } from './errors';

/** Deposit names (DESIGN.md): ASCII, `[A-Za-z0-9]` first, then `[A-Za-z0-9._-]`, ≤ 255. */
export const DEPOSIT_NAME_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._-]{0,254}$/;

export const MAX_NAME_LENGTH = 255;

export const MAX_IDEMPOTENCY_KEY_LENGTH = 200;

/** Idempotency-Key header values: 1-200 printable ASCII characters, no space. */
export const IDEMPOTENCY_KEY_PATTERN = /^[\x21-\x7e]{1,200}$/;

export function isValidName(name: string): boolean {
  return DEPOSIT_NAME_PATTERN.test(name);
}

/**
 * Checked before any network I/O so a bad name fails fast and is never retried.
 * @throws TrusteeError INVALID_NAME
 */
export function assertValidName(name: string): void {
  if (typeof name === 'string' && isValidName(name)) return;
  const shown = typeof name === 'string' ? JSON.stringify(name.slice(0, 40)) : typeof name;
  throw new TrusteeError(
    'INVALID_NAME',
    `invalid deposit name ${shown}: use 1-${MAX_NAME_LENGTH} ASCII characters from [A-Za-z0-9._-], starting with a letter or digit`,
  );
}
