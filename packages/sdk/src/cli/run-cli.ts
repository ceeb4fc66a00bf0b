import fs from 'node:fs';
import path from 'node:path';
import readline from 'node:readline';
import { Command, CommanderError, InvalidArgumentError } from 'commander';
import { TrusteeClient } from '../client';
import { defaultConfigPath, writePrivateFile } from '../config-file';
import { TrusteeError, isTrusteeError } from '../errors';
import { addKeyCommands } from './key-commands';
import {
  printDeposit,
  printList,
  printPut,
  printRegistration,
  printStatus,
  type CliIo,
  type Output,
} from './output';

export type { CliIo } from './output';

interface GlobalOptions {
  config?: string;
  json?: boolean;
}

/** Exit codes: 0 ok, 1 operation failed, 2 usage error. */
export const EXIT_FAILURE = 1;
export const EXIT_USAGE = 2;

/** Runs ktclient with `argv` (without `node` and the script); resolves with the exit code. */
export async function runCli(argv: string[], io: CliIo): Promise<number> {
  // Only as the first word: `get NAME --version N` is a subcommand option (commander would take
  // a program-level --version anywhere).
  if (argv[0] === '--version' || argv[0] === '-V') {
    io.stdout.write(`${sdkVersion()}\n`);
    return 0;
  }
  const program = buildProgram(io);
  try {
    await program.parseAsync(argv, { from: 'user' });
    return 0;
  } catch (e) {
    if (e instanceof CommanderError) return commanderExitCode(e);
    if (isTrusteeError(e)) io.stderr.write(`error: ${e.code}: ${e.message}\n`);
    else io.stderr.write(`error: INTERNAL: ${e instanceof Error ? e.message : String(e)}\n`);
    return EXIT_FAILURE;
  }
}

/** Help asked for (`--help`, `help CMD`) exits 0; any other commander stop is a usage error. */
function commanderExitCode(e: CommanderError): number {
  return e.exitCode === 0 ? 0 : EXIT_USAGE;
}

/** The package's version (src/cli and dist/cli both sit two levels below package.json). */
function sdkVersion(): string {
  const file = path.join(__dirname, '..', '..', 'package.json');
  return (JSON.parse(fs.readFileSync(file, 'utf8')) as { version: string }).version;
}

function buildProgram(io: CliIo): Command {
  const program = new Command('ktclient')
    .description('Client of a Trustee key trustee cluster (`ktclient --version` prints the version)')
    .option(
      '--config <file>',
      `client config file (default $TRUSTEE_CLIENT_CONFIG or ~/.keytrustee/keytrustee.conf)`,
    )
    .option('--json', 'machine-readable JSON output')
    .configureOutput({ writeOut: (s) => io.stdout.write(s), writeErr: (s) => io.stderr.write(s) })
    .exitOverride()
    .showHelpAfterError('(add --help for usage)');

  const out = (cmd: Command): Output => ({
    io,
    json: (cmd.optsWithGlobals() as GlobalOptions).json === true,
  });
  const configPath = (cmd: Command): string =>
    (cmd.optsWithGlobals() as GlobalOptions).config ?? defaultConfigPath(io.env);
  const withClient = async (
    cmd: Command,
    fn: (client: TrusteeClient) => Promise<void>,
    acceptUnencrypted = false,
  ): Promise<void> => {
    // A value that is not an envelope may have been substituted by whoever controls the server:
    // only `get --raw` reads one (and says so on stderr).
    const client = TrusteeClient.fromConfigFile(configPath(cmd), { acceptUnencrypted });
    try {
      await fn(client);
    } finally {
      client.close();
    }
  };

  program
    .command('register')
    .description(
      'generate a key pair, register this client with the cluster and write the config file (0600)',
    )
    .requiredOption('--server <urls>', 'node URL(s), comma-separated: https://kt1:11371,https://kt2:11371')
    .requiredOption('--org <org>', 'organization name')
    .option('--auth <code>', "the organization's auth code")
    .option('--name <name>', 'a name for this client')
    .option('--ca <file>', "PEM file with the nodes' TLS certificate(s) to trust")
    .option(
      '--skip-ssl-check',
      "do not verify the servers' TLS certificates while registering; the certificates they present are then pinned (trust on first use)",
    )
    .option('--no-pin', 'with --skip-ssl-check: do not pin, never verify (dangerous, recorded in the config)')
    .action(
      async (
        opts: {
          server: string;
          org: string;
          auth?: string;
          name?: string;
          ca?: string;
          skipSslCheck?: boolean;
          pin?: boolean;
        },
        cmd: Command,
      ) => {
        const servers = opts.server
          .split(',')
          .map((s) => s.trim())
          .filter((s) => s !== '');
        if (opts.skipSslCheck === true) {
          io.stderr.write(
            opts.pin === false
              ? 'warning: --skip-ssl-check --no-pin: server certificates are never verified\n'
              : 'warning: --skip-ssl-check: the certificates the servers present now are trusted from now on (pinned on first use)\n',
          );
        }
        const result = await TrusteeClient.register({
          servers,
          org: opts.org,
          authCode: opts.auth,
          name: opts.name,
          configPath: configPath(cmd),
          ca: opts.ca === undefined ? undefined : fs.readFileSync(opts.ca, 'utf8'),
          skipSslCheck: opts.skipSslCheck,
          pinOnFirstUse: opts.pin !== false,
        });
        result.client.close();
        printRegistration(out(cmd), result);
      },
    );

  program
    .command('put <name>')
    .description('store a new version of NAME (encrypted client-side unless --raw)')
    .option('--file <file>', 'read the value from this file')
    .option('--value <value>', 'the value as a string')
    .option('--raw', 'store the bytes as given, without client-side encryption')
    .action(async (name: string, opts: { file?: string; value?: string; raw?: boolean }, cmd: Command) => {
      if ((opts.file === undefined) === (opts.value === undefined)) {
        cmd.error('error: put needs exactly one of --file F or --value V', {
          exitCode: EXIT_USAGE,
          code: 'ktclient.usage',
        });
      }
      const value = opts.file !== undefined ? fs.readFileSync(opts.file) : (opts.value ?? '');
      await withClient(cmd, async (client) =>
        printPut(out(cmd), await client.put(name, value, { raw: opts.raw })),
      );
    });

  program
    .command('get <name>')
    .description('print the value of NAME (bytes as stored by put) to stdout or --output')
    .option('--version <n>', 'a specific version', parseVersion)
    .option('--output <file>', 'write the value to this file (created 0600) instead of stdout')
    .option(
      '--raw',
      'also accept a value stored without client-side encryption (put --raw); without it such a value is refused (DECRYPT_FAILED)',
    )
    .action(
      async (name: string, opts: { version?: number; output?: string; raw?: boolean }, cmd: Command) => {
        await withClient(
          cmd,
          async (client) => {
            const deposit = await client.get(name, { version: opts.version });
            if (!deposit.encrypted) io.stderr.write(`warning: ${name} is stored unencrypted\n`);
            // Atomic and 0600 even when the file exists with a wider mode: it receives the plaintext.
            if (opts.output !== undefined) writePrivateFile(opts.output, deposit.value);
            printDeposit(out(cmd), deposit, opts.output !== undefined);
          },
          opts.raw === true,
        );
      },
    );

  program
    .command('list')
    .description('list deposit names with their latest versions')
    .option('--prefix <prefix>', 'only names starting with this')
    .action(async (opts: { prefix?: string }, cmd: Command) => {
      await withClient(cmd, async (client) => {
        const items = [];
        for await (const item of client.list({ prefix: opts.prefix })) items.push(item);
        printList(out(cmd), items);
      });
    });

  program
    .command('delete <name>')
    .description('delete NAME (the server keeps a tombstone version)')
    .action(async (name: string, _opts: unknown, cmd: Command) => {
      await withClient(cmd, async (client) => {
        await client.delete(name);
        const o = out(cmd);
        io.stdout.write(o.json ? `${JSON.stringify({ name, deleted: true })}\n` : `deleted ${name}\n`);
      });
    });

  program
    .command('destroy <name>')
    .description(
      'erase the value of every version of NAME on both nodes, irreversibly (a tombstone stays); asks for the name unless --yes',
    )
    .option('--yes', 'do not ask for confirmation')
    .addHelpText(
      'after',
      '\nA later put of NAME starts a new version; the destroyed versions never come back. Other\nprocesses may serve a cached copy until their cache entry expires (SDK cache ttlMs).\n',
    )
    .action(async (name: string, opts: { yes?: boolean }, cmd: Command) => {
      if (opts.yes !== true) {
        io.stderr.write(
          `destroy ${name}: the value of every version is erased on both nodes and cannot be recovered.\nType the name to confirm: `,
        );
        const answer = await readLine(io.stdin);
        if (answer !== name) {
          throw new TrusteeError(
            'INVALID_ARGUMENT',
            `not confirmed (expected "${name}"); nothing was destroyed`,
          );
        }
      }
      await withClient(cmd, async (client) => {
        await client.destroy(name);
        const o = out(cmd);
        io.stdout.write(o.json ? `${JSON.stringify({ name, destroyed: true })}\n` : `destroyed ${name}\n`);
      });
    });

  program
    .command('status')
    .description('health of every node in the config')
    .action(async (_opts: unknown, cmd: Command) => {
      await withClient(cmd, async (client) => {
        const status = await client.status();
        printStatus(out(cmd), status);
        if (!status.endpoints.some((e) => e.reachable))
          throw new TrusteeError('UNAVAILABLE', 'no node is reachable');
      });
    });

  addKeyCommands(program, { out, configPath });

  return program;
}

/** One line from `input` (without its newline); '' at end of input or when there is none. */
async function readLine(input: NodeJS.ReadableStream | undefined): Promise<string> {
  if (input === undefined) return '';
  const rl = readline.createInterface({ input, terminal: false });
  try {
    for await (const line of rl) return line.trim();
    return '';
  } finally {
    rl.close();
  }
}

function parseVersion(raw: string): number {
  const n = Number(raw);
  if (!Number.isInteger(n) || n < 0) {
    throw new InvalidArgumentError('expected a non-negative integer');
  }
  return n;
}
