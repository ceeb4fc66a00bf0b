import { generateKeyPairSync } from 'node:crypto';
import { DecoyRegistrations } from './decoy-registration';

const identity = () =>
  generateKeyPairSync('rsa', {
    modulusLength: 2048,
    privateKeyEncoding: { type: 'pkcs8', format: 'pem' },
    publicKeyEncoding: { type: 'spki', format: 'pem' },
  }).privateKey;

describe('decoy registrations for unknown organizations', () => {
  const key = identity();

  it('gives each fingerprint a fixed positive 16-byte serial that only this identity recognises', () => {
    const a = new DecoyRegistrations(key);
    const again = new DecoyRegistrations(key); // another node, or after a restart
    const serial = a.serialFor('2048R/AB');
    expect(serial).toMatch(/^[0-7][0-9a-f]{31}$/);
    expect(serial.startsWith('00')).toBe(false);
    expect(again.serialFor('2048R/AB')).toBe(serial);
    expect(a.serialFor('2048R/AC')).not.toBe(serial);
    // Node prints serials upper-case; either case is recognised.
    expect(a.isDecoy(serial.toUpperCase(), '2048R/AB')).toBe(true);
    expect(a.isDecoy(serial, '2048R/AC')).toBe(false);
    expect(new DecoyRegistrations(identity()).isDecoy(serial, '2048R/AB')).toBe(false);
  });

  it('remembers a bounded number of decoys, oldest forgotten first', () => {
    const d = new DecoyRegistrations(key, { cacheSize: 2 });
    d.remember('fp1', { org: 'x', certificate: 'cert1' });
    d.remember('fp2', { org: 'x', certificate: 'cert2' });
    d.remember('fp3', { org: 'y', certificate: 'cert3' });
    expect(d.remembered('fp1')).toBeUndefined();
    expect(d.remembered('fp2')).toEqual({ org: 'x', certificate: 'cert2' });
    expect(d.remembered('fp3')?.org).toBe('y');
  });

  it('waits out the moving average of real pending registrations, at most 5 s', () => {
    const d = new DecoyRegistrations(key);
    expect(d.remainingMs(3)).toBe(0);
    d.observePending(40);
    expect(d.remainingMs(10)).toBe(30);
    d.observePending(100); // weighted 1/5
    expect(d.remainingMs(0)).toBe(52);
    for (let i = 0; i < 50; i++) d.observePending(20_000);
    expect(d.remainingMs(0)).toBe(5_000);
  });
});
