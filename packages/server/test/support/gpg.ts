import { spawnSync } from 'node:child_process';
import { makeTempDir, removeDir } from './temp-dir';

export interface Gpg {
  home: string;
  /** Runs the real `gpg` in this temporary keyring; returns stdout and stderr. */
  run(args: string[], input?: string): { stdout: string; stderr: string; code: number };
  /** Makes a key pair with an encryption subkey; returns its upper-case fingerprint. */
  genKey(uid: string): string;
  exportPublic(fingerprint: string): string;
  remove(): void;
}

/** The real gpg with a temporary GNUPGHOME (removed by `remove()`). */
export function tempGpg(): Gpg {
  const home = makeTempDir('trustee-gnupg-');
  const run = (args: string[], input?: string) => {
    const r = spawnSync('gpg', ['--batch', '--homedir', home, ...args], {
      input,
      encoding: 'utf8',
      timeout: 60_000,
    });
    return { stdout: r.stdout ?? '', stderr: r.stderr ?? '', code: r.status ?? 1 };
  };
  return {
    home,
    run,
    genKey(uid) {
      // `default` makes an encryption subkey too (NOTES.md: openpgp.js refuses a key without one).
      const r = run(['--passphrase', '', '--quick-gen-key', uid, 'default', 'default', 'never']);
      if (r.code !== 0) throw new Error(`gpg --quick-gen-key failed: ${r.stderr}`);
      const list = run(['--with-colons', '--list-keys', uid]).stdout;
      const fpr = /^fpr:+([0-9A-F]{40,64}):/m.exec(list);
      if (!fpr) throw new Error('no fingerprint in gpg --list-keys output');
      return fpr[1];
    },
    exportPublic: (fingerprint) => run(['--armor', '--export', fingerprint]).stdout,
    remove: () => removeDir(home),
  };
}
