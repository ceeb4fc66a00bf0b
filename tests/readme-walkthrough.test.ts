import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { readPostmasterPid } from '@trustee/replicator';
import { waitForHealth } from '@trustee/server';
import { BINS, runCli, type CliResult } from '../packages/server/test/support/cli';
import { httpsRequest } from '../packages/server/test/support/https-request';
import { freePort } from '../packages/server/test/support/ports';
import { trackPid, untrackPid, waitForExit } from '../packages/server/test/support/processes';
import { makeTempDir, removeDir } from '../packages/server/test/support/temp-dir';

/**
 * The README's single-node walkthrough, command by command, through the installed CLIs only —
 * as a new user would type it (free ports instead of the defaults).
 */
describe('README single-node walkthrough', () => {
  let dir: string;
  let server: ChildProcess | undefined;
  let apiPort: number;
  let dbPort: number;
  const confdir = () => join(dir, 'confdir');
  const ok = (r: CliResult) => {
    if (r.code !== 0) throw new Error(`exit ${r.code}: ${r.stderr}`);
    return r.stdout;
  };

  beforeAll(async () => {
    dir = makeTempDir('trustee-readme-');
    apiPort = await freePort();
    dbPort = await freePort();
  });
  afterAll(async () => {
    if (server?.pid) {
      server.kill('SIGTERM');
      await waitForExit(server.pid, 10_000);
      untrackPid(server.pid);
    }
    await runCli(BINS.ktadmin, ['--confdir', confdir(), 'db', '--stop']);
    const pg = readPostmasterPid(join(dir, 'db'));
    if (pg) process.kill(pg, 'SIGKILL');
    removeDir(dir);
  });

  it('init → db --bootstrap → keytrusteed → orgtool add/list → ktclient register → put/get, over mTLS', async () => {
    ok(
      await runCli(BINS.ktadmin, [
        '--confdir',
        confdir(),
        'init',
        '--host',
        'localhost',
        '--port',
        String(apiPort),
      ]),
    );
    ok(
      await runCli(BINS.ktadmin, [
        '--confdir',
        confdir(),
        'db',
        '--bootstrap',
        '--port',
        String(dbPort),
        '--pg-rootdir',
        join(dir, 'db'),
      ]),
    );
    const pgPid = readPostmasterPid(join(dir, 'db'));
    if (pgPid) trackPid(pgPid);

    server = spawn(process.execPath, [BINS.keytrusteed, '--confdir', confdir()], { stdio: 'ignore' });
    if (server.pid) trackPid(server.pid);
    await waitForHealth(`https://localhost:${apiPort}`, 20_000);
    expect(readFileSync(join(dir, 'keytrusteed.pid'), 'utf8').trim()).toBe(String(server.pid));

    ok(
      await runCli(BINS.orgtool, [
        '--confdir',
        confdir(),
        'add',
        '-n',
        'acme',
        '-c',
        'admin@acme.example,ops@acme.example',
      ]),
    );
    const orgs = JSON.parse(ok(await runCli(BINS.orgtool, ['--confdir', confdir(), 'list']))) as Record<
      string,
      { auth_secret: string }
    >;
    const code = orgs.acme.auth_secret;

    const clientConf = join(dir, 'client.conf');
    const url = `https://localhost:${apiPort}`;
    const reg = ok(
      await runCli(BINS.ktclient, [
        'register',
        '--server',
        url,
        '--org',
        'acme',
        '--auth',
        code,
        '--ca',
        join(confdir(), '.ssl', 'ssl-cert-keytrustee.pem'),
        '--config',
        clientConf,
      ]),
    );
    expect(reg).toMatch(/registered \d+R\/[0-9A-F]{40} \(active\)/);
    expect(statSync(clientConf).mode & 0o777).toBe(0o600);

    ok(await runCli(BINS.ktclient, ['--config', clientConf, 'put', 'db-key', '--value', 's3cret']));
    expect(ok(await runCli(BINS.ktclient, ['--config', clientConf, 'get', 'db-key']))).toBe('s3cret');
    expect(ok(await runCli(BINS.ktclient, ['--config', clientConf, 'list']))).toMatch(/^db-key\t1\t/m);
    const status = JSON.parse(ok(await runCli(BINS.ktclient, ['--config', clientConf, '--json', 'status'])));
    expect(status.active).toBe(url);
    ok(await runCli(BINS.ktclient, ['--config', clientConf, 'delete', 'db-key']));
    const gone = await runCli(BINS.ktclient, ['--config', clientConf, 'get', 'db-key']);
    expect(gone.code).toBe(1);
    expect(gone.stderr).toMatch(/NOT_FOUND/);

    const fp = await httpsRequest(url, { path: '/?a=fingerprint' });
    expect(fp.text).toMatch(/^4096R\/[0-9A-F]{40}$/);
    const adminStatus = JSON.parse(
      ok(await runCli(BINS.ktadmin, ['--confdir', confdir(), 'status', '--json'])),
    );
    expect(adminStatus.fingerprint).toBe(fp.text);
    expect(adminStatus.role).toBe('active');
  });
});
