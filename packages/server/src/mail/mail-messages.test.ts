import {
  contactLink,
  contactRegistrationMail,
  formatUtcAsctime,
  nodePublicUrl,
  pendingClientsMail,
} from './mail-messages';

describe('mail texts', () => {
  it('prints the expiry as the seed does: C asctime in UTC, day of month padded with a space', () => {
    expect(formatUtcAsctime(new Date('2015-09-03T00:08:25Z'))).toBe('Thu Sep  3 00:08:25 2015 UTC');
    expect(formatUtcAsctime(new Date('2026-12-24T23:59:59.999Z'))).toBe('Thu Dec 24 23:59:59 2026 UTC');
  });

  it("links to this node's public host and port (an any-port conf links to 11371)", () => {
    expect(contactLink(nodePublicUrl('kt01.example.com', 11371), 'T')).toBe(
      'https://kt01.example.com:11371/?q=T',
    );
    expect(nodePublicUrl('localhost', 0)).toBe('https://localhost:11371');
  });

  it('states the org, the link and the 12-hour expiry in the contact mail', () => {
    const m = contactRegistrationMail({
      org: 'test-org',
      link: 'https://h:11371/?q=abc',
      expiresAt: new Date('2015-09-03T00:08:25Z'),
    });
    expect(m.subject).toBe('KeyTrustee Contact Registration');
    expect(m.text).toContain('at your organization [test-org]');
    expect(m.text).toContain(
      '\nhttps://h:11371/?q=abc\n This link will expire in 12 hours, at Thu Sep  3 00:08:25 2015 UTC.\n',
    );
  });

  it('lists every pending client with the exact enable-client line', () => {
    const fp = `4096R/${'A'.repeat(40)}`;
    const m = pendingClientsMail({
      org: 'o',
      clients: [
        { fingerprint: fp, name: null, registeredAt: '2026-01-01T00:00:00Z' },
        { fingerprint: fp.replace('A', 'B'), name: 'web', registeredAt: '2026-01-01T00:00:01Z' },
      ],
    });
    expect(m.text).toContain('2 new clients have registered');
    expect(m.text).toContain(`\nkeytrustee-orgtool enable-client --fingerprint ${fp}\n`);
    expect(m.text).toContain('Client name: web');
  });
});
