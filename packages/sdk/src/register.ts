import { X509Certificate, createHash, createPublicKey, generateKeyPair } from 'node:crypto';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import tls from 'node:tls';
import { promisify } from 'node:util';
import forge from 'node-forge';
import { callWithRetry, type CallContext } from './call-with-retry';
import { readConfigFile, writeConfigFile, type ClientConfigFile } from './config-file';
import { generateDataKey, wrapDataKey } from './data-key';
import { DEFAULT_BREAKER, EndpointSet } from './endpoints';
import { TrusteeError, isTrusteeError } from './errors';
import { createEmitter } from './hooks';
import { isNodeActive, sendExpectOk } from './http';
import { DEFAULT_RETRY, SECOND } from './retry';
import type {
  ClientState,
  EncryptionMode,
  RegisterResponseWire,
  TrusteeClientOptions,
  TrusteeLogger,
} from './types';

const generateKeyPairAsync = promisify(generateKeyPair);

export interface RegisterOptions {
  /** Base URLs of both nodes (registration goes to the active one). */
  servers: string[];
  org: string;
  /** The organization's auth code; without it the client may end up pending. */
  authCode?: string;
  /** Human name of this client (CSR common name). Default `ktclient@<hostname>`. */
  name?: string;
  /** Where to write the config file (mode 0600). */
  configPath: string;
  /** PEM(s) trusted for the nodes' TLS certificates. */
  ca?: string | string[];
  /** Registers without verifying the servers' TLS certificates. Dangerous; see `pinOnFirstUse`. */
  skipSslCheck?: boolean;
  /**
   * With `skipSslCheck`: record the certificates the nodes presented at registration as the only
   * ones trusted from then on (trust on first use), so later calls are verified. Default true; if
   * a node cannot be reached to read its certificate, the config keeps `skipSslCheck` instead.
   */
  pinOnFirstUse?: boolean;
  /** RSA modulus size of the client key. Default 3072 (4096 takes seconds to generate). */
  keyBits?: 2048 | 3072 | 4096;
  /** Replace an existing config file. Default false: an existing file is an error. */
  overwrite?: boolean;
  /** Encryption mode recorded in the config. Default 'envelope'. */
  encryption?: EncryptionMode;
  /** Overall budget of the registration call, ms. Default 30000. */
  deadlineMs?: number;
  timeoutMs?: number;
  logger?: TrusteeLogger;
  /** Options for the returned client (hooks, timeouts...). */
  clientOptions?: Partial<TrusteeClientOptions>;
}

/** What registration wrote: the client itself is made by `registerClient` (client.ts). */
export interface RegisteredConfig {
  fingerprint: string;
  /** 'pending' until an administrator enables the client (keytrustee-orgtool enable-client). */
  state: ClientState;
  configPath: string;
  config: ClientConfigFile;
}

interface KeyPair {
  publicKey: string;
  privateKey: string;
}

/** `<bits>R/<SHA-1 of the DER SubjectPublicKeyInfo, upper hex>` (DESIGN.md client fingerprint rule). */
export function clientFingerprint(publicKeyPem: string): string {
  const key = createPublicKey(publicKeyPem);
  const bits = key.asymmetricKeyDetails?.modulusLength;
  if (key.asymmetricKeyType !== 'rsa' || bits === undefined) {
    throw new TrusteeError('INVALID_ARGUMENT', 'only RSA client keys are supported');
  }
  const der = key.export({ type: 'spki', format: 'der' });
  return `${bits}R/${createHash('sha1').update(der).digest('hex').toUpperCase()}`;
}

/** PEM PKCS#10 request signed with the new key; node-forge because Node has no CSR builder. */
export function createCsr(keys: KeyPair, commonName: string, org: string): string {
  const csr = forge.pki.createCertificationRequest();
  csr.publicKey = forge.pki.publicKeyFromPem(keys.publicKey);
  csr.setSubject([
    { name: 'commonName', value: commonName },
    { name: 'organizationName', value: org },
  ]);
  csr.sign(forge.pki.privateKeyFromPem(keys.privateKey), forge.md.sha256.create());
  return forge.pki.certificationRequestToPem(csr);
}

async function generateKeys(bits: number): Promise<KeyPair> {
  return generateKeyPairAsync('rsa', {
    modulusLength: bits,
    publicKeyEncoding: { type: 'spki', format: 'pem' },
    privateKeyEncoding: { type: 'pkcs8', format: 'pem' },
  });
}

/**
 * Registers a new client: key pair + CSR, `POST /v1/clients/register` on the active node, a fresh
 * data key wrapped with the new public key, and the config file written 0600.
 */
export async function registerConfig(options: RegisterOptions): Promise<RegisteredConfig> {
  if (!options.overwrite && fs.existsSync(options.configPath)) {
    throw new TrusteeError(
      'CONFIG_INVALID',
      `config file ${options.configPath} already exists; move it away or pass overwrite`,
    );
  }
  const keys = await generateKeys(options.keyBits ?? 3072);
  const csr = createCsr(keys, options.name ?? `ktclient@${os.hostname()}`, options.org);
  const endpoints = new EndpointSet(
    options.servers,
    { ca: options.ca, skipSslCheck: options.skipSslCheck },
    DEFAULT_BREAKER,
    createEmitter(undefined, options.logger),
  );
  let response: RegisterResponseWire;
  let clusterFingerprint: string | undefined;
  try {
    response = await postRegistration(endpoints, options, csr);
    clusterFingerprint = await readClusterFingerprint(endpoints, options.timeoutMs ?? 10 * SECOND);
  } finally {
    endpoints.close();
  }
  checkIssuedCertificate(response, keys.publicKey);
  const pinned =
    options.skipSslCheck === true && options.pinOnFirstUse !== false
      ? await pinServerCertificates(options.servers, options.timeoutMs ?? 10 * SECOND, options.logger)
      : undefined;
  const config: ClientConfigFile = {
    version: 1,
    endpoints: endpoints.nodes.map((n) => n.url),
    org: options.org,
    name: options.name,
    fingerprint: response.fingerprint,
    state: response.state,
    certificate: response.certificate,
    privateKey: keys.privateKey,
    caCertificate: response.caCertificate,
    clusterFingerprint,
    serverCa: pinned ?? (Array.isArray(options.ca) ? options.ca.join('\n') : options.ca),
    skipSslCheck: options.skipSslCheck === true && pinned === undefined ? true : undefined,
    encryption: options.encryption ?? 'envelope',
    dataKey: wrapDataKey(generateDataKey(), keys.publicKey),
  };
  writeConfigFile(options.configPath, config);
  options.logger?.info(
    { fingerprint: config.fingerprint, state: config.state, configPath: options.configPath },
    'trustee client registered',
  );
  return {
    fingerprint: config.fingerprint,
    state: config.state,
    configPath: options.configPath,
    config: readConfigFile(options.configPath),
  };
}

/** Registration has no Idempotency-Key: only retry failures where the server surely did nothing. */
function registrationRetryable(e: TrusteeError): boolean {
  if (e.code === 'NETWORK_ERROR') return e.details.sysCode === 'ECONNREFUSED';
  return ['NOT_ACTIVE', 'PASSIVE_UNAVAILABLE', 'RATE_LIMITED', 'CIRCUIT_OPEN', 'UNAVAILABLE'].includes(
    e.code,
  );
}

async function postRegistration(
  endpoints: EndpointSet,
  options: RegisterOptions,
  csr: string,
): Promise<RegisterResponseWire> {
  const ctx: CallContext = {
    endpoints,
    retry: DEFAULT_RETRY,
    timeoutMs: options.timeoutMs ?? 10 * SECOND,
    emit: createEmitter(undefined, options.logger),
    logger: options.logger,
    probeActive: (node, timeoutMs, signal) => isNodeActive(node.agent, node.url, timeoutMs, signal),
  };
  const body = JSON.stringify({ org: options.org, authCode: options.authCode, csr, name: options.name });
  return callWithRetry(ctx, {
    operation: 'register',
    kind: 'write',
    deadlineMs: options.deadlineMs ?? 30 * SECOND,
    canRetry: registrationRetryable,
    attempt: async ({ node, timeoutMs, signal }) => {
      const res = await sendExpectOk(node.agent, node.url, {
        method: 'POST',
        path: '/v1/clients/register',
        body,
        timeoutMs,
        signal,
      });
      return parseRegistration(res.body, node.url);
    },
  });
}

function parseRegistration(body: string, node: string): RegisterResponseWire {
  let o: Partial<RegisterResponseWire>;
  try {
    o = JSON.parse(body) as Partial<RegisterResponseWire>;
  } catch (e) {
    throw new TrusteeError('PROTOCOL_ERROR', `registration answer from ${node} is not JSON`, {
      node,
      cause: e,
    });
  }
  const { fingerprint, state, certificate, caCertificate } = o;
  if (
    typeof fingerprint !== 'string' ||
    typeof certificate !== 'string' ||
    typeof caCertificate !== 'string' ||
    (state !== 'active' && state !== 'pending')
  ) {
    throw new TrusteeError(
      'PROTOCOL_ERROR',
      `registration answer from ${node} lacks fingerprint/state/certificate/caCertificate`,
      { node },
    );
  }
  return { fingerprint, state, certificate, caCertificate };
}

/** The issued certificate must carry our key, and the server must agree on its fingerprint. */
function checkIssuedCertificate(response: RegisterResponseWire, publicKeyPem: string): void {
  const ours = clientFingerprint(publicKeyPem);
  let certified: string;
  try {
    certified = clientFingerprint(
      new X509Certificate(response.certificate).publicKey.export({ type: 'spki', format: 'pem' }).toString(),
    );
  } catch (e) {
    throw new TrusteeError('PROTOCOL_ERROR', 'the issued client certificate cannot be parsed', { cause: e });
  }
  if (certified !== ours || response.fingerprint !== ours) {
    throw new TrusteeError(
      'PROTOCOL_ERROR',
      `the server certified ${certified} / reported ${response.fingerprint}, but our key is ${ours}`,
    );
  }
}

/** Best effort: recorded in the config for operators; registration does not depend on it. */
async function readClusterFingerprint(
  endpoints: EndpointSet,
  timeoutMs: number,
): Promise<string | undefined> {
  const node = endpoints.active ?? endpoints.nodes[0];
  try {
    const res = await sendExpectOk(node.agent, node.url, {
      method: 'GET',
      path: '/?a=fingerprint',
      timeoutMs,
    });
    const text = res.body.trim();
    return /^\d+[RE]\/[0-9A-F]{40}$/.test(text) ? text : undefined;
  } catch (e) {
    if (isTrusteeError(e)) return undefined;
    throw e;
  }
}

/**
 * Trust on first use: the leaf certificate each node presents now (unverified), as PEM, to be
 * the only certificates trusted later. Undefined when any node cannot be read.
 */
async function pinServerCertificates(
  servers: string[],
  timeoutMs: number,
  logger: TrusteeLogger | undefined,
): Promise<string | undefined> {
  const pems = await Promise.all(servers.map((url) => readLeafCertificate(url, timeoutMs)));
  if (pems.some((p) => p === undefined)) {
    logger?.warn({ servers }, 'could not read every node certificate; the config keeps skipSslCheck');
    return undefined;
  }
  return pems.join('');
}

function readLeafCertificate(url: string, timeoutMs: number): Promise<string | undefined> {
  const u = new URL(url);
  return new Promise((resolve) => {
    const socket = tls.connect(
      {
        host: u.hostname.replace(/^\[|\]$/g, ''),
        port: Number(u.port || 443),
        servername: net.isIP(u.hostname.replace(/^\[|\]$/g, '')) ? undefined : u.hostname,
        rejectUnauthorized: false,
        timeout: timeoutMs,
      },
      () => {
        const raw = socket.getPeerCertificate().raw;
        socket.end();
        resolve(raw ? new X509Certificate(raw).toString() : undefined);
      },
    );
    socket.on('error', () => resolve(undefined));
    socket.on('timeout', () => {
      socket.destroy();
      resolve(undefined);
    });
  });
}
