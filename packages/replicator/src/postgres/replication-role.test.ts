import { isLoopbackAddress, mergeHbaRules, replicationHbaRules, slotNameFor } from './replication-role';
import { renderHba } from './settings';

describe('slotNameFor', () => {
  it('keeps only lower-case letters, digits and underscores', () => {
    expect(slotNameFor('node_b')).toBe('node_b');
    expect(slotNameFor('Node-B')).toBe('node_b');
    expect(slotNameFor('kt2.example.com')).toBe('kt2_example_com');
  });

  it('truncates to 63 characters', () => {
    expect(slotNameFor('a'.repeat(80))).toHaveLength(63);
  });

  it('refuses a name with nothing usable in it', () => {
    expect(() => slotNameFor('')).toThrow(/no letters or digits/);
    expect(() => slotNameFor('--')).toThrow(/no letters or digits/);
  });
});

describe('replicationHbaRules', () => {
  it('gives a loopback peer plain host entries for IPv4 and IPv6', () => {
    expect(replicationHbaRules('127.0.0.1')).toEqual([
      {
        type: 'host',
        database: 'replication',
        user: 'replicator',
        address: '127.0.0.1/32',
        method: 'scram-sha-256',
      },
      {
        type: 'host',
        database: 'replication',
        user: 'replicator',
        address: '::1/128',
        method: 'scram-sha-256',
      },
    ]);
    expect(isLoopbackAddress('localhost')).toBe(true);
    expect(isLoopbackAddress('127.0.1.1')).toBe(true);
    expect(isLoopbackAddress('10.0.0.1')).toBe(false);
  });

  it('requires TLS from a remote peer unless plaintext is asked for loudly', () => {
    expect(replicationHbaRules('10.1.2.3')).toEqual([
      {
        type: 'hostssl',
        database: 'replication',
        user: 'replicator',
        address: '10.1.2.3/32',
        method: 'scram-sha-256',
      },
    ]);
    expect(replicationHbaRules('fd00::2', { role: 'rep' })[0]).toMatchObject({
      type: 'hostssl',
      user: 'rep',
      address: 'fd00::2/128',
    });
    expect(replicationHbaRules('kt2.example.com', { insecurePlaintextReplication: true })[0]).toMatchObject({
      type: 'host',
      address: 'kt2.example.com',
    });
  });
});

describe('mergeHbaRules', () => {
  const rules = replicationHbaRules('10.1.2.3');

  it('appends missing rules after the existing ones', () => {
    const existing = renderHba([{ type: 'local', database: 'all', user: 'all', method: 'trust' }]);
    const merged = mergeHbaRules(existing, rules);
    expect(merged.startsWith(existing)).toBe(true);
    expect(merged.trimEnd().split('\n').pop()).toBe(
      'hostssl\treplication\treplicator\t10.1.2.3/32\tscram-sha-256',
    );
  });

  it('is idempotent, whatever the whitespace of the existing line', () => {
    const existing = 'local all all trust\nhostssl   replication  replicator 10.1.2.3/32   scram-sha-256\n';
    expect(mergeHbaRules(existing, rules)).toBe(existing);
    const once = mergeHbaRules('local all all trust', rules);
    expect(mergeHbaRules(once, rules)).toBe(once);
  });
});
