/**
 * Issue #10, finding 2 on a real pair: a client can be revoked while a node is down. On an active
 * whose passive is gone, `disable-client` commits on this node alone (and only that write); on a
 * passive whose active is gone, it goes into the node-local deny list, which the passive's server
 * honours within 1 s until the replicated state says disabled. `enable-client` stays a normal
 * two-node write.
 */
import { readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { BINS, runCli, type CliResult } from '../packages/server/test/support/cli';
import { registerTestClient, type TestClient } from '../packages/server/test/support/clients';
import { useTestCluster, type NodeName } from '../packages/server/test/support/cluster';
import {
  getDepositRaw,
  health,
  isWritable,
  putDepositRaw,
  valueOf,
} from '../packages/server/test/support/deposit-requests';
import { waitFor } from '../packages/server/test/support/processes';

describe('revocation while a node is down (issue #10, finding 2)', () => {
  const fixture = useTestCluster({ withClient: true });

  const orgtool = (n: NodeName, ...args: string[]): Promise<CliResult> =>
    runCli(BINS.orgtool, ['--confdir', fixture.cluster.node(n).confdir, ...args]);
  const url = (n: NodeName) => fixture.cluster.node(n).url;
  const denyListFile = (n: NodeName) => join(fixture.cluster.node(n).confdir, 'deny-list.json');
  const denied = (n: NodeName): string[] => {
    try {
      const list = JSON.parse(readFileSync(denyListFile(n), 'utf8')) as {
        entries: { fingerprint: string }[];
      };
      return list.entries.map((e) => e.fingerprint);
    } catch {
      return [];
    }
  };
  /** One request: the node answers 403 CLIENT_DISABLED for this client. */
  const refuses = async (n: NodeName, c: TestClient, name = 'mine'): Promise<boolean> => {
    const res = await getDepositRaw(url(n), c, name);
    return res.status === 403 && res.json?.error?.code === 'CLIENT_DISABLED';
  };
  const serves = async (n: NodeName, c: TestClient, name = 'mine'): Promise<boolean> =>
    (await getDepositRaw(url(n), c, name)).status === 200;

  async function victimWithDeposit(): Promise<TestClient> {
    const { cluster } = fixture;
    const victim = await registerTestClient(cluster.a.url, cluster.org, cluster.authCode);
    expect((await putDepositRaw(cluster.a.url, victim, 'mine', 'secret')).status).toBe(201);
    expect(await serves('b', victim)).toBe(true);
    return victim;
  }

  it('passive PostgreSQL killed: disable-client commits on the active alone and the active refuses the client at once; no other write gets through; the passive refuses it once it is back', async () => {
    const { cluster, client } = fixture;
    const victim = await victimWithDeposit();
    expect((await putDepositRaw(url('a'), client, 'kept', 'v')).status).toBe(201);

    await cluster.killPostgres('b');
    await waitFor('the active sees its passive gone', async () => !(await isWritable(url('a'))), 10_000, 100);

    const r = await orgtool('a', 'disable-client', '--fingerprint', victim.fingerprint);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout).toContain(`client ${victim.fingerprint} disabled on this node now`);
    expect(r.stdout).toContain('the passive applies it when it returns');
    console.log(r.stdout.trim());
    // At once: the very next request, no polling.
    expect(await refuses('a', victim)).toBe(true);
    expectCode(await putDepositRaw(url('a'), victim, 'more', 'x'), 403, 'CLIENT_DISABLED');

    // Revocation only: every other write is still refused, nothing written.
    expectCode(await putDepositRaw(url('a'), client, 'during-outage', 'lost'), 503, 'PASSIVE_UNAVAILABLE');
    const enable = await orgtool('a', 'enable-client', '--fingerprint', victim.fingerprint);
    expect(enable.code).toBe(1);
    expect(enable.stderr).toContain('PASSIVE_UNAVAILABLE');
    expect(await refuses('a', victim)).toBe(true);
    const add = await orgtool('a', 'add', '-n', 'outage-org', '-c', 'ops@outage.example');
    expect(add.code).toBe(1);
    expect(add.stderr).toContain('PASSIVE_UNAVAILABLE');
    // Bad input still gets a clear error, and no local commit.
    const unknown = await orgtool('a', 'disable-client', '--fingerprint', `2048R/${'A'.repeat(40)}`);
    expect(unknown.code).toBe(1);
    expect(unknown.stderr).toContain('NOT_FOUND');
    const malformed = await orgtool('a', 'disable-client', '--fingerprint', 'not-a-fingerprint');
    expect(malformed.code).toBe(1);
    expect(malformed.stderr).toContain('INVALID_REQUEST');
    // Already disabled: said so, nothing to do.
    const again = await orgtool('a', 'disable-client', '--fingerprint', victim.fingerprint);
    expect(again.code).toBe(0);
    expect(again.stdout).toContain('already disabled');
    // The active wrote no deny list: the database holds the revocation.
    expect(denied('a')).toEqual([]);

    // The passive returns and replays the local commit: it refuses the client too.
    await cluster.startPostgres('b');
    await waitFor('the passive refuses the disabled client', () => refuses('b', victim), 30_000, 100);
    await waitFor('writes accepted again', () => isWritable(url('a')), 30_000, 200);
    expect(await serves('b', client, 'kept')).toBe(true);
    expect(await refuses('a', victim)).toBe(true);
    for (const n of ['a', 'b'] as const) {
      expect((await getDepositRaw(url(n), client, 'during-outage')).status).toBe(404);
    }
    const orgs = JSON.parse((await orgtool('a', 'list')).stdout) as Record<string, unknown>;
    expect(orgs['outage-org']).toBeUndefined();
  });

  it('hung passive (SIGSTOP, still listed as streaming): disable-client on the active returns, in force on the active at once; the passive applies it when it resumes', async () => {
    const { cluster } = fixture;
    const victim = await victimWithDeposit();
    cluster.signalPostgres('b', 'SIGSTOP');
    let r: CliResult;
    try {
      const started = Date.now();
      r = await orgtool('a', 'disable-client', '--fingerprint', victim.fingerprint);
      console.log(`disable-client with a hung passive: ${Date.now() - started} ms: ${r.stdout.trim()}`);
      expect(r.code).toBe(0);
      expect(r.stdout).toContain('disabled on this node now; the passive applies it when it returns');
      expect(await refuses('a', victim)).toBe(true);
    } finally {
      cluster.signalPostgres('b', 'SIGCONT');
    }
    await waitFor('the passive refuses the disabled client', () => refuses('b', victim), 30_000, 100);
    await waitFor('writes accepted again', () => isWritable(url('a')), 30_000, 200);
  });

  it('active lost: disable-client on the passive goes into its deny list and the passive refuses the client within 1 s; after the active returns, disable-client there converges and the entry is dropped', async () => {
    const { cluster, client } = fixture;
    const victim = await victimWithDeposit();
    await cluster.killServer('a', 'SIGKILL');
    await cluster.killPostgres('a');

    const r = await orgtool('b', 'disable-client', '--fingerprint', victim.fingerprint);
    const at = Date.now();
    console.log(r.stdout.trim());
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout).toContain(`client ${victim.fingerprint} denied on this node`);
    expect(r.stdout).toContain(denyListFile('b'));
    expect(r.stdout).toContain('run `keytrustee-orgtool disable-client');
    await waitFor('the passive refuses the client', () => refuses('b', victim), 1000, 50);
    console.log(`passive refused the deny-listed client ${Date.now() - at} ms after the command`);
    expect(await serves('b', client, 'kept')).toBe(true);
    expect(denied('b')).toEqual([victim.fingerprint]);
    expect(statSync(denyListFile('b')).mode & 0o777).toBe(0o600);
    expect((await health(url('b'))).json.role).toBe('passive');

    // enable-client is a normal two-node write: refused on the passive, nothing changed.
    const enable = await orgtool('b', 'enable-client', '--fingerprint', victim.fingerprint);
    expect(enable.code).toBe(1);
    expect(enable.stderr).toContain('NOT_ACTIVE');
    expect(denied('b')).toEqual([victim.fingerprint]);
    expect(await refuses('b', victim)).toBe(true);
    // Bad inputs: clear errors, nothing added.
    const unknown = await orgtool('b', 'disable-client', '--fingerprint', `2048R/${'B'.repeat(40)}`);
    expect(unknown.code).toBe(1);
    expect(unknown.stderr).toContain('NOT_FOUND');
    const malformed = await orgtool('b', 'disable-client', '--fingerprint', '4096R/xyz');
    expect(malformed.code).toBe(1);
    expect(malformed.stderr).toContain('INVALID_REQUEST');
    expect(denied('b')).toEqual([victim.fingerprint]);
    const again = await orgtool('b', 'disable-client', '--fingerprint', victim.fingerprint);
    expect(again.code).toBe(0);
    expect(again.stdout).toContain('already');
    expect(denied('b')).toEqual([victim.fingerprint]);

    // The active returns: the deny list still holds on the passive.
    await cluster.startPostgres('a');
    await cluster.startServer('a');
    await waitFor('the active is writable again', () => isWritable(url('a')), 30_000, 200);
    expect(await refuses('b', victim)).toBe(true);
    expect(denied('b')).toEqual([victim.fingerprint]);

    // The operator re-runs the revocation on the active: a normal two-node write.
    const onActive = await orgtool('a', 'disable-client', '--fingerprint', victim.fingerprint);
    expect(onActive.code).toBe(0);
    expect(onActive.stdout).toContain('disabled on both nodes');
    expect(await refuses('a', victim)).toBe(true);
    // The replicated state now says disabled: the passive drops its entry by itself.
    await waitFor('the passive drops the entry', async () => denied('b').length === 0, 10_000, 100);
    expect(await refuses('b', victim)).toBe(true);

    // Nothing lingers: enable-client on the active serves the client on both nodes again.
    const back = await orgtool('a', 'enable-client', '--fingerprint', victim.fingerprint);
    expect(back.code).toBe(0);
    const enabledAt = Date.now();
    await waitFor('the passive serves the client again', () => serves('b', victim), 1000, 50);
    console.log(`passive served the re-enabled client ${Date.now() - enabledAt} ms after enable-client`);
    const read = await getDepositRaw(url('a'), victim, 'mine');
    expect(read.status).toBe(200);
    expect(valueOf(read)).toBe('secret');
  });
});

function expectCode(
  res: { status: number; json?: { error?: { code?: string } } },
  status: number,
  code: string,
) {
  expect({ status: res.status, code: res.json?.error?.code }).toEqual({ status, code });
}
