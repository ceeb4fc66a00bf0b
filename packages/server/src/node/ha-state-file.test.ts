import { mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  HA_STATE_FILE,
  haStatePath,
  readHaState,
  singleNodeWritesUntil,
  updateHaState,
} from './ha-state-file';

let dir: string;

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'trustee-ha-state-test-'));
});

afterAll(() => {
  rmSync(dir, { recursive: true, force: true });
});

const freshConfdir = () => mkdtempSync(join(dir, 'confdir-'));

describe('readHaState / updateHaState', () => {
  it('reads a missing file as the empty state', () => {
    const confdir = freshConfdir();
    expect(haStatePath(confdir)).toBe(join(confdir, HA_STATE_FILE));
    expect(readHaState(confdir)).toEqual({});
  });

  it('refuses an unreadable file instead of guessing, naming it and what to do', () => {
    const confdir = freshConfdir();
    writeFileSync(haStatePath(confdir), '{"fenced": {', { mode: 0o600 });
    expect(() => readHaState(confdir)).toThrow(
      new RegExp(`^cannot read ${haStatePath(confdir)}: .*; fix or remove it$`),
    );
  });

  it('applies an update to the current state and writes it 0600, read back as written', () => {
    const confdir = freshConfdir();
    const fenced = { peerTimeline: 3, since: '2026-12-03T20:00:00.000Z', peer: 'https://kt02:11371' };
    expect(updateHaState(confdir, (s) => ({ ...s, fenced }))).toEqual({ fenced });
    expect(statSync(haStatePath(confdir)).mode & 0o777).toBe(0o600);
    const snw = { until: '2026-12-03T22:00:00.000Z', by: 'kt', since: '2026-12-03T20:00:00.000Z' };
    const next = updateHaState(confdir, (s) => ({ ...s, singleNodeWrites: snw }));
    expect(next).toEqual({ fenced, singleNodeWrites: snw });
    expect(readHaState(confdir)).toEqual(next);
    // Removing a field (ktadmin rejoin clears the fence) removes it from the file.
    updateHaState(confdir, (s) => ({ ...s, fenced: undefined }));
    expect(readHaState(confdir)).toEqual({ singleNodeWrites: snw });
  });

  it('leaves the file as it was when the update throws', () => {
    const confdir = freshConfdir();
    updateHaState(confdir, () => ({ promotions: [] }));
    expect(() =>
      updateHaState(confdir, () => {
        throw new Error('refused');
      }),
    ).toThrow('refused');
    expect(readHaState(confdir)).toEqual({ promotions: [] });
  });
});

describe('singleNodeWritesUntil', () => {
  it('is the permission’s end in ms since the epoch', () => {
    const until = '2026-12-03T22:00:00.000Z';
    expect(singleNodeWritesUntil({ singleNodeWrites: { until, by: 'kt', since: until } })).toBe(
      Date.parse(until),
    );
  });

  it.each([
    ['no permission', {}],
    ['an unparsable time', { singleNodeWrites: { until: 'tomorrow', by: 'kt', since: '' } }],
    ['an empty time', { singleNodeWrites: { until: '', by: 'kt', since: '' } }],
  ])('is null for %s (never a guessed permission)', (_label, state) => {
    expect(singleNodeWritesUntil(state)).toBeNull();
  });
});
