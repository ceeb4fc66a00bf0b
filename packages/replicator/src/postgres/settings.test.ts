import {
  LIBPQ_DEFAULT_SOCKET_DIR,
  nodeSettings,
  renderSocketDirectories,
  socketPermissionsFor,
  socketSettings,
} from './settings';

describe('socket settings', () => {
  it('puts the private socket first and adds libpq’s default directory, owned by the service group, 0770', () => {
    expect(
      socketSettings('/var/lib/keytrustee/db', {
        sharedDir: LIBPQ_DEFAULT_SOCKET_DIR,
        group: 'keytrustee',
        permissions: 0o770,
      }),
    ).toEqual({
      unix_socket_directories: '/var/lib/keytrustee/db.sock,/var/run/postgresql',
      unix_socket_group: 'keytrustee',
      unix_socket_permissions: '0770',
    });
  });

  it('without a shared directory or group keeps only the private socket, owner only', () => {
    expect(socketSettings('/srv/kt/db/')).toEqual({
      unix_socket_directories: '/srv/kt/db.sock',
      unix_socket_permissions: '0700',
    });
  });

  it('double-quotes directory names PostgreSQL would otherwise split', () => {
    expect(renderSocketDirectories(['/a b/db.sock', '/x,y', '/q"t', '/var/run/postgresql'])).toBe(
      '"/a b/db.sock","/x,y","/q""t",/var/run/postgresql',
    );
  });

  it('opens the group bits only for the account’s own group', () => {
    expect(socketPermissionsFor({ user: 'keytrustee', group: 'keytrustee' })).toBe(0o770);
    expect(socketPermissionsFor({ user: 'alice', group: 'users' })).toBe(0o700);
  });

  it('nodeSettings carries the socket settings with the port and addresses', () => {
    expect(
      nodeSettings(11381, '127.0.0.1', '/var/lib/keytrustee/db', {
        sharedDir: '/var/run/postgresql',
        group: 'keytrustee',
        permissions: 0o770,
      }),
    ).toEqual({
      port: 11381,
      listen_addresses: '127.0.0.1',
      unix_socket_directories: '/var/lib/keytrustee/db.sock,/var/run/postgresql',
      unix_socket_group: 'keytrustee',
      unix_socket_permissions: '0770',
    });
  });
});
