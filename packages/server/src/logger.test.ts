import { createLogger } from './logger';

const SECRET = 'S3cr3t-v4lue-9d2e';

/** A logger whose JSON lines are kept in memory. */
function capture() {
  const lines: string[] = [];
  const log = createLogger({ level: 'debug', destination: { write: (s: string) => void lines.push(s) } });
  return { log, lines, parsed: () => lines.map((l) => JSON.parse(l) as Record<string, unknown>) };
}

describe('createLogger redaction (the safety net for a careless call)', () => {
  it.each([
    'password',
    'authCode',
    'auth_secret',
    'value',
    'privateKey',
    'SSL_PRIVATE_KEY_PASSWORD',
    'SSL_PRIVATE_KEY_PASSWORD_SCRIPT',
    'passphrase',
    'body',
  ])('censors %s inside an object passed to the logger', (key) => {
    const { log, lines, parsed } = capture();
    log.info({ obj: { [key]: SECRET, kept: 'visible' } }, 'something happened');
    expect(lines.join('')).not.toContain(SECRET);
    expect(parsed()[0].obj).toEqual({ [key]: '[redacted]', kept: 'visible' });
  });

  it.each(['password', 'value', 'passphrase', 'pin', 'authCode'])(
    'censors %s at the top of the logged object too',
    (key) => {
      const { log, lines, parsed } = capture();
      log.info({ [key]: SECRET, kept: 'visible' }, 'something happened');
      expect(lines.join('')).not.toContain(SECRET);
      expect(parsed()[0]).toMatchObject({ [key]: '[redacted]', kept: 'visible' });
    },
  );

  it('censors the Authorization and Cookie headers of a logged request', () => {
    const { log, lines, parsed } = capture();
    log.warn(
      {
        req: { method: 'PUT', headers: { authorization: `Bearer ${SECRET}`, cookie: SECRET, host: 'kt01' } },
      },
      'x',
    );
    expect(lines.join('')).not.toContain(SECRET);
    expect(parsed()[0].req).toEqual({
      method: 'PUT',
      headers: { authorization: '[redacted]', cookie: '[redacted]', host: 'kt01' },
    });
  });

  it('censors a whole config object passed by mistake', () => {
    const { log, lines } = capture();
    log.error(
      { conf: { HOST: 'kt01', SSL_PRIVATE_KEY_PASSWORD_SCRIPT: `/bin/echo -n ${SECRET}` } },
      'could not start',
    );
    expect(lines.join('')).not.toContain(SECRET);
    expect(lines.join('')).toContain('kt01');
  });

  it('keeps the fixed message and the other fields', () => {
    const { log, parsed } = capture();
    log.info({ name: 'k', version: 3, client: '2048R/AB' }, 'deposit stored');
    expect(parsed()[0]).toMatchObject({
      msg: 'deposit stored',
      name: 'k',
      version: 3,
      client: '2048R/AB',
      level: 30,
    });
  });

  it('honours the level', () => {
    const lines: string[] = [];
    const log = createLogger({ level: 'warn', destination: { write: (s: string) => void lines.push(s) } });
    log.info('not written');
    log.warn('written');
    expect(lines).toHaveLength(1);
    expect(JSON.parse(lines[0])).toMatchObject({ msg: 'written', name: 'trustee' });
  });
});
