import { setTimeout as sleep } from 'node:timers/promises';
import { withClient } from '../db/pool';
import {
  countClientsOfOrg,
  countPendingClients,
  insertClient,
  selectClient,
  type ClientState,
} from '../db/sql/clients';
import { quotaExceeded as quotaRefusal } from '../deposits/quotas';
import { selectOrg } from '../db/sql/orgs';
import { appendAudit } from '../audit/append-audit';
import { runWrite, runWriteBarrier } from '../db/write-path';
import { AppError, toAppError } from '../errors';
import { CsrError, issueClientCert, parseCsr, type TbsSigner } from '../crypto/certificates';
import { keyFingerprint } from '../crypto/fingerprint';
import type { DecoyRegistrations } from './decoy-registration';
import { insertPendingNotices } from '../mail/mail-outbox';
import { authCodesMatch, openAuthSecret, type OrgServices } from './orgs';

export interface Identity {
  keyPem: string;
  certPem: string;
  fingerprint: string;
}

export interface RegisterRequest {
  org: string;
  authCode?: string;
  csr: string;
  name?: string;
}

export interface RegisterResult {
  fingerprint: string;
  state: ClientState;
  certificate: string;
  caCertificate: string;
}

/** What registerClient decided; `decoy` (for logs only, never sent): the org does not exist. */
export type RegisterOutcome = RegisterResult & { decoy?: true };

export class AuthCodeRejected extends AppError {}

export interface RegistrationServices extends OrgServices {
  /** Signs client certificates with the cluster CA key (the worker pool: off the event loop). */
  signTbs: TbsSigner;
  /** Answers for organizations that do not exist. */
  decoys: DecoyRegistrations;
  /** Clients allowed in an org with an empty auth code (QUOTA_MAX_CLIENTS_AUTO_APPROVED_ORG); unset = no cap. */
  maxClientsAutoApproved?: number;
}

/**
 * Approval modes: right code → active; org with a blank code → active (auto-approval); no code
 * for an org that has one → pending until `enable-client`; wrong code → INVALID_AUTH_CODE.
 * An unknown org answers exactly like a known one, so org names cannot be probed: with a code,
 * INVALID_AUTH_CODE; without one, 200 `pending` with a signed certificate (a decoy, stored
 * nowhere; decoy-registration.ts).
 */
export async function registerClient(
  svc: RegistrationServices,
  identity: Identity,
  req: RegisterRequest,
  /** The client's address as the server saw it (audit row). */
  source: string | null = null,
): Promise<RegisterOutcome> {
  let publicKeyPem: string;
  try {
    publicKeyPem = parseCsr(req.csr).publicKeyPem;
  } catch (e) {
    if (e instanceof CsrError) throw new AppError('INVALID_REQUEST', e.message);
    throw e;
  }
  const fingerprint = keyFingerprint(publicKeyPem);
  const org = await withClient(svc.write.db.pool, (c) => selectOrg(c, req.org)).catch((e: unknown) => {
    throw toAppError(e);
  });
  const rejected = () =>
    new AuthCodeRejected('INVALID_AUTH_CODE', 'the organization or its authorization code is not valid');
  const started = performance.now();
  if (!org) {
    if (req.authCode !== undefined && req.authCode !== '') throw rejected();
    return answerDecoy(svc, identity, req.org, publicKeyPem, fingerprint, started);
  }
  const secret = await openAuthSecret(svc.keys, org);
  let state: ClientState;
  if (secret === '') state = 'active';
  else if (req.authCode === undefined || req.authCode === '') state = 'pending';
  else if (authCodesMatch(req.authCode, secret)) state = 'active';
  else throw rejected();

  const existing = await withClient(svc.write.db.pool, (c) => selectClient(c, fingerprint)).catch(
    (e: unknown) => {
      throw toAppError(e);
    },
  );
  if (existing) {
    if (existing.org_name !== org.name) throw takenKey();
    // Re-registering the same key never upgrades a disabled client or skips approval. The first
    // registration may have ended WRITE_IN_DOUBT: confirm the passive has it before answering.
    await runWriteBarrier(svc.write);
    return {
      fingerprint,
      state: existing.state,
      certificate: existing.certificate,
      caCertificate: identity.certPem,
    };
  }
  // A key this node answered a decoy for (another, unknown org) is "registered elsewhere", as it
  // would be had that org existed.
  const decoy = svc.decoys.remembered(fingerprint);
  if (decoy && decoy.org !== org.name) throw takenKey();
  // Anonymous registrations without the code cannot pile up: a cap per org, checked before the
  // (costly) signature and again under a per-org lock inside the write.
  const cap = svc.maxPendingPerOrg;
  const quotaExceeded = () =>
    new AppError(
      // A limit on anonymous registrations (QUOTA_EXCEEDED is for a client's own storage, issue 16).
      'RATE_LIMITED',
      `this organization has ${cap} clients awaiting approval already; an administrator must enable or disable some first`,
      { retryAfterSec: 60 },
    );
  // An org with an empty code approves anyone who knows its name: its size is capped (issue 16),
  // checked here before the signature and again under a per-org lock inside the write.
  const autoCap = secret === '' ? svc.maxClientsAutoApproved : undefined;
  const autoCapExceeded = () =>
    quotaRefusal(
      'clients',
      autoCap!,
      'this organization approves registrations without an auth code and has reached its client limit; an administrator can set an auth code (keytrustee-orgtool set-auth) or raise the limit',
    );
  if (autoCap !== undefined) {
    const members = await withClient(svc.write.db.pool, (c) => countClientsOfOrg(c, org.id)).catch(
      (e: unknown) => {
        throw toAppError(e);
      },
    );
    if (members >= autoCap) throw autoCapExceeded();
  }
  if (state === 'pending' && cap !== undefined) {
    const waiting = await withClient(svc.write.db.pool, (c) => countPendingClients(c, org.id)).catch(
      (e: unknown) => {
        throw toAppError(e);
      },
    );
    if (waiting >= cap) throw quotaExceeded();
  }
  const certificate = await issueClientCert(
    { publicKeyPem, fingerprint, org: org.name, caCertPem: identity.certPem },
    svc.signTbs,
  );
  const stored = await runWrite(svc.write, async (c, tx) => {
    // Registrations of one key take turns (bounded by the write's lock_timeout): a second one
    // waits for the first to commit and then finds its row, instead of failing on the key.
    await c.query('select pg_advisory_xact_lock(hashtextextended($1::text, 0))', [`client/${fingerprint}`]);
    const raced = await selectClient(c, fingerprint);
    if (raced) {
      // A concurrent registration of the same key won. Into another organization: the key is
      // taken, as if it had come first. Into this one: answer with what is stored (this
      // transaction writes nothing), once the passive has it (below, without holding a connection).
      if (raced.org_name !== org.name) throw takenKey();
      return { state: raced.state, certificate: raced.certificate, raced: true };
    }
    if (state === 'pending' && cap !== undefined) {
      await c.query('select pg_advisory_xact_lock(hashtextextended($1::text, 0))', [`pending/${org.id}`]);
      if ((await countPendingClients(c, org.id)) >= cap) throw quotaExceeded();
    }
    if (autoCap !== undefined) {
      await c.query('select pg_advisory_xact_lock(hashtextextended($1::text, 0))', [`auto/${org.id}`]);
      if ((await countClientsOfOrg(c, org.id)) >= autoCap) throw autoCapExceeded();
    }
    await insertClient(c, { fingerprint, orgId: org.id, name: req.name ?? null, state, certificate });
    await appendAudit(c, tx, {
      who: { kind: 'client', name: fingerprint, source },
      action: 'client.register',
      org: org.name,
      subject: fingerprint,
      detail: state,
    });
    if (state === 'pending') {
      await insertPendingNotices(c, svc.keys, org, {
        fingerprint,
        name: req.name ?? null,
        registeredAt: new Date().toISOString(),
      });
    }
    return { state, certificate, raced: false };
  });
  if (stored.raced) await runWriteBarrier(svc.write);
  if (state === 'pending') svc.decoys.observePending(performance.now() - started);
  return {
    fingerprint,
    state: stored.state,
    certificate: stored.certificate,
    caCertificate: identity.certPem,
  };
}

/**
 * What a known org without the code would answer, for an org that does not exist: the same
 * checks on the key, a certificate signed the same way (remembered for re-sends), about the same
 * time; nothing stored.
 */
async function answerDecoy(
  svc: RegistrationServices,
  identity: Identity,
  org: string,
  publicKeyPem: string,
  fingerprint: string,
  started: number,
): Promise<RegisterOutcome> {
  const existing = await withClient(svc.write.db.pool, (c) => selectClient(c, fingerprint)).catch(
    (e: unknown) => {
      throw toAppError(e);
    },
  );
  const remembered = svc.decoys.remembered(fingerprint);
  // Stored in a real org, or handed out as a decoy for another unknown one: "registered elsewhere".
  if (existing || (remembered && remembered.org !== org)) throw takenKey();
  let certificate = remembered?.certificate;
  if (!certificate) {
    certificate = await issueClientCert(
      {
        publicKeyPem,
        fingerprint,
        org,
        caCertPem: identity.certPem,
        serialHex: svc.decoys.serialFor(fingerprint),
      },
      svc.signTbs,
    );
    svc.decoys.remember(fingerprint, { org, certificate });
  }
  const wait = svc.decoys.remainingMs(performance.now() - started);
  if (wait > 0) await sleep(wait);
  return { fingerprint, state: 'pending', certificate, caCertificate: identity.certPem, decoy: true };
}

function takenKey(): AppError {
  return new AppError('INVALID_REQUEST', 'this key is already registered in another organization');
}
