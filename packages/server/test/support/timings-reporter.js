// A jest reporter that prints the slowest test files of a full run and writes every file's
// duration to test-artifacts/test-timings.json, so the suite's time (issue 12) can be followed
// from CI logs, run after run, without re-running anything.
const { mkdirSync, writeFileSync } = require('node:fs');
const { join, relative } = require('node:path');

class TimingsReporter {
  constructor(globalConfig) {
    this.rootDir = globalConfig.rootDir;
  }

  onRunComplete(_contexts, results) {
    const files = results.testResults
      .map((r) => ({
        file: relative(this.rootDir, r.testFilePath),
        seconds: Math.round((r.perfStats.end - r.perfStats.start) / 100) / 10,
        tests: r.numPassingTests + r.numFailingTests,
      }))
      .sort((a, b) => b.seconds - a.seconds);
    if (files.length < 10) return; // a single file or a few: nothing worth a table
    const total = files.reduce((s, f) => s + f.seconds, 0);
    const wall = (Date.now() - results.startTime) / 1000;
    const dir = join(this.rootDir, 'test-artifacts');
    mkdirSync(dir, { recursive: true });
    writeFileSync(
      join(dir, 'test-timings.json'),
      `${JSON.stringify({ at: new Date().toISOString(), wallSeconds: wall, fileSecondsSum: total, files }, null, 2)}\n`,
    );
    const top = files
      .slice(0, 15)
      .map((f) => `  ${f.seconds.toFixed(1).padStart(6)} s  ${f.file} (${f.tests} tests)`);
    process.stderr.write(
      `\nSlowest test files (sum of all ${files.length} files: ${total.toFixed(0)} s; wall ${wall.toFixed(0)} s):\n${top.join('\n')}\n` +
        `every file's time: test-artifacts/test-timings.json\n`,
    );
  }
}

module.exports = TimingsReporter;
