'use strict';
/* Small pieces every benchmark in bench/ uses. */
const net = require('node:net');
const { execFileSync } = require('node:child_process');

/** A free TCP port on loopback. */
function freePort() {
  return new Promise((resolve) => {
    const s = net.createServer();
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

/** Median of a list of numbers (the upper one for an even count). */
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

/** SIGKILLs a process and its direct children (a keytrusteed or a postmaster and its backends). */
function killTree(pid) {
  if (!pid) return;
  let kids = [];
  try {
    kids = execFileSync('pgrep', ['-P', String(pid)], { encoding: 'utf8' })
      .split('\n')
      .filter(Boolean)
      .map(Number);
  } catch {
    // no children
  }
  for (const p of [pid, ...kids]) {
    try {
      process.kill(p, 'SIGKILL');
    } catch {
      // gone
    }
  }
}

module.exports = { freePort, median, killTree };
