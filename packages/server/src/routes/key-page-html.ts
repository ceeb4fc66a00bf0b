import { createHash } from 'node:crypto';
import type { Response } from 'express';

/**
 * The HTML of the contact key page (`/?q=TOKEN`, issue 15): plain server-rendered pages with no
 * script, no framework and nothing loaded from elsewhere, so the Content-Security-Policy can
 * allow nothing but this one inline stylesheet (by its hash).
 */

const STYLE = [
  'body{font:1rem/1.5 system-ui,sans-serif;max-width:42rem;margin:2rem auto;padding:0 1rem;color:#1b1b1b;background:#fff}',
  'h1{font-size:1.5rem;line-height:1.25}',
  'label{display:block;font-weight:600;margin:1rem 0 .25rem}',
  'textarea{box-sizing:border-box;width:100%;min-height:16rem;font:.8125rem/1.3 monospace;padding:.5rem}',
  'button{font:inherit;margin-top:1rem;padding:.5rem 1.25rem}',
  ':focus-visible{outline:3px solid #0b57d0;outline-offset:2px}',
  '.alert{border-left:.3rem solid #b3261e;padding:.5rem 1rem;background:#fdecea}',
  '.alert:empty{display:none}',
  'code{overflow-wrap:break-word}',
].join('');

/** `'sha256-…'` of STYLE, the only source the CSP allows for styles. */
const STYLE_SOURCE = `'sha256-${createHash('sha256').update(STYLE, 'utf8').digest('base64')}'`;

function escapeHtml(s: string): string {
  return s.replace(
    /[&<>"']/g,
    (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c] as string,
  );
}

/** `21F2 6922 010C …`, as `gpg --fingerprint` groups it. */
export function groupFingerprint(fp: string): string {
  return fp.replace(/(.{4})(?!$)/g, '$1 ');
}

function document(title: string, body: string): string {
  return (
    '<!doctype html>\n<html lang="en"><head><meta charset="utf-8">' +
    '<meta name="viewport" content="width=device-width, initial-scale=1">' +
    `<title>${escapeHtml(title)} — Key Trustee</title><style>${STYLE}</style></head>` +
    `<body><main>${body}</main></body></html>\n`
  );
}

export interface FormPage {
  org: string;
  contact: string;
  expiresAt: Date;
  /** The link's token (only the characters of isTokenShaped): the form posts back to it. */
  token: string;
  /** Why the last paste was refused; the pasted text itself is never shown again. */
  error?: string;
}

/** The upload form, with its error region (role=alert; empty until a paste is refused). */
export function renderForm(p: FormPage): string {
  const invalid = p.error ? ' aria-invalid="true" autofocus' : '';
  return document(
    `GPG public key for ${p.org}`,
    `<h1>GPG public key for ${escapeHtml(p.contact)}, contact of the organization ${escapeHtml(p.org)}</h1>` +
      `<div id="key-error" class="alert" role="alert">${p.error ? escapeHtml(p.error) : ''}</div>` +
      '<p>Key Trustee encrypts the notices it sends you (for example, a client waiting for approval) ' +
      'to this key.</p>' +
      `<p>This link can be used once, until ${escapeHtml(utc(p.expiresAt))}.</p>` +
      `<form method="post" action="/?q=${encodeURIComponent(p.token)}">` +
      '<label for="key">Your ASCII-armored GPG public key</label>' +
      '<p id="key-help">Paste the whole key, including the <code>-----BEGIN PGP PUBLIC KEY BLOCK-----</code> and ' +
      '<code>-----END PGP PUBLIC KEY BLOCK-----</code> lines, as printed by ' +
      '<code>gpg --export --armor you@example.com</code>. Never paste a private (secret) key.</p>' +
      `<textarea id="key" name="key" rows="16" required spellcheck="false" autocomplete="off" autocapitalize="off" aria-describedby="key-help key-error"${invalid}></textarea>` +
      '<button type="submit">Upload public key</button></form>',
  );
}

/** The confirmation: the fingerprint of the key now stored. */
export function renderStored(p: { org: string; contact: string; fingerprint: string }): string {
  return document(
    'Public key stored',
    `<h1>Public key stored for ${escapeHtml(p.contact)}, contact of the organization ${escapeHtml(p.org)}</h1>` +
      '<p>Check that this is the fingerprint of your key (<code>gpg --fingerprint you@example.com</code>):</p>' +
      `<p><code id="fingerprint">${escapeHtml(groupFingerprint(p.fingerprint))}</code></p>` +
      '<p>This link is now used. To replace the key later, ask your Key Trustee administrator for a new link.</p>',
  );
}

/** A page that only says what went wrong (the link's org and contact are not named). */
export function renderMessage(p: { title: string; text: string }): string {
  return document(
    p.title,
    `<h1>${escapeHtml(p.title)}</h1><div class="alert" role="alert"><p>${escapeHtml(p.text)}</p></div>`,
  );
}

function utc(d: Date): string {
  return `${d.toISOString().slice(0, 16).replace('T', ' ')} UTC`;
}

/**
 * The headers of every key-page answer. The token is in the URL, so no Referer may carry it
 * (no-referrer) and no cache may keep it (no-store); nothing may frame the page (clickjacking);
 * `formOrigins` are the origins the form may post to besides this one (the peer's, which a
 * passive redirects the form to: Chromium applies form-action to redirects too).
 */
export function setPageHeaders(res: Response, formOrigins: string[] = []): void {
  const formAction = ["'self'", ...formOrigins].join(' ');
  res.setHeader(
    'Content-Security-Policy',
    `default-src 'none'; style-src ${STYLE_SOURCE}; form-action ${formAction}; frame-ancestors 'none'; base-uri 'none'`,
  );
  res.setHeader('X-Content-Type-Options', 'nosniff');
  res.setHeader('Referrer-Policy', 'no-referrer');
  res.setHeader('Cache-Control', 'no-store');
  res.setHeader('X-Frame-Options', 'DENY');
  res.setHeader('Cross-Origin-Opener-Policy', 'same-origin');
}

/** Sends one page with the key page's headers. */
export function sendPage(res: Response, status: number, html: string, formOrigins?: string[]): void {
  setPageHeaders(res, formOrigins);
  res.status(status).type('text/html; charset=utf-8').send(html);
}
