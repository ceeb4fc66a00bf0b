import { VERSION } from '../server';
import { closeSync, constants, existsSync, openSync, readFileSync, unlinkSync, writeFileSync } from 'node:fs';
import { Command } from 'commander';
import { pidFilePath } from '../confdir/paths';
import { createLogger } from '../logger';
import { startServer, type RunningServer } from '../server';
import { defaultConfdir, parsePort, runProgram } from './common';

const program = new Command('keytrusteed')
  .version(VERSION, '--version', 'print the version')
  .description(
    'Run the Trustee HTTPS server (foreground). Writes DIR/../keytrusteed.pid. SIGHUP reloads the TLS certificate and key',
  )
  .option('--confdir <dir>', 'configuration directory', defaultConfdir())
  .option('--port <port>', 'override the HTTPS port of keytrustee.conf', parsePort)
  .action(async (o: { confdir: string; port?: number }) => {
    const log = createLogger({ name: 'keytrusteed' });
    const pidFile = pidFilePath(o.confdir);
    // SIGHUP reloads the TLS certificate; until the server runs it must not end the process.
    const started: { running?: RunningServer } = {};
    process.on('SIGHUP', () => {
      if (started.running) void started.running.reloadTls();
      else log.warn({ signal: 'SIGHUP' }, 'SIGHUP before the server started: nothing to reload');
    });
    const running = await startServer({ confdir: o.confdir, port: o.port, log });
    started.running = running;
    // The pid file's directory belongs to the service account: never write through a link in it.
    const { O_WRONLY, O_CREAT, O_TRUNC, O_NOFOLLOW } = constants;
    const fd = openSync(pidFile, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW, 0o644);
    try {
      writeFileSync(fd, `${process.pid}\n`);
    } finally {
      closeSync(fd);
    }
    let stopping = false;
    const stop = async (signal: string) => {
      if (stopping) return;
      stopping = true;
      log.info({ signal }, 'stopping');
      await running.close().catch(() => undefined);
      if (existsSync(pidFile) && readFileSync(pidFile, 'utf8').trim() === String(process.pid))
        unlinkSync(pidFile);
      process.exit(0);
    };
    process.on('SIGINT', () => void stop('SIGINT'));
    process.on('SIGTERM', () => void stop('SIGTERM'));
  });

void runProgram(program);
