import { VERSION } from '../package-info';
import { Command } from 'commander';
import { addOrg, listOrgs, parseContacts, setAuthSecret } from '../orgs/orgs';
import { enableClient, revokeClient, type RevocationOutcome } from '../orgs/revoke-client';
import { openNodeServices } from '../node/node-services';
import { defaultConfdir, runProgram } from './common';
import { FINGERPRINT_RE } from '../crypto/fingerprint';
import { AppError } from '../errors';
import { adminActor } from '../audit/append-audit';

/** The audit trail's "who" of a subcommand: `keytrustee-orgtool add`, this OS user, this host. */
const actor = (sub: string) => adminActor(`keytrustee-orgtool ${sub}`);

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

/** What disable-client did, and which path it took (issue 10, finding 2). */
function describeRevocation(fp: string, o: RevocationOutcome): string {
  switch (o.path) {
    case 'already-disabled':
      return `client ${fp} is already disabled; nothing to do`;
    case 'write':
      if (o.writeMode === 'sync')
        return `client ${fp} disabled on both nodes; each refuses it from its next request`;
      if (o.writeMode === 'single-node')
        return `client ${fp} disabled on this node now (single-node writes are on); the passive applies it when it returns`;
      return `client ${fp} disabled`;
    case 'local-commit':
      return (
        `client ${fp} disabled on this node now; the passive applies it when it returns ` +
        (o.unconfirmed
          ? '(committed on this node; the passive did not confirm it in time)'
          : '(committed on this node alone: the passive is not streaming, and a revocation is the one write that does not wait for it)')
      );
    case 'deny-list':
      return [
        `client ${fp} denied on this node ${o.added ? 'now' : `already, since ${o.entry.since}`}: this passive cannot write ` +
          `(its active is unreachable), so the client is listed in ${o.file} and this node refuses it within 1 s.`,
        `The active does not know: when it is back, run \`keytrustee-orgtool disable-client --fingerprint ${fp}\` there;` +
          ' this node drops the entry by itself once the replicated state says disabled.',
      ].join('\n');
  }
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
    const { outcome, newContacts, smtp } = await withServices(cmd, async (s) => ({
      ...(await addOrg(s, o.name, contacts, actor('add'))),
      smtp: !!s.conf.SMTP_URL,
    }));
    process.stdout.write(`${outcome === 'created' ? 'created' : 'updated'} organization ${o.name}\n`);
    if (newContacts.length) {
      process.stdout.write(
        smtp
          ? `contact registration mail queued for ${newContacts.join(', ')} (sent by the active node)\n`
          : `contact registration mail for ${newContacts.join(', ')} kept unsent: SMTP_URL is not set in keytrustee.conf (it goes out once it is)\n`,
      );
    }
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
    await withServices(cmd, (s) => setAuthSecret(s, o.name, o.secret, actor('set-auth')));
    process.stdout.write(`authorization code of ${o.name} updated\n`);
  });

program
  .command('enable-client')
  .description(
    'activate a client that awaits approval (or re-enable a disabled one); a write on both nodes, refused while one is down',
  )
  .requiredOption('--fingerprint <fp>', 'client fingerprint, e.g. 4096R/...')
  .action(async (o: { fingerprint: string }, cmd: Command) => {
    const dropped = await withServices(cmd, (s) =>
      enableClient(s, checkFingerprint(o.fingerprint), actor('enable-client')),
    );
    process.stdout.write(
      `client ${o.fingerprint} enabled${dropped ? " (and removed from this node's deny list)" : ''}\n`,
    );
  });

program
  .command('disable-client')
  .description(
    'disable a client: both nodes refuse it from its next request. Works with a node down: on the ' +
      'active it commits locally (the passive applies it when it returns), on a passive whose active ' +
      "is unreachable it goes into this node's deny list",
  )
  .requiredOption('--fingerprint <fp>', 'client fingerprint')
  .action(async (o: { fingerprint: string }, cmd: Command) => {
    const fp = checkFingerprint(o.fingerprint);
    const outcome = await withServices(cmd, (s) => revokeClient(s, fp, actor('disable-client')));
    process.stdout.write(`${describeRevocation(fp, outcome)}\n`);
  });

void runProgram(program);
