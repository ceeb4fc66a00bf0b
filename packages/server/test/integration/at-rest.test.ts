import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { join } from 'node:path';
import { DB_NAME, DB_SUPERUSER, findPgBinDir, socketDirFor } from '@trustee/replicator';
import { registerTestClient, type TestClient } from '../support/clients';
import { startSingleNode, type SingleNode } from '../support/single-node';
import { addOrgCli, call, expectError, expectNoStackTrace, orgtool, putDeposit } from '../support/api';

let node: SingleNode;
let alice: TestClient;
let bob: TestClient;
const MARKER = `PLAINTEXT-MARKER-${Date.now()}-d0e5e3b1`;
const AUTH_CODE = `AUTH-CODE-MARKER-${Date.now()}-7f3a`;

/** The whole database as pg_dump prints it (plain SQL, COPY data), run as root over the data dir's socket. */
function pgDump(): string {
  const r = spawnSync(
    join(findPgBinDir(), 'pg_dump'),
    ['-h', socketDirFor(node.dbDir), '-p', String(node.dbPort), '-U', DB_SUPERUSER, '--no-password', DB_NAME],
    { encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 },
  );
  if (r.status !== 0) throw new Error(`pg_dump failed (${r.status}): ${r.stderr}`);
  return r.stdout;
}

/** Every way a byte string may show up in a dump: raw, base64, bytea hex. */
function encodings(s: string): string[] {
  const b = Buffer.from(s, 'utf8');
  return [
    s,
    b.toString('base64'),
    b.toString('base64').slice(4, 24),
    b.toString('hex'),
    b.toString('hex').toUpperCase(),
  ];
}

beforeAll(async () => {
  node = await startSingleNode();
  await addOrgCli(node, 'acme');
  expect((await orgtool(node, 'set-auth', '-n', 'acme', '-s', AUTH_CODE)).code).toBe(0);
  [alice, bob] = await Promise.all([
    registerTestClient(node.url, 'acme', AUTH_CODE),
    registerTestClient(node.url, 'acme', AUTH_CODE),
  ]);
  expect((await putDeposit(node, alice, 'at-rest-secret', MARKER)).status).toBe(201);
  expect((await putDeposit(node, alice, 'at-rest-secret', `${MARKER}-v2`)).status).toBe(201);
});

afterAll(async () => {
  await node?.stop();
});

describe('values at rest', () => {
  it('keeps the plaintext value and its base64 out of pg_dump output while the rows are there', () => {
    const dump = pgDump();
    expect(dump).toContain('at-rest-secret');
    expect(dump).toContain(alice.fingerprint);
    for (const e of [...encodings(MARKER), ...encodings(`${MARKER}-v2`)]) expect(dump).not.toContain(e);
    // Nothing in the dump is even a long substring of the marker.
    expect(dump).not.toContain('PLAINTEXT-MARKER');
  });

  it("keeps an organization's auth code out of pg_dump output", () => {
    const dump = pgDump();
    expect(dump).toContain('acme');
    for (const e of encodings(AUTH_CODE)) expect(dump).not.toContain(e);
  });

  it('keys the stored request digest, so a dump cannot confirm guesses of a value', () => {
    const dump = pgDump();
    // An unkeyed SHA-256 over the same framing the server digests (method, name, value, metadata, If-Match).
    const frame = (parts: (string | Buffer)[]) =>
      Buffer.concat(
        parts.flatMap((p) => [
          Buffer.from(`${Buffer.byteLength(p)}:`),
          Buffer.isBuffer(p) ? p : Buffer.from(p),
        ]),
      );
    const guess = createHash('sha256')
      .update(frame(['PUT', 'at-rest-secret', Buffer.from(MARKER), 'null', 'null']))
      .digest('hex');
    expect(dump).toMatch(/\\x[0-9a-f]{64}/); // the digest column is there
    expect(dump).not.toContain(guess);
  });

  it('stores a different ciphertext for each write of the same value (per-row nonce)', async () => {
    expect((await putDeposit(node, alice, 'twice-a', 'same bytes')).status).toBe(201);
    expect((await putDeposit(node, alice, 'twice-a', 'same bytes')).status).toBe(201);
    const { rows } = await node.server.ctx.db.pool.query<{ sealed_value: Buffer }>(
      'select sealed_value from deposits where name = $1 order by version',
      ['twice-a'],
    );
    expect(rows).toHaveLength(2);
    expect(rows[0].sealed_value.equals(rows[1].sealed_value)).toBe(false);
    expect(rows[0].sealed_value.includes(Buffer.from('same bytes'))).toBe(false);
  });

  it.each([
    [
      'another name of the same owner',
      () => ({ owner: alice.fingerprint, name: 'moved-name', reader: alice }),
    ],
    [
      'the same name of another owner',
      () => ({ owner: bob.fingerprint, name: 'at-rest-secret', reader: bob }),
    ],
  ])('refuses to open a sealed value copied to %s, without leaking the value', async (_what, where) => {
    const { owner, name, reader } = where();
    const pool = node.server.ctx.db.pool;
    await pool.query(
      `insert into deposits (owner_fp, name, version, deleted, sealed_value, key_id, metadata)
       select $1, $2, 1, false, sealed_value, key_id, null from deposits
        where owner_fp = $3 and name = 'at-rest-secret' and version = 1`,
      [owner, name, alice.fingerprint],
    );
    const res = await call(node, reader, 'GET', `/v1/deposits/${name}`);
    // The GCM tag check fails: the server answers its generic internal error, nothing more.
    expectError(res, 503, 'UNAVAILABLE');
    for (const e of encodings(MARKER)) expect(res.text).not.toContain(e);
    expectNoStackTrace(res.text);
    // The owner's own row still opens.
    const own = await call(node, alice, 'GET', '/v1/deposits/at-rest-secret?version=1');
    expect(Buffer.from(own.json.value, 'base64').toString()).toBe(MARKER);
  });

  it('refuses to open a value whose version number was changed in the database', async () => {
    expect((await putDeposit(node, alice, 'renumbered', MARKER)).status).toBe(201);
    await node.server.ctx.db.pool.query('update deposits set version = 5 where owner_fp = $1 and name = $2', [
      alice.fingerprint,
      'renumbered',
    ]);
    const res = await call(node, alice, 'GET', '/v1/deposits/renumbered');
    expect(res.status).not.toBe(200);
    expect(res.text).not.toContain(Buffer.from(MARKER).toString('base64'));
  });
});
