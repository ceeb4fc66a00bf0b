import { outboxMessageId } from './send-mail';

describe('outboxMessageId', () => {
  it('is the same for the same rows, in any order, and differs for another set', () => {
    const id = outboxMessageId(['12', '9', '100'], 'trustee@kms.example.com');
    expect(id).toMatch(/^<trustee-outbox\.9\.[0-9a-f]{16}@kms\.example\.com>$/);
    expect(outboxMessageId(['100', '12', '9'], 'trustee@kms.example.com')).toBe(id);
    expect(outboxMessageId(['12', '9'], 'trustee@kms.example.com')).not.toBe(id);
    expect(outboxMessageId(['9', '12', '101'], 'trustee@kms.example.com')).not.toBe(id);
  });

  it("takes SMTP_FROM's domain, with or without a display name, else a reserved one", () => {
    expect(outboxMessageId(['1'], 'Key Trustee <kt@acme.test>')).toMatch(/@acme\.test>$/);
    expect(outboxMessageId(['1'], 'kt@acme.test')).toMatch(/@acme\.test>$/);
    expect(outboxMessageId(['1'], 'no-domain')).toMatch(/@trustee\.invalid>$/);
  });

  it('orders ids as numbers, not text (bigint ids)', () => {
    expect(outboxMessageId(['10', '9'], 'a@b.c')).toMatch(/^<trustee-outbox\.9\./);
    expect(outboxMessageId(['9007199254740993', '9007199254740992'], 'a@b.c')).toMatch(
      /^<trustee-outbox\.9007199254740992\./,
    );
  });
});
