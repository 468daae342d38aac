// The console reporter's failure text: failing step, assert's diff, expected/actual, the code frame, console lines.
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import type { AttemptResult } from '../runner/results.ts';
import { codeFrame, failureText } from './failure-text.ts';

const plain = { paint: (_c: string, s: string) => s };

describe('failureText', () => {
  const dir = mkdtempSync(join(tmpdir(), 'fleetlab-frame-'));
  const file = join(dir, 'scenario.ts');
  writeFileSync(file, ['line 1', 'line 2', 'line 3', "    assert.equal(a, 'b');", 'line 5', 'line 6', 'line 7'].join('\n'));
  const log = join(dir, 'main.log');
  writeFileSync(log, ['[    0.100] booting', '[    0.200] ', '[    0.300]*--- fleetlab: a note of its own', '[    0.400]~main login: '].join('\n'));

  it('a code frame: two lines around the failing one, numbered, a caret under its column', () => {
    expect(codeFrame(`${file}:4:12`, { ...plain, cwd: dir })).toEqual(['❯ scenario.ts:4:12', '  2 | line 2', '  3 | line 3', "> 4 |     assert.equal(a, 'b');", '    |            ^', '  5 | line 5', '  6 | line 6']);
    expect(codeFrame('/no/such/file.ts:1:1', plain)).toEqual(['/no/such/file.ts:1:1']);
  });

  it('the failing step, the message, expected and actual when the message has no diff, the frame and the machine\'s own last lines', () => {
    const attempt = {
      steps: [{ name: 'outer', status: 'failed', startedAt: 0, durationMs: 1, steps: [{ name: 'ok', status: 'passed', startedAt: 0, durationMs: 1, steps: [] }, { name: 'inner', status: 'failed', startedAt: 0, durationMs: 1, steps: [] }] }],
      error: { kind: 'test-failure', type: 'AssertionError', message: 'the version', expected: '1.1', actual: '1.0', location: `${file}:4:5` },
      machines: [{ role: 'main', name: 'main', profile: 'x86_64-direct', logPath: log, logStartedAt: 0, events: [] }],
    } as unknown as AttemptResult;
    const text = failureText(attempt, { ...plain, cwd: dir });
    expect(text.slice(0, 4)).toEqual(['in step: outer › inner', 'the version', "expected: '1.1'", "actual:   '1.0'"]);
    expect(text).toContain("> 4 |     assert.equal(a, 'b');");
    expect(text.slice(-3)).toEqual(['main: last 2 console lines', '  | [    0.100] booting', '  | [    0.400]~main login: ']);
  });

  it('no expected/actual lines when node:assert put its diff in the message; no console lines a timeout already quotes', () => {
    const attempt = { steps: [], machines: [{ name: 'main', logPath: log }], error: { kind: 'test-failure', type: 'AssertionError', message: "x\n+ actual - expected\n\n+ 'a'\n- 'b'", expected: 'b', actual: 'a' } } as unknown as AttemptResult;
    expect(failureText(attempt, plain).some((l) => l.startsWith('expected:'))).toBe(false);
    const timeout = { steps: [], machines: [{ name: 'main', logPath: log }], error: { kind: 'test-failure', type: 'TimeoutError', message: 'Timed out\nLast 1 console lines:\n  | x' } } as unknown as AttemptResult;
    expect(failureText(timeout, plain).some((l) => l.includes('last 2 console lines'))).toBe(false);
  });
});
