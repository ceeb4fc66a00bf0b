import { AppError, type ErrorCode } from '../errors';
import {
  encodeCursor,
  MAX_METADATA_BYTES,
  MAX_METADATA_DEPTH,
  nestsDeeperThan,
  validateDepositName,
  validateIdempotencyKey,
  validateIfMatch,
  validateListParams,
  validatePutBody,
  validateVersionParam,
} from './validate-deposit';
import { thrownBy } from '../../test/support/thrown';

/** The default MAX_VALUE_BYTES of keytrustee.conf (DESIGN.md: "Values: at most 64 KiB by default"). */
const MAX_VALUE_BYTES = 64 * 1024;

/** A value no error message may ever repeat (it stands for a key, a token, a password). */
const SECRET = 'hunter2-S3cr3t-Tok3n';

const refusal = (fn: () => unknown): AppError => thrownBy(fn, AppError);

function expectRefused(fn: () => unknown, code: ErrorCode): AppError {
  const err = refusal(fn);
  expect(err.code).toBe(code);
  expect(err.message.length).toBeGreaterThan(0);
  return err;
}

/** JSON object metadata whose serialisation is exactly `bytes` bytes long. */
function metadataOfBytes(bytes: number, char = 'x'): Record<string, unknown> {
  const overhead = Buffer.byteLength(JSON.stringify({ k: '' }));
  const per = Buffer.byteLength(char);
  expect((bytes - overhead) % per).toBe(0);
  const meta = { k: char.repeat((bytes - overhead) / per) };
  expect(Buffer.byteLength(JSON.stringify(meta))).toBe(bytes);
  return meta;
}

const NAME_RULE =
  'deposit names are 1-255 ASCII characters: a letter or digit, then letters, digits, ".", "_" or "-"';

describe('validateDepositName', () => {
  it.each([
    ['one character', 'a'],
    ['a digit first', '0'],
    ['255 characters', 'a'.repeat(255)],
    ['dots, dashes and underscores after the first', 'Key.v1_prod-2'],
    ['a trailing dot', 'a.'],
    ['repeated punctuation', 'a..--__'],
  ])('accepts %s', (_label, name) => {
    expect(validateDepositName(name)).toBe(name);
  });

  it.each([
    ['the empty name', ''],
    ['256 characters', 'a'.repeat(256)],
    ['a leading "."', '.hidden'],
    ['".."', '..'],
    ['a leading "-"', '-a'],
    ['a leading "_"', '_a'],
    ['a space inside', 'a b'],
    ['a leading space', ' a'],
    ['a trailing space', 'a '],
    ['a trailing newline', 'abc\n'],
    ['a tab', 'a\tb'],
    ['a NUL byte', 'a\0b'],
    ['a slash', 'a/b'],
    ['a path traversal', '../etc/passwd'],
    ['a percent sign', 'a%2Fb'],
    ['non-ASCII (é)', 'clé'],
    ['a Cyrillic "а" lookalike', '\u0430bc'],
    ['a fullwidth "ａ" lookalike', '\uff41bc'],
    ['a one-dot leader lookalike of "."', 'a\u2024b'],
    ['a non-breaking hyphen lookalike of "-"', 'a\u2011b'],
    ['a zero-width space', 'a\u200bb'],
    ['an emoji', 'key\u{1f511}'],
  ])('refuses %s with INVALID_NAME', (_label, name) => {
    const err = expectRefused(() => validateDepositName(name), 'INVALID_NAME');
    expect(err.status).toBe(400);
    // The rule, never the offending input, is in the message.
    expect(err.message).toBe(NAME_RULE);
  });

  it.each([undefined, null, 42, ['a'], { name: 'a' }])(
    'refuses the non-string %j with INVALID_NAME',
    (name) => {
      expectRefused(() => validateDepositName(name), 'INVALID_NAME');
    },
  );

  it('does not repeat a secret-looking name in its message', () => {
    const err = expectRefused(() => validateDepositName(` ${SECRET}`), 'INVALID_NAME');
    expect(err.message).not.toContain(SECRET);
  });
});

describe('validatePutBody', () => {
  it('decodes the base64 value and defaults metadata to null', () => {
    expect(validatePutBody({ value: Buffer.from('hello').toString('base64') }, MAX_VALUE_BYTES)).toEqual({
      value: Buffer.from('hello'),
      metadata: null,
    });
  });

  it.each([
    ['no padding', 'AAAA', 3],
    ['"=" padding', 'QUI=', 2],
    ['"==" padding', 'QQ==', 1],
    ['"+" and "/"', '+/+/', 3],
    ['the empty string', '', 0],
  ])('accepts base64 with %s', (_label, value, bytes) => {
    expect(validatePutBody({ value }, MAX_VALUE_BYTES).value.length).toBe(bytes);
  });

  it.each([
    ['missing padding', 'QQ'],
    ['short padding', 'QQ='],
    ['too much padding', 'QQ==='],
    ['padding only', '===='],
    ['padding in the middle', 'QQ==QUJD'],
    ['base64url "-"', 'ab-d'],
    ['base64url "_"', 'ab_d'],
    ['a space', 'QUJD REVG'],
    ['a line break', 'QUJD\nREVG'],
    ['a trailing newline', 'QUJD\n'],
    ['a non-base64 character', 'QUJ!'],
    ['non-ASCII', 'QUJé'],
    ['a length that is not a multiple of 4', 'QUJDR'],
  ])('refuses a value with %s as INVALID_REQUEST', (_label, value) => {
    const err = expectRefused(() => validatePutBody({ value }, MAX_VALUE_BYTES), 'INVALID_REQUEST');
    expect(err.status).toBe(400);
    expect(err.message).toMatch(/"value" must be a base64 string/);
  });

  it.each([
    ['missing', {}],
    ['null', { value: null }],
    ['a number', { value: 1234 }],
    ['an array', { value: ['AAAA'] }],
    ['an object', { value: { data: 'AAAA' } }],
  ])('refuses a value that is %s as INVALID_REQUEST', (_label, body) => {
    expectRefused(() => validatePutBody(body, MAX_VALUE_BYTES), 'INVALID_REQUEST');
  });

  it.each([
    ['null', null],
    ['undefined', undefined],
    ['an array', [{ value: 'AAAA' }]],
    ['a string', 'AAAA'],
    ['a number', 7],
  ])('refuses a body that is %s as INVALID_REQUEST', (_label, body) => {
    const err = expectRefused(() => validatePutBody(body, MAX_VALUE_BYTES), 'INVALID_REQUEST');
    expect(err.message).toMatch(/JSON object/);
  });

  it('accepts a value of exactly maxValueBytes and refuses one byte more as TOO_LARGE', () => {
    const atLimit = Buffer.alloc(MAX_VALUE_BYTES, 7);
    // Buffer.equals, not toEqual: a deep comparison of 64 KiB byte by byte takes half a second.
    expect(
      validatePutBody({ value: atLimit.toString('base64') }, MAX_VALUE_BYTES).value.equals(atLimit),
    ).toBe(true);
    const over = expectRefused(
      () => validatePutBody({ value: Buffer.alloc(MAX_VALUE_BYTES + 1).toString('base64') }, MAX_VALUE_BYTES),
      'TOO_LARGE',
    );
    expect(over.status).toBe(413);
    expect(over.message).toBe(`value is ${MAX_VALUE_BYTES + 1} bytes; the limit is ${MAX_VALUE_BYTES} bytes`);
  });

  it.each([1, 2, 3, 4, 5])('measures the limit on the decoded bytes (limit %i)', (limit) => {
    // A base64 string is ~4/3 the length of its bytes: the limit is on the bytes, not the text.
    const at = Buffer.alloc(limit, 1).toString('base64');
    expect(validatePutBody({ value: at }, limit).value.length).toBe(limit);
    const over = Buffer.alloc(limit + 1, 1).toString('base64');
    expectRefused(() => validatePutBody({ value: over }, limit), 'TOO_LARGE');
  });

  it('does not repeat the value in any refusal', () => {
    const secretB64 = Buffer.from(SECRET.repeat(4)).toString('base64');
    for (const value of [`${secretB64}!`, secretB64]) {
      const err = refusal(() => validatePutBody({ value }, 8));
      expect(err.message).not.toContain(secretB64);
      expect(err.message).not.toContain(SECRET);
      expect(JSON.stringify(err.details ?? {})).not.toContain(SECRET);
    }
  });

  describe('metadata', () => {
    it.each([
      ['null', null, null],
      ['absent', undefined, null],
      ['an empty object', {}, {}],
      ['a nested object', { a: { b: [1, 2] } }, { a: { b: [1, 2] } }],
    ])('accepts metadata that is %s', (_label, metadata, expected) => {
      expect(validatePutBody({ value: 'AAAA', metadata }, MAX_VALUE_BYTES).metadata).toEqual(expected);
    });

    it.each([
      ['an array', [1, 2]],
      ['an empty array', []],
      ['a string', 'tag'],
      ['a number', 3],
      ['a boolean', true],
    ])('refuses metadata that is %s as INVALID_REQUEST', (_label, metadata) => {
      const err = expectRefused(
        () => validatePutBody({ value: 'AAAA', metadata }, MAX_VALUE_BYTES),
        'INVALID_REQUEST',
      );
      expect(err.message).toMatch(/"metadata" must be a JSON object/);
    });

    it('accepts exactly 8 KiB of serialised metadata and refuses 8 KiB + 1 as TOO_LARGE', () => {
      expect(MAX_METADATA_BYTES).toBe(8192);
      const atLimit = metadataOfBytes(MAX_METADATA_BYTES);
      expect(validatePutBody({ value: 'AAAA', metadata: atLimit }, MAX_VALUE_BYTES).metadata).toEqual(
        atLimit,
      );
      const err = expectRefused(
        () =>
          validatePutBody(
            { value: 'AAAA', metadata: metadataOfBytes(MAX_METADATA_BYTES + 1) },
            MAX_VALUE_BYTES,
          ),
        'TOO_LARGE',
      );
      expect(err.status).toBe(413);
      expect(err.message).toBe('metadata exceeds 8192 bytes');
    });

    it('counts UTF-8 bytes, not characters, at the 8 KiB boundary', () => {
      // "é" is two bytes: 8190 bytes fit, 8194 do not, though both are fewer than 8192 characters.
      const fits = metadataOfBytes(MAX_METADATA_BYTES - 2, 'é');
      expect(validatePutBody({ value: 'AAAA', metadata: fits }, MAX_VALUE_BYTES).metadata).toEqual(fits);
      const over = metadataOfBytes(MAX_METADATA_BYTES + 2, 'é');
      expect(JSON.stringify(over).length).toBeLessThan(MAX_METADATA_BYTES);
      expectRefused(() => validatePutBody({ value: 'AAAA', metadata: over }, MAX_VALUE_BYTES), 'TOO_LARGE');
    });

    it('refuses metadata nested deeper than 256 levels as TOO_LARGE, never a stack overflow (fuzzer finding)', () => {
      for (const depth of [MAX_METADATA_DEPTH + 1, 7000, 100_000]) {
        const metadata = JSON.parse('{"a":'.repeat(depth) + '1' + '}'.repeat(depth)) as Record<
          string,
          unknown
        >;
        expectRefused(() => validatePutBody({ value: 'AAAA', metadata }, MAX_VALUE_BYTES), 'TOO_LARGE');
      }
      const deepest = JSON.parse(
        '{"a":'.repeat(MAX_METADATA_DEPTH) + '1' + '}'.repeat(MAX_METADATA_DEPTH),
      ) as Record<string, unknown>;
      expect(validatePutBody({ value: 'AAAA', metadata: deepest }, MAX_VALUE_BYTES).metadata).toBe(deepest);
      const arrays = { a: JSON.parse('['.repeat(10) + ']'.repeat(10)) as unknown };
      expect(nestsDeeperThan(arrays, 11)).toBe(false);
      expect(nestsDeeperThan(arrays, 10)).toBe(true);
    });

    it('does not repeat oversized metadata in the refusal', () => {
      const metadata = { password: SECRET, pad: 'x'.repeat(MAX_METADATA_BYTES) };
      const err = expectRefused(
        () => validatePutBody({ value: 'AAAA', metadata }, MAX_VALUE_BYTES),
        'TOO_LARGE',
      );
      expect(err.message).not.toContain(SECRET);
    });
  });

  describe('unknown fields', () => {
    it('refuses an unknown field as INVALID_REQUEST, naming the field but not its value', () => {
      const err = expectRefused(
        () => validatePutBody({ value: 'AAAA', passphrase: SECRET }, MAX_VALUE_BYTES),
        'INVALID_REQUEST',
      );
      expect(err.message).toBe('unknown field(s) in body: "passphrase"');
      expect(err.message).not.toContain(SECRET);
    });

    it('names at most five unknown fields', () => {
      const body: Record<string, unknown> = { value: 'AAAA' };
      for (let i = 1; i <= 7; i++) body[`f${i}`] = i;
      const err = expectRefused(() => validatePutBody(body, MAX_VALUE_BYTES), 'INVALID_REQUEST');
      expect(err.message).toBe('unknown field(s) in body: "f1", "f2", "f3", "f4", "f5" and 2 more');
    });

    it('cuts a long field name to 40 characters (an error never echoes a pasted secret whole)', () => {
      const name = `k${'x'.repeat(50)}${SECRET}`;
      const err = expectRefused(
        () => validatePutBody({ value: 'AAAA', [name]: 1 }, MAX_VALUE_BYTES),
        'INVALID_REQUEST',
      );
      expect(err.message).toBe(`unknown field(s) in body: ${JSON.stringify(`${name.slice(0, 40)}…`)}`);
      expect(err.message.length).toBeLessThan(80);
      expect(err.message).not.toContain(SECRET);
    });

    it('refuses unknown fields before looking at the value', () => {
      const err = expectRefused(
        () => validatePutBody({ value: '!!', Value: 'AAAA' }, MAX_VALUE_BYTES),
        'INVALID_REQUEST',
      );
      expect(err.message).toBe('unknown field(s) in body: "Value"');
    });

    it.each([
      ['__proto__', '{"value":"AAAA","__proto__":{"polluted":true}}'],
      ['constructor', '{"value":"AAAA","constructor":{"prototype":{"polluted":true}}}'],
    ])('refuses a JSON body with a "%s" key (as express.json parses it)', (key, json) => {
      const err = expectRefused(() => validatePutBody(JSON.parse(json), MAX_VALUE_BYTES), 'INVALID_REQUEST');
      expect(err.message).toBe(`unknown field(s) in body: "${key}"`);
      expect(({} as Record<string, unknown>).polluted).toBeUndefined();
    });
  });
});

describe('validateIdempotencyKey', () => {
  it('is optional: an absent header gives null', () => {
    expect(validateIdempotencyKey(undefined)).toBeNull();
  });

  it.each([
    ['1 character', 'k'],
    ['200 characters', 'k'.repeat(200)],
    ['a UUID', '0b6e1b64-6c1f-4d7b-9a55-2b1a6b5a7e10'],
    [
      'every printable ASCII character but space',
      Array.from({ length: 94 }, (_, i) => String.fromCharCode(0x21 + i)).join(''),
    ],
  ])('accepts %s', (_label, key) => {
    expect(validateIdempotencyKey(key)).toBe(key);
  });

  it.each([
    ['the empty string', ''],
    ['201 characters', 'k'.repeat(201)],
    ['a space', 'a b'],
    ['a leading space', ' ab'],
    ['a tab', 'a\tb'],
    ['a newline', 'a\nb'],
    ['a NUL', 'a\0b'],
    ['DEL (0x7f)', 'a\x7fb'],
    ['an escape (0x1b)', 'a\x1bb'],
    ['non-ASCII', 'clé'],
    ['a Latin-1 byte as a character', 'a\xffb'],
  ])('refuses %s as INVALID_REQUEST', (_label, key) => {
    const err = expectRefused(() => validateIdempotencyKey(key), 'INVALID_REQUEST');
    expect(err.status).toBe(400);
    expect(err.message).toBe('Idempotency-Key must be 1-200 printable ASCII characters');
  });

  it.each([null, 12, ['a', 'b']])('refuses the non-string %j as INVALID_REQUEST', (key) => {
    expectRefused(() => validateIdempotencyKey(key), 'INVALID_REQUEST');
  });

  it('does not repeat a refused key in its message', () => {
    const err = expectRefused(() => validateIdempotencyKey(`${SECRET} x`), 'INVALID_REQUEST');
    expect(err.message).not.toContain(SECRET);
  });
});

describe('validateIfMatch', () => {
  it('is optional: an absent header gives null', () => {
    expect(validateIfMatch(undefined)).toBeNull();
  });

  it.each([
    ['3', 3],
    ['"3"', 3],
    [' 3 ', 3],
    [' "3" ', 3],
    ['\t"12"\t', 12],
    ['0', 0],
    ['"0"', 0],
    ['007', 7],
    ['999999999', 999_999_999],
  ])('reads %j as version %i', (header, version) => {
    expect(validateIfMatch(header)).toBe(version);
  });

  it.each([
    ['the empty string', ''],
    ['only spaces', '   '],
    ['10 digits', '1234567890'],
    ['a negative number', '-1'],
    ['a decimal', '1.5'],
    ['an exponent', '1e3'],
    ['a weak ETag', 'W/"3"'],
    ['"*"', '*'],
    ['a list', '1, 2'],
    ['a space inside the quotes', '" 3 "'],
    ['doubled quotes', '""3""'],
    ['an opening quote only', '"3'],
    ['a closing quote only', '3"'],
    ['a word', 'latest'],
    ['non-ASCII digits', '\u0663'],
  ])('refuses %s as INVALID_REQUEST', (_label, header) => {
    const err = expectRefused(() => validateIfMatch(header), 'INVALID_REQUEST');
    expect(err.message).toBe('If-Match must be a deposit version number');
  });

  it.each([null, 3, ['3']])('refuses the non-string %j as INVALID_REQUEST', (header) => {
    expectRefused(() => validateIfMatch(header), 'INVALID_REQUEST');
  });

  it('does not repeat a refused header in its message', () => {
    expect(expectRefused(() => validateIfMatch(SECRET), 'INVALID_REQUEST').message).not.toContain(SECRET);
  });
});

describe('validateVersionParam', () => {
  it('is optional: an absent parameter gives null', () => {
    expect(validateVersionParam(undefined)).toBeNull();
  });

  it.each([
    ['1', 1],
    ['42', 42],
    ['999999999', 999_999_999],
  ])('reads %j as %i', (v, n) => {
    expect(validateVersionParam(v)).toBe(n);
  });

  it.each(['', '0', '00', '01', '-1', '+1', '1.0', '1e3', ' 1', '1 ', '1000000000', 'latest', '0x10'])(
    'refuses %j as INVALID_REQUEST',
    (v) => {
      const err = expectRefused(() => validateVersionParam(v), 'INVALID_REQUEST');
      expect(err.message).toBe('version must be a positive integer');
    },
  );

  it.each([null, 1, ['1', '2'], { v: '1' }])(
    'refuses the non-string %j (repeated or nested query) as INVALID_REQUEST',
    (v) => {
      expectRefused(() => validateVersionParam(v), 'INVALID_REQUEST');
    },
  );
});

describe('validateListParams', () => {
  it('defaults to every name, 100 per page, from the start', () => {
    expect(validateListParams({})).toEqual({ prefix: '', limit: 100, after: '' });
  });

  it('reads prefix, limit and a cursor made by encodeCursor', () => {
    expect(validateListParams({ prefix: 'app.', limit: '1000', cursor: encodeCursor('app.b-2') })).toEqual({
      prefix: 'app.',
      limit: 1000,
      after: 'app.b-2',
    });
    expect(validateListParams({ limit: '1', cursor: '' })).toEqual({ prefix: '', limit: 1, after: '' });
  });

  it.each([
    ['a prefix with "/"', { prefix: 'a/b' }],
    ['a prefix with a space', { prefix: 'a b' }],
    ['a non-ASCII prefix', { prefix: 'clé' }],
    ['a prefix of 256 characters', { prefix: 'a'.repeat(256) }],
    ['a repeated prefix', { prefix: ['a', 'b'] }],
    ['limit 0', { limit: '0' }],
    ['limit 1001', { limit: '1001' }],
    ['a negative limit', { limit: '-5' }],
    ['a decimal limit', { limit: '1.5' }],
    ['a five-digit limit', { limit: '00010' }],
    ['a repeated limit', { limit: ['1', '2'] }],
    ['a cursor that decodes to no deposit name', { cursor: encodeCursor('../x') }],
    ['a cursor that decodes to nothing', { cursor: '!!!!' }],
    ['a repeated cursor', { cursor: ['a', 'b'] }],
  ])('refuses %s as INVALID_REQUEST', (_label, q) => {
    expectRefused(() => validateListParams(q), 'INVALID_REQUEST');
  });

  it('accepts a prefix of 255 characters', () => {
    expect(validateListParams({ prefix: 'a'.repeat(255) }).prefix).toBe('a'.repeat(255));
  });
});
