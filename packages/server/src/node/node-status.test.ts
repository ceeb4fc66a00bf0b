import { formatNodeStatus, type NodeStatus } from './node-status';

/** A healthy active of a pair, as `ktadmin status` reads it. */
function activeStatus(over: Partial<NodeStatus> = {}): NodeStatus {
  return {
    confdir: '/var/lib/keytrustee/.keytrustee',
    host: 'kt01.example.com',
    port: 11371,
    peers: ['https://kt02.example.com:11371'],
    fingerprint: `4096R/${'A'.repeat(40)}`,
    db: { rootdir: '/var/lib/keytrustee/db', port: 11381, pid: 4242, up: true },
    role: 'active',
    writable: true,
    writeMode: 'sync',
    reason: 'primary with a streaming synchronous standby',
    pgRole: 'active',
    timeline: 2,
    replication: {
      state: 'streaming',
      syncState: 'sync',
      lagBytes: 0,
      replayLagSeconds: 0.01,
      lostSlots: [],
    },
    syncStreaming: true,
    identity: 'ok',
    peer: { url: 'https://kt02.example.com:11371', reachable: true, role: 'passive', timeline: 2 },
    ha: {},
    ...over,
  };
}

describe('formatNodeStatus (ktadmin status)', () => {
  it('prints one labelled line per fact of a healthy active', () => {
    expect(formatNodeStatus(activeStatus()).split('\n')).toEqual([
      'node:         kt01.example.com:11371 (/var/lib/keytrustee/.keytrustee)',
      'role:         active (PostgreSQL timeline 2)',
      'why:          primary with a streaming synchronous standby',
      'writes:       accepted (sync)',
      `fingerprint:  4096R/${'A'.repeat(40)} (identity ok)`,
      'database:     up, port 11381, dir /var/lib/keytrustee/db, pid 4242',
      'peers:        https://kt02.example.com:11371 — answers (passive, timeline 2)',
      'replication:  streaming, sync sync, lag 0 bytes / 0.01 s',
    ]);
  });

  it('says when writes are refused, the database is down and why, and the peer does not answer', () => {
    const text = formatNodeStatus(
      activeStatus({
        role: 'unavailable',
        writable: false,
        writeMode: null,
        reason: 'the database does not answer',
        timeline: null,
        db: { rootdir: null, port: 11381, pid: null, up: false, error: 'connect ECONNREFUSED' },
        replication: {
          state: 'none',
          syncState: 'none',
          lagBytes: null,
          replayLagSeconds: null,
          lostSlots: [],
        },
        peer: { url: 'https://kt02.example.com:11371', reachable: false },
      }),
    );
    expect(text).toContain('role:         unavailable\n');
    expect(text).toContain('writes:       refused');
    expect(text).toContain('database:     down (connect ECONNREFUSED), port 11381, dir -, pid -');
    expect(text).toContain('peers:        https://kt02.example.com:11371 — does not answer');
    expect(text).toContain('replication:  none, sync none, lag - bytes / - s');
  });

  it('names a single node and an unknown peer role', () => {
    expect(formatNodeStatus(activeStatus({ peers: [], peer: null }))).toContain(
      'peers:        (none: single node)\n',
    );
    expect(
      formatNodeStatus(activeStatus({ peer: { url: 'https://kt02:11371', reachable: true } })),
    ).toContain('— answers (?, timeline ?)');
  });

  it('adds the operator’s single-node permission and a fence', () => {
    const text = formatNodeStatus(
      activeStatus({
        writeMode: 'single-node',
        ha: {
          singleNodeWrites: {
            until: '2026-12-04T00:00:00.000Z',
            by: 'kt',
            since: '2026-12-03T22:00:00.000Z',
          },
          fenced: { peerTimeline: 3, since: '2026-12-03T21:00:00.000Z', peer: 'https://kt02:11371' },
        },
      }),
    ).split('\n');
    expect(text).toContain('writes:       accepted (single-node)');
    expect(text.slice(-2)).toEqual([
      'single-node:  writes without the passive allowed until 2026-12-04T00:00:00.000Z',
      'fenced:       since 2026-12-03T21:00:00.000Z (peer on timeline 3)',
    ]);
  });
});
