import { isExcludedFromBackup, memberName } from './archive-entries';

describe('isExcludedFromBackup', () => {
  it.each(['keytrusteed.pid', 'postmaster.pid', 'ha-state.json', 'keytrustee.conf.tmp', '.x.tmp'])(
    'leaves out %j (pid files, node-local HA state, half-written temp files)',
    (name) => {
      expect(isExcludedFromBackup(name)).toBe(true);
    },
  );

  it.each([
    'keytrustee.conf',
    'trustee-identity.key',
    'trustee-master.key',
    'trustee-replication.secret',
    'ha-state.json.bak',
    'pid',
    'tmp',
    'my.pidfile',
  ])('keeps %j', (name) => {
    expect(isExcludedFromBackup(name)).toBe(false);
  });
});

describe('memberName', () => {
  it.each([
    ['/var/lib/keytrustee/.keytrustee/keytrustee.conf', 'var/lib/keytrustee/.keytrustee/keytrustee.conf'],
    ['//var/lib/x', 'var/lib/x'],
    ['/', ''],
    ['relative/x', 'relative/x'],
  ])('names %j as %j in the archive (tar xvf FILE -C / restores it)', (abs, member) => {
    expect(memberName(abs)).toBe(member);
  });
});
