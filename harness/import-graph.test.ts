// The import graph of harness/, lab/ and machines/ (dependency-cruiser, type-only imports included): no cycles, and
// every import resolves (an import it cannot follow could hide one).
import { resolve } from 'node:path';
import { cruise, type ICruiseResult } from 'dependency-cruiser';
import extractTSConfig from 'dependency-cruiser/config-utl/extract-ts-config';
import { beforeAll, describe, expect, it } from 'vitest';

const ROOT = resolve(import.meta.dirname, '..');
const BUILTINS = /^node:/;

describe('import graph of harness, lab and machines', () => {
  let result: ICruiseResult;
  beforeAll(async () => {
    const cwd = process.cwd();
    process.chdir(ROOT);
    try {
      const reported = await cruise(
        ['harness', 'lab', 'machines'],
        {
          tsPreCompilationDeps: true,
          tsConfig: { fileName: 'tsconfig.json' },
          doNotFollow: { path: 'node_modules' },
          exclude: { path: '\\.test\\.ts$|/fixtures/' },
          validate: true,
          ruleSet: { forbidden: [{ name: 'no-circular', severity: 'error', from: {}, to: { circular: true } }] },
        },
        {},
        { tsConfig: extractTSConfig('tsconfig.json') },
      );
      result = reported.output as ICruiseResult;
    } finally {
      process.chdir(cwd);
    }
  });

  it('reads the whole tree (the graph is not empty)', () => {
    const files = result.modules.map((m) => m.source);
    expect(files).toContain('harness/qemu/qemu-machine.ts');
    expect(files).toContain('lab/board.ts');
    expect(files).toContain('machines/testbed/build.ts');
  });

  it('has no circular dependency', () => {
    const cycles = result.summary.violations.filter((v) => v.rule.name === 'no-circular').map((v) => [v.from, ...(v.cycle ?? []).map((c) => c.name)].join(' > '));
    expect(cycles).toEqual([]);
  });

  it('resolves every import of our own code', () => {
    const unresolved = result.modules.flatMap((m) => m.dependencies.filter((d) => d.couldNotResolve && !BUILTINS.test(d.module)).map((d) => `${m.source}: ${d.module}`));
    expect(unresolved).toEqual([]);
  });
});
