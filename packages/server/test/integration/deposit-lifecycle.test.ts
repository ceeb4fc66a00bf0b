/**
 * Issue 16, deposit lifecycle and quotas on one real node: DELETE stays a tombstone, DELETE
 * ?destroy=true erases every version (checked in SQL and in a backup), `ktclient destroy`, the SDK
 * cache, and each per-client quota (refusing and pruning), plus the auto-approved org cap.
 */
import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { TrusteeClient } from '@trustee/sdk';
import { addOrgCli, call, expectError, orgtool, putDeposit, type Creds } from '../support/api';
import { BINS, runCli } from '../support/cli';
import { registerTestClient } from '../support/clients';
import type { RawResponse } from '../support/https-request';
import { waitFor } from '../support/processes';
import { withSuperuser } from '../support/psql';
import { startSingleNode, type SingleNode } from '../support/single-node';
import { makeTempDir, removeDir } from '../support/temp-dir';

/** Node A refuses beyond its quotas; node B prunes old versions and caps an auto-approved org. */
const QUOTAS_A = { QUOTA_MAX_DEPOSITS: 6, QUOTA_MAX_VERSIONS_PER_DEPOSIT: 4, QUOTA_MAX_BYTES: 8192 };
const QUOTAS_B = {
  QUOTA_MAX_VERSIONS_PER_DEPOSIT: 2,
  QUOTA_PRUNE_OLDEST_VERSIONS: true,
  QUOTA_MAX_CLIENTS_AUTO_APPROVED_ORG: 2,
};

let node: SingleNode;
let code: string;
const tmp: string[] = [];

beforeAll(async () => {
  node = await startSingleNode({ conf: QUOTAS_A });
  code = await addOrgCli(node, 'life');
});

afterAll(async () => {
  await node?.stop();
  for (const d of tmp) removeDir(d);
});

const newClient = () => registerTestClient(node.url, 'life', code);

function get(n: SingleNode, who: Creds, name: string, query = ''): Promise<RawResponse> {
  return call(n, who, 'GET', `/v1/deposits/${name}${query}`);
}

function destroy(n: SingleNode, who: Creds, name: string, headers: Record<string, string> = {}) {
  return call(n, who, 'DELETE', `/v1/deposits/${name}?destroy=true`, undefined, headers);
}

function valueOf(res: RawResponse): string {
  expect(res.status).toBe(200);
  return Buffer.from(res.json.value as string, 'base64').toString('utf8');
}

interface StoredVersion {
  version: number;
  deleted: boolean;
  has_value: boolean;
  has_metadata: boolean;
  has_digest: boolean;
  destroyed: boolean;
}

/** Every stored version of one client's deposit, as the database holds it. */
function storedVersions(n: SingleNode, owner: string, name: string): Promise<StoredVersion[]> {
  return withSuperuser(n, async (c) => {
    const { rows } = await c.query<StoredVersion>(
      `select version, deleted, sealed_value is not null as has_value, metadata is not null as has_metadata,
              request_hash is not null as has_digest, destroyed_at is not null as destroyed
         from deposits where owner_fp = $1 and name = $2 order by version`,
      [owner, name],
    );
    return rows;
  });
}

function usageOf(n: SingleNode, owner: string): Promise<{ live_deposits: number; value_bytes: string }> {
  return withSuperuser(n, async (c) => {
    const { rows } = await c.query(
      `select (coalesce((select live_deposits from deposit_usage where owner_fp = $1), 0)
              + coalesce((select sum(live_deposits) from deposit_usage_delta where owner_fp = $1), 0))::int as live_deposits,
              (coalesce((select value_bytes from deposit_usage where owner_fp = $1), 0)
              + coalesce((select sum(value_bytes) from deposit_usage_delta where owner_fp = $1), 0))::text as value_bytes`,
      [owner],
    );
    return rows[0];
  });
}

async function metric(n: SingleNode, series: string): Promise<number> {
  const res = await call(n, undefined, 'GET', '/metrics');
  const line = res.text.split('\n').find((l) => l.startsWith(series));
  return line ? Number(line.slice(series.length).trim()) : NaN;
}

describe('DELETE is a tombstone', () => {
  it('keeps older versions readable with ?version=N while the latest answers NOT_FOUND', async () => {
    const alice = await newClient();
    expect((await putDeposit(node, alice, 'tomb', 'one')).status).toBe(201);
    expect((await putDeposit(node, alice, 'tomb', 'two')).status).toBe(201);
    expect((await call(node, alice, 'DELETE', '/v1/deposits/tomb')).status).toBe(204);
    expectError(await get(node, alice, 'tomb'), 404, 'NOT_FOUND');
    expect(valueOf(await get(node, alice, 'tomb', '?version=1'))).toBe('one');
    expect(valueOf(await get(node, alice, 'tomb', '?version=2'))).toBe('two');
    expect(
      (await storedVersions(node, alice.fingerprint, 'tomb')).map((v) => [v.version, v.has_value]),
    ).toEqual([
      [1, true],
      [2, true],
      [3, false],
    ]);
  });
});

describe('DELETE ?destroy=true', () => {
  it('erases the value, metadata and digest of every version and every read answers NOT_FOUND', async () => {
    const alice = await newClient();
    expect((await putDeposit(node, alice, 'leaked', 'v1', { metadata: { owner: 'ops' } })).status).toBe(201);
    expect((await putDeposit(node, alice, 'leaked', 'v2')).status).toBe(201);
    expect((await call(node, alice, 'DELETE', '/v1/deposits/leaked')).status).toBe(204);
    expect((await putDeposit(node, alice, 'leaked', 'v4', { metadata: { note: 'x' } })).status).toBe(201);
    expect((await destroy(node, alice, 'leaked')).status).toBe(204);

    const rows = await storedVersions(node, alice.fingerprint, 'leaked');
    expect(rows.map((r) => r.version)).toEqual([1, 2, 3, 4, 5]);
    for (const r of rows) {
      expect({ v: r.version, value: r.has_value, metadata: r.has_metadata }).toEqual({
        v: r.version,
        value: false,
        metadata: false,
      });
    }
    // The values' versions are stamped destroyed and lost their keyed digests; 5 is the tombstone.
    expect(rows.filter((r) => r.destroyed).map((r) => r.version)).toEqual([1, 2, 4, 5]);
    expect(rows.filter((r) => !r.deleted).every((r) => !r.has_digest)).toBe(true);
    expect(rows[4].deleted).toBe(true);

    expectError(await get(node, alice, 'leaked'), 404, 'NOT_FOUND');
    for (const v of [1, 2, 4]) {
      const res = await get(node, alice, 'leaked', `?version=${v}`);
      expectError(res, 404, 'NOT_FOUND');
      expect(res.json.error.message).toBe(`version ${v} of leaked was destroyed`);
      expect(res.json.error.destroyed).toBe(true);
    }
    const list = await call(node, alice, 'GET', '/v1/deposits');
    expect(list.json.items).toEqual([]);
    expect(await usageOf(node, alice.fingerprint)).toEqual({ live_deposits: 0, value_bytes: '0' });
  });

  it('is the owner’s only: another client gets NOT_FOUND and the value survives', async () => {
    const [alice, mallory] = await Promise.all([newClient(), newClient()]);
    expect((await putDeposit(node, alice, 'mine', 'kept')).status).toBe(201);
    const refused = await destroy(node, mallory, 'mine');
    expectError(refused, 404, 'NOT_FOUND');
    // The same answer as for a name that exists nowhere.
    expect(refused.json.error.message).toBe('no deposit named mine');
    expect(valueOf(await get(node, alice, 'mine'))).toBe('kept');
  });

  it('answers 204 again for a destroyed name and NOT_FOUND for a name that never existed', async () => {
    const alice = await newClient();
    expect((await putDeposit(node, alice, 'twice', 'x')).status).toBe(201);
    expect((await destroy(node, alice, 'twice')).status).toBe(204);
    expect((await destroy(node, alice, 'twice')).status).toBe(204);
    // The second destroy wrote nothing: still one value version and one tombstone.
    expect((await storedVersions(node, alice.fingerprint, 'twice')).length).toBe(2);
    expectError(await destroy(node, alice, 'never-was'), 404, 'NOT_FOUND');
    // A name that was only deleted (tombstone) still has a value to destroy.
    expect((await putDeposit(node, alice, 'deleted-first', 'y')).status).toBe(201);
    expect((await call(node, alice, 'DELETE', '/v1/deposits/deleted-first')).status).toBe(204);
    expect((await destroy(node, alice, 'deleted-first')).status).toBe(204);
    expect((await storedVersions(node, alice.fingerprint, 'deleted-first')).some((r) => r.has_value)).toBe(
      false,
    );
  });

  it('honours Idempotency-Key: a retry replays, the key on another request is refused', async () => {
    const alice = await newClient();
    expect((await putDeposit(node, alice, 'idem', 'x')).status).toBe(201);
    const headers = { 'Idempotency-Key': 'destroy-idem-1' };
    expect((await destroy(node, alice, 'idem', headers)).status).toBe(204);
    const retry = await destroy(node, alice, 'idem', headers);
    expect(retry.status).toBe(204);
    expect((await storedVersions(node, alice.fingerprint, 'idem')).length).toBe(2);
    // The destroy's key on a PUT, or on a destroy of another name: a different request.
    expectError(await putDeposit(node, alice, 'idem', 'y', { headers }), 400, 'INVALID_REQUEST');
    expect((await putDeposit(node, alice, 'other', 'z')).status).toBe(201);
    expectError(await destroy(node, alice, 'other', headers), 400, 'INVALID_REQUEST');
    expect(valueOf(await get(node, alice, 'other'))).toBe('z');
    // A PUT whose version was destroyed since: its retry still gets the first answer.
    const putKey = { 'Idempotency-Key': 'put-then-destroyed' };
    expect((await putDeposit(node, alice, 'short-lived', 'w', { headers: putKey })).json.version).toBe(1);
    expect((await destroy(node, alice, 'short-lived')).status).toBe(204);
    const late = await putDeposit(node, alice, 'short-lived', 'w', { headers: putKey });
    expect({ status: late.status, version: late.json.version }).toEqual({ status: 201, version: 1 });
    expectError(await get(node, alice, 'short-lived', '?version=1'), 404, 'NOT_FOUND');
  });

  it('lets a later PUT start a new version after the destroy’s tombstone', async () => {
    const alice = await newClient();
    expect((await putDeposit(node, alice, 'reborn', 'old')).status).toBe(201);
    expect((await destroy(node, alice, 'reborn')).status).toBe(204);
    const again = await putDeposit(node, alice, 'reborn', 'new');
    expect(again.json).toEqual({ name: 'reborn', version: 3 });
    expect(valueOf(await get(node, alice, 'reborn'))).toBe('new');
    expectError(await get(node, alice, 'reborn', '?version=1'), 404, 'NOT_FOUND');
  });

  it('refuses If-Match and unknown query parameters, changing nothing', async () => {
    const alice = await newClient();
    expect((await putDeposit(node, alice, 'guarded', 'x')).status).toBe(201);
    expectError(await destroy(node, alice, 'guarded', { 'If-Match': '1' }), 400, 'INVALID_REQUEST');
    for (const q of ['?destroy=yes', '?destroy=true&force=1', '?purge=true']) {
      expectError(await call(node, alice, 'DELETE', `/v1/deposits/guarded${q}`), 400, 'INVALID_REQUEST');
    }
    expect(valueOf(await get(node, alice, 'guarded'))).toBe('x');
    // destroy=false is a plain tombstone.
    expect((await call(node, alice, 'DELETE', '/v1/deposits/guarded?destroy=false')).status).toBe(204);
    expect(valueOf(await get(node, alice, 'guarded', '?version=1'))).toBe('x');
  });

  it('vacuums the deposits table afterwards (the old row versions are reclaimed)', async () => {
    const vacuums = () =>
      withSuperuser(node, async (c) => {
        const { rows } = await c.query<{ n: string }>(
          "select vacuum_count::text as n from pg_stat_user_tables where relname = 'deposits'",
        );
        return Number(rows[0].n);
      });
    const before = await vacuums();
    const alice = await newClient();
    expect((await putDeposit(node, alice, 'vacuumed', 'x')).status).toBe(201);
    expect((await destroy(node, alice, 'vacuumed')).status).toBe(204);
    await node.server.ctx.depositVacuum.idle();
    let after = before;
    for (let i = 0; i < 50 && after <= before; i++) {
      await new Promise((r) => setTimeout(r, 100));
      after = await vacuums();
    }
    expect(after).toBeGreaterThan(before);
  });

  it('leaves no trace of the value in a backup taken afterwards', async () => {
    const alice = await newClient();
    const secret = 'backup-canary-7f3a91c2e5';
    expect((await putDeposit(node, alice, 'in-backup', secret)).status).toBe(201);
    const sealedHex = await withSuperuser(node, async (c) => {
      const { rows } = await c.query<{ hex: string }>(
        "select encode(sealed_value, 'hex') as hex from deposits where owner_fp = $1 and name = 'in-backup'",
        [alice.fingerprint],
      );
      return rows[0].hex;
    });
    const out = makeTempDir('trustee-lifecycle-backup-');
    tmp.push(out);
    const backup = async (dir: string): Promise<string> => {
      const r = await runCli(BINS.ktbackup, [
        '-c',
        node.confdir,
        '--database-port',
        String(node.dbPort),
        '--cleartext',
        `--output=${join(out, dir)}`,
        '-q',
      ]);
      expect(r.code).toBe(0);
      const tar = r.stdout.trim();
      const x = join(out, `${dir}-x`);
      execFileSync('mkdir', ['-p', x]);
      execFileSync('tar', ['xf', tar, '-C', x]);
      return readTree(x);
    };
    // The search finds the sealed value in a backup taken before the destroy...
    expect(await backup('before')).toContain(sealedHex);
    expect((await destroy(node, alice, 'in-backup')).status).toBe(204);
    // ...and not in one taken after it (nor the cleartext, which is never stored at all).
    const after = await backup('after');
    expect(after).toContain('deposits');
    expect(after).not.toContain(sealedHex);
    expect(after).not.toContain(secret);
  });
});

/** Every file under `dir`, concatenated as latin1 (bytes kept one-to-one). */
function readTree(dir: string): string {
  let all = '';
  for (const e of readdirSync(dir, { withFileTypes: true, recursive: true })) {
    if (e.isFile()) all += readFileSync(join(e.parentPath, e.name)).toString('latin1');
  }
  return all;
}

describe('ktclient destroy and the SDK cache', () => {
  let configPath: string;

  beforeAll(async () => {
    const dir = makeTempDir('trustee-lifecycle-sdk-');
    tmp.push(dir);
    configPath = join(dir, 'keytrustee.conf');
    const reg = await TrusteeClient.register({
      servers: [node.url],
      org: 'life',
      authCode: code,
      configPath,
      skipSslCheck: true,
      keyBits: 2048,
    });
    reg.client.close();
  });

  const ktclient = (args: string[], input?: string) =>
    runCli(BINS.ktclient, ['--config', configPath, ...args], { input });

  it('documents destroy in --help', async () => {
    const r = await ktclient(['destroy', '--help']);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/destroy \[options\] <name>/);
    expect(r.stdout).toMatch(/--yes/);
    expect(r.stdout).toMatch(/irreversibly/);
  });

  it('asks for the name without --yes, and destroys nothing unless it is typed', async () => {
    expect((await ktclient(['put', 'cli-secret', '--value', 'hunter2'])).code).toBe(0);
    const declined = await ktclient(['destroy', 'cli-secret'], 'no\n');
    expect(declined.code).toBe(1);
    expect(declined.stderr).toMatch(/Type the name to confirm/);
    expect(declined.stderr).toMatch(/not confirmed.*nothing was destroyed/);
    const noInput = await ktclient(['destroy', 'cli-secret']);
    expect(noInput.code).toBe(1);
    expect((await ktclient(['get', 'cli-secret'])).stdout).toContain('hunter2');

    const confirmed = await ktclient(['destroy', 'cli-secret'], 'cli-secret\n');
    expect({ code: confirmed.code, out: confirmed.stdout.trim() }).toEqual({
      code: 0,
      out: 'destroyed cli-secret',
    });
    const gone = await ktclient(['get', 'cli-secret', '--version', '1']);
    expect(gone.code).toBe(1);
    expect(gone.stderr).toMatch(/NOT_FOUND/);
  });

  it('destroys at once with --yes, and says NOT_FOUND for an unknown name', async () => {
    expect((await ktclient(['put', 'cli-yes', '--value', 'v'])).code).toBe(0);
    const r = await ktclient(['--json', 'destroy', 'cli-yes', '--yes']);
    expect(r.code).toBe(0);
    expect(JSON.parse(r.stdout)).toEqual({ name: 'cli-yes', destroyed: true });
    const unknown = await ktclient(['destroy', 'cli-nothing', '--yes']);
    expect(unknown.code).toBe(1);
    expect(unknown.stderr).toMatch(/NOT_FOUND/);
  });

  it('drops every cached version on its own destroy, and on a NOT_FOUND when revalidating another’s', async () => {
    const hits: string[] = [];
    const open = () =>
      TrusteeClient.fromConfigFile(configPath, {
        cache: { ttlMs: 60_000 },
        hooks: { onCacheHit: (e) => hits.push(`${e.name}@${e.version ?? 'latest'}`) },
      });
    const mine = open();
    const other = open();
    try {
      await mine.put('cached', 'one');
      await mine.put('cached', 'two');
      expect((await mine.get('cached', { version: 1 })).value.toString()).toBe('one');
      expect((await mine.get('cached')).value.toString()).toBe('two');
      expect((await mine.get('cached', { version: 1 })).source).toBe('cache');

      // Another process's cache holds the name too; this one destroys it.
      expect((await other.get('cached', { version: 1 })).value.toString()).toBe('one');
      await mine.destroy('cached');
      await expect(mine.get('cached', { version: 1 })).rejects.toMatchObject({ code: 'NOT_FOUND' });
      await expect(mine.get('cached')).rejects.toMatchObject({ code: 'NOT_FOUND' });

      // The documented limit: the other cache serves its copy until it expires or revalidates...
      expect((await other.get('cached', { version: 1 })).source).toBe('cache');
      // ...and a revalidation that finds the name gone evicts it for good (no stale serving).
      await expect(other.get('cached', { version: 1, noCache: true })).rejects.toMatchObject({
        code: 'NOT_FOUND',
      });
      hits.length = 0;
      await expect(other.get('cached', { version: 1 })).rejects.toMatchObject({ code: 'NOT_FOUND' });
      expect(hits).toEqual([]);
    } finally {
      mine.close();
      other.close();
    }
  });
});

describe('quotas (refusing)', () => {
  it('refuses a deposit beyond QUOTA_MAX_DEPOSITS with QUOTA_EXCEEDED and changes nothing', async () => {
    const q = await newClient();
    const before = await metric(node, 'trustee_quota_refusals_total{kind="deposits"}');
    for (let i = 1; i <= 6; i++) expect((await putDeposit(node, q, `d${i}`, 'x')).status).toBe(201);
    const refused = await putDeposit(node, q, 'd7', 'x');
    expectError(refused, 429, 'QUOTA_EXCEEDED');
    expect(refused.json.error.message).toBe(
      'this client has 6 deposits already; delete some before creating d7 (QUOTA_MAX_DEPOSITS = 6)',
    );
    expect(refused.json.error).toMatchObject({ quota: 'QUOTA_MAX_DEPOSITS', limit: 6 });
    expect(refused.headers['retry-after']).toBeUndefined();
    expect(await storedVersions(node, q.fingerprint, 'd7')).toEqual([]);
    expect((await usageOf(node, q.fingerprint)).live_deposits).toBe(6);
    // Existing names still take new versions; a tombstone frees a name.
    expect((await putDeposit(node, q, 'd1', 'y')).status).toBe(201);
    expect((await call(node, q, 'DELETE', '/v1/deposits/d2')).status).toBe(204);
    expect((await putDeposit(node, q, 'd7', 'x')).status).toBe(201);
    // Another client is not affected by this one's count.
    const other = await newClient();
    expect((await putDeposit(node, other, 'd1', 'x')).status).toBe(201);
    expect(await metric(node, 'trustee_quota_refusals_total{kind="deposits"}')).toBe(before + 1);
  });

  it('refuses a version beyond QUOTA_MAX_VERSIONS_PER_DEPOSIT and keeps the latest', async () => {
    const q = await newClient();
    for (let i = 1; i <= 4; i++) expect((await putDeposit(node, q, 'v', `v${i}`)).status).toBe(201);
    const refused = await putDeposit(node, q, 'v', 'v5');
    expectError(refused, 429, 'QUOTA_EXCEEDED');
    expect(refused.json.error.message).toMatch(
      /^v already has 4 versions holding a value;.*\(QUOTA_MAX_VERSIONS_PER_DEPOSIT = 4\)$/,
    );
    expect(valueOf(await get(node, q, 'v'))).toBe('v4');
    expect((await storedVersions(node, q.fingerprint, 'v')).length).toBe(4);
    // A tombstone is not a version with a value, and neither does it free one.
    expect((await call(node, q, 'DELETE', '/v1/deposits/v')).status).toBe(204);
    expectError(await putDeposit(node, q, 'v', 'v6'), 429, 'QUOTA_EXCEEDED');
    // Destroying frees them all.
    expect((await destroy(node, q, 'v')).status).toBe(204);
    expect((await putDeposit(node, q, 'v', 'fresh')).status).toBe(201);
  });

  it('refuses bytes beyond QUOTA_MAX_BYTES, counting every version with a value, and a destroy frees them', async () => {
    const q = await newClient();
    expect((await putDeposit(node, q, 'b1', Buffer.alloc(5000, 1))).status).toBe(201);
    expect((await putDeposit(node, q, 'b2', Buffer.alloc(3000, 2))).status).toBe(201);
    const refused = await putDeposit(node, q, 'b3', Buffer.alloc(1000, 3));
    expectError(refused, 429, 'QUOTA_EXCEEDED');
    expect(refused.json.error.message).toBe(
      'this client stores 8000 bytes of values; 1000 more would exceed the limit (deleted names keep their older versions until destroyed) (QUOTA_MAX_BYTES = 8192)',
    );
    expect(await usageOf(node, q.fingerprint)).toEqual({ live_deposits: 2, value_bytes: '8000' });
    // A plain delete keeps the bytes (version 1 stays readable)...
    expect((await call(node, q, 'DELETE', '/v1/deposits/b1')).status).toBe(204);
    expectError(await putDeposit(node, q, 'b3', Buffer.alloc(1000, 3)), 429, 'QUOTA_EXCEEDED');
    // ...a destroy frees them.
    expect((await destroy(node, q, 'b1')).status).toBe(204);
    expect(await usageOf(node, q.fingerprint)).toEqual({ live_deposits: 1, value_bytes: '3000' });
    expect((await putDeposit(node, q, 'b3', Buffer.alloc(1000, 3))).status).toBe(201);
  });

  it('writes append usage deltas (no shared row lock); the active folds them into the per-client counter', async () => {
    const q = await newClient();
    const puts = await Promise.all(
      ['f1', 'f2', 'f3'].map((n) => putDeposit(node, q, n, Buffer.alloc(100, 1))),
    );
    expect(puts.map((r) => r.status)).toEqual([201, 201, 201]);
    const folded = () =>
      withSuperuser(node, async (c) => {
        const delta = await c.query(
          'select count(*)::int as n from deposit_usage_delta where owner_fp = $1',
          [q.fingerprint],
        );
        const counter = await c.query(
          'select live_deposits, value_bytes::text from deposit_usage where owner_fp = $1',
          [q.fingerprint],
        );
        return { pending: delta.rows[0].n as number, counter: counter.rows[0] as unknown };
      });
    await waitFor('the usage deltas folded', async () => (await folded()).pending === 0, 15_000);
    expect(await folded()).toEqual({ pending: 0, counter: { live_deposits: 3, value_bytes: '300' } });
    expect(await usageOf(node, q.fingerprint)).toEqual({ live_deposits: 3, value_bytes: '300' });
  });
});

describe('quotas (pruning) and the auto-approved org cap', () => {
  let pruning: SingleNode;

  beforeAll(async () => {
    pruning = await startSingleNode({ conf: QUOTAS_B });
  });

  afterAll(async () => {
    await pruning?.stop();
  });

  it('keeps the newest QUOTA_MAX_VERSIONS_PER_DEPOSIT versions, destroying the oldest values in the same write', async () => {
    const pcode = await addOrgCli(pruning, 'prune');
    const q = await registerTestClient(pruning.url, 'prune', pcode);
    for (let i = 1; i <= 5; i++) {
      const r = await putDeposit(pruning, q, 'rolling', `r${i}`);
      expect(r.json).toEqual({ name: 'rolling', version: i });
    }
    const rows = await storedVersions(pruning, q.fingerprint, 'rolling');
    expect(rows.map((r) => [r.version, r.has_value, r.destroyed])).toEqual([
      [1, false, true],
      [2, false, true],
      [3, false, true],
      [4, true, false],
      [5, true, false],
    ]);
    expect(valueOf(await get(pruning, q, 'rolling', '?version=4'))).toBe('r4');
    expectError(await get(pruning, q, 'rolling', '?version=3'), 404, 'NOT_FOUND');
    expect(await usageOf(pruning, q.fingerprint)).toEqual({ live_deposits: 1, value_bytes: '4' });
  });

  it('caps the clients of an org with an empty auth code at QUOTA_MAX_CLIENTS_AUTO_APPROVED_ORG', async () => {
    await addOrgCli(pruning, 'open-door');
    expect((await orgtool(pruning, 'set-auth', '-n', 'open-door', '-s', '')).code).toBe(0);
    const before = await metric(pruning, 'trustee_quota_refusals_total{kind="clients"}');
    for (let i = 0; i < 2; i++) {
      expect((await registerTestClient(pruning.url, 'open-door')).state).toBe('active');
    }
    await expect(registerTestClient(pruning.url, 'open-door')).rejects.toThrow(
      /429 .*QUOTA_EXCEEDED.*QUOTA_MAX_CLIENTS_AUTO_APPROVED_ORG = 2/,
    );
    const members = await withSuperuser(pruning, async (c) => {
      const { rows } = await c.query<{ n: number }>(
        "select count(*)::int as n from clients c join orgs o on o.id = c.org_id where o.name = 'open-door'",
      );
      return rows[0].n;
    });
    expect(members).toBe(2);
    expect(await metric(pruning, 'trustee_quota_refusals_total{kind="clients"}')).toBe(before + 1);
    // An org with a code is not capped this way.
    const pcode = await addOrgCli(pruning, 'closed-door');
    for (let i = 0; i < 3; i++) {
      expect((await registerTestClient(pruning.url, 'closed-door', pcode)).state).toBe('active');
    }
  });
});
