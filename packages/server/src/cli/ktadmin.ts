import { Command } from 'commander';
import { readPostmasterPid, startPostgres, stopPostgres } from '@trustee/replicator';
import { initConfdir } from '../confdir/init-confdir';
import { bootstrapActiveDb, nodeInstance } from '../node/bootstrap-db';
import { readNodeStatus, formatNodeStatus } from '../node/node-status';
import { defaultConfdir, runProgram } from './common';

const say = (m: string) => process.stdout.write(`${m}\n`);

const program = new Command('ktadmin')
  .description('Administer a Trustee node (same commands as Key Trustee Server)')
  .option('--confdir <dir>', 'configuration directory', defaultConfdir());

function confdirOf(cmd: Command): string {
  return (cmd.optsWithGlobals() as { confdir: string }).confdir;
}

program
  .command('init')
  .description('create the configuration directory: keytrustee.conf, cluster identity key, master key, TLS certificate')
  .option('--host <host>', 'host name clients use for this node (TLS certificate subject)')
  .option('--port <port>', 'HTTPS port', (v) => Number(v), 11371)
  .option('--peer <url...>', 'URL of the other node, e.g. https://kt02.example.com:11371')
  .option('--from-peer-confdir <dir>', "copy the active's confdir (without .ssl/) first, like the rsync of the HA set-up")
  .option('--force', 'replace an existing identity (clients registered so far stop validating)')
  .action(async (o: { host?: string; port: number; peer?: string[]; fromPeerConfdir?: string; force?: boolean }, cmd: Command) => {
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
  });

program
  .command('db')
  .description('bootstrap, start or stop the PostgreSQL database of this node')
  .option('--bootstrap', 'create the database (the active, or with --master a passive)')
  .option('--start', 'start the database')
  .option('--stop', 'stop the database')
  .option('--pg-rootdir <dir>', 'PostgreSQL data directory (default: the one recorded at bootstrap)')
  .option('--port <port>', 'PostgreSQL port (default 11381)', (v) => Number(v))
  .option('--background', 'with --start: return once the database is up instead of staying in the foreground')
  .action(async (o: { bootstrap?: boolean; start?: boolean; stop?: boolean; pgRootdir?: string; port?: number; background?: boolean }, cmd: Command) => {
    const confdir = confdirOf(cmd);
    const actions = [o.bootstrap, o.start, o.stop].filter(Boolean).length;
    if (actions !== 1) throw Object.assign(new Error('give exactly one of --bootstrap, --start, --stop'), { code: 'INVALID_REQUEST' });
    if (o.bootstrap) {
      if (!o.pgRootdir) throw Object.assign(new Error('--bootstrap needs --pg-rootdir DIR'), { code: 'INVALID_REQUEST' });
      const inst = await bootstrapActiveDb({ confdir, pgRootdir: o.pgRootdir, port: o.port, onStep: say });
      say(`database bootstrapped and running (pid ${readPostmasterPid(inst.dataDir)}, port ${inst.port}); start the server with: keytrusteed --confdir ${confdir}`);
      return;
    }
    const inst = nodeInstance({ confdir, pgRootdir: o.pgRootdir, port: o.port });
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
  .command('status')
  .description('role, peers, replication state and lag of this node')
  .option('--json', 'print JSON')
  .action(async (o: { json?: boolean }, cmd: Command) => {
    const status = await readNodeStatus(confdirOf(cmd));
    say(o.json ? JSON.stringify(status, null, 2) : formatNodeStatus(status));
    if (!status.db.up) process.exitCode = 1;
  });

void runProgram(program);
