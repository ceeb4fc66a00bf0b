import { isLoopbackAddress, testDepositName } from './test-hsm';

describe('/test_hsm pieces', () => {
  test("the sample deposit name has the seed's shape, in UTC", () => {
    expect(testDepositName(new Date('2016-06-03T07:27:18Z'))).toBe('TEST_HELLO_DEPOSIT2016-06-03-072718');
  });

  test.each([
    ['127.0.0.1', true],
    ['::1', true],
    ['::ffff:127.0.0.1', true],
    ['127.1.2.3', true],
    ['10.0.0.1', false],
    ['::ffff:10.0.0.1', false],
    ['fe80::1', false],
    [undefined, false],
  ])('%s is loopback: %s', (addr, expected) => expect(isLoopbackAddress(addr)).toBe(expected));
});
