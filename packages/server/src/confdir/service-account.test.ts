import { createdParents } from './service-account';

describe('createdParents', () => {
  it('lists the directories created above the confdir, nearest first', () => {
    expect(createdParents('/var/lib/keytrustee/.keytrustee', '/var/lib/keytrustee')).toEqual([
      '/var/lib/keytrustee',
    ]);
    expect(createdParents('/srv/a/b/.keytrustee', '/srv/a')).toEqual(['/srv/a/b', '/srv/a']);
  });

  it('lists nothing when only the confdir itself (or nothing) was created', () => {
    expect(createdParents('/tmp/kt/.keytrustee', '/tmp/kt/.keytrustee')).toEqual([]);
    expect(createdParents('/tmp/kt/.keytrustee', undefined)).toEqual([]);
  });

  it('never lists a directory that is not an ancestor of the confdir', () => {
    expect(createdParents('/var/lib/keytrustee/.keytrustee', '/etc')).toEqual([]);
    expect(createdParents('/var/lib/keytrustee/.keytrustee', '/var/lib/keytrusteeX')).toEqual([]);
  });
});
