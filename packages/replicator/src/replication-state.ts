/**
 * Reads replication state from the local PostgreSQL (role, standbys, WAL receiver, LSNs, lag)
 * and summarises it for the health endpoint, metrics and the server's write gate.
 * @see https://www.postgresql.org/docs/current/monitoring-stats.html#MONITORING-PG-STAT-REPLICATION-VIEW
 */
import type { Client } from 'pg';
import { TIMELINE_SQL_EXPRESSION } from './postgres/timeline';

/** pg_stat_replication.state */
export type StandbyState = 'startup' | 'catchup' | 'streaming' | 'backup' | 'stopping';
/** pg_stat_replication.sync_state */
export type SyncState = 'sync' | 'async' | 'potential' | 'quorum';

/** One row of pg_stat_replication (a walsender on this node). */
export interface StandbyInfo {
  applicationName: string;
  /** null when the standby connects over the unix socket. */
  clientAddr: string | null;
  state: StandbyState;
  syncState: SyncState;
  sentLsn: string | null;
  writeLsn: string | null;
  flushLsn: string | null;
  replayLsn: string | null;
  /** Bytes between this node's current WAL position and the standby's replay position. */
  lagBytes: number | null;
  /** pg_stat_replication.replay_lag in seconds; null when idle (caught up, no recent WAL) or unknown. */
  replayLagSeconds: number | null;
}

/** pg_stat_wal_receiver on a passive. */
export interface WalReceiverInfo {
  /** stopped | starting | streaming | waiting | restarting | stopping */
  status: string;
  senderHost: string | null;
  senderPort: number | null;
  /** ISO time of the last message from the active. */
  lastMsgReceiptTime: string | null;
}

/** A physical replication slot on this node (pg_replication_slots). */
export interface SlotInfo {
  name: string;
  active: boolean;
  /** reserved | extended | unreserved | lost (lost = invalidated by max_slot_wal_keep_size: rebuild the passive). */
  walStatus: string | null;
  /** WAL kept for this slot, bytes (null when unknown). */
  retainedBytes: number | null;
}

export interface ReplicationState {
  role: 'active' | 'passive';
  inRecovery: boolean;
  /**
   * PostgreSQL timeline this node is on: the WAL insertion timeline on an active, the replayed
   * one (latest checkpoint) on a passive. A promotion starts a new, higher timeline.
   */
  timeline: number;
  /** Physical replication slots (active side; a passive normally has none). */
  slots: SlotInfo[];
  /** Current value of synchronous_standby_names ('' = asynchronous). */
  syncStandbyNames: string;
  /** Active only: pg_current_wal_lsn(). */
  currentLsn?: string;
  standbys: StandbyInfo[];
  /** Passive only; absent when no WAL receiver runs (active unreachable, or just started). */
  walReceiver?: WalReceiverInfo;
  /** Passive only: pg_last_wal_receive_lsn(). */
  receiveLsn?: string;
  /** Passive only: pg_last_wal_replay_lsn(). */
  replayLsn?: string;
  /** Passive only: received but not yet replayed. */
  replayLagBytes?: number;
}

interface NodeRow {
  in_recovery: boolean;
  timeline: number;
  sync_standby_names: string;
  current_lsn: string | null;
  receive_lsn: string | null;
  replay_lsn: string | null;
  replay_lag_bytes: number | null;
}

interface StandbyRow {
  application_name: string;
  client_addr: string | null;
  state: StandbyState;
  sync_state: SyncState;
  sent_lsn: string | null;
  write_lsn: string | null;
  flush_lsn: string | null;
  replay_lsn: string | null;
  lag_bytes: number | null;
  replay_lag_seconds: number | null;
}

interface WalReceiverRow {
  status: string;
  sender_host: string | null;
  sender_port: number | null;
  last_msg_receipt_time: Date | null;
}

// pg_current_wal_lsn() fails during recovery, hence the CASE; float8 so node-postgres returns numbers.
const NODE_SQL = `
select pg_is_in_recovery() as in_recovery,
       ${TIMELINE_SQL_EXPRESSION} as timeline,
       current_setting('synchronous_standby_names') as sync_standby_names,
       case when pg_is_in_recovery() then null else pg_current_wal_lsn()::text end as current_lsn,
       pg_last_wal_receive_lsn()::text as receive_lsn,
       pg_last_wal_replay_lsn()::text as replay_lsn,
       pg_wal_lsn_diff(pg_last_wal_receive_lsn(), pg_last_wal_replay_lsn())::float8 as replay_lag_bytes`;

const STANDBYS_SQL = `
select application_name, host(client_addr) as client_addr, state, sync_state,
       sent_lsn::text, write_lsn::text, flush_lsn::text, replay_lsn::text,
       pg_wal_lsn_diff(case when pg_is_in_recovery() then pg_last_wal_replay_lsn() else pg_current_wal_lsn() end,
                       replay_lsn)::float8 as lag_bytes,
       extract(epoch from replay_lag)::float8 as replay_lag_seconds
  from pg_stat_replication
 order by application_name`;

const SLOTS_SQL = `
select slot_name, active, wal_status,
       case when restart_lsn is null or pg_is_in_recovery() then null
            else pg_wal_lsn_diff(pg_current_wal_lsn(), restart_lsn)::float8 end as retained_bytes
  from pg_replication_slots where slot_type = 'physical' order by slot_name`;

interface SlotRow {
  slot_name: string;
  active: boolean;
  wal_status: string | null;
  retained_bytes: number | null;
}

const WAL_RECEIVER_SQL =
  'select status, sender_host, sender_port, last_msg_receipt_time from pg_stat_wal_receiver';

/** Reads the replication state; needs a superuser or pg_monitor connection to see LSNs and addresses. */
export async function readReplicationState(client: Client): Promise<ReplicationState> {
  const node = (await client.query<NodeRow>(NODE_SQL)).rows[0];
  const standbys = (await client.query<StandbyRow>(STANDBYS_SQL)).rows.map((r): StandbyInfo => ({
    applicationName: r.application_name,
    clientAddr: r.client_addr,
    state: r.state,
    syncState: r.sync_state,
    sentLsn: r.sent_lsn,
    writeLsn: r.write_lsn,
    flushLsn: r.flush_lsn,
    replayLsn: r.replay_lsn,
    lagBytes: r.lag_bytes,
    replayLagSeconds: r.replay_lag_seconds,
  }));
  const slots = (await client.query<SlotRow>(SLOTS_SQL)).rows.map((r): SlotInfo => ({
    name: r.slot_name,
    active: r.active,
    walStatus: r.wal_status,
    retainedBytes: r.retained_bytes,
  }));
  const state: ReplicationState = {
    role: node.in_recovery ? 'passive' : 'active',
    inRecovery: node.in_recovery,
    timeline: node.timeline,
    slots,
    syncStandbyNames: node.sync_standby_names,
    standbys,
  };
  if (!node.in_recovery) return { ...state, currentLsn: node.current_lsn ?? undefined };
  const receiver = (await client.query<WalReceiverRow>(WAL_RECEIVER_SQL)).rows[0];
  return {
    ...state,
    walReceiver: receiver && {
      status: receiver.status,
      senderHost: receiver.sender_host,
      senderPort: receiver.sender_port,
      lastMsgReceiptTime: receiver.last_msg_receipt_time?.toISOString() ?? null,
    },
    receiveLsn: node.receive_lsn ?? undefined,
    replayLsn: node.replay_lsn ?? undefined,
    replayLagBytes: node.replay_lag_bytes ?? undefined,
  };
}

/** State of this node's replication link: its best standby's on an active, its WAL receiver's on a passive. */
export type ReplicationLinkState = StandbyState | 'waiting' | 'restarting' | 'disconnected';

export interface ReplicationSummary {
  role: 'active' | 'passive';
  /** This node's PostgreSQL timeline (see ReplicationState.timeline). */
  timeline: number;
  /** Slots PostgreSQL invalidated (wal_status `lost`): their passive must be rebuilt (`--replace`). */
  lostSlots: string[];
  state: ReplicationLinkState;
  /** As the active sees its standby; a passive cannot know and reports 'none'. */
  syncState: SyncState | 'none';
  /** Active: bytes the standby has not replayed yet; passive: received but not replayed. null when unknown. */
  lagBytes: number | null;
  /** Active: the standby's replay lag (0 when caught up and idle); null when unknown or on a passive. */
  replayLagSeconds: number | null;
  /**
   * True only on an active with a standby that is `streaming` and `sync`: then a commit can be
   * confirmed by the passive. Anything else means a write would block or be lost on failover.
   */
  writable: boolean;
}

const SYNC_RANK: Record<SyncState, number> = { sync: 3, quorum: 2, potential: 1, async: 0 };

function isSyncStreaming(s: StandbyInfo): boolean {
  return s.state === 'streaming' && s.syncState === 'sync';
}

/** The standby that matters most: sync before quorum/potential/async, then streaming before other states. */
function pickStandby(standbys: StandbyInfo[]): StandbyInfo | undefined {
  const score = (s: StandbyInfo) => SYNC_RANK[s.syncState] * 2 + (s.state === 'streaming' ? 1 : 0);
  return [...standbys].sort((a, b) => score(b) - score(a))[0];
}

function walReceiverLinkState(status: string | undefined): ReplicationLinkState {
  switch (status) {
    case 'streaming':
      return 'streaming';
    case 'starting':
      return 'startup';
    case 'waiting':
    case 'restarting':
    case 'stopping':
      return status;
    default:
      return 'disconnected';
  }
}

/**
 * One line of replication health. `standbyName` restricts which standby is described (the write
 * gate still counts any sync standby, since that is what lets commits complete).
 */
export function summarizeReplication(
  state: ReplicationState,
  opts: { standbyName?: string } = {},
): ReplicationSummary {
  const common = {
    timeline: state.timeline,
    lostSlots: state.slots.filter((s) => s.walStatus === 'lost').map((s) => s.name),
  };
  if (state.inRecovery) {
    return {
      ...common,
      role: 'passive',
      state: walReceiverLinkState(state.walReceiver?.status),
      syncState: 'none',
      lagBytes: state.replayLagBytes ?? null,
      replayLagSeconds: null,
      writable: false,
    };
  }
  const described = opts.standbyName
    ? state.standbys.filter((s) => s.applicationName === opts.standbyName)
    : state.standbys;
  const standby = pickStandby(described);
  const writable = state.standbys.some(isSyncStreaming);
  if (!standby) {
    return {
      ...common,
      role: 'active',
      state: 'disconnected',
      syncState: 'none',
      lagBytes: null,
      replayLagSeconds: null,
      writable,
    };
  }
  const idleCaughtUp = standby.replayLagSeconds === null && standby.lagBytes === 0;
  return {
    ...common,
    role: 'active',
    state: standby.state,
    syncState: standby.syncState,
    lagBytes: standby.lagBytes,
    replayLagSeconds: idleCaughtUp ? 0 : standby.replayLagSeconds,
    writable,
  };
}
