import { splitCommandLine } from './command-line';

describe('SSL_PRIVATE_KEY_PASSWORD_SCRIPT command lines', () => {
  it("split the seed's example into program and arguments", () => {
    expect(splitCommandLine('/bin/echo -n password')).toEqual(['/bin/echo', '-n', 'password']);
    expect(splitCommandLine('  /bin/echo   -n\tpassword  ')).toEqual(['/bin/echo', '-n', 'password']);
    expect(splitCommandLine('/path/to/password_script')).toEqual(['/path/to/password_script']);
  });

  it('keep quoted spaces and quotes, without a shell', () => {
    expect(splitCommandLine(`/bin/echo -n 'two words'`)).toEqual(['/bin/echo', '-n', 'two words']);
    expect(splitCommandLine(`/bin/echo "a \\"b\\" c"`)).toEqual(['/bin/echo', 'a "b" c']);
    expect(splitCommandLine(`/bin/echo it\\'s`)).toEqual(['/bin/echo', "it's"]);
    expect(splitCommandLine(`'/opt/my scripts/pw.sh' --vault=kt`)).toEqual([
      '/opt/my scripts/pw.sh',
      '--vault=kt',
    ]);
    expect(splitCommandLine(`/bin/echo ''`)).toEqual(['/bin/echo', '']);
    expect(splitCommandLine(`/bin/echo a''b`)).toEqual(['/bin/echo', 'ab']);
  });

  it('leave shell syntax alone: no variables, globs, pipes or redirections', () => {
    expect(splitCommandLine('/bin/echo $HOME * | cat > /tmp/x; rm -rf /')).toEqual([
      '/bin/echo',
      '$HOME',
      '*',
      '|',
      'cat',
      '>',
      '/tmp/x;',
      'rm',
      '-rf',
      '/',
    ]);
  });

  it('refuse unterminated quotes and empty commands', () => {
    expect(() => splitCommandLine(`/bin/echo 'pass`)).toThrow(/unterminated single quote/);
    expect(() => splitCommandLine(`/bin/echo "pass`)).toThrow(/unterminated double quote/);
    expect(() => splitCommandLine('/bin/echo \\')).toThrow(/trailing backslash/);
    expect(() => splitCommandLine('   ')).toThrow(/empty command/);
  });
});
