import { localNodeSpecs } from './local-cluster';

describe('localNodeSpecs (npm start layout, DESIGN.md)', () => {
  it('puts node-a (active, 11371/11381) and node-b (passive, 11372/11382) under the home', () => {
    expect(localNodeSpecs({ home: '/srv/.trustee' })).toEqual([
      {
        name: 'node-a',
        dir: '/srv/.trustee/node-a',
        confdir: '/srv/.trustee/node-a/confdir',
        dbDir: '/srv/.trustee/node-a/db',
        apiPort: 11371,
        dbPort: 11381,
        url: 'https://localhost:11371',
      },
      {
        name: 'node-b',
        dir: '/srv/.trustee/node-b',
        confdir: '/srv/.trustee/node-b/confdir',
        dbDir: '/srv/.trustee/node-b/db',
        apiPort: 11372,
        dbPort: 11382,
        url: 'https://localhost:11372',
      },
    ]);
  });

  it('takes other ports when given (tests run beside a real local cluster)', () => {
    const [a, b] = localNodeSpecs({ home: 'rel/home', apiPorts: [21371, 21372], dbPorts: [21381, 21382] });
    expect([a.apiPort, a.dbPort, a.url, a.confdir]).toEqual([
      21371,
      21381,
      'https://localhost:21371',
      'rel/home/node-a/confdir',
    ]);
    expect([b.apiPort, b.dbPort, b.url]).toEqual([21372, 21382, 'https://localhost:21372']);
  });
});
