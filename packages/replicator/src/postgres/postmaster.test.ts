import { startOptions } from './postmaster';
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
      "-c 'port=11381' -c 'listen_addresses=127.0.0.1' -c 'unix_socket_directories=/var/lib/keytrustee/db'",
    );
  });

  it('adds extra settings and quotes single quotes and spaces for the shell pg_ctl uses', () => {
    const out = startOptions(inst({ ssl: 'on', ssl_cert_file: "/x y/it's.crt" }));
    expect(out).toContain("-c 'ssl=on'");
    expect(out).toContain("-c 'ssl_cert_file=/x y/it'\\''s.crt'");
  });
});
