/**
 * How `disable-client` revokes a client on this node now (issue 10, finding 2), read off the
 * node's one decision (decide.ts) — it adds no judgement of its own about writability. A
 * revocation only tightens access, so unlike every other write it does not wait for a second
 * node: a surviving active commits it alone, a surviving passive keeps it in its deny list.
 */
import type { ErrorCode } from '../errors';
import type { NodeDecision, PeerObservation, WriteMode } from '../node/decide';

export type RevocationPath =
  /** The node writes now: the normal write path (both nodes, or by design / operator alone). */
  | { kind: 'write'; writeMode: WriteMode }
  /** An active whose passive is not streaming: commit on this node (synchronous_commit = local). */
  | { kind: 'local-commit' }
  /** A passive whose active is unreachable: this node's deny list (deny-list.ts). */
  | { kind: 'deny-list' }
  | { kind: 'refused'; code: ErrorCode; message: string };

export function decideRevocationPath(d: NodeDecision, peer: PeerObservation | undefined): RevocationPath {
  if (d.writable && d.writeMode) return { kind: 'write', writeMode: d.writeMode };
  if (d.role === 'active' && d.writeRefusal?.code === 'PASSIVE_UNAVAILABLE') return { kind: 'local-commit' };
  if (d.role === 'passive') {
    // With the active up, revoking there reaches both nodes within 1 s; a local entry would not.
    if (peer?.reachable && peer.role === 'active') {
      return {
        kind: 'refused',
        code: 'NOT_ACTIVE',
        message:
          'this node is passive and the active answers: run disable-client on the active, which disables the client on both nodes',
      };
    }
    return { kind: 'deny-list' };
  }
  // Fenced or unavailable: this node serves no client, so there is nothing to refuse here.
  return {
    kind: 'refused',
    code: d.readRefusal?.code ?? 'UNAVAILABLE',
    message: `${d.reason}; it serves no client now: run disable-client on the other node`,
  };
}
