// The Machine protocol's promises: the compiler makes a scenario check an optional capability before using it (type
// tests, compiled here with the project's tsconfig), and need() names the machine that lacks one.
import { readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import ts from 'typescript';
import { describe, expect, it } from 'vitest';
import { ConfigurationError } from '../errors/fleetlab-error.ts';
import { need, type Machine } from './machine.ts';

const ROOT = resolve(import.meta.dirname, '../..');
const FIXTURES = join(import.meta.dirname, 'fixtures');

/** The diagnostics of compiling `files` with the project's compiler options. */
function compile(files: string[]): ts.Diagnostic[] {
  const configPath = join(ROOT, 'tsconfig.json');
  const config = ts.readConfigFile(configPath, (p) => ts.sys.readFile(p));
  const parsed = ts.parseJsonConfigFileContent(config.config, ts.sys, dirname(configPath));
  const program = ts.createProgram(files, parsed.options);
  return [...ts.getPreEmitDiagnostics(program)];
}

describe('Machine capabilities (type tests)', () => {
  const checked = join(FIXTURES, 'machine-capabilities-checked.ts');
  const unchecked = join(FIXTURES, 'machine-capabilities-unchecked.ts');
  const diagnostics = compile([checked, unchecked]);
  const where = (d: ts.Diagnostic) => `${d.file?.fileName}:${d.file && d.start !== undefined ? d.file.getLineAndCharacterOfPosition(d.start).line + 1 : '?'}: TS${d.code} ${ts.flattenDiagnosticMessageText(d.messageText, ' ')}`;

  it('a scenario that checks a capability (or calls need()) compiles', () => {
    expect(diagnostics.filter((d) => d.file?.fileName === checked).map(where)).toEqual([]);
  });

  it("a scenario that uses screen, hostLink, net or media unchecked fails to compile: \"possibly 'undefined'\" on each such line", () => {
    const marked = readFileSync(unchecked, 'utf8')
      .split('\n')
      .flatMap((line, i) => (line.includes('// unchecked') ? [i + 1] : []));
    expect(marked).toHaveLength(4);
    const errors = diagnostics.filter((d) => d.file?.fileName === unchecked);
    const lines = errors.map((d) => d.file!.getLineAndCharacterOfPosition(d.start!).line + 1);
    expect(lines.sort((a, b) => a - b), errors.map(where).join('\n')).toEqual(marked);
    for (const d of errors) expect(d.code, where(d)).toBe(18048);
    expect(errors.map((d) => ts.flattenDiagnosticMessageText(d.messageText, ' '))).toEqual([
      "'m.screen' is possibly 'undefined'.",
      "'m.hostLink' is possibly 'undefined'.",
      "'m.net' is possibly 'undefined'.",
      "'m.media' is possibly 'undefined'.",
    ]);
  });

  it('nothing else in the two files fails to compile', () => {
    expect(diagnostics.filter((d) => d.file?.fileName !== checked && d.file?.fileName !== unchecked).map(where)).toEqual([]);
  });
});

describe('need()', () => {
  const board = { name: 'dut', label: 'board vboard-1 (a lab board)', screen: undefined } as unknown as Machine;
  const screen = { screenshot: async () => undefined, sendKeys: async () => undefined, typeText: async () => undefined };
  const vm = { name: 'main', label: 'machine main (a QEMU VM)', screen } as unknown as Machine;

  it('returns the capability a machine has', () => {
    expect(need(vm, 'screen')).toBe(screen);
  });

  it('names the capability and the machine that lacks it, and what wanted it, as a configuration error', () => {
    expect(() => need(board, 'screen')).toThrow(ConfigurationError);
    expect(() => need(board, 'screen')).toThrow(/^screen is not supported by board vboard-1 \(a lab board\)$/);
    expect(() => need(board, 'hostLink', 'browser.open()')).toThrow(/^hostLink is not supported by board vboard-1 \(a lab board\): browser\.open\(\) needs it$/);
  });
});
