// Longest test files first, also on a clean clone. Jest orders files by the durations it cached
// from earlier runs of the same checkout (and by file size when it has none): a fresh clone, as
// in CI, has no cache, so a 40-s file of small size could start last and leave the other
// workers idle at the end. Here a file jest has no duration for takes the one committed in
// tests/test-timings.json (the timings reporter's file from a full run; refresh it with
// `cp test-artifacts/test-timings.json tests/`). A file in neither still runs first, as jest does.
const { readFileSync } = require('node:fs');
const { join, relative } = require('node:path');
const Sequencer = require('@jest/test-sequencer').default;

function committedSeconds(rootDir) {
  try {
    const { files } = JSON.parse(readFileSync(join(rootDir, 'tests', 'test-timings.json'), 'utf8'));
    return new Map(files.map((f) => [f.file, f.seconds]));
  } catch {
    return new Map(); // no file: jest's own order
  }
}

class LongestFirstSequencer extends Sequencer {
  time(test) {
    const cached = super.time(test);
    if (cached !== undefined) return cached;
    const rootDir = test.context.config.rootDir;
    this.committed ??= committedSeconds(rootDir);
    const seconds = this.committed.get(relative(rootDir, test.path));
    return seconds === undefined ? undefined : seconds * 1000;
  }
}

module.exports = LongestFirstSequencer;
