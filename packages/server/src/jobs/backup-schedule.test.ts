import { parseCrontab } from 'graphile-worker';
import { keytrusteeConfSchema } from '../config';
import { createLogger } from '../logger';
import { createMetrics } from '../metrics';
import { createJobRunner } from './job-runner';
import {
  BACKUP_JOB_KEY,
  BACKUP_MAX_ATTEMPTS,
  BACKUP_QUEUE,
  BACKUP_TASK,
  backupJobSpec,
  backupSettings,
  buildBackupCrontab,
  parseBackupPayload,
} from './backup-schedule';

const conf = (over: Record<string, unknown> = {}) =>
  keytrusteeConfSchema.parse({ HOST: 'kt01.example.com', ...over });
/** graphile-worker's cron digest of a UTC minute (what its matcher is called with). */
const at = (iso: string) => {
  const d = new Date(iso);
  return {
    min: d.getUTCMinutes(),
    hour: d.getUTCHours(),
    date: d.getUTCDate(),
    month: d.getUTCMonth() + 1,
    dow: d.getUTCDay(),
  };
};

describe('backup schedule (keytrustee.conf -> graphile-worker crontab)', () => {
  it('defaults to hourly, keep 10, <confdir parent>/backups, and off without a recipient', () => {
    const s = backupSettings('/var/lib/keytrustee/.keytrustee', conf());
    expect(s).toEqual({
      enabled: false,
      schedule: '0 * * * *',
      keep: 10,
      dir: '/var/lib/keytrustee/backups',
      recipient: undefined,
      gnupgHome: undefined,
    });
    expect(backupSettings('/x/.keytrustee', conf({ BACKUP_GPG_RECIPIENT: 'John Doe' })).enabled).toBe(true);
  });

  it('builds a crontab that graphile-worker parses into the backup task with its key, queue, attempts and keep', () => {
    const s = backupSettings('/var/lib/keytrustee/.keytrustee', conf({ BACKUP_GPG_RECIPIENT: 'x' }));
    const items = parseCrontab(buildBackupCrontab(s));
    expect(items).toHaveLength(1);
    const [item] = items;
    expect(item.task).toBe(BACKUP_TASK);
    expect(item.identifier).toBe(BACKUP_TASK);
    expect(item.payload).toEqual({ keep: 10 });
    expect(item.options).toEqual({
      backfillPeriod: 0,
      maxAttempts: BACKUP_MAX_ATTEMPTS,
      queueName: BACKUP_QUEUE,
      priority: undefined,
      jobKey: BACKUP_JOB_KEY,
      jobKeyMode: 'replace',
    });
    // Hourly: minute 0 of every hour (UTC), nothing else.
    expect(item.match(at('2030-06-01T00:00:00Z'))).toBe(true);
    expect(item.match(at('2030-06-01T13:00:00Z'))).toBe(true);
    expect(item.match(at('2030-06-01T13:01:00Z'))).toBe(false);
    expect(item.match(at('2030-06-01T13:30:00Z'))).toBe(false);
  });

  it('carries BACKUP_SCHEDULE and BACKUP_KEEP through as written', () => {
    const s = backupSettings(
      '/srv/kt/.keytrustee',
      conf({ BACKUP_GPG_RECIPIENT: 'x', BACKUP_SCHEDULE: ' 30  2 * * 1-5 ', BACKUP_KEEP: 3 }),
    );
    expect(s.schedule).toBe('30 2 * * 1-5');
    const [item] = parseCrontab(buildBackupCrontab(s));
    expect(item.payload).toEqual({ keep: 3 });
    // 2030-06-03 is a Monday, 2030-06-01 a Saturday.
    expect(item.match(at('2030-06-03T02:30:00Z'))).toBe(true);
    expect(item.match(at('2030-06-01T02:30:00Z'))).toBe(false);
    expect(item.match(at('2030-06-03T03:30:00Z'))).toBe(false);
  });

  it('backup-now uses the same job key, queue and attempts as the schedule', () => {
    const [item] = parseCrontab(buildBackupCrontab({ schedule: '0 * * * *', keep: 10 }));
    const spec = backupJobSpec();
    expect(spec).toEqual({
      jobKey: item.options.jobKey,
      jobKeyMode: item.options.jobKeyMode,
      queueName: item.options.queueName,
      maxAttempts: item.options.maxAttempts,
    });
  });

  it('rejects a schedule that is not five fields and one graphile-worker cannot parse, naming the key', () => {
    expect(() => conf({ BACKUP_SCHEDULE: 'hourly' })).toThrow(/crontab time spec/);
    expect(() => conf({ BACKUP_SCHEDULE: '0 * * *' })).toThrow(/crontab time spec/);
    // Five fields but out of range: the conf regex lets it through, graphile-worker's parser does
    // not, and the server refuses to start naming the key (building the runner opens no database).
    expect(() =>
      createJobRunner({
        confdir: '/nonexistent/.keytrustee',
        conf: conf({ BACKUP_SCHEDULE: '61 * * * *', BACKUP_GPG_RECIPIENT: 'x' }),
        log: createLogger({ destination: { write: () => undefined } }),
        metrics: createMetrics(),
        isActive: () => false,
      }),
    ).toThrow(/invalid BACKUP_SCHEDULE "61 \* \* \* \*"/);
  });

  it('refuses BACKUP_DIR inside the confdir (each backup would hold the ones before it) and relative paths', () => {
    expect(() =>
      backupSettings(
        '/var/lib/keytrustee/.keytrustee',
        conf({ BACKUP_DIR: '/var/lib/keytrustee/.keytrustee/bk' }),
      ),
    ).toThrow(/BACKUP_DIR .* is inside the confdir/);
    expect(() =>
      backupSettings(
        '/var/lib/keytrustee/.keytrustee',
        conf({ BACKUP_DIR: '/var/lib/keytrustee/.keytrustee' }),
      ),
    ).toThrow(/inside the confdir/);
    expect(
      backupSettings(
        '/var/lib/keytrustee/.keytrustee',
        conf({ BACKUP_DIR: '/var/lib/keytrustee/.keytrustee-bk' }),
      ).dir,
    ).toBe('/var/lib/keytrustee/.keytrustee-bk');
    expect(() => conf({ BACKUP_DIR: 'backups' })).toThrow(/absolute path/);
  });

  it('reads job payloads: cron jobs are scheduled, others backup-now; a malformed keep is ignored', () => {
    expect(parseBackupPayload({ keep: 10, _cron: { ts: '2030-06-01T00:00:00Z' } })).toEqual({
      trigger: 'schedule',
      keep: 10,
    });
    expect(parseBackupPayload({ trigger: 'backup-now', keep: 4 })).toEqual({
      trigger: 'backup-now',
      keep: 4,
    });
    expect(parseBackupPayload({ keep: 0 })).toEqual({ trigger: 'backup-now', keep: undefined });
    expect(parseBackupPayload({ keep: '5' })).toEqual({ trigger: 'backup-now', keep: undefined });
    expect(parseBackupPayload(null)).toEqual({ trigger: 'backup-now', keep: undefined });
  });
});
