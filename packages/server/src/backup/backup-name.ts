/** Backup file names, as the seed's ktbackup.sh: `kts_bak_<host>_<YYYY-MM-DD_HH-MM-SS>.tar[.gpg]`. */

/** `kts01.example.com` → `kts01_example_com`. */
export function hostTag(host: string): string {
  return host.replace(/[^A-Za-z0-9]/g, '_');
}

/** Local time as `YYYY-MM-DD_HH-MM-SS`. */
export function backupStamp(d: Date): string {
  const p = (n: number) => String(n).padStart(2, '0');
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())}_${p(d.getHours())}-${p(d.getMinutes())}-${p(d.getSeconds())}`;
}

export function backupBaseName(host: string, d: Date): string {
  return `kts_bak_${hostTag(host)}_${backupStamp(d)}`;
}

const BACKUP_FILE = /^kts_bak_(.+)_(\d{4}-\d{2}-\d{2}_\d{2}-\d{2}-\d{2})\.tar(\.gpg)?$/;

/** Parses a backup file name; undefined for anything else. */
export function parseBackupName(
  file: string,
): { host: string; stamp: string; encrypted: boolean } | undefined {
  const m = BACKUP_FILE.exec(file);
  return m ? { host: m[1], stamp: m[2], encrypted: !!m[3] } : undefined;
}

/**
 * `--roll=N` as the seed defines it: after the new backup is written, keep the newest N backups of
 * this host in the directory and delete the others (10 existing + `--roll=10` → 10 remain;
 * `--roll=1` → only the new one). Returns the names to delete, oldest first.
 */
export function backupsToRoll(files: string[], host: string, keep: number): string[] {
  const mine = files
    .map((f) => ({ f, parsed: parseBackupName(f) }))
    .filter((x) => x.parsed?.host === hostTag(host))
    .sort((a, b) => (a.parsed!.stamp < b.parsed!.stamp ? -1 : a.parsed!.stamp > b.parsed!.stamp ? 1 : 0));
  return mine.slice(0, Math.max(0, mine.length - keep)).map((x) => x.f);
}
