import { Command } from 'commander';
import { readPostmasterPid, startPostgres, stopPostgres } from '@trustee/replicator';
import { initConfdir } from '../confdir/init-confdir';
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
import { defaultConfdir, parsePort, parseSeconds, runProgram, UsageError } from './common';

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
}

function usage(message: string): Error {
  return new UsageError(message);
}

const program = new Command('ktadmin')
  .description('Administer a Trustee node (same commands as Key Trustee Server)')
  .option('--confdir <dir>', 'configuration directory', defaultConfdir());

function confdirOf(cmd: Command): string {
  return (cmd.optsWithGlobals() as { confdir: string }).confdir;
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
  .option('--force', 'replace an existing identity (clients registered so far stop validating)')
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
  .option('--background', 'with --start: return once the database is up instead of staying in the foreground')
  .action(async (o: DbFlags, cmd: Command) => {
    const confdir = confdirOf(cmd);
    const actions = [o.bootstrap, o.start, o.stop].filter(Boolean).length;
    if (actions !== 1) throw usage('give exactly one of --bootstrap, --start, --stop');
    if ((o.slave || o.master) && !o.bootstrap) throw usage('--slave and --master go with --bootstrap');
    if (o.bootstrap) {
      if (!o.pgRootdir) throw usage('--bootstrap needs --pg-rootdir DIR');
      if (o.master && o.slave) throw usage('--master and --slave exclude each other');
      if (o.master) {
        const inst = await bootstrapPassiveDb({
          confdir,
          pgRootdir: o.pgRootdir,
          port: o.port,
          master: o.master,
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
  .command('status')
  .description('role, peers, replication state and lag of this node')
  .option('--json', 'print JSON')
  .action(async (o: { json?: boolean }, cmd: Command) => {
    const status = await readNodeStatus(confdirOf(cmd));
    say(o.json ? JSON.stringify(status, null, 2) : formatNodeStatus(status));
    if (!status.db.up) process.exitCode = 1;
  });

void runProgram(program);
