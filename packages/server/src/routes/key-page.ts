import express, {
  Router,
  type ErrorRequestHandler,
  type Request,
  type RequestHandler,
  type Response,
} from 'express';
import type { ServerContext } from '../context';
import { runWrite } from '../db/write-path';
import { withClient } from '../db/pool';
import { AppError, toAppError, type ErrorCode } from '../errors';
import { clientAddress } from '../http/client-address';
import { ContactKeyRejected, readContactKey, type ContactKeyProblem } from '../orgs/contact-key';
import {
  isTokenShaped,
  selectContactToken,
  useContactToken,
  type ContactTokenRow,
  type ContactTokenStatus,
} from '../orgs/contact-tokens';
import { consumeOrThrow, everyMs } from '../rate-limit';
import { fromHttpError } from './error-handler';
import { renderForm, renderMessage, renderStored, sendPage } from './key-page-html';

/**
 * The contact key page, `GET /?q=TOKEN` and `POST /?q=TOKEN` (DESIGN.md; issue 15): the link of
 * the "KeyTrustee Contact Registration" mail, where an org contact uploads a GPG public key.
 *
 * Either node: the token is read from the local database (the passive has it too). A POST that
 * reaches the passive is checked there (token, key: a private key never leaves the first node),
 * then answered `307` to the same URL on the active, which the browser re-posts: the browser
 * talks TLS to the active itself. Forwarding server-side was the alternative, but node
 * certificates are self-signed per node and a passive cannot verify its peer's, so it would
 * hand the token to whoever answers at the peer's address.
 */

/** Largest form body: an armored key of up to 64 KiB, percent-encoded, rarely needs more. */
export const KEY_PAGE_BODY_LIMIT_BYTES = 64 * 1024;

/** Marks the redirect from the passive, so two nodes that both refuse cannot bounce a form forever. */
const VIA_PEER = 'peer';

const TOKEN_PAGES: Record<
  Exclude<ContactTokenStatus, 'valid'>,
  { status: number; title: string; text: string }
> = {
  unknown: {
    status: 404,
    title: 'This link is not valid',
    text: 'Check that you opened the whole link from the e-mail. If it still does not work, ask your Key Trustee administrator to send a new one.',
  },
  expired: {
    status: 410,
    title: 'This link has expired',
    text: 'Links are valid for 12 hours. Ask your Key Trustee administrator to send a new one.',
  },
  used: {
    status: 410,
    title: 'This link was already used',
    text: 'A key was already uploaded with this link, and a link works once. To upload another key, ask your Key Trustee administrator for a new link.',
  },
};

const EXPORT_HINT = 'gpg --export --armor you@example.com';

/** What the form says when a paste is refused; none of them repeats the pasted text. */
const KEY_PROBLEMS: Record<ContactKeyProblem, string> = {
  'private-key': `This is a PRIVATE key: never share it, with us or anyone. It was not stored. Paste your PUBLIC key instead: the output of ${EXPORT_HINT}, which begins with -----BEGIN PGP PUBLIC KEY BLOCK-----.`,
  'not-a-public-key': `This is not an ASCII-armored OpenPGP public key. Paste the whole output of ${EXPORT_HINT}, including the BEGIN and END lines.`,
  'several-keys': `This text holds several keys. Paste only your own public key (${EXPORT_HINT}).`,
  revoked: 'This key has been revoked. Paste a key that is still valid.',
  expired:
    'This key has expired. Extend it (gpg --quick-set-expire) or create a new key, then paste the public key again.',
  'no-encryption-key':
    'This key has no valid encryption key, so notices cannot be encrypted to it. Add one (gpg --quick-add-key FINGERPRINT default encr), then export and paste the key again.',
  'too-large':
    'This key is too large. Export it without photos and old signatures (gpg --export --armor --export-options export-minimal you@example.com) and paste it again.',
};

/** Titles and texts of the error pages, by stable code. */
const ERROR_PAGES: Partial<Record<ErrorCode, { title: string; text: string }>> = {
  NOT_FOUND: TOKEN_PAGES.unknown,
  TOO_LARGE: {
    title: 'The key is too large',
    text: `This page accepts up to ${KEY_PAGE_BODY_LIMIT_BYTES / 1024} KiB. ${KEY_PROBLEMS['too-large']}`,
  },
  UNSUPPORTED_MEDIA_TYPE: {
    title: 'The form could not be read',
    text: 'Send the form of this page (application/x-www-form-urlencoded).',
  },
  INVALID_REQUEST: { title: 'The form could not be read', text: 'Send the form of this page again.' },
  METHOD_NOT_ALLOWED: {
    title: 'Not supported',
    text: 'Open the link from the e-mail (GET) and send its form (POST).',
  },
  RATE_LIMITED: {
    title: 'Too many attempts',
    text: 'Too many invalid links were opened from your address. Wait a few minutes and open the link again.',
  },
  WRITE_IN_DOUBT: {
    title: 'Your key may not have been stored',
    text: 'Key Trustee could not confirm the upload on both of its servers. Open the link again: if it says the link was already used, your key was stored; otherwise upload it again.',
  },
};

const UNAVAILABLE_PAGE = {
  title: 'Key Trustee cannot store keys right now',
  text: 'Nothing was stored. Try again in a minute with the same link.',
};

/** One log line per 10 s about a failing rate-limit store, not one per request. */
const storeError = everyMs(10_000);

interface FoundToken {
  token: string;
  row: ContactTokenRow;
}

export function keyPageRouter(ctx: ServerContext): Router {
  const r = Router();
  const parseForm = express.urlencoded({
    extended: false,
    limit: KEY_PAGE_BODY_LIMIT_BYTES,
    parameterLimit: 8,
    type: 'application/x-www-form-urlencoded',
  });
  const findToken = findValidToken(ctx);

  r.get('/', onlyKeyPage, findToken, (_req, res) => {
    const { token, row } = res.locals.contactToken as FoundToken;
    const html = renderForm({ org: row.org_name, contact: row.contact, expiresAt: row.expires_at, token });
    sendPage(res, 200, html, formOriginsOf(ctx));
  });

  r.post('/', onlyKeyPage, checkOrigin(ctx), requireForm, findToken, parseForm, async (req, res) => {
    const { token, row } = res.locals.contactToken as FoundToken;
    const pasted = (req.body as Record<string, unknown> | undefined)?.key;
    let key: Awaited<ReturnType<typeof readContactKey>>;
    try {
      key = await readContactKey(typeof pasted === 'string' ? pasted : '');
    } catch (e) {
      if (!(e instanceof ContactKeyRejected)) throw e;
      // Which problem, never the text: a private key pasted by mistake must not reach a log.
      ctx.log.warn({ org: row.org_name, problem: e.problem }, 'contact key refused');
      ctx.metrics.errors.inc({ code: 'INVALID_REQUEST' });
      const html = renderForm({
        org: row.org_name,
        contact: row.contact,
        expiresAt: row.expires_at,
        token,
        error: KEY_PROBLEMS[e.problem],
      });
      sendPage(res, 400, html, formOriginsOf(ctx));
      return;
    }
    const refusal = ctx.nodeState.writeRefusal();
    if (refusal) {
      if (redirectToPeer(ctx, req, res, refusal, token)) return;
      ctx.metrics.writeRefusals.inc({ reason: refusal.code });
      throw refusal;
    }
    const used = await runWrite(ctx.write, (c) => useContactToken(c, token, key));
    if (used.status !== 'valid') {
      // Another upload with the same link won the race, or the link expired meanwhile.
      sendTokenPage(ctx, res, used.status);
      return;
    }
    ctx.log.info({ org: row.org_name, fingerprint: key.fingerprint }, 'contact key stored');
    sendPage(
      res,
      200,
      renderStored({ org: row.org_name, contact: row.contact, fingerprint: key.fingerprint }),
      formOriginsOf(ctx),
    );
  });

  r.all('/', onlyKeyPage, (_req, res) => {
    res.setHeader('Allow', 'GET, POST');
    throw new AppError('METHOD_NOT_ALLOWED', 'use GET or POST on the key page');
  });

  r.use(pageErrors(ctx));
  return r;
}

/** `/` with `?q=` is the key page; anything else at `/` (`?a=fingerprint`) goes on to app.ts. */
const onlyKeyPage: RequestHandler = (req, _res, next) => {
  next(req.query.q === undefined ? 'route' : undefined);
};

function tokenOf(req: Request): string {
  return typeof req.query.q === 'string' ? req.query.q : '';
}

/**
 * Reads the link's token on this node and answers every state but 'valid' with its page; a
 * valid token is left in `res.locals.contactToken`. Wrong tokens are counted per address: a
 * failure is reserved before the lookup (atomic, so parallel guesses cannot all slip past a
 * read-only check) and handed back when the token exists.
 */
function findValidToken(ctx: ServerContext): RequestHandler {
  return async (req, res, next) => {
    const token = tokenOf(req);
    const refusal = ctx.nodeState.readRefusal();
    if (refusal) {
      if (redirectToPeer(ctx, req, res, refusal, token)) return;
      throw refusal;
    }
    const limiter = ctx.limits.contactTokenFailures;
    const address = clientAddress(
      ctx.clientAddress,
      req.socket.remoteAddress,
      req.headers[ctx.clientAddress.header],
    );
    // Fail open: a token is 256 random bits, the count only slows probing; contacts must not be
    // locked out because Redis is.
    await consumeOrThrow(limiter, address, 'invalid key-page links from this address', {
      onStoreError: (e) => {
        ctx.metrics.rateLimitStoreErrors.inc({ limiter: 'contact-token' });
        if (storeError.due())
          ctx.log.error({ err: e.message }, 'rate-limit store unreachable: key-page links not counted');
      },
    });
    const found = isTokenShaped(token)
      ? await withClient(ctx.db.pool, (c) => selectContactToken(c, token))
      : { status: 'unknown' as const };
    if (found.status !== 'unknown') await limiter.reward(address, 1).catch(() => undefined);
    if (found.status !== 'valid' || !found.row) {
      if (found.status === 'unknown') ctx.log.warn({ remote: address }, 'key page: unknown link');
      sendTokenPage(ctx, res, found.status);
      return;
    }
    res.locals.contactToken = { token, row: found.row } satisfies FoundToken;
    next();
  };
}

function sendTokenPage(ctx: ServerContext, res: Response, status: ContactTokenStatus): void {
  const page = status === 'valid' ? TOKEN_PAGES.unknown : TOKEN_PAGES[status];
  if (page.status === 404) ctx.metrics.errors.inc({ code: 'NOT_FOUND' });
  sendPage(res, page.status, renderMessage(page), formOriginsOf(ctx));
}

/**
 * NOT_ACTIVE (this node is passive, or fenced) with a peer to name: answer 307 to the same page
 * on the peer, so a form POST is re-posted there by the browser. Not when the request already
 * came from the peer, nor when this node's last probe of the peer (every second) found it down
 * or not active: then the caller gets the refusal's page, not a redirect to a dead node.
 */
function redirectToPeer(
  ctx: ServerContext,
  req: Request,
  res: Response,
  refusal: AppError,
  token: string,
): boolean {
  const peer = refusal.details?.active;
  if (refusal.code !== 'NOT_ACTIVE' || typeof peer !== 'string' || req.query.via === VIA_PEER) return false;
  if (!isTokenShaped(token)) return false;
  const seen = ctx.nodeState.peerObservation();
  if (seen && (!seen.reachable || seen.foreign || (seen.role && seen.role !== 'active'))) return false;
  const target = new URL('/', peer);
  target.search = `?q=${token}&via=${VIA_PEER}`;
  res.setHeader('Location', target.href);
  sendPage(
    res,
    307,
    renderMessage({ title: 'Moved to the active node', text: `Continue at ${target.origin}.` }),
    formOriginsOf(ctx),
  );
  return true;
}

/** Where the page's form may go besides this node: the peer, which a passive redirects it to. */
function formOriginsOf(ctx: ServerContext): string[] {
  const peer = ctx.nodeState.peerUrl && originOf(ctx.nodeState.peerUrl);
  return peer ? [peer] : [];
}

function originOf(url: string): string | undefined {
  try {
    return new URL(url).origin;
  } catch {
    return undefined;
  }
}

/**
 * The link's token is the capability, so a cross-site form cannot do harm without it; still, a
 * browser that names another site's page as the form's origin is refused. `null` is accepted:
 * Referrer-Policy no-referrer (which this page must send, the token being in the URL) makes
 * browsers send `Origin: null` on the page's own form posts.
 */
function checkOrigin(ctx: ServerContext): RequestHandler {
  return (req, _res, next) => {
    const origin = req.headers.origin;
    if (origin === undefined || origin === 'null') return next();
    const allowed = [
      `https://${req.headers.host ?? ''}`,
      ctx.nodeState.peerUrl && originOf(ctx.nodeState.peerUrl),
    ];
    if (allowed.includes(origin)) return next();
    next(
      new AppError(
        'INVALID_REQUEST',
        'This form can only be sent from the key page itself, not from another site.',
      ),
    );
  };
}

const requireForm: RequestHandler = (req, _res, next) => {
  if (req.is('application/x-www-form-urlencoded')) return next();
  next(new AppError('UNSUPPORTED_MEDIA_TYPE', 'the key page accepts only its own form'));
};

/** Failures of the key page as HTML pages with the page's headers, never the JSON body. */
function pageErrors(ctx: ServerContext): ErrorRequestHandler {
  return (err, req, res, _next) => {
    const appErr = err instanceof AppError ? err : (fromHttpError(err as never) ?? toAppError(err));
    if (appErr.status >= 500) {
      // The code and the database's SQLSTATE only: no error object, whose fields could quote the form.
      const sqlstate = (appErr.cause as { code?: unknown } | undefined)?.code;
      ctx.log.warn(
        {
          code: appErr.code,
          sqlstate: typeof sqlstate === 'string' ? sqlstate : undefined,
          reqId: res.locals.requestId,
        },
        'key page refused',
      );
    }
    if (res.headersSent) return;
    ctx.metrics.errors.inc({ code: appErr.code });
    if (appErr.code === 'RATE_LIMITED') ctx.metrics.rateLimitRejections.inc({ limiter: 'contact-token' });
    if (appErr.retryAfterSec) res.setHeader('Retry-After', String(appErr.retryAfterSec));
    sendPage(
      res,
      appErr.status,
      renderMessage(errorPage(appErr, err instanceof AppError && req.method === 'POST')),
      formOriginsOf(ctx),
    );
  };
}

function errorPage(e: AppError, ours: boolean): { title: string; text: string } {
  // Our own INVALID_REQUEST messages (the origin check) say more than the generic text.
  if (e.code === 'INVALID_REQUEST' && ours) return { title: 'The form could not be read', text: e.message };
  const page = ERROR_PAGES[e.code];
  if (page) return page;
  return { title: UNAVAILABLE_PAGE.title, text: `${UNAVAILABLE_PAGE.text} (${e.message})` };
}
