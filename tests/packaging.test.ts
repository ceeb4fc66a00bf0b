import { spawn, type ChildProcess } from 'node:child_process';
import { readdirSync, readFileSync, realpathSync, writeFileSync, mkdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { readPostmasterPid } from '@trustee/replicator';
import { waitForHealth } from '@trustee/server';
import { freePort } from '../packages/server/test/support/ports';
import { isAlive, trackPid, untrackPid, waitForExit } from '../packages/server/test/support/processes';
import { makeTempDir, removeDir } from '../packages/server/test/support/temp-dir';

/**
 * The tarballs of `npm run pack`, installed as a user would: the server (with the replicator
 * bundled) and the SDK into a fresh global prefix, the SDK alone into a fresh project (no
 * workspace links). The README's single-node runbook then runs with the installed commands only
 * (found on PATH), and the SDK is loaded with `import` and with `require` against that node.
 * npm uses its cache (--prefer-offline); it reaches the registry only for what is not there.
 */
const ROOT = join(__dirname, '..');
const ROOT_VERSION = (JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string })
  .version;
const TSC = join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc');

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs `cmd` (found on PATH when not absolute) to completion, SIGKILLed after timeoutMs. */
function run(
  cmd: string,
  args: string[],
  opts: { cwd?: string; env?: NodeJS.ProcessEnv; timeoutMs?: number } = {},
): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { cwd: opts.cwd, env: { ...process.env, ...opts.env }, stdio: 'pipe' });
    if (child.pid) trackPid(child.pid);
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs ?? 60_000);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      if (child.pid) untrackPid(child.pid);
      resolve({ code, stdout, stderr });
    });
    child.stdin.end();
  });
}

function ok(r: Run, what: string): string {
  if (r.code !== 0) throw new Error(`${what}: exit ${r.code}\n${r.stderr}${r.stdout}`);
  return r.stdout;
}

interface Packed {
  path: string;
  size: number;
  unpackedSize: number;
  files: string[];
  dependencies: number;
  bundled: string[];
}

describe('packaging: tarballs installed without a checkout', () => {
  let work: string;
  let packed: { version: string; sdk: Packed; server: Packed };
  let prefix: string;
  let project: string;
  let server: ChildProcess | undefined;
  let apiPort: number;
  let dbPort: number;
  let clientConf: string;
  const confdir = () => join(work, 'kt', 'confdir');
  const dbDir = () => join(work, 'kt', 'db');
  /** The installed commands by name: the prefix's bin/ first on PATH, then node's directory. */
  const installed = (cmd: string, args: string[], timeoutMs?: number) =>
    run(cmd, args, {
      cwd: work,
      env: { PATH: `${join(prefix, 'bin')}:${dirname(process.execPath)}:/usr/sbin:/usr/bin:/sbin:/bin` },
      timeoutMs,
    });

  beforeAll(async () => {
    work = makeTempDir('trustee-packaging-');
    prefix = join(work, 'prefix');
    project = join(work, 'project');
    mkdirSync(project);
    mkdirSync(join(work, 'kt'));
    writeFileSync(
      join(project, 'package.json'),
      JSON.stringify({ name: 'kms-app', version: '1.0.0', private: true }),
    );
    apiPort = await freePort();
    dbPort = await freePort();
    // --check: versions already agree (nothing written); --no-build: `npm test` built dist.
    const out = ok(
      await run(
        process.execPath,
        [join(ROOT, 'scripts', 'pack.js'), '--check', '--no-build', '--json', '--out', join(work, 'tgz')],
        {
          cwd: ROOT,
          timeoutMs: 120_000,
        },
      ),
      'npm run pack',
    );
    packed = JSON.parse(out.trim().split('\n').pop() as string);
    const npm = ['--no-audit', '--no-fund', '--prefer-offline', '--loglevel=error'];
    await Promise.all([
      run('npm', ['install', '-g', '--prefix', prefix, ...npm, packed.server.path, packed.sdk.path], {
        cwd: work,
        timeoutMs: 240_000,
      }).then((r) => ok(r, 'npm install -g server + sdk')),
      run('npm', ['install', ...npm, packed.sdk.path], { cwd: project, timeoutMs: 240_000 }).then((r) =>
        ok(r, 'npm install sdk'),
      ),
    ]);
  }, 420_000);

  afterAll(async () => {
    if (server?.pid) {
      server.kill('SIGTERM');
      if (!(await waitForExit(server.pid, 10_000))) server.kill('SIGKILL');
      untrackPid(server.pid);
    }
    if (prefix) await installed('ktadmin', ['--confdir', confdir(), 'db', '--stop']).catch(() => undefined);
    const pg = work ? readPostmasterPid(dbDir()) : undefined;
    if (pg && isAlive(pg)) process.kill(pg, 'SIGKILL');
    if (work) removeDir(work);
  }, 60_000);

  it('the tarballs hold what runs: SDK dist + ESM entry + types, server with migrations and the replicator bundled', () => {
    expect(packed.version).toBe(ROOT_VERSION);
    const sdk = packed.sdk.files;
    expect(sdk).toEqual(
      expect.arrayContaining([
        'package.json',
        'README.md',
        'bin/ktclient.js',
        'dist/index.js',
        'dist/index.d.ts',
        'dist/index.mjs',
        'dist/index.d.mts',
      ]),
    );
    expect(sdk.filter((f) => /\.map$|\.test\.|^src\/|^test\/|^examples\//.test(f))).toEqual([]);
    const sdkManifest = JSON.parse(
      readFileSync(join(project, 'node_modules', '@trustee', 'sdk', 'package.json'), 'utf8'),
    ) as { version: string; dependencies: Record<string, string> };
    expect(sdkManifest.version).toBe(ROOT_VERSION);
    expect(Object.keys(sdkManifest.dependencies).filter((d) => d.startsWith('@trustee/'))).toEqual([]);
    expect(packed.sdk.dependencies).toBe(Object.keys(sdkManifest.dependencies).length);

    const srv = packed.server.files;
    expect(packed.server.bundled).toEqual(['@trustee/replicator']);
    for (const m of readdirSync(join(ROOT, 'packages', 'server', 'migrations'))) {
      expect(srv).toContain(`migrations/${m}`);
    }
    expect(srv).toEqual(
      expect.arrayContaining([
        'bin/ktadmin.js',
        'bin/keytrusteed.js',
        'bin/keytrustee-orgtool.js',
        'bin/ktbackup.js',
        'node_modules/@trustee/replicator/dist/index.js',
        'deploy/systemd/keytrusteed.service',
        'deploy/systemd/keytrustee-db.service',
        'README.md',
        'CHANGELOG.md',
      ]),
    );
    // No sources, maps, declarations or compiled tests; deploy/ ships as is (its promtool rule
    // tests, alerts.test.yml, are an operator's asset).
    expect(
      srv.filter(
        (f) =>
          /\.map$|\.test\.|^src\/|\.d\.ts$/.test(f) &&
          !f.startsWith('node_modules/') &&
          !f.startsWith('deploy/'),
      ),
    ).toEqual([]);
    expect(srv).toContain('deploy/prometheus/alerts.yml');
    const serverManifest = JSON.parse(
      readFileSync(join(prefix, 'lib', 'node_modules', '@trustee', 'server', 'package.json'), 'utf8'),
    ) as { dependencies: Record<string, string> };
    expect(serverManifest.dependencies['@trustee/replicator']).toBe(ROOT_VERSION);
    expect(serverManifest.dependencies['@trustee/sdk']).toBeUndefined();
    console.log(
      `packed: sdk ${packed.sdk.size} B (${packed.sdk.unpackedSize} B unpacked, ${packed.sdk.dependencies} deps), ` +
        `server ${packed.server.size} B (${packed.server.unpackedSize} B unpacked, ${packed.server.dependencies} deps)`,
    );
  });

  it('every installed command is on PATH and reports the root version', async () => {
    for (const cmd of ['ktadmin', 'keytrusteed', 'keytrustee-orgtool', 'ktbackup', 'ktclient']) {
      expect(ok(await installed(cmd, ['--version']), `${cmd} --version`).trim()).toBe(ROOT_VERSION);
    }
    const which = ok(await installed('sh', ['-c', 'command -v ktadmin']), 'command -v').trim();
    expect(which).toBe(join(prefix, 'bin', 'ktadmin'));
  });

  it('single-node runbook with the installed commands only: init, db --bootstrap, keytrusteed, orgtool, register, put, get', async () => {
    ok(
      await installed('ktadmin', [
        '--confdir',
        confdir(),
        'init',
        '--host',
        'localhost',
        '--port',
        String(apiPort),
      ]),
      'ktadmin init',
    );
    ok(
      await installed(
        'ktadmin',
        ['--confdir', confdir(), 'db', '--bootstrap', '--port', String(dbPort), '--pg-rootdir', dbDir()],
        120_000,
      ),
      'ktadmin db --bootstrap',
    );
    const pgPid = readPostmasterPid(dbDir());
    expect(pgPid).toBeGreaterThan(0);
    if (pgPid) trackPid(pgPid);

    server = spawn('keytrusteed', ['--confdir', confdir()], {
      cwd: work,
      env: {
        ...process.env,
        PATH: `${join(prefix, 'bin')}:${dirname(process.execPath)}:${process.env.PATH}`,
      },
      stdio: 'ignore',
    });
    if (server.pid) trackPid(server.pid);
    const url = `https://localhost:${apiPort}`;
    await waitForHealth(url, 60_000);
    // keytrusteed is the installed command, run from outside the checkout.
    expect(realpathSync(`/proc/${server.pid}/cwd`)).toBe(realpathSync(work));
    const cmdline = readFileSync(`/proc/${server.pid}/cmdline`, 'utf8').split('\0');
    expect(cmdline[1]).toBe(join(prefix, 'bin', 'keytrusteed'));

    ok(
      await installed('keytrustee-orgtool', [
        '--confdir',
        confdir(),
        'add',
        '-n',
        'acme',
        '-c',
        'admin@acme.example',
      ]),
      'orgtool add',
    );
    const orgs = JSON.parse(
      ok(await installed('keytrustee-orgtool', ['--confdir', confdir(), 'list']), 'orgtool list'),
    ) as Record<string, { auth_secret: string }>;

    clientConf = join(work, 'client.conf');
    const reg = ok(
      await installed('ktclient', [
        'register',
        '--server',
        url,
        '--org',
        'acme',
        '--auth',
        orgs.acme.auth_secret,
        '--ca',
        join(confdir(), '.ssl', 'ssl-cert-keytrustee.pem'),
        '--config',
        clientConf,
      ]),
      'ktclient register',
    );
    expect(reg).toMatch(/registered \d+R\/[0-9A-F]{40} \(active\)/);
    ok(await installed('ktclient', ['--config', clientConf, 'put', 'db-key', '--value', 's3cret']), 'put');
    expect(ok(await installed('ktclient', ['--config', clientConf, 'get', 'db-key']), 'get')).toBe('s3cret');
  }, 300_000);

  it('the SDK tarball in a fresh project: import (.mjs) and require (.cjs) share one copy; put/get against the node', async () => {
    expect(clientConf).toBeDefined();
    const installedSdk = realpathSync(join(project, 'node_modules', '@trustee', 'sdk'));
    expect(installedSdk.startsWith(realpathSync(project))).toBe(true); // a copy, not a workspace link
    writeFileSync(
      join(project, 'esm.mjs'),
      `import { TrusteeClient, TrusteeError, isTrusteeError } from '@trustee/sdk';
import { createRequire } from 'node:module';
const cjs = createRequire(import.meta.url)('@trustee/sdk');
const client = TrusteeClient.fromConfigFile(process.argv[2]);
const put = await client.put('from-esm', Buffer.from('esm-value'));
const got = await client.get('from-esm');
let err;
try { await client.get('absent'); } catch (e) { err = e; }
client.close();
console.log(JSON.stringify({
  resolved: import.meta.resolve('@trustee/sdk'),
  version: put.version, value: got.value.toString(), code: err?.code,
  sameClient: TrusteeClient === cjs.TrusteeClient,
  instanceofEsm: err instanceof TrusteeError, instanceofCjs: err instanceof cjs.TrusteeError,
  isTrusteeError: isTrusteeError(err),
}));
`,
    );
    writeFileSync(
      join(project, 'cjs.cjs'),
      `const sdk = require('@trustee/sdk');
(async () => {
  const esm = await import('@trustee/sdk');
  const client = sdk.TrusteeClient.fromConfigFile(process.argv[2]);
  const fromEsm = await client.get('from-esm');
  await client.put('from-cjs', Buffer.from('cjs-value'));
  const got = await client.get('from-cjs');
  const ktclientPut = await client.get('db-key');
  let err;
  try { await client.get('absent'); } catch (e) { err = e; }
  client.close();
  console.log(JSON.stringify({
    resolved: require.resolve('@trustee/sdk'),
    fromEsm: fromEsm.value.toString(), value: got.value.toString(), ktclientPut: ktclientPut.value.toString(),
    code: err && err.code,
    sameError: sdk.TrusteeError === esm.TrusteeError,
    instanceofEsm: err instanceof esm.TrusteeError, instanceofCjs: err instanceof sdk.TrusteeError,
  }));
})().catch((e) => { console.error(e); process.exit(1); });
`,
    );
    const esm = JSON.parse(
      ok(await run(process.execPath, ['esm.mjs', clientConf], { cwd: project }), 'esm.mjs'),
    );
    expect(esm).toEqual({
      resolved: expect.stringMatching(/\/project\/node_modules\/@trustee\/sdk\/dist\/index\.mjs$/),
      version: 1,
      value: 'esm-value',
      code: 'NOT_FOUND',
      sameClient: true,
      instanceofEsm: true,
      instanceofCjs: true,
      isTrusteeError: true,
    });
    const cjs = JSON.parse(
      ok(await run(process.execPath, ['cjs.cjs', clientConf], { cwd: project }), 'cjs.cjs'),
    );
    expect(cjs).toEqual({
      resolved: expect.stringMatching(/\/project\/node_modules\/@trustee\/sdk\/dist\/index\.js$/),
      fromEsm: 'esm-value',
      value: 'cjs-value',
      ktclientPut: 's3cret',
      code: 'NOT_FOUND',
      sameError: true,
      instanceofEsm: true,
      instanceofCjs: true,
    });
  }, 120_000);

  it('tsc type-checks consumer .mts and .cts files against the packed types (module node16)', async () => {
    const sdkImport = `import { TrusteeClient, TrusteeError, type Deposit, type ErrorCode } from '@trustee/sdk';`;
    const body = `
export async function read(c: TrusteeClient, name: string): Promise<Deposit | undefined> {
  try {
    return await c.get(name);
  } catch (e) {
    if (e instanceof TrusteeError && e.code === 'NOT_FOUND') return undefined;
    throw e;
  }
}
const code: ErrorCode = 'NOT_FOUND';
export const made = new TrusteeError(code, 'x');
// @ts-expect-error the packed types are real: a number is not a config path
TrusteeClient.fromConfigFile(42);
`;
    writeFileSync(join(project, 'consumer.mts'), `${sdkImport}\n${body}`);
    writeFileSync(
      join(project, 'consumer.cts'),
      `${sdkImport}\nimport sdk = require('@trustee/sdk');\nexport const same: typeof TrusteeClient = sdk.TrusteeClient;\n${body}`,
    );
    writeFileSync(
      join(project, 'tsconfig.json'),
      JSON.stringify({
        compilerOptions: {
          module: 'node16',
          moduleResolution: 'node16',
          target: 'es2022',
          strict: true,
          noEmit: true,
          types: ['node'],
          typeRoots: [join(ROOT, 'node_modules', '@types')],
        },
        files: ['consumer.mts', 'consumer.cts'],
      }),
    );
    const out = ok(
      await run(process.execPath, [TSC, '-p', 'tsconfig.json', '--explainFiles'], {
        cwd: project,
        timeoutMs: 120_000,
      }),
      'tsc',
    );
    // The ESM file got the import types, the CommonJS file the require types.
    expect(out).toMatch(
      /node_modules\/@trustee\/sdk\/dist\/index\.d\.mts\n\s+Imported via '@trustee\/sdk' from file 'consumer\.mts'/,
    );
    expect(out).toMatch(
      /node_modules\/@trustee\/sdk\/dist\/index\.d\.ts\n(\s+.*\n)*?\s+Imported via '@trustee\/sdk' from file 'consumer\.cts'/,
    );
  }, 150_000);
});
