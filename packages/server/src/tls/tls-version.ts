import type { SecureVersion } from 'node:tls';

/** Lowest TLS version accepted when keytrustee.conf sets none: stricter than the original's `tlsv1`. */
export const DEFAULT_TLS_MIN_VERSION: SecureVersion = 'TLSv1.2';

/** Every version Node can negotiate, oldest first. */
export const TLS_VERSIONS: readonly SecureVersion[] = ['TLSv1', 'TLSv1.1', 'TLSv1.2', 'TLSv1.3'];

/**
 * TLS_MIN_VERSION spellings, compared lower-case: the seed's `tlsv1`, `tlsv1.1`, `tlsv1.2`, plus
 * `tlsv1.3` and `tlsv1.0`; Node's own `TLSv1.2` is the same string in another case.
 */
const SPELLINGS: Readonly<Record<string, SecureVersion>> = {
  tlsv1: 'TLSv1',
  'tlsv1.0': 'TLSv1',
  'tlsv1.1': 'TLSv1.1',
  'tlsv1.2': 'TLSv1.2',
  'tlsv1.3': 'TLSv1.3',
};

/** Node's name of a TLS_MIN_VERSION value (`tlsv1.2` → `TLSv1.2`), or undefined when it names none. */
export function parseTlsMinVersion(value: string): SecureVersion | undefined {
  return SPELLINGS[value.trim().toLowerCase()];
}

/** True when `a` is an older protocol than `b`. */
export function isOlderTlsVersion(a: SecureVersion, b: SecureVersion): boolean {
  return TLS_VERSIONS.indexOf(a) < TLS_VERSIONS.indexOf(b);
}
