// Invariants through the real CLI (cases that start no machine): the first violation fails the case at once, naming
// the invariant, when and which check; one that holds is reported with its count; stop() ends one; bad periods are
// refused at the call.
import { execa } from 'execa';
import { mkdtemp, readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';

const root = join(import.meta.dirname, '../..');
interface Report { results: Array<{ scenario: string; status: string; durationMs: number; attempts: Array<{ error?: { message: string; kind: string }; output: string[] }> }> }

describe('invariants', () => {
  let report: Report;
  let stdout: string;
  beforeAll(async () => {
    const out = await mkdtemp(join(tmpdir(), 'fleetlab-invariants-'));
    const r = await execa(process.execPath, [join(root, 'harness/cli/main.ts'), 'run', 'harness/runner/fixtures/invariants.ts', '--retries', '0', '--output', out], { cwd: root, reject: false, timeout: 120_000, env: { CI: '1', NO_COLOR: '1' } });
    stdout = r.stdout + r.stderr;
    expect(r.exitCode, stdout).toBe(1);
    report = JSON.parse(await readFile(join(out, 'report.json'), 'utf8')) as Report;
  }, 130_000);
  const get = (name: string) => report.results.find((c) => c.scenario === name)!;

  it('a check that throws fails the case at once: the invariant, when, which check, what it said', () => {
    const c = get('invariant violated');
    expect(c.status).toBe('failed');
    const e = c.attempts.at(-1)!.error!;
    expect(e.kind).toBe('test-failure');
    expect(e.message).toMatch(/^invariant "counter stays below 3" was violated at \d{4}-\d\d-\d\dT[\d:.]+Z \([\d.]+ s into the case\), at its check #3: the counter is 3/);
    // The body would have slept 20 s.
    expect(c.durationMs).toBeLessThan(10_000);
  });

  it('a check that returns false is a violation too', () => {
    expect(get('invariant returns false').attempts.at(-1)!.error!.message).toMatch(/invariant "gateway reachable" was violated .* at its check #1: the check returned false/);
  });

  it('one that holds passes, its checks counted in the output; a stopped one is checked no more; too often is refused', () => {
    const c = get('invariant held');
    expect(c.status, JSON.stringify(c.attempts.at(-1)!.error)).toBe('passed');
    expect(c.attempts.at(-1)!.output.join('\n')).toMatch(/invariant "always": held through \d+ check\(s\)/);
    expect(c.attempts.at(-1)!.output.join('\n')).not.toMatch(/invariant "stopped early": held/);
  });
});
