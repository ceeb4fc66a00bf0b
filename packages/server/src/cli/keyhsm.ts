import { Command } from 'commander';
import { hostname } from 'node:os';
import { VERSION } from '../package-info';
import { createLogger } from '../logger';
import {
  KEYHSM_DEFAULT_CONFDIR,
  KEYHSM_DEFAULT_PORT,
  KEYHSM_ENV,
  keyHsmConfSchema,
} from '../keyhsm/keyhsm-config';
import { startKeyHsm } from '../keyhsm/keyhsm-server';
import { setupKeyHsm, trustClientCert } from '../keyhsm/setup-keyhsm';
import { absolutePath, parsePort, runProgram } from './common';

const say = (m: string) => process.stdout.write(`${m}\n`);

const program = new Command('keyhsm')
  .version(VERSION, '--version', 'print the version')
  .description(
    'The Key HSM service: HTTPS with mutual TLS (port 9090) in front of a PKCS#11 token, serving ktadmin keyhsm --server',
  )
  .option(
    '--confdir <dir>',
    `Key HSM directory (keyhsm.conf, ssl/, trusted/); $${KEYHSM_ENV.CONFDIR} or ${KEYHSM_DEFAULT_CONFDIR}`,
    absolutePath,
    absolutePath(process.env[KEYHSM_ENV.CONFDIR] ?? KEYHSM_DEFAULT_CONFDIR),
  );

const confdirOf = (cmd: Command) => (cmd.optsWithGlobals() as { confdir: string }).confdir;

program
  .command('setup')
  .description('check the token and PIN, write keyhsm.conf and the service certificate')
  .requiredOption(
    '--pkcs11-module <lib>',
    'PKCS#11 library, e.g. /usr/lib/softhsm/libsofthsm2.so',
    absolutePath,
  )
  .requiredOption('--token-label <label>', 'label of the token')
  .requiredOption('--pin-file <file>', 'file (mode 0600) with the token user PIN', absolutePath)
  .option('--host <host>', 'host name in the service certificate', hostname())
  .option('--port <port>', 'HTTPS port', parsePort, KEYHSM_DEFAULT_PORT)
  .option('--listen-address <addr>', 'address to bind', '127.0.0.1')
  .action(
    (
      o: {
        pkcs11Module: string;
        tokenLabel: string;
        pinFile: string;
        host: string;
        port: number;
        listenAddress: string;
      },
      cmd: Command,
    ) => {
      const confdir = confdirOf(cmd);
      const conf = keyHsmConfSchema.parse({
        HOST: o.host,
        PORT: o.port,
        LISTEN_ADDRESS: o.listenAddress,
        PKCS11_MODULE: o.pkcs11Module,
        TOKEN_LABEL: o.tokenLabel,
        PIN_FILE: o.pinFile,
      });
      const r = setupKeyHsm(confdir, conf);
      say(`keyhsm configured in ${confdir} (token "${o.tokenLabel}", port ${o.port})`);
      if (r.certCreated) say('created the service certificate ssl/keyhsm-cert.pem');
      say(
        'next: keyhsm trust /path/to/key_trustee_server/cert; then start the service (service keyhsm start)',
      );
    },
  );

program
  .command('trust <cert>')
  .description('trust a Key Trustee Server certificate (PEM): only trusted clients may connect')
  .action((cert: string, _o: unknown, cmd: Command) => {
    const r = trustClientCert(confdirOf(cmd), absolutePath(cert));
    say(`trusted ${r.subject} (SHA-256 ${r.fingerprint}); effective for new connections`);
  });

program
  .command('run', { isDefault: true })
  .description('run the service in the foreground (what `service keyhsm start` runs)')
  .option('--port <port>', `override keyhsm.conf PORT (also $${KEYHSM_ENV.PORT})`, parsePort)
  .action(async (o: { port?: number }, cmd: Command) => {
    const log = createLogger({ name: 'keyhsm' });
    const envPort = process.env[KEYHSM_ENV.PORT];
    const port = o.port ?? (envPort ? parsePort(envPort) : undefined);
    const running = await startKeyHsm({ confdir: confdirOf(cmd), port, log });
    say(`keyhsm listening on ${running.port}`);
    const stop = () => void running.close().then(() => process.exit(0));
    process.on('SIGINT', stop);
    process.on('SIGTERM', stop);
  });

void runProgram(program);
