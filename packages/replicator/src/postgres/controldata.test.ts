import { isRecoveryState, parseControlData } from './controldata';

const SAMPLE = `pg_control version number:            1300
Catalog version number:               202209061
Database system identifier:           7316583254791234567
Database cluster state:               in archive recovery
pg_control last modified:             Thu 03 Dec 2026 14:30:00 UTC
Latest checkpoint location:           0/3000060
Latest checkpoint's REDO location:    0/3000028
Latest checkpoint's TimeLineID:       2
Latest checkpoint's PrevTimeLineID:   1
`;

describe('parseControlData', () => {
  it('reads the cluster state and the latest checkpoint timeline', () => {
    expect(parseControlData(SAMPLE)).toEqual({ state: 'in archive recovery', timeline: 2 });
  });

  it('reports unknown fields as unknown / null rather than guessing', () => {
    expect(parseControlData('nothing here')).toEqual({ state: 'unknown', timeline: null });
  });

  it('tells a standby copy from a primary', () => {
    expect(isRecoveryState('in archive recovery')).toBe(true);
    expect(isRecoveryState('shut down in recovery')).toBe(true);
    expect(isRecoveryState('shut down')).toBe(false);
    expect(isRecoveryState('in production')).toBe(false);
  });
});
