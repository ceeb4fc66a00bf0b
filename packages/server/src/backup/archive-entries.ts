/**
 * What goes into a backup tarball, laid out as the seed's `tar tvf` listing: the confdir (without
 * pid files and node-local runtime state) and the SQL dump, each named by its absolute path
 * without the leading `/`, so `tar xvf FILE -C /` puts everything back where it was.
 */
import { closeSync, fstatSync, openSync, readdirSync, readFileSync, readSync, statSync } from 'node:fs';
import { join } from 'node:path';
import type { Pack } from 'tar-stream';

/** Files never backed up: pid files and this node's HA runtime state. */
export function isExcludedFromBackup(name: string): boolean {
  return name.endsWith('.pid') || name === 'ha-state.json' || name.endsWith('.tmp');
}

/** Absolute path → the member name (`/var/lib/keytrustee/x` → `var/lib/keytrustee/x`). */
export function memberName(absPath: string): string {
  return absPath.replace(/^\/+/, '');
}

function idNames(file: string): Map<number, string> {
  const m = new Map<number, string>();
  try {
    for (const line of readFileSync(file, 'utf8').split('\n')) {
      const [name, , id] = line.split(':');
      if (name && id !== undefined && /^\d+$/.test(id)) m.set(Number(id), name);
    }
  } catch {
    // no passwd/group database: numeric ids only
  }
  return m;
}

const users = idNames('/etc/passwd');
const groups = idNames('/etc/group');

function owner(st: { uid: number; gid: number }) {
  return { uid: st.uid, gid: st.gid, uname: users.get(st.uid), gname: groups.get(st.gid) };
}

/** Adds one file, streamed from disk, with its mode, owner and time; `asPath` names it in the archive. */
export async function addFile(pack: Pack, absPath: string, asPath: string = absPath): Promise<number> {
  const fd = openSync(absPath, 'r');
  try {
    const st = fstatSync(fd);
    await new Promise<void>((resolve, reject) => {
      const entry = pack.entry(
        { name: memberName(asPath), size: st.size, mode: st.mode & 0o7777, mtime: st.mtime, ...owner(st) },
        (err) => (err ? reject(err) : resolve()),
      );
      const buf = Buffer.alloc(1024 * 1024);
      let left = st.size;
      const pump = () => {
        while (left > 0) {
          const n = readSync(fd, buf, 0, Math.min(buf.length, left), null);
          if (n <= 0) return reject(new Error(`${absPath} shrank while it was archived`));
          left -= n;
          if (!entry.write(Buffer.from(buf.subarray(0, n)))) {
            entry.once('drain', pump);
            return;
          }
        }
        entry.end(() => undefined);
      };
      pump();
    });
    return st.size;
  } finally {
    closeSync(fd);
  }
}

function addDir(pack: Pack, absPath: string): void {
  const st = statSync(absPath);
  pack.entry({
    name: `${memberName(absPath)}/`,
    type: 'directory',
    mode: st.mode & 0o7777,
    mtime: st.mtime,
    ...owner(st),
  });
}

/** Adds the confdir tree (directories first, then files), skipping excluded names. Returns the file count. */
export async function addConfdir(pack: Pack, dir: string): Promise<number> {
  addDir(pack, dir);
  let count = 0;
  for (const e of readdirSync(dir, { withFileTypes: true }).sort((a, b) => a.name.localeCompare(b.name))) {
    if (isExcludedFromBackup(e.name)) continue;
    const p = join(dir, e.name);
    if (e.isDirectory()) count += await addConfdir(pack, p);
    else if (e.isFile()) {
      await addFile(pack, p);
      count++;
    }
  }
  return count;
}
