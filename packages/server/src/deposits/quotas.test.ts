import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ConfigError, loadKeytrusteeConf } from '../config';
import { AppError } from '../errors';
import { depositQuotasOf, quotaExceeded, quotaKindOf, versionsToPrune, type DepositQuotas } from './quotas';

let dir: string;
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'trustee-quota-conf-'));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function load(conf: Record<string, unknown>) {
  const confdir = mkdtempSync(join(dir, 'conf-'));
  writeFileSync(join(confdir, 'keytrustee.conf'), JSON.stringify({ HOST: 'kt01', ...conf }), { mode: 0o600 });
  return loadKeytrusteeConf(confdir, {});
}

describe('quota settings in keytrustee.conf', () => {
  it('default to generous limits that a normal client never meets', () => {
    const conf = load({});
    expect(depositQuotasOf(conf)).toEqual({
      maxDeposits: 100_000,
      maxVersionsPerDeposit: 1000,
      pruneOldestVersions: false,
      maxBytes: 1024 * 1024 * 1024,
    });
    expect(conf.QUOTA_MAX_CLIENTS_AUTO_APPROVED_ORG).toBe(1000);
  });

  it('takes every limit from the file', () => {
    const conf = load({
      QUOTA_MAX_DEPOSITS: 3,
      QUOTA_MAX_VERSIONS_PER_DEPOSIT: 2,
      QUOTA_PRUNE_OLDEST_VERSIONS: true,
      QUOTA_MAX_BYTES: 4096,
      QUOTA_MAX_CLIENTS_AUTO_APPROVED_ORG: 5,
    });
    expect(depositQuotasOf(conf)).toEqual({
      maxDeposits: 3,
      maxVersionsPerDeposit: 2,
      pruneOldestVersions: true,
      maxBytes: 4096,
    });
    expect(conf.QUOTA_MAX_CLIENTS_AUTO_APPROVED_ORG).toBe(5);
  });

  it.each<[string, unknown]>([
    ['QUOTA_MAX_DEPOSITS', 0],
    ['QUOTA_MAX_DEPOSITS', '10'],
    ['QUOTA_MAX_VERSIONS_PER_DEPOSIT', 0],
    ['QUOTA_MAX_VERSIONS_PER_DEPOSIT', 1.5],
    ['QUOTA_PRUNE_OLDEST_VERSIONS', 'true'],
    ['QUOTA_MAX_BYTES', -1],
    ['QUOTA_MAX_CLIENTS_AUTO_APPROVED_ORG', 0],
  ])('refuses %s = %j and names the key', (key, value) => {
    let err: unknown;
    try {
      load({ [key]: value });
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(ConfigError);
    expect((err as Error).message).toMatch(new RegExp(`keytrustee\\.conf: ${key}: `));
  });
});

describe('versionsToPrune', () => {
  const quotas = (max: number, prune: boolean): DepositQuotas => ({
    maxDeposits: 10,
    maxVersionsPerDeposit: max,
    pruneOldestVersions: prune,
    maxBytes: 10,
  });

  it('prunes nothing while the new version fits', () => {
    expect(versionsToPrune(0, quotas(1, false))).toBe(0);
    expect(versionsToPrune(2, quotas(3, false))).toBe(0);
  });

  it('refuses a version beyond the limit unless pruning is on', () => {
    expect(versionsToPrune(3, quotas(3, false))).toBe('refuse');
    expect(versionsToPrune(3, quotas(3, true))).toBe(1);
  });

  it('prunes down to the limit when it was lowered below what is stored', () => {
    expect(versionsToPrune(10, quotas(3, true))).toBe(8);
  });
});

describe('quotaExceeded', () => {
  it('answers QUOTA_EXCEEDED naming the setting and its value, and its kind is recoverable', () => {
    const e = quotaExceeded('bytes', 4096, 'this client stores 4000 bytes');
    expect(e.code).toBe('QUOTA_EXCEEDED');
    expect(e.status).toBe(429);
    expect(e.message).toBe('this client stores 4000 bytes (QUOTA_MAX_BYTES = 4096)');
    expect(e.details).toEqual({ quota: 'QUOTA_MAX_BYTES', limit: 4096 });
    expect(quotaKindOf(e)).toBe('bytes');
    expect(quotaKindOf(new AppError('RATE_LIMITED', 'x'))).toBeUndefined();
  });
});
