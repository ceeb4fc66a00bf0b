import { parseHealth, probePeer } from './peer-probe';

describe('parseHealth: what a peer that answered /v1/health decided about itself', () => {
  it.each([
    [
      'an active on timeline 3',
      { role: 'active', timeline: 3 },
      { reachable: true, role: 'active', timeline: 3 },
    ],
    [
      'a passive on timeline 1',
      { role: 'passive', timeline: 1 },
      { reachable: true, role: 'passive', timeline: 1 },
    ],
    ['a fenced node', { role: 'fenced', timeline: 2 }, { reachable: true, role: 'fenced', timeline: 2 }],
    [
      'an unavailable node with its database down (timeline null)',
      { role: 'unavailable', timeline: null },
      { reachable: true, role: 'unavailable', timeline: undefined },
    ],
    [
      'a node that says unknown',
      { role: 'unknown', timeline: 4 },
      { reachable: true, role: 'unknown', timeline: 4 },
    ],
    [
      'a full health body with other fields',
      {
        role: 'active',
        readable: true,
        writable: true,
        writeMode: 'sync',
        timeline: 7,
        peer: null,
        db: 'up',
      },
      { reachable: true, role: 'active', timeline: 7 },
    ],
  ])('takes role and timeline from %s', (_what, body, expected) => {
    expect(parseHealth(JSON.stringify(body))).toEqual(expected);
  });

  it.each([
    ['no role', { timeline: 3 }, { reachable: true, role: undefined, timeline: 3 }],
    ['no timeline', { role: 'active' }, { reachable: true, role: 'active', timeline: undefined }],
    ['neither field', {}, { reachable: true, role: undefined, timeline: undefined }],
    ['an array', [], { reachable: true, role: undefined, timeline: undefined }],
  ])('leaves out what is missing when the body has %s', (_what, body, expected) => {
    expect(parseHealth(JSON.stringify(body))).toEqual(expected);
  });

  it.each([
    ['an empty body', ''],
    ['truncated JSON', '{"role":"act'],
    ['an HTML error page', '<html><body>502 Bad Gateway</body></html>'],
    ['JSON null', 'null'],
  ])('says only "reachable" for %s', (_what, body) => {
    expect(parseHealth(body)).toEqual({ reachable: true });
  });

  it.each([
    ['a role that is not a decided role', { role: 'primary', timeline: 3 }, { role: undefined, timeline: 3 }],
    ['a role of the wrong case', { role: 'ACTIVE', timeline: 3 }, { role: undefined, timeline: 3 }],
    ['a numeric role', { role: 1, timeline: 3 }, { role: undefined, timeline: 3 }],
    ['a role given as an array', { role: ['active'], timeline: 3 }, { role: undefined, timeline: 3 }],
    [
      'a timeline given as a string',
      { role: 'active', timeline: '3' },
      { role: 'active', timeline: undefined },
    ],
    ['a fractional timeline', { role: 'active', timeline: 2.5 }, { role: 'active', timeline: undefined }],
    ['a boolean timeline', { role: 'active', timeline: true }, { role: 'active', timeline: undefined }],
    [
      'a timeline given as an object',
      { role: 'active', timeline: { id: 3 } },
      { role: 'active', timeline: undefined },
    ],
  ])('drops a field of the wrong type: %s', (_what, body, expected) => {
    expect(parseHealth(JSON.stringify(body))).toEqual({ reachable: true, ...expected });
  });

  it('never reports an answering peer as unreachable', () => {
    for (const body of ['', 'x', '{}', '{"role":"active","timeline":3}', 'null', '42']) {
      expect(parseHealth(body).reachable).toBe(true);
    }
  });
});

describe('parseHealth with this cluster named: a node of another cluster is not the peer', () => {
  const ours = 'AAAA';
  it('takes the decision of a node of this cluster', () => {
    expect(parseHealth(JSON.stringify({ role: 'active', timeline: 1, cluster: ours }), ours)).toEqual({
      reachable: true,
      role: 'active',
      timeline: 1,
    });
  });
  it('ignores the decision of a node of another cluster', () => {
    expect(parseHealth(JSON.stringify({ role: 'active', timeline: 1, cluster: 'BBBB' }), ours)).toEqual({
      reachable: true,
      foreign: true,
    });
  });
  it('takes a body without the field (an older peer) as this cluster', () => {
    expect(parseHealth(JSON.stringify({ role: 'passive', timeline: 2 }), ours)).toEqual({
      reachable: true,
      role: 'passive',
      timeline: 2,
    });
  });
});

describe('probePeer with a PEERS entry it cannot use', () => {
  it.each(['kt02:11371', 'http://127.0.0.1:1', 'not a url'])(
    'answers unreachable for %s instead of throwing',
    async (url) => {
      await expect(probePeer(url, 200)).resolves.toEqual({ reachable: false });
    },
  );
});
