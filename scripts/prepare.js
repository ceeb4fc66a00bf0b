#!/usr/bin/env node
/*
 * Makes sure `npm start` / `npm test` have what they need, before anything else runs
 * (DESIGN.md "Fresh machine"): the PostgreSQL server binaries and the system tools the tests
 * use (apt-get when root on Debian/Ubuntu, else one precise message), `npm ci` when
 * node_modules is missing or older than package-lock.json, and an incremental build.
 * Plain Node, no dependencies: it runs before `npm ci`.
 */
'use strict';
const { execFileSync, spawnSync } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');

const ROOT = path.join(__dirname, '..');
// The replicator's REQUIRED_PG_BINARIES: repeated because this runs before anything is built.
const PG_BINARIES = [
  'initdb',
  'pg_ctl',
  'postgres',
  'pg_basebackup',
  'pg_rewind',
  'pg_dump',
  'pg_controldata',
  'pg_receivewal',
];
const forTests = process.argv.includes('--test');

function say(msg) {
  process.stderr.write(`[prepare] ${msg}\n`);
}

function hasCommand(cmd) {
  return spawnSync('sh', ['-c', `command -v ${cmd}`], { stdio: 'ignore' }).status === 0;
}

function pgBinDir() {
  const candidates = [];
  if (process.env.PG_BINDIR) candidates.push(process.env.PG_BINDIR);
  const root = '/usr/lib/postgresql';
  if (fs.existsSync(root)) {
    for (const m of fs
      .readdirSync(root)
      .filter((d) => /^\d+$/.test(d))
      .sort((a, b) => b - a)) {
      candidates.push(path.join(root, m, 'bin'));
    }
  }
  return candidates.find((d) => PG_BINARIES.every((b) => fs.existsSync(path.join(d, b))));
}

/** apt package → a command it provides, for the tools we need. */
function missingPackages() {
  const missing = [];
  if (!pgBinDir()) missing.push('postgresql');
  if (!hasCommand('pgrep')) missing.push('procps');
  if (!hasCommand('useradd') || !hasCommand('getent')) missing.push('passwd');
  if (forTests && !hasCommand('gpg')) missing.push('gnupg');
  if (forTests && !hasCommand('redis-server')) missing.push('redis-server');
  if (forTests && !hasCommand('promtool')) missing.push('prometheus');
  // Key HSM tests: SoftHSM2 as the PKCS#11 token.
  if (forTests && !hasCommand('softhsm2-util')) missing.push('softhsm2');
  // Contact key page tests: a real headless Chromium (playwright-core drives /usr/bin/chromium).
  if (forTests && !hasCommand('chromium')) missing.push('chromium');
  // Network partition test: namespaces and links (iproute2), packet loss where the kernel has no
  // netem (nftables).
  if (forTests && !hasCommand('ip')) missing.push('iproute2');
  if (forTests && !hasCommand('nft')) missing.push('nftables');
  // The PKCS#11 binding (pkcs11js) is a native addon that npm ci builds with node-gyp.
  if (!hasCommand('python3')) missing.push('python3');
  if (!hasCommand('make')) missing.push('make');
  if (!hasCommand('g++')) missing.push('g++');
  return missing;
}

function installSystemPackages() {
  const missing = missingPackages();
  if (missing.length === 0) return;
  const isRoot = typeof process.getuid === 'function' && process.getuid() === 0;
  if (isRoot && hasCommand('apt-get')) {
    say(`installing system packages: ${missing.join(' ')} (apt-get)…`);
    const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
    execFileSync('apt-get', ['update', '-qq'], { stdio: 'inherit', env });
    execFileSync('apt-get', ['install', '-y', '-qq', '--no-install-recommends', ...missing], {
      stdio: 'inherit',
      env,
    });
    // promtool comes with the Prometheus server, which the package starts under systemd: the tests
    // need only promtool, and :9090 must stay free (the HSM tests use it).
    if (missing.includes('prometheus')) {
      if (fs.existsSync('/run/systemd/system')) {
        spawnSync('systemctl', ['disable', '--now', 'prometheus.service'], { stdio: 'ignore' });
      } else {
        spawnSync('/etc/init.d/prometheus', ['stop'], { stdio: 'ignore' });
        spawnSync('update-rc.d', ['prometheus', 'disable'], { stdio: 'ignore' });
      }
    }
    const still = missingPackages();
    if (still.length) fail(`apt-get finished but these are still missing: ${still.join(' ')}`);
    return;
  }
  fail(
    `missing system packages: ${missing.join(' ')}. Install them (Debian/Ubuntu: sudo apt-get install ${missing.join(' ')}), ` +
      'or set PG_BINDIR to a directory holding the PostgreSQL server binaries (' +
      PG_BINARIES.join(', ') +
      ').',
  );
}

/** The tests use a real Redis on 127.0.0.1:6379; start one (no persistence) when none answers. */
function ensureRedis() {
  const probe = spawnSync('bash', ['-c', '(exec 3<>/dev/tcp/127.0.0.1/6379) 2>/dev/null'], {
    stdio: 'ignore',
  });
  if (probe.status === 0) return;
  if (!hasCommand('redis-server'))
    fail('npm test needs Redis on 127.0.0.1:6379 (Debian: apt-get install redis-server)');
  say('starting redis-server on 127.0.0.1:6379 (no persistence)…');
  fs.mkdirSync('/tmp/trustee-redis', { recursive: true });
  execFileSync(
    'redis-server',
    [
      '--daemonize',
      'yes',
      '--bind',
      '127.0.0.1',
      '--port',
      '6379',
      '--save',
      '',
      '--appendonly',
      'no',
      '--dir',
      '/tmp/trustee-redis',
    ],
    {
      stdio: 'inherit',
    },
  );
}

function mtime(p) {
  try {
    return fs.statSync(p).mtimeMs;
  } catch {
    return 0;
  }
}

function ensureNodeModules() {
  const marker = path.join(ROOT, 'node_modules', '.package-lock.json');
  const lock = path.join(ROOT, 'package-lock.json');
  if (!(mtime(marker) && mtime(marker) >= mtime(lock))) {
    say('installing npm dependencies (npm ci)…');
    execFileSync('npm', ['ci', '--no-audit', '--no-fund'], { cwd: ROOT, stdio: 'inherit' });
  }
  // The PKCS#11 binding is a native addon: an npm that skipped its install script (npm 11 without
  // the package.json allowScripts entry) leaves it unbuilt.
  const addon = path.join(ROOT, 'node_modules', 'pkcs11js', 'build', 'Release', 'pkcs11.node');
  if (fs.existsSync(path.join(ROOT, 'node_modules', 'pkcs11js')) && !fs.existsSync(addon)) {
    say('building the PKCS#11 native addon (npm rebuild pkcs11js)…');
    execFileSync('npm', ['rebuild', 'pkcs11js'], { cwd: ROOT, stdio: 'inherit' });
  }
}

function build() {
  // tsc -b is incremental: a no-op when dist is up to date.
  execFileSync(process.execPath, [path.join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc'), '-b'], {
    cwd: ROOT,
    stdio: 'inherit',
  });
}

function fail(msg) {
  say(`error: ${msg}`);
  process.exit(1);
}

try {
  installSystemPackages();
  if (forTests) ensureRedis();
  ensureNodeModules();
  build();
} catch (e) {
  fail(e.message);
}
