// The module object itself (not a namespace copy), so the spy sees secret-files.ts's calls.
import fs from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { writePublicFile, writeSecretFile } from './secret-files';

/** What the disk holds at each fsync(2): which kind of descriptor, and whether the rename happened yet. */
interface SyncCall {
  isDirectory: boolean;
  targetContent: string | null;
}

describe('writeSecretFile durability', () => {
  let dir: string;
  let file: string;
  let calls: SyncCall[];
  let fsync: jest.SpyInstance;

  beforeEach(() => {
    dir = fs.mkdtempSync(join(tmpdir(), 'secret-files-'));
    file = join(dir, 'trustee-master.key');
    calls = [];
    const realFsync = fs.fsyncSync;
    fsync = jest.spyOn(fs, 'fsyncSync').mockImplementation((fd: number) => {
      calls.push({
        isDirectory: fs.fstatSync(fd).isDirectory(),
        targetContent: fs.existsSync(file) ? fs.readFileSync(file, 'utf8') : null,
      });
      realFsync(fd);
    });
  });

  afterEach(() => {
    fsync.mockRestore();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('fsyncs the new data before the rename and the directory after it', () => {
    fs.writeFileSync(file, 'old\n', { mode: 0o600 });
    writeSecretFile(file, 'new\n');
    expect(calls).toEqual([
      { isDirectory: false, targetContent: 'old\n' },
      { isDirectory: true, targetContent: 'new\n' },
    ]);
    expect(fs.statSync(file).mode & 0o777).toBe(0o600);
  });

  it('writes public files the same durable way, with mode 0644', () => {
    writePublicFile(file, 'cert\n');
    expect(calls.map((c) => c.isDirectory)).toEqual([false, true]);
    expect(fs.statSync(file).mode & 0o777).toBe(0o644);
  });

  it('keeps the old file and leaves no temp file behind when the data cannot be synced', () => {
    fs.writeFileSync(file, 'old\n', { mode: 0o600 });
    fsync.mockImplementationOnce(() => {
      throw Object.assign(new Error('EIO: i/o error, fsync'), { code: 'EIO' });
    });
    expect(() => writeSecretFile(file, 'new\n')).toThrow(/EIO/);
    expect(fs.readFileSync(file, 'utf8')).toBe('old\n');
    expect(fs.readdirSync(dir)).toEqual(['trustee-master.key']);
  });

  it('never writes through a link planted at the temp name', () => {
    const victim = join(dir, 'victim');
    fs.writeFileSync(victim, 'untouched');
    fs.symlinkSync(victim, join(dir, `.trustee-master.key.${process.pid}.tmp`));
    expect(() => writeSecretFile(file, 'new\n')).toThrow(/EEXIST/);
    expect(fs.readFileSync(victim, 'utf8')).toBe('untouched');
    expect(fs.existsSync(file)).toBe(false);
  });
});
