import { passfilePath, renderPassfileLine } from './passfile';

describe('passfile', () => {
  it('sits beside the data directory, named after it', () => {
    expect(passfilePath({ dataDir: '/srv/trustee/node-b/db' })).toBe('/srv/trustee/node-b/db.pgpass');
  });

  it('renders one libpq line with a wildcard database by default', () => {
    expect(
      renderPassfileLine({ host: '10.0.0.1', port: 11381, user: 'replicator', password: 's3cret' }),
    ).toBe('10.0.0.1:11381:*:replicator:s3cret');
  });

  it('escapes colons and backslashes in fields', () => {
    expect(
      renderPassfileLine({
        host: 'fd00::1',
        port: 5432,
        database: 'replication',
        user: 'r',
        password: 'a:b\\c',
      }),
    ).toBe('fd00\\:\\:1:5432:replication:r:a\\:b\\\\c');
  });
});
