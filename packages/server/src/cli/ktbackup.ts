import { Command, InvalidArgumentError } from 'commander';
import { resolve } from 'node:path';
import { createBackup } from '../backup/create-backup';
import { VERSION } from '../package-info';
import { defaultConfdir, parsePort, runProgram, UsageError } from './common';

function parseRoll(value: string): number {
  if (!/^\d{1,4}$/.test(value) || Number(value) < 1)
    throw new InvalidArgumentError('expected a whole number of backups to keep, at least 1');
  return Number(value);
}

const program = new Command('ktbackup')
  .version(VERSION, '--version', 'print the version')
  .description(
    "Back up this node: the configuration directory and a pg_dump of the database in one tarball, encrypted to a GPG recipient (the seed's ktbackup.sh). Runs on the active or the passive.",
  )
  .option('-c, --confdir <dir>', 'configuration directory', defaultConfdir())
  .option('--database-port <port>', 'PostgreSQL port (default: DB_PORT of keytrustee.conf, 11381)', parsePort)
  .option(
    '--gpg-recipient <recipient>',
    "encrypt to this key: a name, e-mail or fingerprint in this account's GnuPG keyring (gpg --import it first), or an armored public key file",
  )
  .option('--cleartext', 'write an UNENCRYPTED tarball (do not use in production: it holds every key)')
  .option(
    '--output <dir>',
    "directory for the backup (default: the confdir's parent, e.g. /var/lib/keytrustee)",
  )
  .option(
    '--roll <n>',
    'afterwards keep only the newest N backups of this host in --output (--roll=1 keeps just the new one)',
    parseRoll,
  )
  .option('-q, --quiet', 'print only the path of the backup')
  .option('--verbose', 'print each step')
  .action(
    async (o: {
      confdir: string;
      databasePort?: number;
      gpgRecipient?: string;
      cleartext?: boolean;
      output?: string;
      roll?: number;
      quiet?: boolean;
      verbose?: boolean;
    }) => {
      if (!o.gpgRecipient && !o.cleartext) {
        throw new UsageError(
          'give --gpg-recipient=NAME (the backup holds every key and is encrypted to that recipient), or --cleartext for an unencrypted tarball',
        );
      }
      if (o.gpgRecipient && o.cleartext)
        throw new UsageError('--gpg-recipient and --cleartext exclude each other');
      const say = (m: string) => process.stderr.write(`${m}\n`);
      const r = await createBackup({
        confdir: resolve(o.confdir),
        databasePort: o.databasePort,
        gpgRecipient: o.gpgRecipient,
        cleartext: o.cleartext,
        output: o.output ? resolve(o.output) : undefined,
        roll: o.roll,
        onProgress: o.verbose || (!o.quiet && process.stderr.isTTY) ? say : undefined,
      });
      for (const w of r.warnings) process.stderr.write(`warning: ${w}\n`);
      if (o.quiet) {
        process.stdout.write(`${r.path}\n`);
        return;
      }
      process.stdout.write(
        `backup written: ${r.path} (${(r.bytes / 1048576).toFixed(2)} MiB, ${r.manifest.deposits} deposit versions, ${r.manifest.clients} clients, ${r.manifest.orgs} orgs; ` +
          `${r.encrypted ? `encrypted to ${r.recipientFingerprint}` : 'CLEARTEXT'}; taken on the ${r.manifest.role}, WAL ${r.manifest.walLsn}) in ${(r.elapsedMs / 1000).toFixed(1)} s\n`,
      );
      if (r.rolled.length)
        process.stdout.write(`removed ${r.rolled.length} older backup(s) (--roll=${o.roll})\n`);
    },
  );

void runProgram(program);
