// Merges the JUnit files of shards into one (`fleetlab report merge`).
import { XMLBuilder, XMLParser } from 'fast-xml-parser';
import { readFile, writeFile } from 'node:fs/promises';
import { ConfigurationError } from '../errors/fleetlab-error.ts';

/** One <testsuites> holding every <testsuite> of the inputs, with totals recomputed. */
export async function mergeJunit(files: string[], out: string): Promise<{ suites: number; tests: number }> {
  const parser = new XMLParser({ ignoreAttributes: false, attributeNamePrefix: '@_', cdataPropName: '#cdata', preserveOrder: true });
  const suites: unknown[] = [];
  for (const f of files) {
    let doc: unknown[];
    try {
      doc = parser.parse(await readFile(f, 'utf8')) as unknown[];
    } catch (err) {
      throw new ConfigurationError(`cannot read JUnit file ${f}: ${(err as Error).message}`, { details: { file: f } });
    }
    const root = doc.find((n) => n && typeof n === 'object' && 'testsuites' in (n as object)) as { testsuites: unknown[] } | undefined;
    if (!root) throw new ConfigurationError(`${f} has no <testsuites> element: not a JUnit file written by fleetlab?`, { details: { file: f } });
    suites.push(...root.testsuites.filter((n) => n && typeof n === 'object' && 'testsuite' in (n as object)));
  }
  const totals = { tests: 0, failures: 0, errors: 0, skipped: 0, time: 0 };
  for (const s of suites as { ':@'?: Record<string, string> }[]) {
    const a = s[':@'] ?? {};
    totals.tests += Number(a['@_tests'] ?? 0);
    totals.failures += Number(a['@_failures'] ?? 0);
    totals.errors += Number(a['@_errors'] ?? 0);
    totals.skipped += Number(a['@_skipped'] ?? 0);
    totals.time += Number(a['@_time'] ?? 0);
  }
  const builder = new XMLBuilder({ ignoreAttributes: false, attributeNamePrefix: '@_', cdataPropName: '#cdata', preserveOrder: true, format: true });
  const doc = [
    { '?xml': [{ '#text': '' }], ':@': { '@_version': '1.0', '@_encoding': 'UTF-8' } },
    { testsuites: suites, ':@': { '@_tests': String(totals.tests), '@_failures': String(totals.failures), '@_errors': String(totals.errors), '@_skipped': String(totals.skipped), '@_time': totals.time.toFixed(3) } },
  ];
  await writeFile(out, builder.build(doc));
  return { suites: suites.length, tests: totals.tests };
}
