// JUnit output stays valid XML whatever a console printed.
import { XMLParser, XMLValidator } from 'fast-xml-parser';
import { mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import type { CaseResult } from '../runner/results.ts';
import { JunitReporter, xmlSafe } from './junit-reporter.ts';

describe('JUnit escaping', () => {
  it('removes control characters XML forbids, keeping tab and newline', () => {
    expect(xmlSafe('a\x00b\x1b[6nc\x07d\tok\n')).toBe('ab[6ncd\tok\n');
  });

  it('a console log full of escapes and a message with markup give a valid file', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'fleetlab-junit-'));
    const log = join(dir, 'vm.log');
    await writeFile(log, 'boot \x1b[6n\x00\x01 <tag> & "q" ]]> end\n');
    const r = new JunitReporter(join(dir, 'junit.xml'));
    r.onRunBegin({ runId: 'r', outputDir: dir, cases: [{ id: 'f.ts::s[p]', file: 'f.ts', scenario: 's', variant: 'p' }], workers: 1, startedAt: new Date().toISOString() });
    const result: CaseResult = {
      id: 'f.ts::s[p]', file: 'f.ts', scenario: 's', variant: 'p', tags: [], status: 'failed', durationMs: 1500,
      attempts: [{ attempt: 1, status: 'failed', startedAt: new Date().toISOString(), durationMs: 1500, error: { kind: 'test-failure', type: 'AssertionError', message: 'bad <x> & \x1b[31mred\x1b[0m' }, steps: [], machines: [{ role: 'vm', name: 'vm', profile: 'p', logPath: log }], artifacts: [], output: [] }],
    };
    await r.onCaseEnd(result);
    const xml = await readFile(join(dir, 'junit.xml'), 'utf8');
    expect(XMLValidator.validate(xml)).toBe(true);
    const doc = new XMLParser({ ignoreAttributes: false, attributeNamePrefix: '' }).parse(xml);
    const tc = doc.testsuites.testsuite.testcase;
    expect(tc.failure.message).toContain('bad <x> & [31mred[0m');
    expect(tc['system-out']).toContain('<tag> & "q" ]]> end');
  });

  it("carries the host's memory in use as the case began and at its peak, beside the case's own properties", async () => {
    const dir = await mkdtemp(join(tmpdir(), 'fleetlab-junit-'));
    const r = new JunitReporter(join(dir, 'junit.xml'));
    r.onRunBegin({ runId: 'r', outputDir: dir, cases: [{ id: 'f.ts::s[p]', file: 'f.ts', scenario: 's', variant: 'p' }], workers: 1, startedAt: new Date().toISOString() });
    await r.onCaseEnd({
      id: 'f.ts::s[p]', file: 'f.ts', scenario: 's', variant: 'p', tags: [], status: 'passed', durationMs: 10,
      attempts: [{ attempt: 1, status: 'passed', startedAt: new Date().toISOString(), durationMs: 10, steps: [], machines: [], artifacts: [], output: [], host: { startMiB: 3000, peakMiB: 7400, totalMiB: 24000 }, properties: { 'fleet.idle.cpu.pct': '2.5' } }],
    });
    const doc = new XMLParser({ ignoreAttributes: false, attributeNamePrefix: '' }).parse(await readFile(join(dir, 'junit.xml'), 'utf8'));
    const props = Object.fromEntries((doc.testsuites.testsuite.testcase.properties.property as Array<{ name: string; value: string }>).map((p) => [p.name, p.value]));
    expect(props).toMatchObject({ 'host.memory.start.mib': '3000', 'host.memory.peak.mib': '7400', 'host.memory.total.mib': '24000', 'fleet.idle.cpu.pct': '2.5' });
  });
});
