/**
 * TLS 1.2 suites offered while TLS_CIPHERS is empty: Mozilla's "intermediate" profile without its
 * DHE suites, i.e. ECDHE key exchange with AEAD only (AES-GCM, ChaCha20-Poly1305). No CBC suite
 * (LUCKY13), no static RSA key exchange (no forward secrecy). TLS 1.0/1.1 have no AEAD suite, so
 * this list alone never lets them negotiate. Preference: strongest first; AES-128 before AES-256 as
 * Mozilla orders them (both fine), ChaCha20 for clients without AES hardware.
 */
export const DEFAULT_TLS12_CIPHERS: readonly string[] = [
  'ECDHE-ECDSA-AES128-GCM-SHA256',
  'ECDHE-RSA-AES128-GCM-SHA256',
  'ECDHE-ECDSA-AES256-GCM-SHA384',
  'ECDHE-RSA-AES256-GCM-SHA384',
  'ECDHE-ECDSA-CHACHA20-POLY1305',
  'ECDHE-RSA-CHACHA20-POLY1305',
];

/**
 * TLS 1.3 suites (all AEAD; OpenSSL's defaults, named so the set never depends on the platform).
 * A TLS_CIPHERS list naming no `TLS_*` suite leaves these in place.
 */
export const DEFAULT_TLS13_SUITES: readonly string[] = [
  'TLS_AES_128_GCM_SHA256',
  'TLS_AES_256_GCM_SHA384',
  'TLS_CHACHA20_POLY1305_SHA256',
];

/** Node's `ciphers` option for an empty TLS_CIPHERS. */
export const DEFAULT_CIPHERS = [...DEFAULT_TLS13_SUITES, ...DEFAULT_TLS12_CIPHERS].join(':');

/** Characters of OpenSSL cipher-string notation (names, `!`/`-`/`+` prefixes, `@STRENGTH`, `@SECLEVEL=n`). */
const CIPHER_TOKEN = /^[A-Za-z0-9_.+!@=-]+$/;

export class CipherListError extends Error {
  override name = 'CipherListError';
}

/**
 * A TLS_CIPHERS value in OpenSSL's colon form. The seed allows colons, commas or spaces between
 * keywords (`AES256:CAMELLIA256-SHA`, `AES256, CAMELLIA256-SHA`); Node splits its `ciphers` option on
 * colons only (TLS 1.3 `TLS_*` suites from the rest), so the other separators become colons.
 * Returns undefined for an empty list (the default applies). Whether OpenSSL knows the keywords is
 * checked when the server builds its TLS context.
 */
export function parseCipherList(value: string): string | undefined {
  const tokens = value.split(/[\s:,]+/).filter(Boolean);
  if (tokens.length === 0) return undefined;
  const bad = tokens.find((t) => !CIPHER_TOKEN.test(t));
  if (bad !== undefined)
    throw new CipherListError(
      `"${bad}" is not OpenSSL cipher-list notation (keywords separated by ":", "," or spaces; see man ciphers)`,
    );
  return tokens.join(':');
}

/**
 * Node's `ciphers` option for a parsed TLS_CIPHERS (undefined: the default). An operator's list
 * never enables suites that skip server authentication or encryption (`aNULL`, `eNULL`, which a
 * broad keyword plus `@SECLEVEL=0` could otherwise pull in); a list of TLS 1.3 suites only is
 * left as it is (it names no TLS ≤ 1.2 cipher to exclude from).
 */
export function serverCipherList(configured: string | undefined): string {
  if (configured === undefined) return DEFAULT_CIPHERS;
  const tls12 = configured.split(':').some((t) => !t.startsWith('TLS_'));
  return tls12 ? `${configured}:!aNULL:!eNULL` : configured;
}
