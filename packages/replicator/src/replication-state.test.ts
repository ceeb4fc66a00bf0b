import { summarizeReplication, type ReplicationState, type StandbyInfo } from './replication-state';

function standby(over: Partial<StandbyInfo> = {}): StandbyInfo {
  return {
    applicationName: 'node_b',
    clientAddr: '127.0.0.1',
    state: 'streaming',
    syncState: 'sync',
    sentLsn: '0/3000148',
    writeLsn: '0/3000148',
    flushLsn: '0/3000148',
    replayLsn: '0/3000148',
    lagBytes: 0,
    replayLagSeconds: null,
    ...over,
  };
}

function active(standbys: StandbyInfo[]): ReplicationState {
  return {
    role: 'active',
    inRecovery: false,
    timeline: 1,
    slots: [],
    syncStandbyNames: 'FIRST 1 ("node_b")',
    currentLsn: '0/3000148',
    standbys,
  };
}

describe('summarizeReplication', () => {
  it('is writable on an active whose sync standby is streaming, idle lag counting as 0 s', () => {
    expect(summarizeReplication(active([standby()]))).toEqual({
      timeline: 1,
      lostSlots: [],
      role: 'active',
      state: 'streaming',
      syncState: 'sync',
      lagBytes: 0,
      replayLagSeconds: 0,
      writable: true,
    });
  });

  it('is not writable without a standby', () => {
    expect(summarizeReplication(active([]))).toEqual({
      timeline: 1,
      lostSlots: [],
      role: 'active',
      state: 'disconnected',
      syncState: 'none',
      lagBytes: null,
      replayLagSeconds: null,
      writable: false,
    });
  });

  it('is not writable while the standby is async or still catching up', () => {
    expect(summarizeReplication(active([standby({ syncState: 'async' })])).writable).toBe(false);
    const catchingUp = summarizeReplication(
      active([standby({ state: 'catchup', lagBytes: 4096, replayLagSeconds: 1.5 })]),
    );
    expect(catchingUp).toMatchObject({
      state: 'catchup',
      syncState: 'sync',
      lagBytes: 4096,
      replayLagSeconds: 1.5,
      writable: false,
    });
  });

  it('describes the sync standby first when several are connected', () => {
    const s = summarizeReplication(
      active([
        standby({ applicationName: 'a', syncState: 'async' }),
        standby({ applicationName: 'b', lagBytes: 8 }),
      ]),
    );
    expect(s).toMatchObject({ syncState: 'sync', lagBytes: 8, writable: true });
    expect(
      summarizeReplication(
        active([standby({ applicationName: 'a', syncState: 'async' }), standby({ applicationName: 'b' })]),
        { standbyName: 'a' },
      ),
    ).toMatchObject({ syncState: 'async', writable: true });
  });

  it('reports a passive from its WAL receiver and never as writable', () => {
    const passive: ReplicationState = {
      role: 'passive',
      inRecovery: true,
      timeline: 1,
      slots: [],
      syncStandbyNames: '',
      standbys: [],
      walReceiver: {
        status: 'streaming',
        senderHost: '127.0.0.1',
        senderPort: 11381,
        lastMsgReceiptTime: null,
      },
      receiveLsn: '0/3000148',
      replayLsn: '0/3000100',
      replayLagBytes: 72,
    };
    expect(summarizeReplication(passive)).toEqual({
      timeline: 1,
      lostSlots: [],
      role: 'passive',
      state: 'streaming',
      syncState: 'none',
      lagBytes: 72,
      replayLagSeconds: null,
      writable: false,
    });
    expect(summarizeReplication({ ...passive, walReceiver: undefined }).state).toBe('disconnected');
  });
});
