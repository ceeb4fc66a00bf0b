import { spawn } from 'node:child_process';
import {
  isZombieStat,
  parsePostmasterPidFile,
  parseProcStat,
  processState,
  startOptions,
} from './postmaster';
import type { PgInstance } from './instance';

const inst = (extra?: Record<string, string | number>): PgInstance => ({
  binDir: '/usr/lib/postgresql/15/bin',
  dataDir: '/var/lib/keytrustee/db',
  port: 11381,
  listenAddresses: '127.0.0.1',
  extraSettings: extra,
});

describe('startOptions', () => {
  it('passes the per-node settings on the command line, each as one shell word', () => {
    expect(startOptions(inst())).toBe(
      "-c 'port=11381' -c 'listen_addresses=127.0.0.1' -c 'unix_socket_directories=/var/lib/keytrustee/db.sock' -c 'unix_socket_permissions=0700'",
    );
  });

  it('adds the second socket directory, its group and mode for the service account', () => {
    const out = startOptions({
      ...inst(),
      sockets: { sharedDir: '/var/run/postgresql', group: 'keytrustee', permissions: 0o770 },
    });
    expect(out).toBe(
      "-c 'port=11381' -c 'listen_addresses=127.0.0.1' -c 'unix_socket_directories=/var/lib/keytrustee/db.sock,/var/run/postgresql'" +
        " -c 'unix_socket_group=keytrustee' -c 'unix_socket_permissions=0770'",
    );
  });

  it('adds extra settings and quotes single quotes and spaces for the shell pg_ctl uses', () => {
    const out = startOptions(inst({ ssl: 'on', ssl_cert_file: "/x y/it's.crt" }));
    expect(out).toContain("-c 'ssl=on'");
    expect(out).toContain("-c 'ssl_cert_file=/x y/it'\\''s.crt'");
  });
});

describe('/proc/PID/stat', () => {
  const stat = (state: string, comm = 'postgres') =>
    `4242 (${comm}) ${state} 1 4242 4242 0 -1 4194560 1181 0 0 0 0 0 0 0 20 0 1 0 5151 0 0\n`;

  it('parses pid, comm, state and ppid', () => {
    expect(parseProcStat(stat('S'))).toEqual({ pid: 4242, comm: 'postgres', state: 'S', ppid: 1 });
  });

  it('splits at the last parenthesis: comm may contain spaces and ") "', () => {
    expect(parseProcStat(stat('Z', 'a) R (b'))).toMatchObject({ comm: 'a) R (b', state: 'Z', ppid: 1 });
    expect(isZombieStat(stat('R', 'x) Z (y'))).toBe(false);
    expect(isZombieStat(stat('Z', 'x) R (y'))).toBe(true);
  });

  it('a zombie (Z) or dead (X) process has exited; every other state is alive', () => {
    expect(isZombieStat(stat('Z'))).toBe(true);
    expect(isZombieStat(stat('X'))).toBe(true);
    for (const s of ['R', 'S', 'D', 'T', 't', 'I']) expect(isZombieStat(stat(s))).toBe(false);
  });

  it('rejects text that is not a stat line', () => {
    for (const t of ['', 'garbage', '(postgres) Z 1', '12 postgres Z 1', '12 (postgres)', '12 (p) ZZ 1'])
      expect(parseProcStat(t)).toBeUndefined();
    expect(isZombieStat('')).toBe(false);
  });

  it('tells a running process, a zombie and a gone pid apart', async () => {
    expect(processState(process.pid)).toBe('running');
    expect(processState(0)).toBe('gone');
    expect(processState(2 ** 22 + 1)).toBe('gone'); // above pid_max
    // `sh` starts a short child, then becomes `sleep`, which never reaps it: a zombie.
    const parent = spawn('sh', ['-c', 'sleep 0 & echo $!; exec sleep 10'], {
      stdio: ['ignore', 'pipe', 'ignore'],
    });
    try {
      const pid = await new Promise<number>((resolve) =>
        parent.stdout.once('data', (d: Buffer) => resolve(Number(d.toString().trim()))),
      );
      let state = processState(pid);
      for (let i = 0; i < 100 && state !== 'zombie'; i++) {
        await new Promise((r) => setTimeout(r, 50));
        state = processState(pid);
      }
      expect(state).toBe('zombie');
    } finally {
      parent.kill('SIGKILL');
    }
  });
});

describe('postmaster.pid', () => {
  it('reads pid, data dir, port and status', () => {
    const text = [
      '8097',
      '/tmp/kt/db',
      '1764770000',
      '11381',
      '/tmp/kt/db',
      '127.0.0.1',
      '  1234567     98304',
      'ready   ',
      '',
    ].join('\n');
    expect(parsePostmasterPidFile(text)).toEqual({
      pid: 8097,
      dataDir: '/tmp/kt/db',
      port: 11381,
      status: 'ready',
    });
  });

  it('accepts a file cut short and refuses one without a pid', () => {
    expect(parsePostmasterPidFile('8097\n')).toEqual({ pid: 8097 });
    for (const t of ['', '\n', 'abc\n/tmp', '-1\n', '0\n', '12x\n'])
      expect(parsePostmasterPidFile(t)).toBeUndefined();
  });
});
