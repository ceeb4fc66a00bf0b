import { openNodeServices } from '../node/node-services';
import {
  migrateToHsm,
  MigrationError,
  MIGRATION_PROMPT,
  NO_WAY_BACK,
  readPendingMigration,
  readServerKeys,
} from './migrate-to-hsm';

export interface RunMigrationOptions {
  confdir: string;
  /** --yes: do not ask. */
  yes?: boolean;
  batchSize: number;
  pauseMs?: number;
  /** Asks the operator (the seed's prompt) and resolves with the answer line. */
  ask: (prompt: string) => Promise<string>;
  say: (line: string) => void;
  /**
   * The seed's Key HSM form, run before keytrusteed was restarted: when a server does not run
   * with the HSM yet, say to restart and run again instead of failing.
   */
  waitForRestart?: boolean;
}

/**
 * `ktadmin keyhsm … --migrate` on the active: checks the names (the seed's rules; a bad one
 * refuses the whole migration, nothing moved), checks that keytrusteed on both nodes already
 * runs with the HSM (so they read the moved rows), asks the seed's question, then moves the rows
 * batch by batch with progress. Returns whether it migrated.
 */
export async function runHsmMigration(opts: RunMigrationOptions): Promise<boolean> {
  const svc = await openNodeServices(opts.confdir);
  try {
    const role = svc.state.decide().role;
    // The seed's form runs on both hosts: on the passive there is nothing to move.
    if (role === 'passive' && opts.waitForRestart) return false;
    if (role !== 'active')
      throw new MigrationError(
        `this node is ${role}: run --migrate on the active (rows move through its write path)`,
      );
    const pending = await svc.db.pool.connect().then(async (c) => {
      try {
        return await readPendingMigration(c);
      } finally {
        c.release();
      }
    });
    if (pending.deposits + pending.orgs === 0) {
      opts.say('No deposits need to be moved to the HSM: every value is sealed under it.');
      return false;
    }
    if (pending.badNames.length) {
      const more = pending.badNameCount - pending.badNames.length;
      const list =
        pending.badNames.map((b) => `  ${b.name}  (client ${b.owner})`).join('\n') +
        (more > 0 ? `\n  … and ${more} more (the first ${pending.badNames.length} by name are listed)` : '');
      throw new MigrationError(
        `migration refused: ${pending.badNameCount} deposit name(s) do not conform (a letter or digit first, then only letters, digits, '-', '.', '_'):\n${list}\n` +
          'For each: decrypt the data, store it under a conforming name, re-encrypt, and destroy the old deposit (ktclient destroy NAME); then run this again. Nothing was moved.',
      );
    }
    const urls = [`https://localhost:${svc.conf.PORT}`, ...svc.conf.PEERS];
    for (const url of urls) {
      const keys = await readServerKeys(url);
      if (keys !== 'hsm' && opts.waitForRestart) {
        opts.say(
          `${pending.deposits} deposit version(s) are still sealed with the master key file. Restart keytrusteed on both nodes, then run this command again to move them to the HSM (both nodes must read HSM-sealed values first).`,
        );
        return false;
      }
      if (keys !== 'hsm')
        throw new MigrationError(
          `keytrusteed at ${url} does not run with the HSM yet (${keys === 'file' ? 'it uses the master key file' : 'it does not answer'}): run \`ktadmin keyhsm\` on each node and restart keytrusteed on both first, so that both read the moved values. Nothing was moved.`,
        );
    }
    if (!opts.yes) {
      const answer = (await opts.ask(MIGRATION_PROMPT)).trim().toLowerCase();
      if (answer !== 'y' && answer !== 'yes') {
        opts.say('Migration not performed; nothing was moved.');
        return false;
      }
    }
    opts.say('Migrating hsm deposits...');
    const r = await migrateToHsm(svc, {
      batchSize: opts.batchSize,
      pauseMs: opts.pauseMs,
      onProgress: (done, total) => opts.say(`  ${done}/${total} deposit versions moved`),
    });
    opts.say(`  ${r.orgs} organization secret(s) moved`);
    opts.say('');
    opts.say('Migration Complete!');
    opts.say('');
    opts.say(NO_WAY_BACK);
    return true;
  } finally {
    await svc.close();
  }
}
