import { createHmac, randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { deriveJournalKey } from './derive-journal-key';
import { JournalError } from './journal-error';
import { thrownBy } from '../../test/support/thrown';

let dir: string;

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'trustee-journal-key-test-'));
});

afterAll(() => {
  rmSync(dir, { recursive: true, force: true });
});

const journalError = (fn: () => unknown): JournalError => thrownBy(fn, JournalError);

describe('deriveJournalKey', () => {
  const master = Buffer.alloc(32, 0x5a);

  it('derives 32 bytes, the same every time, from the master key', () => {
    const k = deriveJournalKey(master);
    expect(k).toHaveLength(32);
    expect(deriveJournalKey(Buffer.from(master)).equals(k)).toBe(true);
  });

  it('is HKDF-SHA256 (empty salt, info "trustee change journal v1"), never the master key itself', () => {
    // RFC 5869 by hand: PRK = HMAC(salt = 32 zero bytes, IKM); OKM = HMAC(PRK, info || 0x01).
    const prk = createHmac('sha256', Buffer.alloc(32)).update(master).digest();
    const okm = createHmac('sha256', prk)
      .update(Buffer.concat([Buffer.from('trustee change journal v1'), Buffer.from([1])]))
      .digest();
    const k = deriveJournalKey(master);
    expect(k.equals(okm)).toBe(true);
    expect(k.equals(master)).toBe(false);
  });

  it('gives another key for another master key', () => {
    expect(deriveJournalKey(randomBytes(32)).equals(deriveJournalKey(master))).toBe(false);
  });

  it('reads the master key file (base64, trailing newline) to the same key as the raw bytes', () => {
    const file = join(dir, 'trustee-master.key');
    writeFileSync(file, `${master.toString('base64')}\n`, { mode: 0o600 });
    expect(deriveJournalKey(file).equals(deriveJournalKey(master))).toBe(true);
  });

  it.each([0, 16, 31, 33, 64])('refuses %i bytes of material as JOURNAL_INVALID', (n) => {
    const material = Buffer.alloc(n, 0x41);
    const err = journalError(() => deriveJournalKey(material));
    expect(err.code).toBe('JOURNAL_INVALID');
    expect(err.message).toBe(`master key material does not hold 32 bytes (found ${n})`);
  });

  it('refuses a key file of the wrong size naming the file, not its content', () => {
    const file = join(dir, 'short.key');
    const content = randomBytes(24).toString('base64');
    writeFileSync(file, content, { mode: 0o600 });
    const err = journalError(() => deriveJournalKey(file));
    expect(err.code).toBe('JOURNAL_INVALID');
    expect(err.message).toBe(`master key file ${file} does not hold 32 bytes (found 24)`);
    expect(err.message).not.toContain(content);
  });

  it('refuses a key file readable by others before using it', () => {
    const file = join(dir, 'open.key');
    writeFileSync(file, master.toString('base64'), { mode: 0o644 });
    expect(() => deriveJournalKey(file)).toThrow(/must not be accessible by group or others: run chmod 600/);
  });
});
