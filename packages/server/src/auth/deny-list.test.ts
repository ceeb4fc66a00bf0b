import { mkdtempSync, readFileSync, rmSync, statSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Pool } from 'pg';
import { isExcludedFromBackup } from '../backup/archive-entries';
import { AppError } from '../errors';
import { addToDenyList, DENY_LIST_FILE, denyListPath, readDenyList, removeFromDenyList } from './deny-list';
import { DenyListWatcher } from './deny-list-watcher';

const FP_A = `4096R/${'A'.repeat(40)}`;
const FP_B = `2048R/${'B'.repeat(40)}`;
const entry = (fingerprint: string, since = '2030-01-01T00:00:00.000Z') => ({
  fingerprint,
  since,
  by: 'ops',
});

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'deny-list-'));
});
afterEach(() => {
  rmSync(dir, { recursive: true, force: true });
});

describe('the deny list file', () => {
  it('is empty while the file does not exist', () => {
    expect(readDenyList(dir)).toEqual([]);
  });

  it('is written 0600 and lists each fingerprint once, keeping the first entry', async () => {
    expect(await addToDenyList(dir, entry(FP_A))).toEqual({ added: true, entry: entry(FP_A) });
    expect(statSync(denyListPath(dir)).mode & 0o777).toBe(0o600);
    const again = await addToDenyList(dir, entry(FP_A, '2031-01-01T00:00:00.000Z'));
    expect(again).toEqual({ added: false, entry: entry(FP_A) });
    await addToDenyList(dir, entry(FP_B));
    expect(readDenyList(dir)).toEqual([entry(FP_A), entry(FP_B)]);
    expect(JSON.parse(readFileSync(denyListPath(dir), 'utf8'))).toEqual({
      entries: [entry(FP_A), entry(FP_B)],
    });
  });

  it('removes only the selected entries and says which', async () => {
    await addToDenyList(dir, entry(FP_A));
    await addToDenyList(dir, entry(FP_B));
    expect(await removeFromDenyList(dir, (e) => e.fingerprint === FP_B)).toEqual([entry(FP_B)]);
    expect(readDenyList(dir)).toEqual([entry(FP_A)]);
    expect(await removeFromDenyList(dir, () => false)).toEqual([]);
  });

  it.each([
    ['not JSON', '{"entries": ['],
    ['without entries', '{}'],
    ['with a malformed fingerprint', JSON.stringify({ entries: [entry('4096R/abc')] })],
  ])('is an error, never guessed, when it is %s', (_what, text) => {
    writeFileSync(denyListPath(dir), text, { mode: 0o600 });
    expect(() => readDenyList(dir)).toThrow(
      /cannot read the deny list .*deny-list\.json: .*fix or remove it/,
    );
  });

  it('is changed under a lock: the server gives up at once while another process holds it, the CLI waits for it', async () => {
    await addToDenyList(dir, entry(FP_A));
    const lock = `${denyListPath(dir)}.lock`;
    writeFileSync(lock, '1\n');
    expect(await removeFromDenyList(dir, () => true, 0)).toBeUndefined();
    expect(readDenyList(dir)).toEqual([entry(FP_A)]);
    setTimeout(() => rmSync(lock), 100);
    expect((await addToDenyList(dir, entry(FP_B))).added).toBe(true);
    expect(readDenyList(dir)).toEqual([entry(FP_A), entry(FP_B)]);
  });

  it('breaks a lock left by a process that died holding it', async () => {
    const lock = `${denyListPath(dir)}.lock`;
    writeFileSync(lock, '1\n');
    const minuteAgo = new Date(Date.now() - 60_000);
    utimesSync(lock, minuteAgo, minuteAgo);
    expect((await addToDenyList(dir, entry(FP_A))).added).toBe(true);
  });

  it('is kept in backups: it is security state, and a restored node must not serve a revoked client', () => {
    expect(isExcludedFromBackup(DENY_LIST_FILE)).toBe(false);
  });
});

describe('DenyListWatcher: the server side', () => {
  // Only pruning reads the database; these tests never prune.
  const watcher = () => new DenyListWatcher({ confdir: dir, pool: {} as Pool, recheckMs: 0 });

  it('sees an entry added or removed by another process on its next check', async () => {
    const w = watcher();
    expect(w.isDenied(FP_A)).toBe(false);
    await addToDenyList(dir, entry(FP_A));
    expect(w.isDenied(FP_A)).toBe(true);
    expect(w.isDenied(FP_B)).toBe(false);
    await removeFromDenyList(dir, () => true);
    expect(w.isDenied(FP_A)).toBe(false);
  });

  it('re-reads the file at most once per recheck period', async () => {
    let now = 1_000;
    const w = new DenyListWatcher({ confdir: dir, pool: {} as Pool, recheckMs: 250, now: () => now });
    expect(w.isDenied(FP_A)).toBe(false);
    await addToDenyList(dir, entry(FP_A));
    now += 100;
    expect(w.isDenied(FP_A)).toBe(false);
    now += 150;
    expect(w.isDenied(FP_A)).toBe(true);
  });

  it('fails closed on an unreadable list: every client is refused with UNAVAILABLE until it is fixed', async () => {
    const w = watcher();
    await addToDenyList(dir, entry(FP_A));
    expect(w.isDenied(FP_B)).toBe(false);
    writeFileSync(denyListPath(dir), '{ broken', { mode: 0o600 });
    let thrown: unknown;
    try {
      w.isDenied(FP_B);
    } catch (e) {
      thrown = e;
    }
    expect(thrown).toBeInstanceOf(AppError);
    expect((thrown as AppError).code).toBe('UNAVAILABLE');
    writeFileSync(denyListPath(dir), JSON.stringify({ entries: [entry(FP_A)] }), { mode: 0o600 });
    expect(w.isDenied(FP_B)).toBe(false);
    expect(w.isDenied(FP_A)).toBe(true);
  });
});
