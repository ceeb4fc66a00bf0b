import { TrusteeError, errorFromResponse, parseRetryAfter, toTrusteeError } from './errors';
import { assertValidName, isValidName } from './names';

describe('errorFromResponse', () => {
  const node = 'https://kt1:11371';

  it('keeps the wire code, message, status, node and extra fields', () => {
    const body = JSON.stringify({
      error: { code: 'NOT_ACTIVE', message: 'this node is passive', active: 'https://kt2:11371' },
    });
    const e = errorFromResponse(503, body, node, '2');
    expect(e).toBeInstanceOf(TrusteeError);
    expect(e).toMatchObject({
      code: 'NOT_ACTIVE',
      message: 'this node is passive',
      status: 503,
      node,
      retryAfterMs: 2000,
      retryable: true,
    });
    expect(e.details.active).toBe('https://kt2:11371');
  });

  it('maps a missing or foreign body by HTTP status', () => {
    expect(errorFromResponse(502, '<html>bad gateway</html>', node).code).toBe('SERVER_ERROR');
    expect(errorFromResponse(404, '', node).code).toBe('NOT_FOUND');
    const unknown = errorFromResponse(
      400,
      JSON.stringify({ error: { code: 'NEW_THING', message: 'm' } }),
      node,
    );
    expect(unknown.code).toBe('INVALID_REQUEST');
    expect(unknown.details.serverCode).toBe('NEW_THING');
  });

  it('marks 4xx answers as not retryable and node failures as such', () => {
    expect(
      errorFromResponse(404, JSON.stringify({ error: { code: 'NOT_FOUND', message: 'm' } }), node).retryable,
    ).toBe(false);
    expect(
      errorFromResponse(503, JSON.stringify({ error: { code: 'UNAVAILABLE', message: 'm' } }), node)
        .isNodeFailure,
    ).toBe(true);
    expect(
      errorFromResponse(503, JSON.stringify({ error: { code: 'PASSIVE_UNAVAILABLE', message: 'm' } }), node)
        .isNodeFailure,
    ).toBe(false);
  });
});

describe('parseRetryAfter', () => {
  it('reads seconds and HTTP dates', () => {
    expect(parseRetryAfter('3')).toBe(3000);
    expect(parseRetryAfter(new Date(10_000).toUTCString(), 4_000)).toBe(6_000);
    expect(parseRetryAfter(undefined)).toBeUndefined();
    expect(parseRetryAfter('soon')).toBeUndefined();
  });
});

describe('toTrusteeError', () => {
  it('classifies TLS trust failures apart from network errors', () => {
    const tls = toTrusteeError(
      Object.assign(new Error('self-signed certificate'), { code: 'DEPTH_ZERO_SELF_SIGNED_CERT' }),
      'n',
    );
    expect(tls).toMatchObject({ code: 'TLS_ERROR', retryable: false });
    const refused = toTrusteeError(
      Object.assign(new Error('connect ECONNREFUSED'), { code: 'ECONNREFUSED' }),
      'n',
    );
    expect(refused).toMatchObject({ code: 'NETWORK_ERROR', retryable: true, node: 'n' });
    expect(refused.cause).toBeInstanceOf(Error);
  });
});

describe('deposit names', () => {
  it('accepts the server rule and nothing else', () => {
    for (const ok of ['a', 'A9', 'hdfs.key-1_x', '0', 'x'.repeat(255)]) expect(isValidName(ok)).toBe(true);
    for (const bad of ['', '.a', '-a', '_a', 'a/b', 'a b', 'é', 'a@1', 'x'.repeat(256)])
      expect(isValidName(bad)).toBe(false);
  });

  it('throws INVALID_NAME before any I/O', () => {
    expect(() => assertValidName('../etc')).toThrow(expect.objectContaining({ code: 'INVALID_NAME' }));
  });
});

describe("QUOTA_EXCEEDED (DESIGN.md: 429, a limit on the client's own storage)", () => {
  it('keeps its own code and is not retried like RATE_LIMITED', () => {
    const e = errorFromResponse(
      429,
      JSON.stringify({ error: { code: 'QUOTA_EXCEEDED', message: 'full' } }),
      'n',
    );
    expect(e).toMatchObject({ code: 'QUOTA_EXCEEDED', retryable: false, status: 429 });
  });
});
