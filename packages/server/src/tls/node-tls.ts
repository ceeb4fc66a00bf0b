import type { Server } from 'node:tls';
import type { SecureVersion } from 'node:tls';
import type { Logger } from '../logger';
import type { Metrics } from '../metrics';
import { probeOfferedProtocols } from './offered-protocols';
import {
  certificateExpirySeconds,
  certificateValidityProblem,
  chainProblem,
  loadServerTls,
  type ServerTls,
  type TlsSettings,
} from './server-tls';
import { TlsConfigError } from './tls-config-error';
import { isOlderTlsVersion } from './tls-version';

export interface NodeTls extends ServerTls {
  /** Protocol versions a handshake succeeded with, oldest first. */
  protocols: SecureVersion[];
}

interface TlsSource {
  confdir: string;
  /** CA of client certificates (the cluster identity certificate). */
  clientCaPem: string;
}

/** Loads the TLS files and finds which protocols they really offer; refuses a set that offers none. */
export async function prepareNodeTls(src: TlsSource & { settings: TlsSettings }): Promise<NodeTls> {
  const tls = await loadServerTls(src);
  const protocols = await probeOfferedProtocols(tls.options);
  if (protocols.length === 0)
    throw new TlsConfigError(
      `no TLS protocol can be negotiated with TLS_MIN_VERSION ${tls.minVersion} and ${
        tls.isDefaultCiphers ? 'the default ciphers' : `TLS_CIPHERS ${tls.ciphers}`
      } for this certificate's key`,
    );
  return { ...tls, protocols };
}

/** Fields of a log line describing the TLS in use (no secrets: paths, names, dates, protocols). */
function describe(tls: NodeTls) {
  return {
    certificate: tls.files.certificate,
    subject: tls.certificate.subject.replace(/\n/g, ', '),
    issuer: tls.certificate.issuer.replace(/\n/g, ', '),
    notAfter: new Date(tls.certificate.validTo).toISOString(),
    fingerprint256: tls.certificate.fingerprint256,
    chain: tls.chain.length,
    caFile: tls.files.ca ?? null,
    minVersion: tls.minVersion,
    protocols: tls.protocols,
    ciphers: tls.isDefaultCiphers ? 'default (ECDHE with AES-GCM or ChaCha20-Poly1305)' : tls.ciphers,
  };
}

/** One info line for what is served, then a warning per thing an operator should look at. */
export function logNodeTls(log: Logger, tls: NodeTls, msg: string, now = new Date()): void {
  log.info(describe(tls), msg);
  if (isOlderTlsVersion(tls.minVersion, tls.protocols[0]))
    log.warn(
      { minVersion: tls.minVersion, protocols: tls.protocols },
      'TLS_MIN_VERSION allows older protocols than OpenSSL negotiates with these settings; only the listed protocols are offered (TLS 1.0/1.1 need CBC ciphers and @SECLEVEL=0 in TLS_CIPHERS)',
    );
  if (tls.protocols.some((v) => isOlderTlsVersion(v, 'TLSv1.2')))
    log.warn({ protocols: tls.protocols }, 'deprecated TLS 1.0/1.1 offered (RFC 8996)');
  const validity = certificateValidityProblem(tls.certificate, now);
  if (validity)
    log.warn({ certificate: tls.files.certificate, problem: validity }, 'TLS certificate not valid');
  const chain = chainProblem(tls.chain);
  if (chain) log.warn({ certificate: tls.files.certificate, problem: chain }, 'TLS chain incomplete');
}

export interface TlsReloadResult {
  ok: boolean;
  /** Why the new files were not taken (ok false). */
  reason?: string;
}

export interface TlsReloader {
  /** Re-reads keytrustee.conf's TLS keys and files; serves them to new connections if they are usable. */
  reload(): Promise<TlsReloadResult>;
  current(): NodeTls;
}

/**
 * SIGHUP: new connections get the new certificate through `server.setSecureContext`; open
 * connections keep the context they were made with, so nothing is dropped. A certificate that
 * cannot be used (unreadable, key mismatch, wrong passphrase, expired, no protocol left) is not
 * taken: the old one stays and the log says why. Reloads run one at a time.
 */
export function createTlsReloader(
  args: TlsSource & {
    server: Server;
    initial: NodeTls;
    /** keytrustee.conf as it is now (throws when it no longer parses). */
    readSettings: () => TlsSettings;
    log: Logger;
    metrics: Pick<Metrics, 'tlsCertificateExpiry' | 'tlsReloads'>;
    now?: () => Date;
  },
): TlsReloader {
  let current = args.initial;
  let queue: Promise<unknown> = Promise.resolve();
  const now = args.now ?? (() => new Date());

  async function reloadOnce(): Promise<TlsReloadResult> {
    try {
      const next = await prepareNodeTls({ ...args, settings: args.readSettings() });
      const invalid = certificateValidityProblem(next.certificate, now());
      if (invalid) throw new TlsConfigError(invalid);
      args.server.setSecureContext(next.options);
      current = next;
      args.metrics.tlsCertificateExpiry.set(certificateExpirySeconds(next.certificate));
      args.metrics.tlsReloads.inc({ result: 'ok' });
      logNodeTls(args.log, next, 'TLS certificate reloaded', now());
      return { ok: true };
    } catch (e) {
      const reason = (e as Error).message;
      args.metrics.tlsReloads.inc({ result: 'failed' });
      args.log.error(
        {
          reason,
          certificate: current.files.certificate,
          fingerprint256: current.certificate.fingerprint256,
        },
        'TLS reload failed; still serving the previous certificate',
      );
      return { ok: false, reason };
    }
  }

  return {
    reload() {
      const run = queue.then(reloadOnce);
      queue = run;
      return run;
    },
    current: () => current,
  };
}
