import fs from 'node:fs';
import path from 'node:path';
import ts from 'typescript';
import { kms } from '../examples/key-provider';
import { main } from '../examples/usage';

const sdkRoot = path.resolve(__dirname, '..');

describe('README usage example', () => {
  it('type-checks against the SDK sources under strict settings', () => {
    const files = ['examples/usage.ts', 'examples/key-provider.ts'].map((f) => path.join(sdkRoot, f));
    const program = ts.createProgram(files, {
      strict: true,
      noEmit: true,
      skipLibCheck: true,
      target: ts.ScriptTarget.ES2022,
      module: ts.ModuleKind.Node16,
      moduleResolution: ts.ModuleResolutionKind.Node16,
      types: ['node'],
      esModuleInterop: true,
      paths: { '@trustee/sdk': [path.join(sdkRoot, 'src/index.ts')] },
    });
    const diagnostics = ts
      .getPreEmitDiagnostics(program)
      .map((d) => ts.flattenDiagnosticMessageText(d.messageText, '\n'));
    expect(diagnostics).toEqual([]);
  });

  it('loads and exports main and kms', () => {
    expect(typeof main).toBe('function');
    expect(typeof kms).toBe('function');
  });
});

describe('README', () => {
  it('shows the same code as examples/usage.ts', () => {
    const readme = fs.readFileSync(path.join(sdkRoot, 'README.md'), 'utf8');
    const block = /## Usage\n\n```ts\n([\s\S]*?)```/.exec(readme)?.[1];
    const example = fs
      .readFileSync(path.join(sdkRoot, 'examples/usage.ts'), 'utf8')
      .split('\nif (require.main')[0];
    expect(block?.trimEnd()).toBe(example.trimEnd());
  });

  it('shows the same code as examples/key-provider.ts', () => {
    const readme = fs.readFileSync(path.join(sdkRoot, 'README.md'), 'utf8');
    const block = /## KMS: `KeyProvider`[^\n]*\n[\s\S]*?```ts\n([\s\S]*?)```/.exec(readme)?.[1];
    const example = fs.readFileSync(path.join(sdkRoot, 'examples/key-provider.ts'), 'utf8');
    expect(block?.trimEnd()).toBe(example.trimEnd());
  });
});
