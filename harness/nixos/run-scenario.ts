// For the nixos tests: runs a scenario through the real CLI and reads back its JUnit, case by case.
import { execa } from 'execa';
import { XMLParser } from 'fast-xml-parser';
import { mkdtemp, readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const root = join(import.meta.dirname, '../..');

export interface RunCase {
  name: string;
  failure?: string;
  properties: Record<string, string>;
  out: string;
}

export async function runScenario(file: string, args: string[], timeoutMs: number): Promise<{ exitCode: number | undefined; output: string; cases: RunCase[]; dir: string }> {
  const dir = await mkdtemp(join(tmpdir(), 'fleetlab-nixos-'));
  const r = await execa(process.execPath, [join(root, 'harness/cli/main.ts'), 'run', file, '--output', dir, ...args], { cwd: root, reject: false, timeout: timeoutMs, env: { CI: '1', NO_COLOR: '1' } });
  const cases: RunCase[] = [];
  try {
    const xml = new XMLParser({ ignoreAttributes: false }).parse(await readFile(join(dir, 'junit.xml'), 'utf8'));
    for (const c of ([] as unknown[]).concat(xml.testsuites.testsuite.testcase) as Array<Record<string, any>>) {
      const props = ([] as Array<{ '@_name': string; '@_value': string }>).concat(c.properties?.property ?? []);
      cases.push({ name: String(c['@_name']), failure: c.failure || c.error ? String((c.failure ?? c.error)['@_message'] ?? c.failure ?? c.error) : undefined, properties: Object.fromEntries(props.map((p) => [p['@_name'], String(p['@_value'])])), out: String(c['system-out'] ?? '') });
    }
  } catch {
    // No JUnit: the exit code and output say why.
  }
  return { exitCode: r.exitCode, output: `${String(r.stdout)}\n${String(r.stderr)}`, cases, dir };
}
