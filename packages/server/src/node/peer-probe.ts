/**
 * Asks the peer's API what it decided about itself (`/v1/health`: role and timeline). Used for
 * fencing (a peer active on a higher timeline supersedes this node) and by `promote` to refuse
 * while the old active still answers. Node certificates are self-signed per node and not shared,
 * so the probe does not verify the peer's certificate: a forged answer can at worst fence this
 * node (it stops serving) — it can never make it writable. An answer from a node of another
 * cluster (PEERS pointing at the wrong host, or `localhost` reaching another local cluster) names
 * its cluster identity: it is ignored (`foreign`), never taken for the peer's decision.
 */
import { request } from 'node:https';
import type { PeerObservation } from './decide';

/**
 * GET <url>/v1/health within `timeoutMs`; unreachable on any network error or timeout.
 * `cluster`: this cluster's identity fingerprint; an answer naming another is `foreign`.
 */
export function probePeer(url: string, timeoutMs = 1000, cluster?: string): Promise<PeerObservation> {
  let target: URL;
  try {
    // A PEERS entry that is no URL, or not https (config.ts refuses both; an older file may not
    // have been checked): the peer is unreachable, never a thrown error that stops the caller.
    target = new URL('/v1/health', url);
    if (target.protocol !== 'https:') throw new Error(`not https: ${target.protocol}`);
  } catch {
    return Promise.resolve({ reachable: false });
  }
  return new Promise((resolve) => {
    let settled = false;
    const done = (o: PeerObservation) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      resolve(o);
    };
    const req = request(
      target,
      {
        rejectUnauthorized: false,
        agent: false,
        timeout: timeoutMs,
        headers: { accept: 'application/json' },
      },
      (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (d: string) => {
          if (body.length < 64 * 1024) body += d;
        });
        res.on('end', () => done(parseHealth(body, cluster)));
        res.on('error', () => done({ reachable: true }));
      },
    );
    const timer = setTimeout(() => {
      req.destroy();
      done({ reachable: false });
    }, timeoutMs);
    req.on('error', () => done({ reachable: false }));
    req.on('timeout', () => req.destroy());
    req.end();
  });
}

/**
 * The peer answered: take role and timeline from its health body when they are well-formed and
 * it belongs to `cluster` (a body without the field, from an older version, is taken as ours).
 */
export function parseHealth(body: string, cluster?: string): PeerObservation {
  try {
    const j = JSON.parse(body) as { role?: unknown; timeline?: unknown; cluster?: unknown };
    if (cluster && typeof j.cluster === 'string' && j.cluster !== cluster)
      return { reachable: true, foreign: true };
    const roles = ['active', 'passive', 'fenced', 'unavailable', 'unknown'] as const;
    const role = roles.find((r) => r === j.role);
    const timeline = typeof j.timeline === 'number' && Number.isInteger(j.timeline) ? j.timeline : undefined;
    return { reachable: true, role, timeline };
  } catch {
    return { reachable: true };
  }
}
