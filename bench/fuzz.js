#!/usr/bin/env node
/*
 * The long request-fuzzing run (issue 16): the same fast-check property as `npm test`
 * (packages/server/test/integration/fuzz-requests.test.ts, a real two-node cluster) with many
 * more cases and a fresh seed each time. Prints the seed, cases run and failures, and appends the
 * figures to bench/fuzz-results.md. Not part of `npm test`.
 * Usage: npm run bench:fuzz [-- --runs N] [--seed S]
 * A failure prints fast-check's counterexample; reproduce it with
 *   FUZZ_SEED=<seed> FUZZ_RUNS=<N> npx jest packages/server/test/integration/fuzz-requests.test.ts
 */
'use strict';
const { spawn, spawnSync } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');

const ROOT = path.join(__dirname, '..');
const TEST = 'packages/server/test/integration/fuzz-requests.test.ts';
const arg = (name, dflt) => {
  const i = process.argv.indexOf(name);
  return i > 0 ? Number(process.argv[i + 1]) : dflt;
};
const RUNS = Math.min(1_000_000, Math.max(1, arg('--runs', 20_000)));
const SEED = arg('--seed', Date.now() % 2_147_483_647);
const say = (m) => process.stdout.write(`${m}\n`);

async function main() {
  const report = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'trustee-fuzz-')), 'report.json');
  say(`fuzz: ${RUNS} cases, seed ${SEED} (a two-node cluster; ~100 cases/s on 2 cores)`);
  const started = Date.now();
  const code = await new Promise((resolve) => {
    const child = spawn(
      process.execPath,
      [require.resolve('jest/bin/jest'), TEST, '-t', 'random and malformed requests', '--ci'],
      {
        cwd: ROOT,
        stdio: ['ignore', 'inherit', 'inherit'],
        env: { ...process.env, FUZZ_RUNS: String(RUNS), FUZZ_SEED: String(SEED), FUZZ_REPORT: report },
      },
    );
    child.on('exit', (c, sig) => resolve(c ?? (sig ? 1 : 0)));
  });
  let r;
  try {
    r = JSON.parse(fs.readFileSync(report, 'utf8'));
  } catch {
    say(`fuzz: no report (jest exit ${code}): the cluster did not start or the run was interrupted`);
    process.exit(1);
  }
  fs.rmSync(path.dirname(report), { recursive: true, force: true });
  const minutes = ((Date.now() - started) / 60_000).toFixed(1);
  say(
    `fuzz result: seed ${r.seed}, cases ${r.runs} asked, requests sent ${r.requestsSent}, ` +
      `failures ${r.failures}, accepted writes ${r.acceptedWrites}, ${r.seconds} s fuzzing (${minutes} min total)`,
  );
  const answers = Object.entries(r.answers)
    .map(([k, v]) => `${k}: ${v}`)
    .join(', ');
  const results = path.join(__dirname, 'fuzz-results.md');
  fs.appendFileSync(
    results,
    `| ${new Date().toISOString().slice(0, 16)}Z | ${r.seed} | ${r.runs} | ${r.requestsSent} | ${r.failures} | ` +
      `${r.acceptedWrites} | ${r.seconds} | ${answers} |\n`,
  );
  // Keep the table as `npm run lint` (prettier --check) wants it.
  spawnSync(process.execPath, [require.resolve('prettier/bin/prettier.cjs'), '--write', results], {
    stdio: 'ignore',
  });
  if (r.failures) say(`fuzz FAILURE: ${r.failure}`);
  process.exit(r.failures || code ? 1 : 0);
}

main().catch((e) => {
  say(`fuzz: ${e.stack ?? e}`);
  process.exit(1);
});
