import { registerTestClient, type TestClient } from '../support/clients';
import { httpsRequest, type RawResponse } from '../support/https-request';
import { startSingleNode, type SingleNode } from '../support/single-node';
import { addOrgCli, call, expectError, putDeposit } from '../support/api';

let node: SingleNode;
let client: TestClient;
let listBefore: unknown;

beforeAll(async () => {
  node = await startSingleNode();
  const code = await addOrgCli(node, 'acme');
  client = await registerTestClient(node.url, 'acme', code);
  expect((await putDeposit(node, client, 'existing', 'original value')).status).toBe(201);
  listBefore = (await call(node, client, 'GET', '/v1/deposits')).json;
});

afterAll(async () => {
  await node?.stop();
});

const VALUE = Buffer.from('hello').toString('base64');
const json = (o: unknown) => JSON.stringify(o);

interface BadRequest {
  method: string;
  path: string;
  body?: string;
  headers?: Record<string, string>;
  /** Send without the client certificate (registration is anonymous). */
  anonymous?: boolean;
}

const JSON_CT = { 'content-type': 'application/json' };

const cases: [string, BadRequest, number, string][] = [
  [
    'malformed JSON',
    { method: 'PUT', path: '/v1/deposits/x', body: '{"value": "aGk=",', headers: JSON_CT },
    400,
    'INVALID_REQUEST',
  ],
  [
    'a JSON body that is null',
    { method: 'PUT', path: '/v1/deposits/x', body: 'null', headers: JSON_CT },
    400,
    'INVALID_REQUEST',
  ],
  [
    'a JSON body that is an array',
    { method: 'PUT', path: '/v1/deposits/x', body: json([VALUE]), headers: JSON_CT },
    400,
    'INVALID_REQUEST',
  ],
  [
    'an empty PUT body',
    { method: 'PUT', path: '/v1/deposits/x', body: '', headers: JSON_CT },
    400,
    'INVALID_REQUEST',
  ],
  [
    'a text/plain body',
    {
      method: 'PUT',
      path: '/v1/deposits/x',
      body: json({ value: VALUE }),
      headers: { 'content-type': 'text/plain' },
    },
    415,
    'UNSUPPORTED_MEDIA_TYPE',
  ],
  [
    'a body without a content type',
    { method: 'PUT', path: '/v1/deposits/x', body: json({ value: VALUE }) },
    415,
    'UNSUPPORTED_MEDIA_TYPE',
  ],
  [
    'a form-encoded body',
    {
      method: 'PUT',
      path: '/v1/deposits/x',
      body: 'value=aGk%3D',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
    },
    415,
    'UNSUPPORTED_MEDIA_TYPE',
  ],
  [
    'JSON in a non-UTF-8 charset',
    {
      method: 'PUT',
      path: '/v1/deposits/x',
      body: json({ value: VALUE }),
      headers: { 'content-type': 'application/json; charset=latin1' },
    },
    415,
    'UNSUPPORTED_MEDIA_TYPE',
  ],
  [
    'a name with a leading dot',
    { method: 'PUT', path: '/v1/deposits/.hidden', body: json({ value: VALUE }), headers: JSON_CT },
    400,
    'INVALID_NAME',
  ],
  [
    'a name with a leading dash',
    { method: 'PUT', path: '/v1/deposits/-x', body: json({ value: VALUE }), headers: JSON_CT },
    400,
    'INVALID_NAME',
  ],
  [
    'a name with a space',
    { method: 'PUT', path: '/v1/deposits/a%20b', body: json({ value: VALUE }), headers: JSON_CT },
    400,
    'INVALID_NAME',
  ],
  [
    'a non-ASCII name (é)',
    { method: 'PUT', path: '/v1/deposits/caf%C3%A9', body: json({ value: VALUE }), headers: JSON_CT },
    400,
    'INVALID_NAME',
  ],
  [
    'a 256-character name',
    {
      method: 'PUT',
      path: `/v1/deposits/${'n'.repeat(256)}`,
      body: json({ value: VALUE }),
      headers: JSON_CT,
    },
    400,
    'INVALID_NAME',
  ],
  [
    'a name with a slash',
    { method: 'PUT', path: '/v1/deposits/a/b', body: json({ value: VALUE }), headers: JSON_CT },
    400,
    'INVALID_NAME',
  ],
  [
    'a name with an encoded slash',
    { method: 'PUT', path: '/v1/deposits/a%2Fb', body: json({ value: VALUE }), headers: JSON_CT },
    400,
    'INVALID_NAME',
  ],
  [
    'a name with a NUL byte',
    { method: 'PUT', path: '/v1/deposits/a%00b', body: json({ value: VALUE }), headers: JSON_CT },
    400,
    'INVALID_NAME',
  ],
  ['a name with a colon', { method: 'GET', path: '/v1/deposits/a:b' }, 400, 'INVALID_NAME'],
  ['a GET of a bad name', { method: 'GET', path: '/v1/deposits/%C3%A9' }, 400, 'INVALID_NAME'],
  ['a DELETE of a bad name', { method: 'DELETE', path: '/v1/deposits/.x' }, 400, 'INVALID_NAME'],
  [
    'broken percent-encoding in the name',
    { method: 'GET', path: '/v1/deposits/a%E0%A4%A' },
    400,
    'INVALID_REQUEST',
  ],
  [
    'a value that is not base64',
    { method: 'PUT', path: '/v1/deposits/x', body: json({ value: 'not base64!' }), headers: JSON_CT },
    400,
    'INVALID_REQUEST',
  ],
  [
    'a value that is a number',
    { method: 'PUT', path: '/v1/deposits/x', body: json({ value: 42 }), headers: JSON_CT },
    400,
    'INVALID_REQUEST',
  ],
  [
    'a missing value',
    { method: 'PUT', path: '/v1/deposits/x', body: json({ metadata: {} }), headers: JSON_CT },
    400,
    'INVALID_REQUEST',
  ],
  [
    'a value one byte over 64 KiB',
    {
      method: 'PUT',
      path: '/v1/deposits/x',
      body: json({ value: Buffer.alloc(64 * 1024 + 1).toString('base64') }),
      headers: JSON_CT,
    },
    413,
    'TOO_LARGE',
  ],
  [
    'a 1 MB body',
    {
      method: 'PUT',
      path: '/v1/deposits/x',
      body: json({ value: Buffer.alloc(1024 * 1024).toString('base64') }),
      headers: JSON_CT,
    },
    413,
    'TOO_LARGE',
  ],
  [
    'metadata that is a string',
    { method: 'PUT', path: '/v1/deposits/x', body: json({ value: VALUE, metadata: 'x' }), headers: JSON_CT },
    400,
    'INVALID_REQUEST',
  ],
  [
    'metadata that is an array',
    { method: 'PUT', path: '/v1/deposits/x', body: json({ value: VALUE, metadata: [1] }), headers: JSON_CT },
    400,
    'INVALID_REQUEST',
  ],
  [
    'metadata over 8 KiB',
    {
      method: 'PUT',
      path: '/v1/deposits/x',
      body: json({ value: VALUE, metadata: { a: 'm'.repeat(9000) } }),
      headers: JSON_CT,
    },
    413,
    'TOO_LARGE',
  ],
  [
    'an unknown body field',
    {
      method: 'PUT',
      path: '/v1/deposits/x',
      body: json({ value: VALUE, owner: 'someone' }),
      headers: JSON_CT,
    },
    400,
    'INVALID_REQUEST',
  ],
  [
    'a __proto__ body field',
    {
      method: 'PUT',
      path: '/v1/deposits/x',
      body: `{"value":"${VALUE}","__proto__":{"admin":true}}`,
      headers: JSON_CT,
    },
    400,
    'INVALID_REQUEST',
  ],
  [
    'a non-numeric If-Match',
    {
      method: 'PUT',
      path: '/v1/deposits/x',
      body: json({ value: VALUE }),
      headers: { ...JSON_CT, 'If-Match': 'abc' },
    },
    400,
    'INVALID_REQUEST',
  ],
  [
    'a negative If-Match',
    {
      method: 'PUT',
      path: '/v1/deposits/x',
      body: json({ value: VALUE }),
      headers: { ...JSON_CT, 'If-Match': '-1' },
    },
    400,
    'INVALID_REQUEST',
  ],
  [
    'a wildcard If-Match',
    { method: 'DELETE', path: '/v1/deposits/existing', headers: { 'If-Match': '*' } },
    400,
    'INVALID_REQUEST',
  ],
  [
    'a 201-character Idempotency-Key',
    {
      method: 'PUT',
      path: '/v1/deposits/x',
      body: json({ value: VALUE }),
      headers: { ...JSON_CT, 'Idempotency-Key': 'k'.repeat(201) },
    },
    400,
    'INVALID_REQUEST',
  ],
  [
    'an Idempotency-Key with a space',
    {
      method: 'PUT',
      path: '/v1/deposits/x',
      body: json({ value: VALUE }),
      headers: { ...JSON_CT, 'Idempotency-Key': 'a b' },
    },
    400,
    'INVALID_REQUEST',
  ],
  ['version=0', { method: 'GET', path: '/v1/deposits/existing?version=0' }, 400, 'INVALID_REQUEST'],
  ['version=abc', { method: 'GET', path: '/v1/deposits/existing?version=abc' }, 400, 'INVALID_REQUEST'],
  ['version=-1', { method: 'GET', path: '/v1/deposits/existing?version=-1' }, 400, 'INVALID_REQUEST'],
  [
    'version given twice',
    { method: 'GET', path: '/v1/deposits/existing?version=1&version=2' },
    400,
    'INVALID_REQUEST',
  ],
  [
    'a huge version',
    { method: 'GET', path: '/v1/deposits/existing?version=99999999999' },
    400,
    'INVALID_REQUEST',
  ],
  [
    'an unknown query parameter on GET',
    { method: 'GET', path: '/v1/deposits/existing?verison=1' },
    400,
    'INVALID_REQUEST',
  ],
  ['list limit=0', { method: 'GET', path: '/v1/deposits?limit=0' }, 400, 'INVALID_REQUEST'],
  ['list limit=1001', { method: 'GET', path: '/v1/deposits?limit=1001' }, 400, 'INVALID_REQUEST'],
  ['list limit=ten', { method: 'GET', path: '/v1/deposits?limit=ten' }, 400, 'INVALID_REQUEST'],
  [
    'a list prefix with a space',
    { method: 'GET', path: '/v1/deposits?prefix=a%20b' },
    400,
    'INVALID_REQUEST',
  ],
  [
    'a list cursor that is garbage',
    { method: 'GET', path: '/v1/deposits?cursor=%%%' },
    400,
    'INVALID_REQUEST',
  ],
  [
    'a list cursor that decodes to a bad name',
    { method: 'GET', path: `/v1/deposits?cursor=${Buffer.from('../etc').toString('base64url')}` },
    400,
    'INVALID_REQUEST',
  ],
  ['an unknown route', { method: 'GET', path: '/v1/nope' }, 404, 'NOT_FOUND'],
  ['an unknown top-level path', { method: 'GET', path: '/admin' }, 404, 'NOT_FOUND'],
  ['/ without a known query', { method: 'GET', path: '/' }, 404, 'NOT_FOUND'],
  [
    'POST to a deposit',
    { method: 'POST', path: '/v1/deposits/x', body: json({ value: VALUE }), headers: JSON_CT },
    405,
    'METHOD_NOT_ALLOWED',
  ],
  [
    'PATCH to a deposit',
    { method: 'PATCH', path: '/v1/deposits/x', body: json({ value: VALUE }), headers: JSON_CT },
    405,
    'METHOD_NOT_ALLOWED',
  ],
  ['DELETE of the deposit collection', { method: 'DELETE', path: '/v1/deposits' }, 405, 'METHOD_NOT_ALLOWED'],
  ['DELETE /v1/health', { method: 'DELETE', path: '/v1/health', anonymous: true }, 405, 'METHOD_NOT_ALLOWED'],
  [
    'POST /v1/health/active',
    { method: 'POST', path: '/v1/health/active', anonymous: true },
    405,
    'METHOD_NOT_ALLOWED',
  ],
  ['PUT /metrics', { method: 'PUT', path: '/metrics', anonymous: true }, 405, 'METHOD_NOT_ALLOWED'],
  [
    'POST /?a=fingerprint',
    { method: 'POST', path: '/?a=fingerprint', anonymous: true },
    405,
    'METHOD_NOT_ALLOWED',
  ],
  [
    'GET of the registration endpoint',
    { method: 'GET', path: '/v1/clients/register', anonymous: true },
    405,
    'METHOD_NOT_ALLOWED',
  ],
  [
    'a registration without csr',
    {
      method: 'POST',
      path: '/v1/clients/register',
      body: json({ org: 'acme' }),
      headers: JSON_CT,
      anonymous: true,
    },
    400,
    'INVALID_REQUEST',
  ],
  [
    'a registration without org',
    {
      method: 'POST',
      path: '/v1/clients/register',
      body: json({ csr: 'x' }),
      headers: JSON_CT,
      anonymous: true,
    },
    400,
    'INVALID_REQUEST',
  ],
  [
    'a registration with an extra field',
    {
      method: 'POST',
      path: '/v1/clients/register',
      body: json({ org: 'acme', csr: 'x', state: 'active' }),
      headers: JSON_CT,
      anonymous: true,
    },
    400,
    'INVALID_REQUEST',
  ],
  [
    'a registration with a numeric auth code',
    {
      method: 'POST',
      path: '/v1/clients/register',
      body: json({ org: 'acme', csr: 'x', authCode: 1234 }),
      headers: JSON_CT,
      anonymous: true,
    },
    400,
    'INVALID_REQUEST',
  ],
  [
    'a registration as text/plain',
    {
      method: 'POST',
      path: '/v1/clients/register',
      body: json({ org: 'acme', csr: 'x' }),
      headers: { 'content-type': 'text/plain' },
      anonymous: true,
    },
    415,
    'UNSUPPORTED_MEDIA_TYPE',
  ],
  [
    'a registration with malformed JSON',
    { method: 'POST', path: '/v1/clients/register', body: '{org:', headers: JSON_CT, anonymous: true },
    400,
    'INVALID_REQUEST',
  ],
];

describe('bad inputs', () => {
  it.each(cases)(
    'answers %s with the documented status and code, never a 500 or stack trace',
    async (_what, req, status, code) => {
      const tls = req.anonymous ? {} : { cert: client.cert, key: client.key };
      const res: RawResponse = await httpsRequest(node.url, {
        method: req.method,
        path: req.path,
        body: req.body,
        headers: req.headers,
        ...tls,
      });
      expectError(res, status, code);
      expect(Object.keys(res.json)).toEqual(['error']);
      expect(res.headers['content-type']).toMatch(/^application\/json/);
      if (status === 405) expect(res.headers.allow).toEqual(expect.any(String));
    },
  );

  it('changed nothing: the client still sees exactly the deposits it had before the table', async () => {
    expect((await call(node, client, 'GET', '/v1/deposits')).json).toEqual(listBefore);
    const existing = await call(node, client, 'GET', '/v1/deposits/existing');
    expect(existing.json.version).toBe(1);
    expect(Buffer.from(existing.json.value, 'base64').toString()).toBe('original value');
    expectError(await call(node, client, 'GET', '/v1/deposits/x'), 404, 'NOT_FOUND');
  });

  it('still serves the client normally after the bad requests', async () => {
    expect((await putDeposit(node, client, 'after-table', 'fine')).status).toBe(201);
  });
});
