import { passwordScriptArgv } from './key-passphrase';

describe('the password script', () => {
  it("runs the seed's /bin/echo -n password as a program with arguments", () => {
    expect(passwordScriptArgv('/bin/echo -n password', '/conf')).toEqual(['/bin/echo', '-n', 'password']);
  });

  it('finds a relative script path in the confdir and a bare name in PATH', () => {
    expect(passwordScriptArgv('./pw.sh --id 1', '/conf')).toEqual(['/conf/pw.sh', '--id', '1']);
    expect(passwordScriptArgv('bin/pw.sh', '/conf')).toEqual(['/conf/bin/pw.sh']);
    expect(passwordScriptArgv('echo -n password', '/conf')).toEqual(['echo', '-n', 'password']);
  });

  it('names the key, never the arguments, when the line cannot be parsed', () => {
    expect(() => passwordScriptArgv("/bin/echo -n 'secret", '/conf')).toThrow(
      /^SSL_PRIVATE_KEY_PASSWORD_SCRIPT cannot be parsed: unterminated single quote$/,
    );
  });
});
