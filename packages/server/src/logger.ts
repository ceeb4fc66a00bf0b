import pino, { type Logger } from 'pino';

export type { Logger };

/** Field names whose values are secrets wherever they appear in a logged object. */
const SECRET_FIELDS = [
  'password',
  'authCode',
  'auth_secret',
  'value',
  'privateKey',
  'SSL_PRIVATE_KEY_PASSWORD',
  'SSL_PRIVATE_KEY_PASSWORD_SCRIPT',
  'passphrase',
  'pin',
  // Request bodies (a logged `req.body`, or body-parser's `err.body`): the key page's form may
  // hold a private key pasted by mistake, a deposit body holds a value.
  'body',
];

/**
 * One logger per process. Values, keys, auth codes and passwords are never logged; redact
 * also catches them if a careless call passes a request or config object.
 */
export function createLogger(
  opts: { level?: string; name?: string; destination?: pino.DestinationStream } = {},
): Logger {
  return pino(
    {
      name: opts.name ?? 'trustee',
      level: opts.level ?? process.env.TRUSTEE_LOG_LEVEL ?? 'info',
      redact: {
        // Each secret field at the top of the logged object and one level down.
        paths: [
          'req.headers.authorization',
          'req.headers.cookie',
          ...SECRET_FIELDS.flatMap((f) => [f, `*.${f}`]),
        ],
        censor: '[redacted]',
      },
    },
    opts.destination ?? pino.destination(2),
  );
}
