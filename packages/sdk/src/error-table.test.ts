import { SERVER_ERROR_STATUS, errorFromResponse } from './errors';

/** The one table of wire codes (issue 11): the SDK recognises exactly its codes, with their status. */
describe('SERVER_ERROR_STATUS', () => {
  it('holds the stable codes of DESIGN.md with their HTTP status', () => {
    expect(SERVER_ERROR_STATUS).toEqual({
      INVALID_REQUEST: 400,
      INVALID_NAME: 400,
      TOO_LARGE: 413,
      UNAUTHENTICATED: 401,
      CLIENT_PENDING: 403,
      CLIENT_DISABLED: 403,
      INVALID_AUTH_CODE: 403,
      NOT_FOUND: 404,
      METHOD_NOT_ALLOWED: 405,
      UNSUPPORTED_MEDIA_TYPE: 415,
      VERSION_CONFLICT: 409,
      RATE_LIMITED: 429,
      QUOTA_EXCEEDED: 429,
      NOT_ACTIVE: 503,
      PASSIVE_UNAVAILABLE: 503,
      WRITE_IN_DOUBT: 503,
      UNAVAILABLE: 503,
    });
  });

  it('every code in it comes back as itself from an error answer with its status', () => {
    for (const [code, status] of Object.entries(SERVER_ERROR_STATUS)) {
      const e = errorFromResponse(status, JSON.stringify({ error: { code, message: 'm' } }), 'n');
      expect({ code: e.code, status: e.status, serverCode: e.details.serverCode }).toEqual({
        code,
        status,
        serverCode: undefined,
      });
    }
    const unknown = errorFromResponse(
      503,
      JSON.stringify({ error: { code: 'NEW_CODE', message: 'm' } }),
      'n',
    );
    expect(unknown).toMatchObject({ code: 'UNAVAILABLE', details: { serverCode: 'NEW_CODE' } });
  });
});
