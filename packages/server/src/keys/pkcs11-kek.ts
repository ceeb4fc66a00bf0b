import { randomBytes } from 'node:crypto';
import type * as graphene from 'graphene-pk11';
import type { HsmObserver, HsmOp, KekBackend } from './kek-backend';
import { HsmUnavailableError, KeyUnavailableError } from './key-hierarchy';

const IV_BYTES = 12;
/** Least time between two attempts to reopen a session on a token that failed, ms. */
export const REOPEN_INTERVAL_MS = 1000;
const TAG_BITS = 128;

export interface Pkcs11Options {
  /** Path of the PKCS#11 library, e.g. /usr/lib/softhsm/libsofthsm2.so. */
  module: string;
  tokenLabel: string;
  /** The user PIN (read from a 0600 file by the caller; never logged). */
  pin: string;
  observer?: HsmObserver;
}

/** Why a PKCS#11 setup or call failed, for the operator: startup and `ktadmin keyhsm` print it. */
export class Pkcs11SetupError extends Error {
  override name = 'Pkcs11SetupError';
}

/** The CKR_* name of a pkcs11js error (its message starts with it), or a coarse class. */
export function pkcs11Reason(e: unknown): string {
  if (e instanceof HsmUnavailableError) return e.reason;
  const m = /CKR_[A-Z_]+/.exec((e as Error)?.message ?? '');
  return m ? m[0] : 'PKCS11_ERROR';
}

/** Decrypt answers that mean "this blob does not open under this key", not "the HSM is down". */
const INTEGRITY_REASONS = new Set(['CKR_ENCRYPTED_DATA_INVALID', 'CKR_ENCRYPTED_DATA_LEN_RANGE']);

type Graphene = typeof graphene;
let binding: Graphene | undefined;

/**
 * graphene-pk11 (and its native addon pkcs11js) loads only when an HSM is configured: a node
 * without one runs even where the addon was not built (e.g. `npm install -g` without
 * --allow-scripts).
 */
function loadBinding(): Graphene {
  if (binding) return binding;
  try {
    binding = require('graphene-pk11') as Graphene;
    return binding;
  } catch (e) {
    throw new Pkcs11SetupError(
      `the PKCS#11 binding (graphene-pk11 / pkcs11js native addon) cannot be loaded: ${(e as Error).message}; build it with \`npm rebuild pkcs11js\` (needs python3, make, g++)`,
    );
  }
}

/**
 * One loaded module per library path in this process: C_Initialize may run only once, and
 * C_Finalize would end every other user's sessions, so both are reference counted.
 */
const loadedModules = new Map<string, { mod: graphene.Module; refs: number }>();

function acquireModule(path: string): graphene.Module {
  const held = loadedModules.get(path);
  if (held) {
    held.refs++;
    return held.mod;
  }
  const mod = loadBinding().Module.load(path, 'trustee-hsm');
  try {
    mod.initialize();
  } catch (e) {
    if (pkcs11Reason(e) !== 'CKR_CRYPTOKI_ALREADY_INITIALIZED') throw e;
  }
  loadedModules.set(path, { mod, refs: 1 });
  return mod;
}

function releaseModule(path: string): void {
  const held = loadedModules.get(path);
  if (!held || --held.refs > 0) return;
  loadedModules.delete(path);
  try {
    held.mod.finalize();
  } catch {
    // already finalized
  }
}

/**
 * Finalizes and initializes a shared module again: SoftHSM2 answers CKR_GENERAL_ERROR to every
 * new session after its token files vanished and came back, until the library is re-initialized.
 * Other users of the module lose their sessions and reopen them on their next call.
 */
function reinitializeModule(path: string): void {
  const held = loadedModules.get(path);
  if (!held) return;
  try {
    held.mod.finalize();
  } catch {
    // not initialized
  }
  held.mod.initialize();
}

function findSlot(mod: graphene.Module, tokenLabel: string): graphene.Slot | undefined {
  const slots = mod.getSlots(true);
  for (let i = 0; i < slots.length; i++) {
    const slot = slots.items(i);
    if (slot.getToken().label.trim() === tokenLabel) return slot;
  }
  return undefined;
}

/**
 * KEKs as AES-256 secret keys on a PKCS#11 token (sensitive, never extractable); data keys are
 * wrapped with AES-GCM by C_Encrypt on the token. One session, opened at start (a missing token or
 * a wrong PIN is a startup error) and reopened after a failure: a token that comes back is used
 * again without a restart. The calls are synchronous (graphene-pk11): SoftHSM2 answers one in
 * ~0.07 ms; unwrapped data keys are cached by the caller, so a read rarely reaches the token.
 */
export function openPkcs11Kek(opts: Pkcs11Options): KekBackend {
  const description = `PKCS#11 token "${opts.tokenLabel}" (${opts.module})`;
  const g = loadBinding();
  const observe = opts.observer ?? (() => undefined);
  let mod: graphene.Module;
  try {
    mod = acquireModule(opts.module);
  } catch (e) {
    throw new Pkcs11SetupError(`cannot load the PKCS#11 module ${opts.module}: ${(e as Error).message}`);
  }
  let session: graphene.Session | undefined;
  const keys = new Map<string, graphene.SecretKey>();

  function timed<T>(op: HsmOp, fn: () => T): T {
    const started = process.hrtime.bigint();
    try {
      const r = fn();
      observe(op, Number(process.hrtime.bigint() - started) / 1e9);
      return r;
    } catch (e) {
      observe(op, Number(process.hrtime.bigint() - started) / 1e9, pkcs11Reason(e));
      throw e;
    }
  }

  function openSession(): graphene.Session {
    if (session) return session;
    // While the token is away, one attempt per REOPEN_INTERVAL_MS: the calls in between fail at
    // once with the last reason instead of each blocking on a library re-initialization.
    if (lastFailure && Date.now() - lastFailure.at < REOPEN_INTERVAL_MS) {
      throw new HsmUnavailableError(
        lastFailure.reason,
        `${description} is unavailable (${lastFailure.reason}); retrying at most every ${REOPEN_INTERVAL_MS} ms`,
      );
    }
    try {
      try {
        return openSessionOnce();
      } catch (e) {
        if (e instanceof Pkcs11SetupError || !needsReinit) throw e;
        // After a failure: the library itself may need a fresh start (see reinitializeModule).
        reinitializeModule(opts.module);
        needsReinit = false;
        return openSessionOnce();
      }
    } catch (e) {
      if (!(e instanceof Pkcs11SetupError)) lastFailure = { at: Date.now(), reason: pkcs11Reason(e) };
      throw e;
    } finally {
      if (session) lastFailure = undefined;
    }
  }

  function openSessionOnce(): graphene.Session {
    return timed('open', () => {
      const slot = findSlot(mod, opts.tokenLabel);
      if (!slot) {
        throw new HsmUnavailableError(
          'TOKEN_NOT_PRESENT',
          `no token labelled "${opts.tokenLabel}" in ${opts.module} (is the token initialised and present?)`,
        );
      }
      const s = slot.open(g.SessionFlag.SERIAL_SESSION | g.SessionFlag.RW_SESSION);
      try {
        s.login(opts.pin, g.UserType.USER);
      } catch (e) {
        const reason = pkcs11Reason(e);
        // Another session of this process may hold the login already (a reopen after a failure).
        if (reason !== 'CKR_USER_ALREADY_LOGGED_IN') {
          s.close();
          throw reason === 'CKR_PIN_INCORRECT' || reason === 'CKR_PIN_LEN_RANGE'
            ? new Pkcs11SetupError(`the PIN for token "${opts.tokenLabel}" was refused (${reason})`)
            : new HsmUnavailableError(reason, `login to token "${opts.tokenLabel}" failed (${reason})`);
        }
      }
      session = s;
      return s;
    });
  }

  /** Set by a failure: the next open may re-initialize the module once. */
  let needsReinit = false;
  /** The last failed attempt to open a session (see openSession). */
  let lastFailure: { at: number; reason: string } | undefined;

  /** Drops the session after a failure, so the next call starts afresh. */
  function reset(): void {
    needsReinit = true;
    keys.clear();
    const s = session;
    session = undefined;
    try {
      s?.close();
    } catch {
      // already gone with the token
    }
  }

  function findKey(label: string): graphene.SecretKey | undefined {
    const cached = keys.get(label);
    if (cached) return cached;
    const s = openSession();
    const found = timed('find', () => s.find({ class: g.ObjectClass.SECRET_KEY, label }));
    if (found.length === 0) return undefined;
    const key = found.items(0).toType<graphene.SecretKey>();
    keys.set(label, key);
    return key;
  }

  /** Runs `fn` once; after a PKCS#11 failure once more on a fresh session, then reports unavailable. */
  function withSession<T>(what: string, fn: () => T): T {
    for (let attempt = 0; ; attempt++) {
      try {
        return fn();
      } catch (e) {
        if (e instanceof KeyUnavailableError) throw e;
        // A PIN refused on a reopen while running (changed under us): the HSM is unusable now.
        if (e instanceof Pkcs11SetupError)
          throw new HsmUnavailableError('LOGIN_REFUSED', e.message, { cause: e });
        reset();
        if (attempt >= 1 || e instanceof HsmUnavailableError) {
          if (e instanceof HsmUnavailableError) throw e;
          const reason = pkcs11Reason(e);
          throw new HsmUnavailableError(reason, `${what} on ${description} failed (${reason})`, { cause: e });
        }
      }
    }
  }

  function requireKey(label: string): graphene.SecretKey {
    const key = findKey(label);
    // A KEK missing from the token is the token's problem (wrong token, removed), not the row's.
    if (!key) throw new HsmUnavailableError('KEK_NOT_FOUND', `the KEK "${label}" is not on ${description}`);
    return key;
  }

  // Fail at start on a missing token or a wrong PIN, with the reason.
  try {
    openSession();
  } catch (e) {
    releaseModule(opts.module);
    if (e instanceof Pkcs11SetupError) throw e;
    throw new Pkcs11SetupError((e as Error).message);
  }

  return {
    description,
    async ensureKek(label) {
      return withSession('generate', () => {
        if (findKey(label)) return 'exists';
        const s = openSession();
        const key = timed('generate', () =>
          s.generateKey(g.KeyGenMechanism.AES, {
            keyType: g.KeyType.AES,
            label,
            id: Buffer.from(label, 'utf8'),
            token: true,
            private: true,
            sensitive: true,
            extractable: false,
            encrypt: true,
            decrypt: true,
            valueLen: 32,
          }),
        );
        keys.set(label, key);
        return 'created';
      });
    },
    async hasKek(label) {
      return withSession('find', () => findKey(label) !== undefined);
    },
    async wrap(label, plaintext, aad) {
      return withSession('wrap', () => {
        const key = requireKey(label);
        const s = openSession();
        const iv = randomBytes(IV_BYTES);
        const ct = timed('wrap', () =>
          s
            .createCipher({ name: 'AES_GCM', params: new g.AesGcm240Params(iv, aad, TAG_BITS) }, key)
            .once(plaintext, Buffer.alloc(plaintext.length + 32)),
        );
        return Buffer.concat([iv, ct]);
      });
    },
    async unwrap(label, wrapped, aad) {
      return withSession('unwrap', () => {
        const key = requireKey(label);
        const s = openSession();
        const iv = wrapped.subarray(0, IV_BYTES);
        try {
          return timed('unwrap', () =>
            s
              .createDecipher({ name: 'AES_GCM', params: new g.AesGcm240Params(iv, aad, TAG_BITS) }, key)
              .once(wrapped.subarray(IV_BYTES), Buffer.alloc(wrapped.length)),
          );
        } catch (e) {
          if (INTEGRITY_REASONS.has(pkcs11Reason(e)))
            throw new KeyUnavailableError(`a data key did not unwrap under the KEK "${label}"`);
          throw e;
        }
      });
    },
    close() {
      reset();
      releaseModule(opts.module);
    },
  };
}
