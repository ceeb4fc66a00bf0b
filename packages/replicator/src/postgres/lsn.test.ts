import { compareLsn, formatLsn, lsnDiffBytes, parseLsn } from './lsn';

describe('lsn', () => {
  it('parses both halves into one 64-bit position', () => {
    expect(parseLsn('0/0')).toBe(0n);
    expect(parseLsn('0/3000060')).toBe(0x3000060n);
    expect(parseLsn('16/B374D848')).toBe((0x16n << 32n) | 0xb374d848n);
    expect(parseLsn('FFFFFFFF/FFFFFFFF')).toBe(0xffff_ffff_ffff_ffffn);
  });

  it('rejects text that is not an LSN', () => {
    for (const bad of ['', '0', '0/', '/0', 'x/1', '1/2/3', '123456789/0']) {
      expect(() => parseLsn(bad)).toThrow(/not a PostgreSQL LSN/);
    }
  });

  it('formats like PostgreSQL and round-trips', () => {
    expect(formatLsn(0x3000060n)).toBe('0/3000060');
    expect(formatLsn(parseLsn('16/b374d848'))).toBe('16/B374D848');
    expect(() => formatLsn(-1n)).toThrow(/out of range/);
  });

  it('compares numerically, not as text', () => {
    expect(compareLsn('0/9', '0/10')).toBe(-1);
    expect(compareLsn('1/0', '0/FFFFFFFF')).toBe(1);
    expect(compareLsn('0/A', '0/a')).toBe(0);
  });

  it('computes the byte distance across the high half', () => {
    expect(lsnDiffBytes('1/0', '0/FFFFFFFF')).toBe(1);
    expect(lsnDiffBytes('0/3000060', '0/3000000')).toBe(0x60);
    expect(lsnDiffBytes('0/3000000', '0/3000060')).toBe(-0x60);
  });
});
