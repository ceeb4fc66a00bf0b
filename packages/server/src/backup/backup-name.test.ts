import { backupBaseName, backupsToRoll, hostTag, parseBackupName } from './backup-name';

describe('backup names', () => {
  it('follow the seed: kts_bak_<host with underscores>_<YYYY-MM-DD_HH-MM-SS>', () => {
    expect(hostTag('kts01.example.com')).toBe('kts01_example_com');
    expect(backupBaseName('kts01.example.com', new Date(2016, 1, 10, 11, 14, 37))).toBe(
      'kts_bak_kts01_example_com_2016-02-10_11-14-37',
    );
  });

  it('parse back, encrypted or not, and reject other files', () => {
    expect(parseBackupName('kts_bak_kts01_example_com_2016-02-10_11-14-37.tar.gpg')).toEqual({
      host: 'kts01_example_com',
      stamp: '2016-02-10_11-14-37',
      encrypted: true,
    });
    expect(parseBackupName('kts_bak_h_2016-02-10_11-14-37.tar')?.encrypted).toBe(false);
    expect(parseBackupName('kts_bak_h_2016-02-10_11-14-37.tar.tmp')).toBeUndefined();
    expect(parseBackupName('notes.txt')).toBeUndefined();
  });
});

describe('--roll=N', () => {
  const files = Array.from(
    { length: 11 },
    (_, i) => `kts_bak_kt1_2026-01-${String(i + 1).padStart(2, '0')}_00-00-00.tar.gpg`,
  );

  it('with 10 old backups and --roll=10, deletes only the oldest after the new one', () => {
    expect(backupsToRoll(files, 'kt1', 10)).toEqual([files[0]]);
  });

  it('with --roll=1 keeps only the newest', () => {
    expect(backupsToRoll(files, 'kt1', 1)).toEqual(files.slice(0, 10));
  });

  it("never touches another host's backups or other files", () => {
    const mixed = [...files, 'kts_bak_kt2_2020-01-01_00-00-00.tar', 'README'];
    expect(backupsToRoll(mixed, 'kt1', 11)).toEqual([]);
    expect(backupsToRoll(mixed, 'kt1', 1)).not.toContain('kts_bak_kt2_2020-01-01_00-00-00.tar');
  });
});
