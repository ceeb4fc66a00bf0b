import { VERSION } from '../package-info';
import { Command } from 'commander';
import { addOrg, listOrgs, parseContacts, setAuthSecret, setClientState } from '../orgs/orgs';
import { openNodeServices } from '../node/node-services';
import { defaultConfdir, runProgram } from './common';
import { FINGERPRINT_RE } from '../crypto/fingerprint';
import { AppError } from '../errors';

async function withServices<T>(
  cmd: Command,
  fn: (s: Awaited<ReturnType<typeof openNodeServices>>) => Promise<T>,
): Promise<T> {
  const confdir = (cmd.optsWithGlobals() as { confdir: string }).confdir;
  const s = await openNodeServices(confdir);
  try {
    return await fn(s);
  } finally {
    await s.close();
  }
}

function checkFingerprint(fp: string): string {
  if (!FINGERPRINT_RE.test(fp)) {
    throw new AppError(
      'INVALID_REQUEST',
      `"${fp}" is not a client fingerprint (expected e.g. 4096R/<40 hex digits>)`,
    );
  }
  return fp;
}

const program = new Command('keytrustee-orgtool')
  .version(VERSION, '--version', 'print the version')
  .description('Manage Trustee organizations and client approval (same commands as Key Trustee Server)')
  .option('--confdir <dir>', 'configuration directory', defaultConfdir());

program
  .command('add')
  .description('create an organization (auth secret generated), or add contacts to an existing one')
  .requiredOption('-n, --name <name>', 'organization name: letters, digits, hyphens, underscores')
  .requiredOption('-c, --contacts <emails>', 'administrator e-mails, comma-separated without spaces')
  .action(async (o: { name: string; contacts: string }, cmd: Command) => {
    const contacts = parseContacts(o.contacts);
    const outcome = await withServices(cmd, (s) => addOrg(s, o.name, contacts));
    process.stdout.write(`${outcome === 'created' ? 'created' : 'updated'} organization ${o.name}\n`);
  });

program
  .command('list')
  .description(
    'list organizations as JSON (auth secret, contacts, creation, expiration, key_info, name, state, uuid)',
  )
  .action(async (_o: unknown, cmd: Command) => {
    const orgs = await withServices(cmd, (s) => listOrgs(s));
    process.stdout.write(JSON.stringify(orgs, null, 4) + '\n');
  });

program
  .command('set-auth')
  .description('set the authorization code; "" allows automatic approval without a code')
  .requiredOption('-n, --name <name>', 'organization name')
  .requiredOption('-s, --secret <secret>', 'new authorization code (may be "")')
  .action(async (o: { name: string; secret: string }, cmd: Command) => {
    await withServices(cmd, (s) => setAuthSecret(s, o.name, o.secret));
    process.stdout.write(`authorization code of ${o.name} updated\n`);
  });

program
  .command('enable-client')
  .description('activate a client that awaits approval (or re-enable a disabled one)')
  .requiredOption('--fingerprint <fp>', 'client fingerprint, e.g. 4096R/...')
  .action(async (o: { fingerprint: string }, cmd: Command) => {
    await withServices(cmd, (s) => setClientState(s, checkFingerprint(o.fingerprint), 'active'));
    process.stdout.write(`client ${o.fingerprint} enabled\n`);
  });

program
  .command('disable-client')
  .description('disable a client: both nodes refuse it from its next request')
  .requiredOption('--fingerprint <fp>', 'client fingerprint')
  .action(async (o: { fingerprint: string }, cmd: Command) => {
    await withServices(cmd, (s) => setClientState(s, checkFingerprint(o.fingerprint), 'disabled'));
    process.stdout.write(`client ${o.fingerprint} disabled\n`);
  });

void runProgram(program);
