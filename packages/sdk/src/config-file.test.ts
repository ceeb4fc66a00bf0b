import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { TrusteeClient } from './client';
import {
  defaultConfigPath,
  readConfigFile,
  writeConfigFile,
  writePrivateFile,
  type ClientConfigFile,
} from './config-file';
import { TrusteeError } from './errors';

const config: ClientConfigFile = {
  version: 1,
  endpoints: ['https://127.0.0.1:11371'],
  org: 'demo',
  fingerprint: '2048R/00',
  state: 'active',
  certificate: 'CERT',
  privateKey: 'KEY',
  caCertificate: 'CA',
  encryption: 'envelope',
  dataKey: { alg: 'RSA-OAEP-SHA256', wrapped: 'AA==' },
};

describe('config file', () => {
  let dir: string;
  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'trustee-sdk-'));
  });
  afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('is written with mode 0600 in a 0700 directory and reads back', () => {
    const file = path.join(dir, 'sub', 'keytrustee.conf');
    writeConfigFile(file, config);
    expect(fs.statSync(file).mode & 0o777).toBe(0o600);
    expect(fs.statSync(path.dirname(file)).mode & 0o777).toBe(0o700);
    expect(readConfigFile(file)).toEqual(config);
    expect(fs.readdirSync(path.dirname(file))).toEqual(['keytrustee.conf']);
  });

  it.each([0o644, 0o640, 0o604, 0o620, 0o660])(
    'refuses mode %o naming the file, the mode and chmod 600',
    (mode) => {
      const file = path.join(dir, 'keytrustee.conf');
      writeConfigFile(file, config);
      fs.chmodSync(file, mode);
      let error: unknown;
      try {
        TrusteeClient.fromConfigFile(file);
      } catch (e) {
        error = e;
      }
      expect(error).toBeInstanceOf(TrusteeError);
      expect(error).toMatchObject({ code: 'CONFIG_INSECURE' });
      const message = (error as Error).message;
      expect(message).toContain(file);
      expect(message).toContain(`0${mode.toString(8)}`);
      expect(message).toContain(`chmod 600 ${file}`);
    },
  );

  it('reports a missing or malformed file as CONFIG_INVALID', () => {
    expect(() => readConfigFile(path.join(dir, 'absent.conf'))).toThrow(
      expect.objectContaining({ code: 'CONFIG_INVALID' }),
    );
    const file = path.join(dir, 'bad.conf');
    fs.writeFileSync(file, '{"version": 1}', { mode: 0o600 });
    expect(() => readConfigFile(file)).toThrow(expect.objectContaining({ code: 'CONFIG_INVALID' }));
  });

  it('defaults to ~/.keytrustee/keytrustee.conf unless TRUSTEE_CLIENT_CONFIG is set', () => {
    expect(defaultConfigPath({ HOME: '/home/u' })).toBe('/home/u/.keytrustee/keytrustee.conf');
    expect(defaultConfigPath({ HOME: '/home/u', TRUSTEE_CLIENT_CONFIG: '/etc/kt.conf' })).toBe(
      '/etc/kt.conf',
    );
  });

  it('leaves no temp file behind when the final rename fails', () => {
    const target = path.join(dir, 'is-a-dir');
    fs.mkdirSync(path.join(target, 'child'), { recursive: true });
    expect(() => writePrivateFile(target, 'x')).toThrow();
    expect(fs.readdirSync(dir)).toEqual(['is-a-dir']);
  });
});
