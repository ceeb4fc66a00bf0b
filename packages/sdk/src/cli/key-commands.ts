import fs from 'node:fs';
import { type Command, InvalidArgumentError } from 'commander';
import { TrusteeError } from '../errors';
import {
  KeyProvider,
  MAX_EEK_BATCH,
  type EncryptedKeyVersion,
  type KeyMetadata,
  type KeyVersion,
} from '../kms/key-provider';
import { EEK_IV_LENGTH, EEK_VERSION_NAME } from '../kms/eek';
import { write, type Output } from './output';

interface KeyCommandDeps {
  out: (cmd: Command) => Output;
  configPath: (cmd: Command) => string;
}

/** JSON form of an EEK: bytes as base64, the field names of Hadoop's EncryptedKeyVersion. */
interface EekJson {
  encryptionKeyName: string;
  encryptionKeyVersionName: string;
  encryptedKeyIv: string;
  encryptedKeyVersion: { name: string; versionName: string; material: string };
}

function eekToJson(e: EncryptedKeyVersion): EekJson {
  return {
    encryptionKeyName: e.encryptionKeyName,
    encryptionKeyVersionName: e.encryptionKeyVersionName,
    encryptedKeyIv: e.encryptedKeyIv.toString('base64'),
    encryptedKeyVersion: {
      name: e.encryptedKeyVersion.name,
      versionName: e.encryptedKeyVersion.versionName,
      material: e.encryptedKeyVersion.material.toString('base64'),
    },
  };
}

function metadataToJson(name: string, m: KeyMetadata): Record<string, unknown> {
  return { name, ...m, created: m.created.toISOString() };
}

/** Strict base64 (a typo must not silently decode to other bytes). */
function parseBase64(what: string, value: string): Buffer {
  if (!/^[A-Za-z0-9+/]*={0,2}$/.test(value) || value.length % 4 !== 0) {
    throw new TrusteeError('INVALID_ARGUMENT', `${what} must be base64`);
  }
  return Buffer.from(value, 'base64');
}

function eekFromJson(raw: unknown): EncryptedKeyVersion {
  const o = raw as Partial<EekJson> | null;
  const v = o?.encryptedKeyVersion;
  if (
    typeof o?.encryptionKeyVersionName !== 'string' ||
    typeof o.encryptedKeyIv !== 'string' ||
    typeof v?.material !== 'string'
  ) {
    throw new TrusteeError(
      'INVALID_ARGUMENT',
      'the EEK must be the JSON printed by `ktclient key generate-eek --json` (encryptionKeyVersionName, encryptedKeyIv, encryptedKeyVersion.material)',
    );
  }
  const keyName = o.encryptionKeyName ?? o.encryptionKeyVersionName.replace(/@[^@]*$/, '');
  return {
    encryptionKeyName: keyName,
    encryptionKeyVersionName: o.encryptionKeyVersionName,
    encryptedKeyIv: parseBase64('encryptedKeyIv', o.encryptedKeyIv),
    encryptedKeyVersion: {
      name: keyName,
      versionName: v.versionName ?? EEK_VERSION_NAME,
      material: parseBase64('encryptedKeyVersion.material', v.material),
    },
  };
}

function parseLength(raw: string): number {
  if (raw !== '128' && raw !== '256') throw new InvalidArgumentError('expected 128 or 256');
  return Number(raw);
}

function parseCount(raw: string): number {
  const n = Number(raw);
  if (!Number.isInteger(n) || n < 1 || n > MAX_EEK_BATCH)
    throw new InvalidArgumentError(`expected 1-${MAX_EEK_BATCH}`);
  return n;
}

function collectAttribute(raw: string, previous: Record<string, string>): Record<string, string> {
  const eq = raw.indexOf('=');
  if (eq <= 0) throw new InvalidArgumentError('expected KEY=VALUE');
  return { ...previous, [raw.slice(0, eq)]: raw.slice(eq + 1) };
}

/** `ktclient key …`: the KeyProvider from the command line (Hadoop `hadoop key` + EEK calls). */
export function addKeyCommands(program: Command, deps: KeyCommandDeps): void {
  const { out } = deps;
  const withProvider = async (cmd: Command, fn: (p: KeyProvider) => Promise<void>): Promise<void> => {
    // One-shot process: no EDEK cache (it would make values nobody takes).
    const provider = KeyProvider.fromConfigFile(deps.configPath(cmd), {}, { edekCache: false });
    try {
      await fn(provider);
    } finally {
      await provider.close();
    }
  };
  const printVersion = (o: Output, verb: string, k: KeyVersion): void =>
    write(o, { name: k.name, versionName: k.versionName }, `${verb} ${k.name}: version ${k.versionName}\n`);

  const key = program
    .command('key')
    .description(
      'named keys with versions and encrypted data keys (EEKs), as a Hadoop KMS KeyProvider: ' +
        'key material is made here and stored envelope-encrypted',
    );

  key
    .command('create <name>')
    .description('create key NAME with a random first version (material is never printed)')
    .option('--cipher <cipher>', 'cipher (only AES/CTR/NoPadding)', 'AES/CTR/NoPadding')
    .option('--length <bits>', 'key length: 128 or 256', parseLength, 128)
    .option('--description <text>', 'free text stored with the key')
    .option('--attr <key=value>', 'an attribute (repeatable)', collectAttribute, {})
    .action(
      async (
        name: string,
        opts: { cipher: string; length: number; description?: string; attr: Record<string, string> },
        cmd: Command,
      ) => {
        await withProvider(cmd, async (p) => {
          const k = await p.createKey(name, {
            cipher: opts.cipher,
            length: opts.length,
            description: opts.description,
            attributes: opts.attr,
          });
          printVersion(out(cmd), 'created', k);
        });
      },
    );

  key
    .command('roll <name>')
    .description('make a new current version of key NAME (older versions still decrypt their EEKs)')
    .action(async (name: string, _opts: unknown, cmd: Command) => {
      await withProvider(cmd, async (p) => printVersion(out(cmd), 'rolled', await p.rollNewVersion(name)));
    });

  key
    .command('list')
    .description('names of all keys of this client')
    .option('--metadata', 'with each key’s metadata')
    .action(async (opts: { metadata?: boolean }, cmd: Command) => {
      await withProvider(cmd, async (p) => {
        const names = await p.getKeys();
        if (opts.metadata !== true) {
          write(out(cmd), names, names.map((n) => `${n}\n`).join(''));
          return;
        }
        const rows = [];
        for (const n of names) rows.push(metadataToJson(n, await p.getMetadata(n)));
        const human = rows
          .map(
            (r) =>
              `${String(r.name)}\t${String(r.cipher)}\t${String(r.length)}\tversions=${String(r.versions)}\n`,
          )
          .join('');
        write(out(cmd), rows, human);
      });
    });

  key
    .command('metadata <name>')
    .description('cipher, length, description, attributes, created, versions of key NAME')
    .action(async (name: string, _opts: unknown, cmd: Command) => {
      await withProvider(cmd, async (p) => {
        const m = metadataToJson(name, await p.getMetadata(name));
        const attrs = Object.entries(m.attributes as Record<string, string>)
          .map(([k, v]) => `  ${k}=${v}\n`)
          .join('');
        write(
          out(cmd),
          m,
          `${name}\ncipher: ${String(m.cipher)}\nlength: ${String(m.length)}\ndescription: ${String(m.description ?? '')}\n` +
            `created: ${String(m.created)}\nversions: ${String(m.versions)}\nattributes:\n${attrs}`,
        );
      });
    });

  key
    .command('generate-eek <name>')
    .description('a new data key encrypted under the current version of NAME (EEK, base64 fields)')
    .option('--count <n>', 'how many (prints a JSON array with --json)', parseCount)
    .action(async (name: string, opts: { count?: number }, cmd: Command) => {
      await withProvider(cmd, async (p) => {
        const eeks = (await p.generateEncryptedKeys(name, opts.count ?? 1)).map(eekToJson);
        const human = eeks
          .map(
            (e) =>
              `${e.encryptionKeyVersionName}\tiv=${e.encryptedKeyIv}\tmaterial=${e.encryptedKeyVersion.material}\n`,
          )
          .join('');
        write(out(cmd), opts.count === undefined ? eeks[0] : eeks, human);
      });
    });

  key
    .command('decrypt-eek')
    .description(
      'decrypt an EEK and print the data key (base64; a secret): from --eek FILE (JSON of generate-eek --json) ' +
        'or --version-name NAME@N --iv B64 --material B64',
    )
    .option('--eek <file>', 'file holding one EEK as printed by `key generate-eek --json`')
    .option('--version-name <name@n>', 'the key version that encrypted it')
    .option('--iv <base64>', `the EEK's IV (${EEK_IV_LENGTH} bytes)`)
    .option('--material <base64>', 'the encrypted key')
    .action(
      async (opts: { eek?: string; versionName?: string; iv?: string; material?: string }, cmd: Command) => {
        const parts = [opts.versionName, opts.iv, opts.material];
        const fromFile = opts.eek !== undefined && parts.every((v) => v === undefined);
        const fromParts = opts.eek === undefined && parts.every((v) => v !== undefined);
        if (!fromFile && !fromParts) {
          cmd.error('error: decrypt-eek needs --eek FILE, or all of --version-name, --iv and --material', {
            exitCode: 2,
            code: 'ktclient.usage',
          });
        }
        let raw: unknown;
        if (opts.eek !== undefined) {
          try {
            raw = JSON.parse(fs.readFileSync(opts.eek, 'utf8'));
          } catch (e) {
            throw new TrusteeError(
              'INVALID_ARGUMENT',
              `cannot read an EEK from ${opts.eek}: ${(e as Error).message}`,
            );
          }
        } else {
          raw = {
            encryptionKeyVersionName: opts.versionName,
            encryptedKeyIv: opts.iv,
            encryptedKeyVersion: { material: opts.material },
          };
        }
        const eek = eekFromJson(raw);
        await withProvider(cmd, async (p) => {
          const dek = await p.decryptEncryptedKey(eek);
          const material = dek.material.toString('base64');
          write(out(cmd), { name: dek.name, versionName: dek.versionName, material }, `${material}\n`);
        });
      },
    );
}
