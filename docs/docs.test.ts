// The docs a user reads stay true: the README is a front door (at most 300 lines) that links every page under docs/,
// every relative link resolves, and every TypeScript sample is a file under docs/examples that compiles against the
// public API (the sample in the page is that file, or its "#region sample", character for character).
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import ts from 'typescript';
import { describe, expect, it } from 'vitest';

const ROOT = resolve(import.meta.dirname, '..');
const DOCS = join(ROOT, 'docs');
const pages = ['README.md', ...readdirSync(DOCS).filter((f) => f.endsWith('.md')).map((f) => `docs/${f}`)];
const read = (page: string) => readFileSync(join(ROOT, page), 'utf8');

/** The ```ts blocks of a page, with the sample file named on the line before each. */
function samples(page: string): Array<{ line: number; sample: string | undefined; code: string }> {
  const lines = read(page).split('\n');
  const out: Array<{ line: number; sample: string | undefined; code: string }> = [];
  for (let i = 0; i < lines.length; i++) {
    if (!lines[i]!.startsWith('```ts')) continue;
    let j = i + 1;
    while (j < lines.length && !lines[j]!.startsWith('```')) j++;
    const marker = /^<!-- sample: (\S+) -->$/.exec(lines[i - 1] ?? '');
    out.push({ line: i + 1, sample: marker ? join(dirname(join(ROOT, page)), marker[1]!) : undefined, code: lines.slice(i + 1, j).join('\n') });
    i = j;
  }
  return out;
}

/** A sample file's text as a page shows it: its "#region sample" (dedented), or the whole file. */
function shown(file: string): string {
  const text = readFileSync(file, 'utf8');
  const m = /^[ \t]*\/\/ #region sample\n([\s\S]*?)\n[ \t]*\/\/ #endregion/m.exec(text);
  if (!m) return text.replace(/\n$/, '');
  const lines = m[1]!.split('\n');
  const indent = Math.min(...lines.filter((l) => l.trim()).map((l) => /^ */.exec(l)![0].length));
  return lines.map((l) => l.slice(indent)).join('\n');
}

describe('the docs', () => {
  it('README.md is a front door of at most 300 lines that links every page under docs/', () => {
    const readme = read('README.md');
    expect(readme.split('\n').length).toBeLessThanOrEqual(300);
    const unlinked = pages.filter((p) => p !== 'README.md' && !readme.includes(`](${p})`) && !readme.includes(`](${p}#`));
    expect(unlinked).toEqual([]);
  });

  it('every relative link resolves to a file of the repository', () => {
    const broken: string[] = [];
    for (const page of pages) {
      for (const m of read(page).matchAll(/\]\(([^)\s]+)\)/g)) {
        const target = m[1]!.split('#')[0]!;
        if (!target || /^[a-z]+:/.test(target)) continue;
        if (!existsSync(join(dirname(join(ROOT, page)), target))) broken.push(`${page}: ${m[1]}`);
      }
    }
    expect(broken).toEqual([]);
  });

  it('every TypeScript sample is a file under docs/examples, shown as it is', () => {
    const found = pages.flatMap((page) => samples(page).map((s) => ({ page, ...s })));
    expect(found.length).toBeGreaterThan(5);
    for (const s of found) {
      expect(s.sample, `${s.page}:${s.line}: a \`\`\`ts block needs <!-- sample: examples/<file>.ts --> on the line before it`).toBeDefined();
      expect(existsSync(s.sample!), `${s.page}:${s.line}: ${s.sample} does not exist`).toBe(true);
      expect(s.code, `${s.page}:${s.line} differs from ${s.sample}`).toBe(shown(s.sample!));
    }
  });

  it('every sample file compiles against the public API', () => {
    const files = readdirSync(join(DOCS, 'examples')).filter((f) => f.endsWith('.ts')).map((f) => join(DOCS, 'examples', f));
    const config = ts.readConfigFile(join(ROOT, 'tsconfig.json'), (p) => ts.sys.readFile(p));
    const parsed = ts.parseJsonConfigFileContent(config.config, ts.sys, ROOT);
    const diagnostics = ts.getPreEmitDiagnostics(ts.createProgram(files, parsed.options)).filter((d) => d.file && files.includes(d.file.fileName));
    expect(diagnostics.map((d) => `${d.file!.fileName}: ${ts.flattenDiagnosticMessageText(d.messageText, ' ')}`)).toEqual([]);
    // A sample that imports fleetlab's internals instead of the public API would mislead its reader.
    for (const f of files) expect(readFileSync(f, 'utf8'), f).not.toMatch(/from '\.\.?\/(?:\.\.\/)*harness\//);
  });
});
