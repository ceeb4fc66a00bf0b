import { canCreateFilesIn, parseIdOutput, serviceAccountHome } from './os-user';
import { asAccount } from './run';

describe('parseIdOutput', () => {
  it('reads uid, primary group and every group id', () => {
    expect(
      parseIdOutput('uid=999(keytrustee) gid=995(keytrustee) groups=995(keytrustee),104(postgres)\n'),
    ).toEqual({
      uid: 999,
      user: 'keytrustee',
      gid: 995,
      group: 'keytrustee',
      groups: [995, 104],
    });
  });

  it('puts the primary group first even when id lists it elsewhere, and rejects other text', () => {
    expect(parseIdOutput('uid=0(root) gid=0(root) groups=4(adm),0(root)')?.groups).toEqual([0, 4]);
    expect(parseIdOutput('id: ‘nobody2’: no such user')).toBeUndefined();
  });
});

describe('canCreateFilesIn', () => {
  // Debian's /var/run/postgresql: 2775 postgres:postgres (uid 104, gid 104).
  const runPostgresql = { uid: 104, gid: 104, mode: 0o42775 };
  it('allows a member of the directory’s group when the group may write and search', () => {
    expect(canCreateFilesIn(runPostgresql, { uid: 999, groups: [995, 104] })).toBe(true);
    expect(canCreateFilesIn(runPostgresql, { uid: 999, groups: [995] })).toBe(false);
  });

  it('checks the owner bits for the owner, the other bits for everybody else, and lets root in', () => {
    expect(canCreateFilesIn({ uid: 999, gid: 0, mode: 0o500 }, { uid: 999, groups: [0] })).toBe(false);
    expect(canCreateFilesIn({ uid: 1, gid: 1, mode: 0o1777 }, { uid: 999, groups: [995] })).toBe(true);
    expect(canCreateFilesIn({ uid: 1, gid: 1, mode: 0o700 }, { uid: 0, groups: [0] })).toBe(true);
  });
});

describe('service account', () => {
  it('lives in /var/lib/<name>, as the original keytrustee', () => {
    expect(serviceAccountHome('keytrustee')).toBe('/var/lib/keytrustee');
  });

  it('is switched to with setpriv --init-groups only when it has supplementary groups', () => {
    const base = { uid: 999, gid: 995, user: 'keytrustee', home: '/var/lib/keytrustee', group: 'keytrustee' };
    expect(asAccount('/bin/pg_ctl', ['start'], { ...base, groups: [995] })).toEqual({
      file: '/bin/pg_ctl',
      args: ['start'],
      uid: 999,
      gid: 995,
    });
    const withPostgres = asAccount('/bin/pg_ctl', ['start'], { ...base, groups: [995, 104] });
    expect(withPostgres.args).toEqual([
      '--reuid=999',
      '--regid=995',
      '--init-groups',
      '--',
      '/bin/pg_ctl',
      'start',
    ]);
    expect(withPostgres.file).toMatch(/setpriv$/);
    expect(asAccount('/bin/pg_ctl', ['stop'], undefined)).toEqual({ file: '/bin/pg_ctl', args: ['stop'] });
  });
});
