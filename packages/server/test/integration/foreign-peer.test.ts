/**
 * The peer probe took any node answering at the peer's address for the peer. A node of another
 * cluster there (PEERS pointing at the wrong host, or `localhost` reaching another cluster on the
 * same machine — seen once in CI while `npm start` ran beside the tests) that is active on
 * timeline 1, like a fresh active here, made this node decide "the peer is also active on the
 * same timeline" and refuse all client traffic. Health now names the cluster; an answer naming
 * another one is ignored and reported.
 */
import { health } from '../support/deposit-requests';
import { waitFor } from '../support/processes';
import { startSingleNode, type SingleNode } from '../support/single-node';

describe('a node of another cluster at the peer address (peer probe)', () => {
  let other: SingleNode;
  let node: SingleNode;

  beforeAll(async () => {
    other = await startSingleNode();
    node = await startSingleNode({ conf: { PEERS: [other.url] } });
  });
  afterAll(async () => {
    await node?.stop();
    await other?.stop();
  });

  it('is ignored: this node stays active and readable, and health says the address answers for another cluster', async () => {
    const theirs = await health(other.url);
    expect(theirs.json.role).toBe('active');
    expect(theirs.json.timeline).toBe(1);
    await waitFor(
      'the probe has seen the other node',
      async () => (await health(node.url)).json.peer?.reachable === true,
      15_000,
      100,
    );
    const h = await health(node.url);
    expect(h.json.peer).toEqual({ reachable: true, role: null, timeline: null, foreign: true });
    expect(h.json.role).toBe('active');
    expect(h.json.readable).toBe(true);
    expect(h.json.reason).not.toMatch(/also active/);
    expect(h.json.cluster).not.toBe(theirs.json.cluster);
    // Strict two-node mode still holds: without its own passive this node takes no writes.
    expect(h.json.writable).toBe(false);
  });
});
