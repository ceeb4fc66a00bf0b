import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { isAlive } from './processes';

/**
 * Network namespaces for partition tests: three namespaces made by the test (node A, node B, the
 * client C) joined by three veth pairs, addresses only inside them — nothing is added to the root
 * namespace, so the machine's own networking and other tests never see them.
 *
 *        A ──ab── B        ab: replication + peer probes (10.201.1.0/24)
 *         \      /         ca: client ↔ A                (10.201.2.0/24)
 *          ca  cb          cb: client ↔ B                (10.201.3.0/24)
 *            C
 *
 * Cutting `ab` partitions the pair while the client still reaches both nodes.
 */

/** Every namespace this helper makes starts with this, then the jest worker's pid. */
export const NETNS_PREFIX = 'ktpart-';

const IP = existsSync('/usr/sbin/ip') ? '/usr/sbin/ip' : 'ip';
const TC = existsSync('/usr/sbin/tc') ? '/usr/sbin/tc' : 'tc';
const NFT = existsSync('/usr/sbin/nft') ? '/usr/sbin/nft' : 'nft';
/** nftables table holding the random-drop rule of `addLoss` (one per namespace). */
const LOSS_TABLE = 'trustee_loss';

export type NsName = 'a' | 'b' | 'c';
export type LinkName = 'ab' | 'ca' | 'cb';

/** The two ends of each link: namespace and address (the device is named after the link in both). */
const LINKS: Record<LinkName, [{ ns: NsName; addr: string }, { ns: NsName; addr: string }]> = {
  ab: [
    { ns: 'a', addr: '10.201.1.1' },
    { ns: 'b', addr: '10.201.1.2' },
  ],
  ca: [
    { ns: 'c', addr: '10.201.2.1' },
    { ns: 'a', addr: '10.201.2.2' },
  ],
  cb: [
    { ns: 'c', addr: '10.201.3.1' },
    { ns: 'b', addr: '10.201.3.2' },
  ],
};

export interface PartitionNet {
  /** Namespace names (unique per run). */
  ns: Record<NsName, string>;
  /** A's and B's addresses on the A–B link (replication, PEERS). */
  peerAddr: Record<'a' | 'b', string>;
  /** A's and B's addresses as the client in C dials them. */
  clientAddr: Record<'a' | 'b', string>;
  /** Sets both ends of a link down (cut) or up (heal). */
  setLink(link: LinkName, up: boolean): void;
  /**
   * `tc qdisc … netem ARGS` on both ends of a link; returns undefined when applied, else the
   * error text (sch_netem missing from the kernel: the caller must say so loudly).
   */
  addNetem(link: LinkName, args: string[]): string | undefined;
  clearNetem(link: LinkName): void;
  /**
   * Drops `percent` % of the packets arriving on each end of a link (nftables `numgen random` in
   * a netdev ingress chain): packet loss without sch_netem, no delay. Returns undefined when
   * applied, else the error text (no `nft`, or no nf_tables in the kernel).
   */
  addLoss(link: LinkName, percent: number): string | undefined;
  /** Packets dropped so far by `addLoss` on a link (both ends), from the rule's counter. */
  droppedPackets(link: LinkName): number;
  clearLoss(link: LinkName): void;
  /** `ip netns exec NS` as a command prefix, for spawn. */
  execPrefix(ns: NsName): string[];
  /** Kills every process still inside the namespaces (by pid) and deletes them; never throws. */
  destroy(): void;
}

function ip(args: string[]): string {
  return execFileSync(IP, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
}

/** Stderr of a failed command, for messages. */
function errorText(e: unknown): string {
  const stderr = (e as { stderr?: Buffer | string }).stderr;
  return (stderr ? String(stderr) : String(e)).trim();
}

/**
 * Whether this process may create network namespaces: makes and deletes one. Undefined when it
 * can, else why not (e.g. EPERM in an unprivileged container).
 */
export function netnsUnavailableReason(): string | undefined {
  const probe = `${NETNS_PREFIX}${process.pid}-probe`;
  try {
    ip(['netns', 'add', probe]);
  } catch (e) {
    return errorText(e);
  }
  deleteNetns(probe);
  return undefined;
}

/** Pids of the processes inside a namespace (`ip netns pids`). */
function netnsPids(name: string): number[] {
  try {
    return ip(['netns', 'pids', name]).split('\n').filter(Boolean).map(Number);
  } catch {
    return [];
  }
}

function deleteNetns(name: string): void {
  for (const pid of netnsPids(name)) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // already gone
    }
  }
  try {
    ip(['netns', 'del', name]);
  } catch {
    // already deleted
  }
}

/**
 * Deletes namespaces of this helper left by a run that died before its cleanup (their pid
 * suffix names a process that no longer exists); returns their names.
 */
export function sweepStaleNetns(): string[] {
  let list = '';
  try {
    list = ip(['netns', 'list']);
  } catch {
    return [];
  }
  const stale = list
    .split('\n')
    .map((l) => l.split(' ')[0])
    .filter((n) => n.startsWith(NETNS_PREFIX))
    .filter((n) => {
      const pid = Number(n.slice(NETNS_PREFIX.length).split('-')[0]);
      return Number.isInteger(pid) && pid !== process.pid && !isAlive(pid);
    });
  for (const n of stale) deleteNetns(n);
  return stale;
}

/** Creates the three namespaces and links; on any failure removes what it made and throws. */
export function createPartitionNet(): PartitionNet {
  const ns: Record<NsName, string> = {
    a: `${NETNS_PREFIX}${process.pid}-a`,
    b: `${NETNS_PREFIX}${process.pid}-b`,
    c: `${NETNS_PREFIX}${process.pid}-c`,
  };
  const destroy = () => Object.values(ns).forEach(deleteNetns);
  try {
    for (const n of Object.values(ns)) {
      ip(['netns', 'add', n]);
      ip(['-n', n, 'link', 'set', 'lo', 'up']);
    }
    for (const [link, [x, y]] of Object.entries(LINKS)) {
      // Made inside the first namespace with its peer end placed straight into the second:
      // the root namespace never holds either end, not even for a moment.
      ip(['-n', ns[x.ns], 'link', 'add', link, 'type', 'veth', 'peer', 'name', link, 'netns', ns[y.ns]]);
      for (const end of [x, y]) {
        ip(['-n', ns[end.ns], 'addr', 'add', `${end.addr}/24`, 'dev', link]);
        ip(['-n', ns[end.ns], 'link', 'set', link, 'up']);
      }
    }
  } catch (e) {
    destroy();
    throw new Error(`could not build the partition network: ${errorText(e)}`, { cause: e });
  }
  const ends = (link: LinkName) => LINKS[link].map((end) => ns[end.ns]);
  return {
    ns,
    peerAddr: { a: LINKS.ab[0].addr, b: LINKS.ab[1].addr },
    clientAddr: { a: LINKS.ca[1].addr, b: LINKS.cb[1].addr },
    setLink(link, up) {
      for (const n of ends(link)) ip(['-n', n, 'link', 'set', link, up ? 'up' : 'down']);
    },
    addNetem(link, args) {
      try {
        for (const n of ends(link))
          execFileSync(TC, ['-n', n, 'qdisc', 'add', 'dev', link, 'root', 'netem', ...args], {
            stdio: ['ignore', 'pipe', 'pipe'],
          });
        return undefined;
      } catch (e) {
        this.clearNetem(link);
        return errorText(e);
      }
    },
    clearNetem(link) {
      for (const n of ends(link)) {
        try {
          execFileSync(TC, ['-n', n, 'qdisc', 'del', 'dev', link, 'root'], { stdio: 'ignore' });
        } catch {
          // none was set
        }
      }
    },
    addLoss(link, percent) {
      const nft = (n: string, args: string[]) =>
        execFileSync(IP, ['netns', 'exec', n, NFT, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
      try {
        for (const n of ends(link)) {
          nft(n, ['add', 'table', 'netdev', LOSS_TABLE]);
          nft(n, [
            ...['add', 'chain', 'netdev', LOSS_TABLE, 'ingress'],
            `{ type filter hook ingress device "${link}" priority 0; }`,
          ]);
          // 100 %: a silent cut (links up, nothing arrives); nftables refuses `lt 100` on `mod 100`.
          const rule = percent >= 100 ? 'counter drop' : `numgen random mod 100 lt ${percent} counter drop`;
          nft(n, ['add', 'rule', 'netdev', LOSS_TABLE, 'ingress', ...rule.split(' ')]);
        }
        return undefined;
      } catch (e) {
        this.clearLoss(link);
        return errorText(e);
      }
    },
    droppedPackets(link) {
      let total = 0;
      for (const n of ends(link)) {
        const text = execFileSync(IP, ['netns', 'exec', n, NFT, 'list', 'table', 'netdev', LOSS_TABLE], {
          encoding: 'utf8',
        });
        total += Number(/counter packets (\d+)/.exec(text)?.[1] ?? 0);
      }
      return total;
    },
    clearLoss(link) {
      for (const n of ends(link)) {
        try {
          execFileSync(IP, ['netns', 'exec', n, NFT, 'delete', 'table', 'netdev', LOSS_TABLE], {
            stdio: 'ignore',
          });
        } catch {
          // none was set
        }
      }
    },
    execPrefix: (n) => [IP, 'netns', 'exec', ns[n]],
    destroy,
  };
}
