import { VERSION } from '../package-info';
import { Command, InvalidArgumentError } from 'commander';
import { existsSync, mkdirSync, readFileSync, renameSync, rmSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { CONF_FILE } from '../confdir/paths';
import { updateKeytrusteeConf } from '../confdir/update-conf';
import {
  allowSingleNodeWrites,
  disallowSingleNodeWrites,
  parseDuration,
  promoteNode,
  rejoinNode,
} from '../node/failover';
import { bootstrapActiveOnExistingData, holdsCluster, restoreFromPassive } from '../node/existing-data';
import { restoreBackup } from '../backup/restore-backup';
import { readPostmasterPid, startPostgres, stopPostgres } from '@trustee/replicator';
import { initConfdir, KEY_LOSS_CONSEQUENCE } from '../confdir/init-confdir';
import {
  addStandbyOnActive,
  bootstrapActiveDb,
  bootstrapPassiveDb,
  enableSynchronousReplication,
  listenFor,
  nodeInstance,
  parseHostPort,
} from '../node/bootstrap-db';
import { readNodeStatus, formatNodeStatus } from '../node/node-status';
import { enqueueBackupNow } from '../jobs/backup-now';
import { enableHsm } from '../keys/enable-hsm';
import { readRotationStatus, rotateKek, type RotationStatus } from '../keys/rotate-kek';
import type { HsmSettings } from '../keys/open-key-hierarchy';
import { fetchKeyHsmCert, storeKeyHsmCert } from '../keys/trust-keyhsm';
import { readSecretFile, writeSecretFile } from '../confdir/secret-files';
import { serverMailKey } from '../mail/server-mail-key';
import { confPaths } from '../confdir/paths';
import { NO_WAY_BACK } from '../keys/migrate-to-hsm';
import { runHsmMigration } from '../keys/run-hsm-migration';
import { createInterface, type Interface } from 'node:readline';
import { execFileSync } from 'node:child_process';
import { addAuditCommands } from './ktadmin-audit';
import { addMailCommands } from './ktadmin-mail';
import { recordAdminAction } from '../audit/record-admin-action';
import type { AuditEntry } from '../audit/append-audit';
import { absolutePath, defaultConfdir, parsePort, parseSeconds, runProgram, UsageError } from './common';

const say = (m: string) => process.stdout.write(`${m}\n`);

interface DbFlags {
  bootstrap?: boolean;
  start?: boolean;
  stop?: boolean;
  pgRootdir?: string;
  port?: number;
  background?: boolean;
  slave?: string;
  master?: string;
  replace?: boolean;
  peer?: string;
}

function parsePositiveInt(v: string): number {
  if (!/^\d{1,9}$/.test(v) || Number(v) < 1) throw new InvalidArgumentError('expected a positive integer');
  return Number(v);
}

function parseNonNegativeInt(v: string): number {
  if (!/^\d{1,9}$/.test(v)) throw new InvalidArgumentError('expected a non-negative integer');
  return Number(v);
}

/** Lines of stdin, read through one interface for the whole process (several questions). */
interface StdinLines {
  rl: Interface;
  queue: string[];
  waiting: ((line: string) => void)[];
  closed: boolean;
}
let stdinLines: StdinLines | undefined;

function readStdinLines(): StdinLines {
  if (!stdinLines) {
    const rl = createInterface({ input: process.stdin, terminal: false });
    const st: StdinLines = { rl, queue: [], waiting: [], closed: false };
    rl.on('line', (line) => {
      const waiter = st.waiting.shift();
      if (waiter) waiter(line);
      else st.queue.push(line);
    });
    rl.on('close', () => {
      st.closed = true;
      for (const waiter of st.waiting.splice(0)) waiter('');
    });
    stdinLines = st;
  }
  return stdinLines;
}

/** Turns the terminal's echo off (true) or on again; a no-op when stdin is not a terminal. */
function terminalEcho(on: boolean): void {
  if (!process.stdin.isTTY) return;
  try {
    execFileSync('stty', [on ? 'echo' : '-echo'], { stdio: ['inherit', 'ignore', 'ignore'] });
  } catch {
    // no stty: the answer shows, as it would without this
  }
}

/**
 * Prints `prompt` and reads the next line of stdin ('' at end of input). One interface serves
 * every question, so answers piped together (`printf 'pass\nyes\n' | ktadmin …`) each reach
 * their question. `secret`: a terminal does not echo the answer.
 */
async function askLine(prompt: string, opts: { secret?: boolean } = {}): Promise<string> {
  const st = readStdinLines();
  process.stdout.write(prompt);
  if (st.queue.length) return st.queue.shift() as string;
  if (st.closed) return '';
  if (opts.secret) terminalEcho(false);
  st.rl.resume();
  (process.stdin as { ref?: () => void }).ref?.();
  try {
    return await new Promise<string>((resolve) => st.waiting.push(resolve));
  } finally {
    if (opts.secret) {
      terminalEcho(true);
      if (process.stdin.isTTY) process.stdout.write('\n');
    }
    // Nothing more to ask for now: stdin must not keep the command running.
    if (st.waiting.length === 0) {
      st.rl.pause();
      (process.stdin as { unref?: () => void }).unref?.();
    }
  }
}

/** Records this command in the audit trail; a row that cannot be written is a printed warning. */
async function audited(confdir: string, command: string, entry: Omit<AuditEntry, 'who'>): Promise<void> {
  const warning = await recordAdminAction(confdir, `ktadmin ${command}`, entry);
  if (warning) process.stderr.write(`${warning}\n`);
}

function usage(message: string): Error {
  return new UsageError(message);
}

const program = new Command('ktadmin')
  .version(VERSION, '--version', 'print the version')
  .description('Administer a Trustee node (same commands as Key Trustee Server)')
  .option('--confdir <dir>', 'configuration directory', defaultConfdir());

/**
 * The confdir, as an absolute path. The seeds pass both `/var/lib/keytrustee/.keytrustee` and
 * its parent `/var/lib/keytrustee`: a directory without keytrustee.conf whose `.keytrustee/`
 * has one means the latter.
 */
function confdirOf(cmd: Command): string {
  const dir = resolve((cmd.optsWithGlobals() as { confdir: string }).confdir);
  const nested = join(dir, '.keytrustee');
  if (!existsSync(join(dir, CONF_FILE)) && existsSync(join(nested, CONF_FILE))) return nested;
  return dir;
}

program
  .command('init')
  .description(
    'create the configuration directory: keytrustee.conf, cluster identity key, master key, TLS certificate',
  )
  .option('--host <host>', 'host name clients use for this node (TLS certificate subject)')
  .option('--port <port>', 'HTTPS port', parsePort, 11371)
  .option('--peer <url...>', 'URL of the other node, e.g. https://kt02.example.com:11371')
  .option(
    '--from-peer-confdir <dir>',
    "copy the active's confdir (without .ssl/) first, like the rsync of the HA set-up",
  )
  .option(
    '--force',
    `replace the keys of an initialized confdir whose keytrustee.conf names no database holding a cluster (${KEY_LOSS_CONSEQUENCE}); the old keys are moved to retired-<time>/`,
  )
  .action(
    async (
      o: { host?: string; port: number; peer?: string[]; fromPeerConfdir?: string; force?: boolean },
      cmd: Command,
    ) => {
      const confdir = confdirOf(cmd);
      const r = await initConfdir({
        confdir,
        host: o.host,
        port: o.port,
        peers: o.peer,
        force: o.force,
        protectDatabase: true,
        fromPeerConfdir: o.fromPeerConfdir,
        onStep: say,
      });
      say(`initialized ${r.confdir} for host ${r.host}`);
      say(`cluster fingerprint: ${r.fingerprint}`);
    },
  );

program
  .command('db')
  .description('bootstrap, start or stop the PostgreSQL database of this node')
  .option('--bootstrap', 'create the database (the active, or with --master a passive)')
  .option('--start', 'start the database')
  .option('--stop', 'stop the database')
  .option('--pg-rootdir <dir>', 'PostgreSQL data directory (default: the one recorded at bootstrap)')
  .option('--port <port>', 'PostgreSQL port (default 11381)', parsePort)
  .option(
    '--slave <host[:port]>',
    'with --bootstrap on the active: prepare replication (role, pg_hba, slot) for this passive',
  )
  .option(
    '--master <host[:port]>',
    'with --bootstrap: make this node a passive copying the active at HOST[:PORT]',
  )
  .option(
    '--peer <url>',
    "with --bootstrap: the other node's HTTPS URL, recorded as PEERS (e.g. when adding HA to a standalone node)",
  )
  .option(
    '--replace',
    'with --bootstrap --master: rebuild a passive over old data (kept aside) with a fresh replication slot',
  )
  .option('--background', 'with --start: return once the database is up instead of staying in the foreground')
  .action(async (o: DbFlags, cmd: Command) => {
    const confdir = confdirOf(cmd);
    const actions = [o.bootstrap, o.start, o.stop].filter(Boolean).length;
    if (actions !== 1) throw usage('give exactly one of --bootstrap, --start, --stop');
    if ((o.slave || o.master) && !o.bootstrap) throw usage('--slave and --master go with --bootstrap');
    if (o.replace && !o.master) throw usage('--replace goes with --bootstrap --master');
    if (o.peer && !o.bootstrap) throw usage('--peer goes with --bootstrap');
    if (o.peer) {
      try {
        if (!/^https:$/.test(new URL(o.peer).protocol)) throw new Error('not https');
      } catch {
        throw usage(`--peer must be an https:// URL such as https://kt02.example.com:11371, got "${o.peer}"`);
      }
      updateKeytrusteeConf(confdir, { PEERS: [o.peer.replace(/\/+$/, '')] });
    }
    if (o.pgRootdir) o.pgRootdir = resolve(o.pgRootdir);
    if (o.bootstrap) {
      if (!o.pgRootdir) throw usage('--bootstrap needs --pg-rootdir DIR');
      if (o.master && o.slave) throw usage('--master and --slave exclude each other');
      if (o.master) {
        const inst = await bootstrapPassiveDb({
          confdir,
          pgRootdir: o.pgRootdir,
          port: o.port,
          master: o.master,
          replace: o.replace,
          onStep: say,
        });
        say(
          `passive database running (pid ${readPostmasterPid(inst.dataDir)}, port ${inst.port}), streaming from ${o.master}`,
        );
        say(
          `next: keytrusteed --confdir ${confdir}; then on the active: ktadmin enable-synchronous-replication`,
        );
        return;
      }
      if (holdsCluster(o.pgRootdir)) {
        // The seed's restore-from-passive (a copied data dir) and HA added to a standalone node.
        const inst = await bootstrapActiveOnExistingData({
          confdir,
          pgRootdir: o.pgRootdir,
          port: o.port,
          slave: o.slave,
          onStep: say,
        });
        say(
          `active database running (pid ${readPostmasterPid(inst.dataDir)}, port ${inst.port}) on its existing data`,
        );
        if (o.slave)
          say(
            `next: on ${o.slave} (passive) make sure it streams from this node, then here: ktadmin --confdir ${confdir} enable-synchronous-replication; restart keytrusteed`,
          );
        return;
      }
      const inst = await bootstrapActiveDb({
        confdir,
        pgRootdir: o.pgRootdir,
        port: o.port,
        listenAddresses: o.slave ? listenFor(parseHostPort(o.slave).host) : undefined,
        onStep: say,
      });
      if (o.slave) await addStandbyOnActive({ confdir, slave: o.slave, onStep: say });
      say(
        `database bootstrapped and running (pid ${readPostmasterPid(inst.dataDir)}, port ${inst.port}); start the server with: keytrusteed --confdir ${confdir}`,
      );
      return;
    }
    const inst = nodeInstance({ confdir, pgRootdir: o.pgRootdir, port: o.port, prepareTls: !!o.start });
    if (o.stop) {
      await stopPostgres(inst);
      say(`database in ${inst.dataDir} stopped`);
      return;
    }
    const pid = await startPostgres(inst);
    say(`database in ${inst.dataDir} running (pid ${pid}, port ${inst.port})`);
    if (o.background) return;
    say('running in the foreground; Ctrl-C stops the database');
    await new Promise<void>((resolve) => {
      const stop = () => void stopPostgres(inst).finally(resolve);
      process.once('SIGINT', stop);
      process.once('SIGTERM', stop);
    });
    say('database stopped');
  });

program
  .command('enable-synchronous-replication')
  .description(
    'on the active: make the passive synchronous (writes then need both nodes) and wait until it is',
  )
  .option('--timeout <seconds>', 'how long to wait for the passive to become synchronous', parseSeconds, 30)
  .action(async (o: { timeout: number }, cmd: Command) => {
    const name = await enableSynchronousReplication({ confdir: confdirOf(cmd), timeoutMs: o.timeout * 1000 });
    say(`synchronous replication enabled: passive ${name} is sync; writes now commit on both nodes`);
  });

program
  .command('promote')
  .description(
    'on the passive, when the active is lost: promote this node to active (new timeline); refused while the old active answers',
  )
  .option(
    '--force',
    'promote even though the old active still answers (you must have fenced it off yourself)',
  )
  .action(async (o: { force?: boolean }, cmd: Command) => {
    const confdir = confdirOf(cmd);
    const r = await promoteNode({ confdir, force: o.force, onStep: say });
    await audited(confdir, 'promote', {
      action: 'promote',
      detail: `timeline ${r.fromTimeline} -> ${r.toTimeline}${o.force ? ' (--force)' : ''}`,
    });
    say(`this node is now the active (timeline ${r.toTimeline}); promotion took ${r.elapsedMs} ms`);
    say(
      'writes stay refused (PASSIVE_UNAVAILABLE) until a passive streams again. On the old active, once it is back:',
    );
    say(`  ktadmin --confdir OLD_ACTIVE_CONFDIR rejoin --master ${r.host}:${r.dbPort}`);
    say(
      `or, only if the old active is gone for good and writes cannot wait: ktadmin --confdir ${confdir} allow-single-node-writes --for 1h`,
    );
  });

program
  .command('rejoin')
  .description('on the old active after a promotion: become the passive of the new active (pg_rewind)')
  .requiredOption('--master <host[:port]>', "the new active's PostgreSQL, HOST[:PORT] (default port 11381)")
  .option('--rebuild', 'take a fresh base backup instead of pg_rewind (the old data directory is kept aside)')
  .option('--force', "skip the check that the peer's API says it is active")
  .action(async (o: { master: string; rebuild?: boolean; force?: boolean }, cmd: Command) => {
    const confdir = confdirOf(cmd);
    const r = await rejoinNode({
      confdir,
      master: o.master,
      rebuild: o.rebuild,
      force: o.force,
      onStep: say,
    });
    say(
      `rejoined as passive of ${o.master} by ${r.method} in ${r.elapsedMs} ms (streaming ${r.streamingAfterMs} ms after start)`,
    );
    say(
      `writes resume on the active as soon as it sees this passive as synchronous; check with: ktadmin --confdir ACTIVE_CONFDIR status`,
    );
    say(`(if it does not: ktadmin --confdir ACTIVE_CONFDIR enable-synchronous-replication)`);
  });

program
  .command('restore')
  .description(
    'restore this node from a ktbackup file (--from), or make it the active again from the passive\'s data (--from-passive, the seed\'s "restore active from passive" as one command)',
  )
  .option('--from <file>', 'a ktbackup file (kts_bak_….tar.gpg or .tar)')
  .option('--from-passive <host[:port]>', "the passive's PostgreSQL, HOST[:PORT] (default port 11381)")
  .option(
    '--pg-rootdir <dir>',
    'PostgreSQL data directory to create (with --from: default the one in the backup)',
  )
  .option(
    '--port <port>',
    'PostgreSQL port of this node (default from the backup / keytrustee.conf, 11381)',
    parsePort,
  )
  .option(
    '--key <file>',
    "with --from: armored private key to decrypt with (default: this account's GnuPG keyring)",
  )
  .option('--passphrase-file <file>', 'with --from: file holding the private key passphrase')
  .option(
    '--slave <host[:port]>',
    "with --from: prepare replication for this passive (default: the one in the backup's configuration)",
  )
  .option(
    '--journal <dir>',
    'with --from: replay this change journal after the backup (writes acknowledged since it)',
  )
  .option('--allow-gap', 'with --journal: replay across a recorded gap (the writes inside it are lost)')
  .option(
    '--force',
    'the node is not empty or running: keep its confdir and data aside and restore over them',
  )
  .action(
    async (
      o: {
        journal?: string;
        allowGap?: boolean;
        from?: string;
        fromPassive?: string;
        pgRootdir?: string;
        port?: number;
        key?: string;
        passphraseFile?: string;
        slave?: string;
        force?: boolean;
      },
      cmd: Command,
    ) => {
      const confdir = confdirOf(cmd);
      if (!!o.from === !!o.fromPassive)
        throw usage('give exactly one of --from FILE, --from-passive HOST[:PORT]');
      if (o.fromPassive) {
        if (!o.pgRootdir) throw usage('--from-passive needs --pg-rootdir DIR');
        if (o.key || o.passphraseFile || o.slave || o.journal)
          throw usage('--key, --passphrase-file, --slave and --journal go with --from');
        const r = await restoreFromPassive({
          confdir,
          passive: o.fromPassive,
          pgRootdir: resolve(o.pgRootdir),
          port: o.port,
          force: o.force,
          onStep: say,
        });
        await audited(confdir, 'restore', { action: 'restore', detail: `from the passive ${o.fromPassive}` });
        say(`this node is the active again (port ${r.inst.port}), restored in ${r.elapsedMs} ms`);
        say(
          `start (or restart) keytrusteed --confdir ${confdir}; writes resume when the passive streams synchronously`,
        );
        return;
      }
      const r = await restoreBackup({
        confdir,
        from: resolve(o.from!),
        pgRootdir: o.pgRootdir ? resolve(o.pgRootdir) : undefined,
        port: o.port,
        keyFile: o.key,
        passphraseFile: o.passphraseFile,
        slave: o.slave,
        journal: o.journal ? resolve(o.journal) : undefined,
        allowGap: o.allowGap,
        force: o.force,
        onStep: say,
      });
      await audited(confdir, 'restore', {
        action: 'restore',
        detail: `from the backup of ${r.manifest.host} (${r.manifest.createdAt})${r.journal ? `, journal replayed (${r.journal.applied} transactions)` : ''}`,
      });
      if (r.journal)
        say(
          `change journal replayed: ${r.journal.applied} transactions after the backup (${r.journal.changes} row changes)`,
        );
      say(
        `restored ${r.counts.deposits} deposit versions, ${r.counts.clients} clients, ${r.counts.orgs} orgs from the backup of ${r.manifest.host} (${r.manifest.createdAt}) in ${(r.elapsedMs / 1000).toFixed(1)} s; PostgreSQL runs on port ${r.inst.port}`,
      );
      say(
        `next: keytrusteed --confdir ${confdir}; then rebuild the passive from this node (ktadmin db --bootstrap --master THIS_HOST --pg-rootdir DB --replace on it) and run ktadmin enable-synchronous-replication here`,
      );
    },
  );

program
  .command('allow-single-node-writes')
  .description(
    'DEGRADED MODE: let this surviving active accept writes without the passive for a limited time (refused while the peer answers)',
  )
  .option('--for <duration>', 'how long, e.g. 30m, 2h, 1d (at most 7d)')
  .option('--off', 'switch single-node writes off now')
  .action(async (o: { for?: string; off?: boolean }, cmd: Command) => {
    const confdir = confdirOf(cmd);
    if (!!o.for === !!o.off) throw usage('give exactly one of --for DURATION, --off');
    if (o.off) {
      const was = disallowSingleNodeWrites(confdir);
      if (was)
        await audited(confdir, 'allow-single-node-writes', { action: 'single-node-writes', detail: 'off' });
      say(
        was
          ? 'single-node writes switched off; writes need the passive again'
          : 'single-node writes were not on',
      );
      return;
    }
    let forMs: number;
    try {
      forMs = parseDuration(o.for!);
    } catch (e) {
      throw usage((e as Error).message);
    }
    const r = await allowSingleNodeWrites({ confdir, forMs });
    await audited(confdir, 'allow-single-node-writes', {
      action: 'single-node-writes',
      detail: `on until ${r.until}`,
    });
    say(
      `single-node writes ALLOWED until ${r.until}: each write now exists on this node only until a passive rejoins.`,
    );
    say('Never do this on both sides of a network partition: it would create two histories.');
    say(`switch off early with: ktadmin --confdir ${confdir} allow-single-node-writes --off`);
  });

program
  .command('backup-now')
  .description(
    "on the active: queue a scheduled backup to run now (the active's job runner writes it to BACKUP_DIR)",
  )
  .action(async (_o: unknown, cmd: Command) => {
    const r = await enqueueBackupNow(confdirOf(cmd));
    say(
      `backup queued (job ${r.jobId}): the active's job runner takes it next, after any backup in progress`,
    );
    say(
      `it will appear as ${r.dir}/${r.filePattern}, encrypted to ${r.recipient} (the newest ${r.keep} are kept)`,
    );
    say(
      'progress: keytrusteed log ("backup started" / "backup written"), metric trustee_backup_last_success_timestamp_seconds',
    );
    if (!r.runnerConnected)
      say(
        'note: no job runner is connected here yet (keytrusteed stopped or starting); it runs once keytrusteed runs',
      );
  });

program
  .command('keyhsm')
  .description(
    'keep the at-rest key-encryption key (KEK) in an HSM, over PKCS#11 directly or through the Key HSM service (--server): data keys are wrapped by it; run on the active first, then on the passive, restart keytrusteed on both, then migrate existing deposits',
  )
  .option('--pkcs11-module <lib>', 'PKCS#11: library, e.g. /usr/lib/softhsm/libsofthsm2.so', absolutePath)
  .option('--token-label <label>', 'PKCS#11: label of the token holding the KEK')
  .option(
    '--pin-file <file>',
    'PKCS#11: file (mode 0600) holding the token user PIN on its first line; the PIN is never taken on the command line',
    absolutePath,
  )
  .option('--server <url>', 'Key HSM service, e.g. https://keyhsm01.example.com:9090')
  .option('--client-certfile <file>', "Key HSM: this node's TLS client certificate (PEM)", absolutePath)
  .option('--client-keyfile <file>', 'Key HSM: its private key (PEM)', absolutePath)
  .option('--trust', 'Key HSM: fetch the service certificate and pin it in .ssl/ssl-cert-keyhsm.pem')
  .option(
    '--passphrase',
    'Key HSM: the client key is encrypted; ask for its passphrase (stored 0600 in .ssl/)',
  )
  .option(
    '--migrate',
    'PKCS#11: on the active, once keytrusteed runs with the HSM on both nodes, move the values still sealed with the master key file to HSM data keys (resumable; no way back). With --server this is asked for every time',
  )
  .option('--yes', 'answer yes to the migration question')
  .option('--batch-size <n>', 'rows moved per write (each committed on both nodes)', parsePositiveInt, 100)
  .option('--batch-pause-ms <ms>', 'pause between batches, to spare a busy cluster', parseNonNegativeInt, 0)
  .addHelpText('after', `\n${NO_WAY_BACK}\n`)
  .action(async (o: KeyHsmFlags, cmd: Command) => {
    const confdir = confdirOf(cmd);
    const direct = [o.pkcs11Module, o.tokenLabel, o.pinFile].filter(Boolean).length;
    const remote = [o.server, o.clientCertfile, o.clientKeyfile].filter(Boolean).length;
    let settings: HsmSettings;
    if (direct === 3 && remote === 0) {
      settings = { kind: 'pkcs11', module: o.pkcs11Module!, tokenLabel: o.tokenLabel!, pinFile: o.pinFile! };
    } else if (remote === 3 && direct === 0) {
      if (!/^https:\/\//.test(o.server!)) throw usage('--server must be an https:// URL');
      try {
        settings = await prepareKeyHsmClient(confdir, o);
      } catch (e) {
        // Fetching or pinning the service certificate failed: no passphrase file stays behind.
        for (const f of pendingFiles(confdir)) rmSync(f, { force: true });
        throw e;
      }
    } else {
      throw usage(
        'give either --pkcs11-module, --token-label and --pin-file, or --server, --client-certfile and --client-keyfile',
      );
    }
    let r: Awaited<ReturnType<typeof enableHsm>>;
    try {
      r = await enableHsm({ confdir, settings, onStep: say });
    } catch (e) {
      // A refusal changes nothing: the newly fetched certificate and passphrase are dropped.
      for (const f of pendingFiles(confdir)) rmSync(f, { force: true });
      throw e;
    }
    for (const f of pendingFiles(confdir)) if (existsSync(f)) renameSync(f, f.slice(0, -PENDING.length));
    // The seed's Key HSM form always offers to migrate; the PKCS#11 form when asked (--migrate).
    const keyHsmForm = settings.kind === 'keyhsm';
    if (o.migrate || keyHsmForm) {
      await runHsmMigration({
        confdir,
        yes: o.yes,
        batchSize: o.batchSize,
        pauseMs: o.batchPauseMs,
        ask: askLine,
        say,
        waitForRestart: keyHsmForm && !o.migrate,
      });
      if (o.migrate) return;
    }
    if (r.role === 'passive') say('HSM configured on the passive. Restart keytrusteed on this node.');
    else if (keyHsmForm)
      say(
        'Key HSM configured on the active. Run the same command on the passive, then restart keytrusteed on both nodes.',
      );
    else
      say(
        'HSM configured on the active. Next: the same command on the passive (same token, or a token holding the same KEK), restart keytrusteed on both nodes, then run this again with --migrate here to move existing deposits.',
      );
  });

interface KeyHsmFlags {
  pkcs11Module?: string;
  tokenLabel?: string;
  pinFile?: string;
  server?: string;
  clientCertfile?: string;
  clientKeyfile?: string;
  trust?: boolean;
  passphrase?: boolean;
  migrate?: boolean;
  yes?: boolean;
  batchSize: number;
  batchPauseMs: number;
}

/** Suffix of files written by --trust / --passphrase until the set-up succeeded. */
const PENDING = '.pending';

function pendingFiles(confdir: string): string[] {
  const p = confPaths(confdir);
  return [p.keyHsmCert + PENDING, p.keyHsmPassphrase + PENDING];
}

/**
 * --server: the passphrase (asked, stored 0600) and, with --trust, the service certificate to
 * pin; both are written beside their final names and take them only once the set-up succeeded.
 */
async function prepareKeyHsmClient(confdir: string, o: KeyHsmFlags): Promise<HsmSettings> {
  const p = confPaths(confdir);
  for (const f of pendingFiles(confdir)) rmSync(f, { force: true });
  let passphrase: string | undefined;
  if (o.passphrase) {
    passphrase = await askLine('Passphrase for the client key: ', { secret: true });
    mkdirSync(p.sslDir, { recursive: true, mode: 0o700 });
    writeSecretFile(p.keyHsmPassphrase + PENDING, `${passphrase}\n`);
  }
  if (o.trust) {
    const pem = await fetchKeyHsmCert(o.server!, {
      cert: readFileSync(o.clientCertfile!, 'utf8'),
      key: readFileSync(o.clientKeyfile!, 'utf8'),
      passphrase,
    });
    mkdirSync(p.sslDir, { recursive: true, mode: 0o700 });
    const fp = storeKeyHsmCert(p.keyHsmCert + PENDING, pem);
    say(`trusting the Key HSM certificate (SHA-256 ${fp}) in ${p.keyHsmCert}`);
  } else if (!existsSync(p.keyHsmCert)) {
    throw usage(`no trusted Key HSM certificate in ${p.keyHsmCert} yet: add --trust`);
  }
  return {
    kind: 'keyhsm',
    server: o.server!,
    clientCertFile: o.clientCertfile!,
    clientKeyFile: o.clientKeyfile!,
    passphraseFile: o.passphrase ? p.keyHsmPassphrase + PENDING : undefined,
    serverCertFile: o.trust ? p.keyHsmCert + PENDING : p.keyHsmCert,
  };
}

program
  .command('rotate-kek')
  .description(
    'on the active: make a new key-encryption key on the HSM active; keytrusteed re-wraps the data keys in the background and retires the old KEK (deposits are not rewritten)',
  )
  .option('--status', 'only print the KEKs and how many data keys each still wraps')
  .option(
    '--wait <seconds>',
    'after rotating, wait up to this long until the old KEK is retired',
    parseSeconds,
  )
  .action(async (o: { status?: boolean; wait?: number }, cmd: Command) => {
    const confdir = confdirOf(cmd);
    const print = (st: RotationStatus) => {
      for (const k of st.keks) say(`  ${k.id}  ${k.state}  ${k.dataKeys} data key(s)`);
    };
    if (o.status) {
      print(await readRotationStatus(confdir));
      return;
    }
    const r = await rotateKek(confdir);
    say(
      `KEK "${r.to}" is active; "${r.from}" is retiring: keytrusteed on the active re-wraps its data keys in the background.`,
    );
    if (!o.wait) {
      say('progress: ktadmin rotate-kek --status (metric trustee_hsm_data_keys_rewrapped_total)');
      return;
    }
    const deadline = Date.now() + o.wait * 1000;
    for (;;) {
      const st = await readRotationStatus(confdir);
      if (st.keks.find((k) => k.id === r.from)?.state === 'retired') {
        print(st);
        say(
          `"${r.from}" is retired: no data key uses it. Keep it on the token while backups from before the rotation are kept.`,
        );
        return;
      }
      if (Date.now() > deadline) {
        print(st);
        throw new Error(
          `"${r.from}" was not retired within ${o.wait} s: is keytrusteed running on the active?`,
        );
      }
      await new Promise((res) => setTimeout(res, 500));
    }
  });

program
  .command('status')
  .description('role, peers, replication state and lag of this node')
  .option('--json', 'print JSON')
  .action(async (o: { json?: boolean }, cmd: Command) => {
    const status = await readNodeStatus(confdirOf(cmd));
    say(o.json ? JSON.stringify(status, null, 2) : formatNodeStatus(status));
    if (!status.db.up) process.exitCode = 1;
  });

addAuditCommands(program, confdirOf);
addMailCommands(program, confdirOf);
program
  .command('gpg-key')
  .description(
    "the server's OpenPGP key that signs contact mail and pending-client notices (derived from the cluster identity key: the same on both nodes)",
  )
  .option('--export', 'print the armored public key (import it with `gpg --import` to verify the mail)')
  .action(async (o: { export?: boolean }, cmd: Command) => {
    const key = await serverMailKey(readSecretFile(confPaths(confdirOf(cmd)).identityKey).toString('utf8'));
    say(o.export ? key.armoredPublicKey.trimEnd() : `server mail key fingerprint ${key.fingerprint}`);
  });

void runProgram(program);
