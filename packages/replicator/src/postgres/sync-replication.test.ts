import { describeSyncWait, renderSyncStandbyNames } from './sync-replication';

describe('renderSyncStandbyNames', () => {
  it('names one standby first in priority as a quoted identifier', () => {
    expect(renderSyncStandbyNames(['node_b'])).toBe('FIRST 1 ("node_b")');
  });

  it('keeps case, dashes and embedded quotes intact', () => {
    expect(renderSyncStandbyNames(['Node-B', 'we"ird'], { method: 'ANY', count: 2 })).toBe(
      'ANY 2 ("Node-B", "we""ird")',
    );
  });

  it('renders nothing (asynchronous) without standbys and rejects impossible counts', () => {
    expect(renderSyncStandbyNames([])).toBe('');
    expect(() => renderSyncStandbyNames(['a'], { count: 2 })).toThrow(/1\.\.1, got 2/);
  });
});

describe('describeSyncWait', () => {
  it('says what state the standby was in', () => {
    expect(
      describeSyncWait(
        'node_b',
        [{ application_name: 'node_b', state: 'streaming', sync_state: 'async' }],
        30_000,
      ),
    ).toBe("standby node_b is 'streaming'/'async' after 30s");
  });

  it('says when no standby is connected at all', () => {
    expect(describeSyncWait('node_b', [], 1500)).toMatch(/^no standby connected after 1.5s/);
  });

  it('points at application_name when another name is connected', () => {
    expect(
      describeSyncWait(
        'node_b',
        [{ application_name: 'walreceiver', state: 'streaming', sync_state: 'async' }],
        5000,
      ),
    ).toMatch(
      /no standby named node_b connected after 5s \(connected: walreceiver\).*application_name=node_b/,
    );
  });
});
