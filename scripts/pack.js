#!/usr/bin/env node
/*
 * `npm run pack`: the installable tarballs, versioned from one place.
 *
 *   1. The version is the root package.json's. Each package's version, the server's dependency on
 *      @trustee/replicator and its dev dependency on @trustee/sdk are set to it (in package.json
 *      and package-lock.json); `--check` refuses to change anything and fails on a mismatch.
 *   2. Build (`tsc -b`, then the SDK's ESM entry: scripts/sdk-esm.js); `--no-build` uses dist as is.
 *   3. dist-packages/trustee-sdk-X.tgz:    packages/sdk as `npm pack` makes it (its `files` list).
 *      dist-packages/trustee-server-X.tgz: packages/server with @trustee/replicator bundled
 *      (bundleDependencies, a real copy in node_modules/), the README, CHANGELOG and deploy/;
 *      `npm install -g ./trustee-server-X.tgz` is the whole installation.
 *
 * Options: --check, --no-build, --out DIR (default dist-packages), --json (a one-line JSON
 * summary on stdout, for tests and scripts). Progress and sizes go to stderr.
 * Plain Node, no dependencies.
 */
'use strict';
const { execFileSync } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');

const ROOT = path.join(__dirname, '..');
const PACKAGES = ['replicator', 'sdk', 'server'];
const SEMVER = /^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)(-[0-9A-Za-z.-]+)?(\+[0-9A-Za-z.-]+)?$/;

function say(msg) {
  process.stderr.write(`[pack] ${msg}\n`);
}

function fail(msg) {
  say(`error: ${msg}`);
  process.exit(1);
}

function parseArgs(argv) {
  const opts = { check: false, build: true, json: false, out: path.join(ROOT, 'dist-packages') };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--check') opts.check = true;
    else if (a === '--no-build') opts.build = false;
    else if (a === '--json') opts.json = true;
    else if (a === '--out' && argv[i + 1]) opts.out = path.resolve(argv[++i]);
    else
      fail(`unknown argument ${a} (usage: node scripts/pack.js [--check] [--no-build] [--json] [--out DIR])`);
  }
  return opts;
}

const readJson = (file) => JSON.parse(fs.readFileSync(file, 'utf8'));
const writeJson = (file, value) => fs.writeFileSync(file, `${JSON.stringify(value, null, 2)}\n`);

/** Sets `obj[key]` to `want`; returns a description of the change, or undefined when it already was. */
function setField(obj, key, want, where) {
  if (!obj || obj[key] === want) return undefined;
  const was = obj[key];
  obj[key] = want;
  return `${where}: ${was ?? '(none)'} → ${want}`;
}

/** Step 1: every version and cross-dependency from the root package.json's version. */
function syncVersions(check) {
  const version = readJson(path.join(ROOT, 'package.json')).version;
  if (typeof version !== 'string' || !SEMVER.test(version)) {
    fail(
      `the root package.json version ${JSON.stringify(version)} is not a semantic version (MAJOR.MINOR.PATCH)`,
    );
  }
  const changes = [];
  const files = [];
  for (const name of PACKAGES) {
    const file = path.join(ROOT, 'packages', name, 'package.json');
    const pkg = readJson(file);
    const before = changes.length;
    changes.push(setField(pkg, 'version', version, `packages/${name} version`));
    if (name === 'server') {
      changes.push(
        setField(pkg.dependencies, '@trustee/replicator', version, 'server → @trustee/replicator'),
      );
      changes.push(setField(pkg.devDependencies, '@trustee/sdk', version, 'server (dev) → @trustee/sdk'));
      if (pkg.dependencies['@trustee/sdk']) {
        fail('packages/server must not depend on @trustee/sdk at run time (it imports only its types)');
      }
    }
    if (changes.slice(before).some(Boolean)) files.push([file, pkg]);
  }
  const lockFile = path.join(ROOT, 'package-lock.json');
  const lock = readJson(lockFile);
  const lockBefore = changes.length;
  changes.push(setField(lock, 'version', version, 'package-lock version'));
  changes.push(setField(lock.packages[''], 'version', version, 'package-lock root version'));
  for (const name of PACKAGES) {
    const entry = lock.packages[`packages/${name}`];
    if (!entry) fail(`package-lock.json has no entry for packages/${name} (run npm install)`);
    changes.push(setField(entry, 'version', version, `package-lock packages/${name} version`));
  }
  const server = lock.packages['packages/server'];
  changes.push(
    setField(server.dependencies, '@trustee/replicator', version, 'package-lock server → replicator'),
  );
  changes.push(setField(server.devDependencies, '@trustee/sdk', version, 'package-lock server (dev) → sdk'));
  if (changes.slice(lockBefore).some(Boolean)) files.push([lockFile, lock]);

  const done = changes.filter(Boolean);
  if (done.length && check)
    fail(`versions differ from the root package.json's ${version}:\n  ${done.join('\n  ')}`);
  for (const [file, value] of files) writeJson(file, value);
  for (const c of done) say(`set ${c}`);
  say(`version ${version}${done.length ? '' : ' (every package already at it)'}`);
  return version;
}

function run(cmd, args, cwd) {
  return execFileSync(cmd, args, {
    cwd,
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'pipe'],
    maxBuffer: 64 << 20,
  });
}

/** `npm pack --json` of `dir` into `dest`; returns npm's description of the tarball. */
function npmPack(dir, dest) {
  let out;
  try {
    out = run('npm', ['pack', '--json', '--pack-destination', dest], dir);
  } catch (e) {
    fail(`npm pack in ${path.relative(ROOT, dir) || dir} failed:\n${e.stderr || e.message}`);
  }
  const info = JSON.parse(out.slice(out.indexOf('[')))[0];
  return { ...info, path: path.join(dest, info.filename) };
}

function extract(tgz, dir) {
  fs.mkdirSync(dir, { recursive: true });
  run('tar', ['-xzf', tgz, '-C', dir, '--strip-components=1'], ROOT);
}

/** The runtime files of the server must not load the SDK (it is a dev dependency, for types). */
function assertServerNeedsNoSdk() {
  const found = [];
  const walk = (dir) => {
    for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
      const p = path.join(dir, e.name);
      if (e.isDirectory()) walk(p);
      else if (
        e.name.endsWith('.js') &&
        /require\(["']@trustee\/sdk["']\)/.test(fs.readFileSync(p, 'utf8'))
      ) {
        found.push(path.relative(ROOT, p));
      }
    }
  };
  walk(path.join(ROOT, 'packages', 'server', 'dist'));
  if (found.length)
    fail(`the server loads @trustee/sdk at run time (${found.join(', ')}): make it a dependency`);
}

/**
 * npm (11) treats the dependencies of a bundled package as part of the bundle: pg, needed by the
 * replicator, would be left as an empty directory at install. The server depends on each of them
 * itself (checked: same range), so the bundled copy's manifest drops them and Node finds the
 * server's copies one level up.
 */
function liftBundledDependencies(dir, serverManifest) {
  const file = path.join(dir, 'package.json');
  const manifest = readJson(file);
  for (const [dep, range] of Object.entries(manifest.dependencies || {})) {
    if (serverManifest.dependencies[dep] !== range) {
      fail(`packages/server must depend on ${dep}@${range} as packages/${path.basename(dir)} does (bundled)`);
    }
  }
  delete manifest.dependencies;
  writeJson(file, manifest);
}

function copyInto(src, dest) {
  fs.cpSync(path.join(ROOT, src), path.join(dest, src), { recursive: true });
}

/** The server tarball: its own pack, plus the replicator's pack as a bundled dependency. */
function packServer(version, out) {
  const stage = fs.mkdtempSync(path.join(os.tmpdir(), 'trustee-pack-'));
  try {
    const server = path.join(stage, 'server');
    extract(npmPack(path.join(ROOT, 'packages', 'server'), stage).path, server);
    const replicator = npmPack(path.join(ROOT, 'packages', 'replicator'), stage);
    const bundled = path.join(server, 'node_modules', '@trustee', 'replicator');
    extract(replicator.path, bundled);
    liftBundledDependencies(bundled, readJson(path.join(server, 'package.json')));
    for (const f of ['README.md', 'CHANGELOG.md', 'deploy']) {
      if (fs.existsSync(path.join(ROOT, f))) copyInto(f, server);
    }
    const manifest = readJson(path.join(server, 'package.json'));
    delete manifest.devDependencies;
    delete manifest.scripts;
    delete manifest.types; // an application: JavaScript only, no declarations shipped
    manifest.files = [...manifest.files, 'deploy/', 'CHANGELOG.md'];
    manifest.bundleDependencies = ['@trustee/replicator'];
    if (manifest.dependencies['@trustee/replicator'] !== version)
      fail('server → replicator version mismatch');
    writeJson(path.join(server, 'package.json'), manifest);
    const packed = npmPack(server, out);
    const paths = new Set(packed.files.map((f) => f.path));
    for (const need of [
      'node_modules/@trustee/replicator/dist/index.js',
      'node_modules/@trustee/replicator/package.json',
      'migrations/0001-init.sql',
      'dist/cli/ktadmin.js',
      'deploy/systemd/keytrusteed.service',
    ]) {
      if (!paths.has(need)) fail(`the server tarball lacks ${need}`);
    }
    return { ...packed, dependencies: Object.keys(manifest.dependencies).length };
  } finally {
    fs.rmSync(stage, { recursive: true, force: true });
  }
}

function kb(n) {
  return `${(n / 1000).toFixed(1)} kB`;
}

function main() {
  const opts = parseArgs(process.argv.slice(2));
  const version = syncVersions(opts.check);
  if (opts.build) {
    say('building (tsc -b)…');
    try {
      run(process.execPath, [require.resolve('typescript/bin/tsc', { paths: [ROOT] }), '-b'], ROOT);
    } catch (e) {
      fail(`tsc -b failed:\n${e.stdout || ''}${e.stderr || e.message}`);
    }
  }
  require('./sdk-esm').generate();
  assertServerNeedsNoSdk();
  fs.mkdirSync(opts.out, { recursive: true });

  say('packing @trustee/sdk…');
  const sdkDir = path.join(ROOT, 'packages', 'sdk');
  const sdk = npmPack(sdkDir, opts.out);
  sdk.dependencies = Object.keys(readJson(path.join(sdkDir, 'package.json')).dependencies).length;
  say('packing @trustee/server (with @trustee/replicator bundled)…');
  const server = packServer(version, opts.out);

  for (const p of [sdk, server]) {
    say(
      `${p.path.startsWith(`${process.cwd()}${path.sep}`) ? path.relative(process.cwd(), p.path) : p.path}: ${kb(p.size)} packed, ${kb(p.unpackedSize)} unpacked, ` +
        `${p.entryCount} files, ${p.dependencies} direct dependencies${p.bundled.length ? `, bundled: ${p.bundled.join(' ')}` : ''}`,
    );
  }
  const summary = { version };
  for (const [key, p] of [
    ['sdk', sdk],
    ['server', server],
  ]) {
    summary[key] = {
      path: p.path,
      size: p.size,
      unpackedSize: p.unpackedSize,
      files: p.files.map((f) => f.path),
      dependencies: p.dependencies,
      bundled: p.bundled,
    };
  }
  if (opts.json) process.stdout.write(`${JSON.stringify(summary)}\n`);
}

main();
