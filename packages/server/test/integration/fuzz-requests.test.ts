/**
 * Request fuzzing at both nodes (issue 16): fast-check throws random and malformed requests at
 * a real two-node cluster (startTestCluster), alternating the target node: deposit names
 * (unicode, overlong, `..%2f`, `%00`, slashes), methods, headers (Content-Type, Content-Length
 * mismatches and junk, chunked framing, If-Match, Idempotency-Key, oversized headers), bodies
 * (invalid JSON, wrong types, base64 edge cases, deep nesting, oversize), query strings
 * (version, prefix, limit, cursor) and TLS identities (none, self-signed for the client's own
 * key, an unknown CA's, a pending client's). Every answer must be a 2xx or
 * `{error: {code, message}}` with a code and status from DESIGN.md; never a 5xx except
 * NOT_ACTIVE from the passive for a write; never a hang or a dropped connection (except for a
 * body that never fully arrives); the keytrusteed processes stay up and healthy.
 *
 * Data oracle (the simplest sound design): requests are sent only with the fuzz client's own
 * certificate (or none, a self-signed one, or a pending client's, none of which may write), and
 * the server only ever appends deposit rows for the client that sends a write. So the digest — md5 of an ordered dump of `orgs`, `clients` and
 * every `deposits` row except those the fuzz client itself appended during the run (owner = fuzz
 * client and id above the pre-run maximum) — must stay exactly equal after every case: it covers
 * the fuzz client's own pre-existing rows, another client's rows, all clients and orgs. The
 * generator makes some well-formed writes on purpose (a valid PUT/DELETE for the fuzz client's
 * names; NOT_ACTIVE on the passive); the rows they append are counted, and the count may grow
 * by at most one per 2xx PUT/DELETE answer and by nothing otherwise. Registration bodies never
 * combine a valid CSR with the real org and a right or missing code (that would store a client):
 * a valid CSR goes only to an unknown org (a decoy answer, stored nowhere) or with a wrong code.
 * Writes land on the active only, so the digest is taken there after every case; after the run
 * both nodes' full digests (fuzz rows included) must be equal. `/test_hsm` is not generated: on
 * these HSM-less nodes its documented answer is 503 UNAVAILABLE (and it writes its own table).
 *
 * Runs: FUZZ_RUNS (default 1000) cases from FUZZ_SEED (default fixed, printed), so a failure is
 * reproduced with `FUZZ_SEED=<seed> FUZZ_RUNS=<n> npx jest <this file>`. The failure names the
 * first violating request as sent; fast-check's shrunk counterexample follows, but shrinking
 * re-runs cases against a cluster whose state moved on, so the first violation is the finding.
 * `npm run bench:fuzz` runs the same property with many more cases and a fresh seed.
 */
import { generateKeyPairSync } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import * as fc from 'fast-check';
import type { Client } from 'pg';
import { selfSignedCert } from '../support/api';
import { makeCsr, registerTestClient, type TestClient } from '../support/clients';
import { startTestCluster, type NodeName, type TestCluster } from '../support/cluster';
import { putDepositRaw } from '../support/deposit-requests';
import {
  describe as describeRequest,
  exchange,
  requestArb,
  serialize,
  violation,
  type CredKind,
  type FuzzRequest,
  type TlsIdentity,
} from '../support/fuzz-requests';
import { httpsRequest } from '../support/https-request';
import { withSuperuser } from '../support/psql';

const RUNS = Number(process.env.FUZZ_RUNS ?? 1000);
const SEED = Number(process.env.FUZZ_SEED ?? 160_016);
/** Generous per-case budget for the jest timeout (cases take ~20-60 ms; oversize bodies more). */
const TIMEOUT_MS = 60_000 + RUNS * 400;

let cluster: TestCluster;
let fuzz: TestClient;
let victim: TestClient;
const ids = {} as Record<CredKind, TlsIdentity | undefined>;

beforeAll(async () => {
  cluster = await startTestCluster();
  const a = cluster.node('a');
  fuzz = await registerTestClient(a.url, cluster.org, cluster.authCode);
  victim = await registerTestClient(a.url, cluster.org, cluster.authCode);
  const pending = await registerTestClient(a.url, cluster.org);
  expect([fuzz.state, victim.state, pending.state]).toEqual(['active', 'active', 'pending']);
  const fresh = generateKeyPairSync('rsa', {
    modulusLength: 2048,
    privateKeyEncoding: { type: 'pkcs8', format: 'pem' },
    publicKeyEncoding: { type: 'spki', format: 'pem' },
  }).privateKey;
  Object.assign(ids, {
    client: { cert: fuzz.cert, key: fuzz.key },
    none: undefined,
    'self-signed-same-key': { cert: selfSignedCert(fuzz.key), key: fuzz.key },
    'self-signed-fresh': { cert: selfSignedCert(fresh), key: fresh },
    pending: { cert: pending.cert, key: pending.key },
  });
  for (const [who, name, value] of [
    [fuzz, 'fz-seed', 'one'],
    [fuzz, 'fz-seed', 'two'],
    [fuzz, 'fz-seed2', 'three'],
    [victim, 'victim-secret', 'not yours'],
    [victim, 'fz-seed', 'same name, other owner'],
  ] as const) {
    expect((await putDepositRaw(a.url, who, name, value)).status).toBe(201);
  }
});

afterAll(async () => {
  await cluster?.stop();
});

/** Digest of orgs, clients and deposits except the fuzz client's rows appended after `maxId`. */
async function snapshot(c: Client, maxId: number | null): Promise<{ digest: string; appended: number }> {
  const r = await c.query<{ digest: string; appended: number }>(
    `with rows as (
       select 'o|' || o::text as r from orgs o
       union all select 'c|' || c::text from clients c
       union all select 'd|' || d::text from deposits d where $1::bigint is null or d.id <= $1 or d.owner_fp <> $2
     )
     select md5(coalesce(string_agg(r, E'\\n' order by r), '')) as digest,
            (select count(*) from deposits where $1::bigint is not null and id > $1 and owner_fp = $2)::int as appended
       from rows`,
    [maxId, fuzz.fingerprint],
  );
  return r.rows[0];
}

function alive(n: NodeName): boolean {
  const pid = cluster.serverPid(n);
  if (!pid) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

test(
  `${RUNS} random and malformed requests at both nodes: documented 4xx, no 5xx, no crash, no data change`,
  async () => {
    const fixture = {
      ownNames: ['fz-seed', 'fz-seed2'],
      foreignNames: ['victim-secret'],
      org: cluster.org,
      validCsr: makeCsr('no-such-org').csr,
      somePem: fuzz.caCertificate,
    };
    const stats = { cases: 0, byAnswer: new Map<string, number>(), acceptedWrites: 0 };
    process.stdout.write(`fuzz: seed=${SEED} runs=${RUNS} (FUZZ_SEED / FUZZ_RUNS override)\n`);
    const started = Date.now();
    /** The first violation seen: what the run found (shrinking re-runs cases on changed state). */
    let firstFailure: string | undefined;
    const fail = (message: string): never => {
      firstFailure ??= message;
      throw new Error(message);
    };
    /** Figures of the run (requests sent include fast-check's shrinking); FUZZ_REPORT for bench/fuzz.js. */
    const report = (outcome: { failures: number; failure?: string }) => {
      const summary = {
        seed: SEED,
        runs: RUNS,
        requestsSent: stats.cases,
        ...outcome,
        acceptedWrites: stats.acceptedWrites,
        seconds: Math.round((Date.now() - started) / 100) / 10,
        answers: Object.fromEntries([...stats.byAnswer].sort((x, y) => y[1] - x[1])),
      };
      process.stdout.write(`fuzz summary: ${JSON.stringify(summary)}\n`);
      if (process.env.FUZZ_REPORT) writeFileSync(process.env.FUZZ_REPORT, JSON.stringify(summary, null, 2));
    };
    await withSuperuser(cluster.node('a'), async (db) => {
      const maxId = Number(
        (await db.query<{ m: string }>('select max(id)::text as m from deposits')).rows[0].m,
      );
      const before = await snapshot(db, maxId);
      let appended = 0;
      const property = fc.asyncProperty(requestArb(fixture), async (r: FuzzRequest) => {
        const n = stats.cases++;
        const ex = await exchange(cluster.node(r.target).apiPort, ids[r.cred], serialize(r), {
          halfClose: r.framing === 'long',
          timeoutMs: 15_000,
          // Spread over loopback sources: per-address registration limits stay out of the way.
          localAddress: `127.0.0.${2 + (n % 250)}`,
        });
        const answer = ex.kind === 'response' ? `${ex.status} ${codeOf(ex.body)}` : ex.kind;
        stats.byAnswer.set(answer, (stats.byAnswer.get(answer) ?? 0) + 1);
        const bad = violation(r, ex);
        if (bad) fail(`${bad}\nrequest: ${describeRequest(r)}`);
        for (const node of ['a', 'b'] as const) {
          if (!alive(node)) fail(`keytrusteed on node ${node} died\nrequest: ${describeRequest(r)}`);
        }
        const after = await snapshot(db, maxId);
        if (after.digest !== before.digest)
          fail(`stored data changed (digest)\nrequest: ${describeRequest(r)}`);
        // Any 2xx PUT/DELETE may append one row (express routes case-insensitively, and an
        // absolute-form target routes by its path: `/V1/DEPOSITS/x` is a deposit write too).
        const wrote =
          ex.kind === 'response' &&
          ex.status >= 200 &&
          ex.status < 300 &&
          ['PUT', 'DELETE'].includes(r.method.trim());
        if (wrote) stats.acceptedWrites++;
        const grew = after.appended - appended;
        // The next case (or a shrink re-run) starts from what is stored now.
        appended = after.appended;
        if (grew < 0 || grew > (wrote ? 1 : 0))
          fail(`${grew} row(s) appended by a request answered ${answer}\nrequest: ${describeRequest(r)}`);
      });
      try {
        await fc.assert(property, { numRuns: RUNS, seed: SEED });
      } catch (e) {
        report({ failures: 1, failure: `${firstFailure}\n${(e as Error).message.slice(0, 3000)}` });
        throw new Error(`first failure: ${firstFailure}\n\n${(e as Error).message}`);
      }
    });
    // Both processes still answer, and the passive holds exactly the active's data.
    for (const n of ['a', 'b'] as const) {
      expect((await httpsRequest(cluster.node(n).url, { path: '/v1/health', timeoutMs: 5_000 })).status).toBe(
        200,
      );
    }
    const digests = await Promise.all(
      (['a', 'b'] as const).map((n) =>
        withSuperuser(cluster.node(n), async (c) => (await snapshot(c, null)).digest),
      ),
    );
    expect(digests[1]).toBe(digests[0]);
    report({ failures: 0 });
    expect(stats.cases).toBeGreaterThanOrEqual(RUNS);
  },
  TIMEOUT_MS,
);

function codeOf(body: string): string {
  try {
    return String((JSON.parse(body) as { error?: { code?: string } }).error?.code ?? 'ok');
  } catch {
    return body ? 'non-JSON' : 'empty';
  }
}

/**
 * What the fuzzer found (issue 16), kept as explicit examples: Node's HTTP layer answered these
 * itself — a bare `400 Bad Request` / `431` / `417` without the documented body, or no answer
 * at all (CONNECT; a request followed by junk on the connection lost its own answer).
 */
const FOUND: [string, number, string, Partial<FuzzRequest>][] = [
  [
    'junk pipelined after a complete request: the request still gets its own answer',
    405,
    'METHOD_NOT_ALLOWED',
    { method: 'GET', path: '/v1/clients/register', body: '\u0000', framing: 'none' },
  ],
  [
    'a body longer than its Content-Length (the rest parsed as a next request)',
    400,
    'INVALID_REQUEST',
    {
      method: 'GET',
      path: '/v1/deposits/fz-seed',
      headers: [['content-type', 'application/json']],
      body: `{"value":"${'A'.repeat(88_000)}"}`,
      framing: 'short',
    },
  ],
  [
    'broken chunked framing inside the body',
    400,
    'INVALID_REQUEST',
    {
      method: 'PUT',
      path: '/v1/deposits/fz-seed',
      headers: [['content-type', 'application/json']],
      body: '{"value":"YQ=="}',
      framing: 'bad-chunked',
    },
  ],
  [
    'an unsupported Expect header',
    400,
    'INVALID_REQUEST',
    { path: '/v1/deposits', headers: [['expect', 'junk']] },
  ],
  [
    'headers over the size limit',
    413,
    'TOO_LARGE',
    { path: '/v1/deposits', headers: [['x-pad', 'p'.repeat(20_000)]] },
  ],
  [
    'a header name with a space',
    400,
    'INVALID_REQUEST',
    { path: '/v1/deposits', headers: [['x-bad name', 'v']] },
  ],
  [
    'a non-numeric Content-Length',
    400,
    'INVALID_REQUEST',
    { method: 'PUT', path: '/v1/deposits/x', body: '{}', framing: 'junk' },
  ],
  [
    'a control character in a header value',
    400,
    'INVALID_REQUEST',
    { path: '/v1/deposits', headers: [['x-ctl', 'a\u0001b']] },
  ],
  ['a space in the request target', 400, 'INVALID_REQUEST', { path: '/v1/deposits/a b' }],
  ['CONNECT', 405, 'METHOD_NOT_ALLOWED', { method: 'CONNECT', path: '127.0.0.1:443' }],
  [
    'metadata nested 7000 levels deep (was a 503 "internal error": JSON.stringify overflowed the stack)',
    413,
    'TOO_LARGE',
    {
      method: 'PUT',
      path: '/v1/deposits/fz-deep',
      headers: [['content-type', 'application/json']],
      body: `{"value":"","metadata":${'{"a":'.repeat(7000)}1${'}'.repeat(7000)}}`,
    },
  ],
];

test.each(FOUND)('regression: %s → %i %s, on both nodes', async (_what, status, code, partial) => {
  for (const target of ['a', 'b'] as const) {
    const r: FuzzRequest = {
      target,
      cred: 'client',
      method: 'GET',
      path: '/',
      headers: [],
      framing: 'exact',
      ...partial,
    };
    const ex = await exchange(cluster.node(target).apiPort, ids.client, serialize(r), { timeoutMs: 10_000 });
    expect(violation(r, ex)).toBeUndefined();
    expect(ex.kind === 'response' && { status: ex.status, code: codeOf(ex.body) }).toEqual({ status, code });
  }
  for (const n of ['a', 'b'] as const) expect(alive(n)).toBe(true);
});

test('regression: metadata 256 levels deep (the limit) is stored and read back on both nodes', async () => {
  const depth = 255;
  const metadata = `{"a":${'['.repeat(depth)}${']'.repeat(depth)}}`;
  const r: FuzzRequest = {
    target: 'a',
    cred: 'client',
    method: 'PUT',
    path: '/v1/deposits/fz-deepest',
    headers: [['content-type', 'application/json']],
    body: `{"value":"YQ==","metadata":${metadata}}`,
    framing: 'exact',
  };
  const put = await exchange(cluster.node('a').apiPort, ids.client, serialize(r), { timeoutMs: 10_000 });
  expect(put.kind === 'response' && put.status).toBe(201);
  for (const n of ['a', 'b'] as const) {
    const get = await exchange(
      cluster.node(n).apiPort,
      ids.client,
      serialize({ ...r, target: n, method: 'GET', headers: [], body: undefined }),
      { timeoutMs: 10_000 },
    );
    expect(get.kind === 'response' && get.status).toBe(200);
    const body = get.kind === 'response' ? (JSON.parse(get.body) as { metadata: unknown }) : undefined;
    expect(JSON.stringify(body?.metadata)).toBe(metadata);
  }
});
