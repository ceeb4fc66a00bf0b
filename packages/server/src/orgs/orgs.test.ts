import { AppError } from '../errors';
import { authCodesMatch, generateAuthSecret, ORG_NAME_RE, parseContacts, validateOrgName } from './orgs';
import { thrownBy } from '../../test/support/thrown';

const refusal = (fn: () => unknown): AppError => thrownBy(fn, AppError);

describe('validateOrgName', () => {
  it.each(['a', 'demo', 'Acme_Corp-2', '9lives', 'x'.repeat(63)])('accepts %j', (name) => {
    expect(validateOrgName(name)).toBe(name);
    expect(name).toMatch(ORG_NAME_RE);
  });

  it.each([
    ['the empty name', ''],
    ['64 characters', 'x'.repeat(64)],
    ['a space', 'acme corp'],
    ['a leading hyphen', '-acme'],
    ['a leading underscore', '_acme'],
    ['a dot', 'acme.com'],
    ['a slash', 'acme/eu'],
    ['a trailing newline', 'acme\n'],
    ['non-ASCII', 'acmé'],
    ['a Cyrillic lookalike', '\u0430cme'],
    ['a quote', 'acme"'],
  ])('refuses %s as INVALID_REQUEST, saying what is allowed', (_label, name) => {
    const err = refusal(() => validateOrgName(name));
    expect(err.code).toBe('INVALID_REQUEST');
    expect(err.status).toBe(400);
    expect(err.message).toMatch(
      /use letters, digits, hyphens and underscores only \(no spaces\), at most 63 characters$/,
    );
  });
});

describe('parseContacts', () => {
  it('splits a comma-separated list of e-mail addresses', () => {
    expect(parseContacts('a@x.com')).toEqual(['a@x.com']);
    expect(parseContacts('a@x.com,b.c+tag@mail.example.org')).toEqual([
      'a@x.com',
      'b.c+tag@mail.example.org',
    ]);
  });

  it.each([
    ['an empty list', ''],
    ['a space after the comma', 'a@x.com, b@y.com'],
    ['a trailing comma', 'a@x.com,'],
    ['two commas', 'a@x.com,,b@y.com'],
    ['no @', 'admin.example.com'],
    ['no domain dot', 'a@localhost'],
    ['two @', 'a@b@x.com'],
    ['a semicolon list', 'a@x.com;b@y.com'],
  ])('refuses %s as INVALID_REQUEST, naming the offending entry', (_label, list) => {
    const err = refusal(() => parseContacts(list));
    expect(err.code).toBe('INVALID_REQUEST');
    expect(err.message).toMatch(
      /^invalid contact ".*": give e-mail addresses separated by commas, without spaces$/,
    );
  });
});

describe('authCodesMatch', () => {
  it('matches equal codes only', () => {
    expect(authCodesMatch('/qFiICsyYqMLhdTznNY3Nw==', '/qFiICsyYqMLhdTznNY3Nw==')).toBe(true);
    expect(authCodesMatch('/qFiICsyYqMLhdTznNY3Nw==', '/qFiICsyYqMLhdTznNY3Nw=')).toBe(false);
    expect(authCodesMatch('', 'x')).toBe(false);
    expect(authCodesMatch('x', '')).toBe(false);
    expect(authCodesMatch('', '')).toBe(true);
    expect(authCodesMatch('Code', 'code')).toBe(false);
  });

  it('compares codes of any length without throwing (they are hashed first)', () => {
    expect(authCodesMatch('a'.repeat(10_000), 'a')).toBe(false);
    expect(authCodesMatch('a', 'a'.repeat(10_000))).toBe(false);
  });

  it('compares the exact characters: composed and decomposed "é" differ', () => {
    expect(authCodesMatch('caf\u00e9', 'cafe\u0301')).toBe(false);
    expect(authCodesMatch('caf\u00e9', 'caf\u00e9')).toBe(true);
  });
});

describe('generateAuthSecret', () => {
  it('is 16 random bytes in base64, like the seed’s codes', () => {
    const codes = new Set(Array.from({ length: 50 }, () => generateAuthSecret()));
    expect(codes.size).toBe(50);
    for (const c of codes) {
      expect(c).toMatch(/^[A-Za-z0-9+/]{22}==$/);
      expect(Buffer.from(c, 'base64')).toHaveLength(16);
    }
  });
});
