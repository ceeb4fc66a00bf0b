import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { z } from 'zod/v3';
import { CONF_FILE, confPaths } from './confdir/paths';
import { parseTrustedProxies } from './http/client-address';
import { parseCipherList } from './tls/cipher-list';
import { parseListenAddress } from './tls/listen-address';
import { DEFAULT_TLS_MIN_VERSION, parseTlsMinVersion } from './tls/tls-version';

/** Environment variables the server reads (all in one place, one product prefix). */
export const ENV = {
  CONFDIR: 'TRUSTEE_CONFDIR',
  LOG_LEVEL: 'TRUSTEE_LOG_LEVEL',
  REDIS_URL: 'TRUSTEE_REDIS_URL',
} as const;

export const DEFAULT_CONFDIR = '/var/lib/keytrustee/.keytrustee';
export const DEFAULT_API_PORT = 11371;
export const SECOND = 1000;

/**
 * keytrustee.conf: JSON, key names follow the original product. Unknown keys are kept so a
 * newer node's file does not break an older binary.
 */
export const keytrusteeConfSchema = z
  .object({
    /** Host name this node serves as (TLS certificate subject); default the machine's host name. */
    HOST: z.string().min(1),
    /** HTTPS API port; default 11371 (0 = any free port, as tests' confdirs use). */
    PORT: z.number().int().min(0).max(65535).default(DEFAULT_API_PORT),
    /** Address to bind; default all interfaces. */
    LISTEN_ADDRESS: z.string().default('0.0.0.0'),
    /** Per-node TLS certificate / key (PEM paths; relative paths are resolved in the confdir). */
    SSL_CERTIFICATE: z.string().default('.ssl/ssl-cert-keytrustee.pem'),
    SSL_PRIVATE_KEY: z.string().default('.ssl/ssl-cert-keytrustee-pk.pem'),
    /**
     * Command printing the TLS private key's passphrase on stdout, with arguments (the seed's
     * `/bin/echo -n password`): run without a shell, split on whitespace ('…' and "…" quote), one
     * trailing newline stripped; never logged. Optional; required for an encrypted key.
     */
    SSL_PRIVATE_KEY_PASSWORD_SCRIPT: z.string().min(1).optional(),
    /**
     * Lowest TLS version offered: the seed's `tlsv1`, `tlsv1.1`, `tlsv1.2`, or `tlsv1.3`, any case
     * (parsed to Node's `TLSv1.2` form). Default tlsv1.2 (the original defaulted to tlsv1). TLS
     * 1.0/1.1 are offered only as far as OpenSSL allows; the start log says what is offered.
     */
    TLS_MIN_VERSION: z
      .string()
      .transform((v, ctx) => {
        const version = parseTlsMinVersion(v);
        if (version) return version;
        ctx.addIssue({
          code: 'custom',
          message: `"${v}" is not one of tlsv1, tlsv1.1, tlsv1.2, tlsv1.3`,
        });
        return z.NEVER;
      })
      .default(DEFAULT_TLS_MIN_VERSION),
    /**
     * OpenSSL cipher list (see man ciphers) separated by `:`, `,` or spaces, e.g. the seed's
     * `AES256:CAMELLIA256-SHA`; normalised to colons. It sets the TLS ≤ 1.2 ciphers (TLS 1.3 keeps
     * its AEAD suites unless `TLS_*` suites are listed). Default (empty): ECDHE with AES-GCM or
     * ChaCha20-Poly1305 only (Mozilla intermediate, no CBC).
     */
    TLS_CIPHERS: z
      .string()
      .transform((v, ctx) => {
        try {
          return parseCipherList(v);
        } catch (e) {
          ctx.addIssue({ code: 'custom', message: (e as Error).message });
          return z.NEVER;
        }
      })
      .optional(),
    /**
     * true: `/metrics` on the API port answers only a client certificate issued by the cluster CA
     * (401 otherwise). Default false: anyone reaching the port may scrape.
     */
    METRICS_REQUIRE_CLIENT_CERT: z.boolean().default(false),
    /**
     * `HOST:PORT` (or a bare port: 127.0.0.1) where `/metrics` is served over plain HTTP, e.g.
     * `127.0.0.1:9371`. When set, the API port no longer serves `/metrics` unless
     * METRICS_REQUIRE_CLIENT_CERT is true. Default: unset.
     */
    METRICS_LISTEN: z
      .string()
      .refine(
        (v) => {
          try {
            parseListenAddress(v);
            return true;
          } catch {
            return false;
          }
        },
        { message: 'HOST:PORT such as 127.0.0.1:9371' },
      )
      .optional(),
    /** PostgreSQL port; default 11381. */
    DB_PORT: z.number().int().min(1).max(65535).default(11381),
    /** PostgreSQL data directory (holds the unix socket); set by `ktadmin db --bootstrap`. */
    DB_ROOTDIR: z.string().optional(),
    /** The other node(s): base URLs such as https://kt02.example.com:11371. */
    PEERS: z
      .array(
        z
          .string()
          .url()
          .refine((u) => !URL.canParse(u) || new URL(u).protocol === 'https:', {
            message: 'each peer is an https:// URL such as https://kt02.example.com:11371',
          }),
      )
      .default([]),
    /** Bound on the wait for the passive at commit, ms; default 2000. */
    COMMIT_WAIT_MS: z.number().int().min(50).max(60_000).default(2000),
    /** Largest deposit value in bytes; default 65536. */
    MAX_VALUE_BYTES: z
      .number()
      .int()
      .min(1)
      .max(16 * 1024 * 1024)
      .default(64 * 1024),
    /**
     * Clients awaiting approval (registered without the auth code) allowed per organization;
     * default 100. Beyond it, registrations without the code answer RATE_LIMITED (429).
     */
    MAX_PENDING_CLIENTS_PER_ORG: z.number().int().min(1).max(1_000_000).default(100),
    /**
     * Per-client quotas (issue 16), enforced in the write transaction; beyond one a write answers
     * QUOTA_EXCEEDED (429) and changes nothing. Deposits: names whose latest version is not a
     * tombstone; default 100000.
     */
    QUOTA_MAX_DEPOSITS: z.number().int().min(1).max(1_000_000_000).default(100_000),
    /** Versions of one deposit that still hold a value (tombstones and destroyed versions do not count); default 1000. */
    QUOTA_MAX_VERSIONS_PER_DEPOSIT: z.number().int().min(1).max(1_000_000).default(1000),
    /**
     * true: a PUT beyond QUOTA_MAX_VERSIONS_PER_DEPOSIT destroys the values of the oldest versions
     * (in the same transaction, keeping the newest N) instead of answering QUOTA_EXCEEDED; default false.
     */
    QUOTA_PRUNE_OLDEST_VERSIONS: z.boolean().default(false),
    /**
     * Bytes of values stored per client (every version still holding a value, counted as the
     * client sent them; tombstoned names keep counting until destroyed); default 1073741824 (1 GiB).
     */
    QUOTA_MAX_BYTES: z
      .number()
      .int()
      .min(1)
      .max(Number.MAX_SAFE_INTEGER)
      .default(1024 * 1024 * 1024),
    /**
     * Clients (any state) of an organization whose auth code is empty (every registration is
     * approved at once); beyond it registration answers QUOTA_EXCEEDED; default 1000.
     */
    QUOTA_MAX_CLIENTS_AUTO_APPROVED_ORG: z.number().int().min(1).max(1_000_000).default(1000),
    /** Requests per second allowed per client; default 500. */
    RATE_LIMIT_PER_SECOND: z.number().int().min(1).default(500),
    /** TLS handshake bound, ms; default 10000 (Node's default is 120 s). */
    TLS_HANDSHAKE_TIMEOUT_MS: z.number().int().min(100).max(120_000).default(10_000),
    /** Request headers bound, ms; default 10000. */
    HEADERS_TIMEOUT_MS: z.number().int().min(100).max(120_000).default(10_000),
    /** Whole-request bound (headers + body), ms; default 30000. */
    REQUEST_TIMEOUT_MS: z.number().int().min(1000).max(600_000).default(30_000),
    /** Open connections allowed per source address; default 256. */
    MAX_CONNECTIONS_PER_SOURCE: z.number().int().min(1).max(100_000).default(256),
    /**
     * Wrong auth codes allowed per org and address per 15 minutes (and 5× that per address over
     * all orgs); default 10. Only failures count: a right code or no code costs nothing here.
     */
    REGISTRATION_FAILURES_PER_15_MIN: z.number().int().min(1).default(10),
    /**
     * Length of the wrong-code lockout window, seconds; default 900 (the 15 minutes above). Shorter
     * only for tests and drills: the allowance above is counted over this window.
     */
    REGISTRATION_FAILURE_WINDOW_SECONDS: z.number().int().min(1).max(86_400).default(900),
    /**
     * Registration attempts allowed per address per 15 minutes, every attempt counted (successes,
     * pending clients, re-sends of the same CSR and refusals alike); default 300. Separate from and
     * more generous than the wrong-code lockout above; a fleet registering behind one NAT may need more.
     */
    REGISTRATIONS_PER_15_MIN: z.number().int().min(1).max(1_000_000).default(300),
    /**
     * Addresses or CIDR blocks of reverse proxies / load balancers in front of this node, e.g.
     * `["10.0.0.0/8", "::1"]`. When a request comes from one of them, registration limits are
     * charged to the client address they report in CLIENT_ADDRESS_HEADER (the rightmost address
     * that is not a trusted proxy); otherwise to the socket's address. A string is split on commas
     * and spaces. Default: none (the header is ignored).
     */
    TRUSTED_PROXIES: z
      .union([z.array(z.string()), z.string().transform((v) => v.split(/[\s,]+/).filter(Boolean))])
      .superRefine((v, ctx) => {
        try {
          parseTrustedProxies(v);
        } catch (e) {
          ctx.addIssue({ code: 'custom', message: (e as Error).message });
        }
      })
      .default([]),
    /** Header trusted proxies put the client address in (comma-separated list); default `X-Forwarded-For`. */
    CLIENT_ADDRESS_HEADER: z
      .string()
      .regex(/^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/, 'an HTTP header name such as X-Forwarded-For')
      .default('X-Forwarded-For'),
    /** Worker threads signing client certificates (RSA, off the event loop); default min(2, cores). */
    SIGNING_THREADS: z.number().int().min(1).max(64).optional(),
    /** Certificate signatures allowed to wait for a thread; beyond, registrations answer UNAVAILABLE (503, Retry-After). Default 128. */
    SIGNING_QUEUE_MAX: z.number().int().min(1).max(100_000).default(128),
    /**
     * Where the active sends contact mail and pending-client notices (nodemailer URL, e.g.
     * `smtp://127.0.0.1:25`, `smtps://user:pass@mail:465`). Unset or empty: no mail is sent; it
     * stays queued in the database (mail_outbox) and goes out once this is set.
     */
    SMTP_URL: z.string().optional(),
    /** Sender address of that mail; default `keytrustee@<HOST>`. */
    SMTP_FROM: z.string().optional(),
    /**
     * Pending-client notices to one contact of one org are merged into at most one mail per this
     * many seconds (a flood of registrations without the code is not a flood of mail); default 60.
     */
    MAIL_PENDING_NOTICE_INTERVAL_SECONDS: z.number().int().min(1).max(86_400).default(60),
    /**
     * Most WAL a replication slot may keep for an absent passive, PostgreSQL size syntax (e.g.
     * `4GB`); beyond it the slot is invalidated and the passive must be rebuilt with --replace.
     * Default: 4GB (written into postgresql.conf at bootstrap); set here to override per node.
     */
    MAX_SLOT_WAL_KEEP_SIZE: z
      .string()
      .regex(/^\d+(kB|MB|GB|TB)$/, 'a size such as 512MB or 4GB')
      .optional(),
    /**
     * Change journal directory (absolute; may be off-box, e.g. a mount): while this node is the
     * active, every committed change of orgs, clients and deposits is appended there, encrypted
     * with a key derived from the master key, for `ktadmin restore --from BACKUP --journal DIR`.
     * Default: unset (no journal).
     */
    JOURNAL_DIR: z.string().startsWith('/', 'an absolute path').optional(),
    /**
     * Key HSM over PKCS#11 (set by `ktadmin keyhsm --pkcs11-module LIB --token-label LABEL
     * --pin-file FILE`): the module library path, the token label and the 0600 file holding the
     * user PIN (relative paths are resolved in the confdir). All three or none; unset = the
     * master key file seals rows (the default).
     */
    HSM_PKCS11_MODULE: z.string().startsWith('/', 'an absolute path').optional(),
    HSM_TOKEN_LABEL: z.string().min(1).max(32).optional(),
    HSM_PIN_FILE: z.string().min(1).optional(),
    /**
     * The seed's Key HSM service instead (set by `ktadmin keyhsm --server https://H:9090
     * --client-certfile F --client-keyfile F --trust`): its URL, this node's TLS client
     * certificate and key, and (with --passphrase) a 0600 file holding the key's passphrase. The
     * service's certificate is pinned in `.ssl/ssl-cert-keyhsm.pem`. Exclusive with HSM_PKCS11_*.
     */
    HSM_SERVER: z.string().url().startsWith('https://', 'an https:// URL').optional(),
    HSM_CLIENT_CERTFILE: z.string().min(1).optional(),
    HSM_CLIENT_KEYFILE: z.string().min(1).optional(),
    HSM_CLIENT_KEY_PASSPHRASE_FILE: z.string().min(1).optional(),
    /** Unwrapped HSM data keys kept in memory (least recently used out); default 1024. */
    HSM_DATA_KEY_CACHE_SIZE: z.number().int().min(1).max(1_000_000).default(1024),
    /** Seconds a deposit data key seals new rows before the active makes a new one; default 86400 (1 day). */
    HSM_DATA_KEY_MAX_AGE_SECONDS: z.number().int().min(1).default(86_400),
    /** Redis for shared rate limits (optional; in-memory otherwise). */
    REDIS_URL: z.string().optional(),
    /**
     * Prefix of this cluster's rate-limit keys in Redis (both nodes must use the same one); lets
     * several clusters share one Redis. Default `trustee:`.
     */
    REDIS_KEY_PREFIX: z
      .string()
      .regex(/^[A-Za-z0-9:_.-]{1,64}$/, 'letters, digits and : _ . - (at most 64)')
      .default('trustee:'),
    /**
     * Scheduled backups (graphile-worker, on the active only): crontab time spec, five fields
     * `minute hour day-of-month month day-of-week`, in UTC; default hourly `0 * * * *`.
     */
    BACKUP_SCHEDULE: z
      .string()
      .regex(/^\s*[0-9*/,-]+(\s+[0-9*/,-]+){4}\s*$/, 'a crontab time spec such as "0 * * * *"')
      .default('0 * * * *'),
    /** Scheduled backups of this host kept in BACKUP_DIR after each run (ktbackup --roll); default 10. */
    BACKUP_KEEP: z.number().int().min(1).max(9999).default(10),
    /** Absolute directory for scheduled backups; default `<confdir parent>/backups`. Not inside the confdir. */
    BACKUP_DIR: z.string().startsWith('/', 'an absolute path').optional(),
    /**
     * Recipient of scheduled backups: name, e-mail or fingerprint in the service account's GnuPG
     * keyring, or an armored public key file. Scheduled backups are OFF while unset (never cleartext).
     */
    BACKUP_GPG_RECIPIENT: z.string().min(1).optional(),
    /** GnuPG home holding BACKUP_GPG_RECIPIENT (optional; default GNUPGHOME or ~/.gnupg). */
    BACKUP_GNUPGHOME: z.string().startsWith('/', 'an absolute path').optional(),
  })
  .passthrough();

export type KeytrusteeConf = z.infer<typeof keytrusteeConfSchema>;

export class ConfigError extends Error {
  override name = 'ConfigError';
}

/**
 * Reads a JSON configuration file; `fail` makes the error for "could not read FILE: why" (`hint`
 * says what to run when the file is missing). JSON.parse quotes the text around a syntax error,
 * which may be part of a secret (an unquoted password script or URL): say where, never what.
 */
export function readJsonConfFile(file: string, hint: string, fail: (message: string) => Error): unknown {
  try {
    return JSON.parse(readFileSync(file, 'utf8'));
  } catch (e) {
    const why =
      (e as NodeJS.ErrnoException).code === 'ENOENT'
        ? `not found (${hint})`
        : e instanceof SyntaxError
          ? `not valid JSON (the parser's message is left out: it quotes the file, which may hold a secret; \`python3 -m json.tool ${file}\` shows where)`
          : (e as Error).message;
    throw fail(`could not read ${file}: ${why}`);
  }
}

/** Reads and validates DIR/keytrustee.conf; errors name the file and the key. */
export function loadKeytrusteeConf(confdir: string, env: NodeJS.ProcessEnv = process.env): KeytrusteeConf {
  const file = join(confdir, CONF_FILE);
  let raw = readJsonConfFile(file, 'run `ktadmin init` first', (m) => new ConfigError(m));
  // Environment overrides (one product prefix): a shared Redis can be named per deployment.
  if (env[ENV.REDIS_URL] && typeof raw === 'object' && raw !== null) {
    raw = { ...(raw as Record<string, unknown>), REDIS_URL: env[ENV.REDIS_URL] };
  }
  const parsed = keytrusteeConfSchema.safeParse(raw);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new ConfigError(`invalid ${file}: ${issue.path.join('.') || '(root)'}: ${issue.message}`);
  }
  return parsed.data;
}

/** Resolves a confdir-relative path from keytrustee.conf. */
export function resolveConfPath(confdir: string, p: string): string {
  return p.startsWith('/') ? p : join(confdir, p);
}

export { confPaths };
