// The known-failures file: failures a team has filed and accepts for now, so a gate lists them instead of failing on
// them. JSON, checked with zod before anything runs:
//   { "known": [ { "case": "scenarios/mesh*.ts::*[raspi3b]", "error": "batman.*timed out", "bug": "FLEET-231",
//                  "until": "2027-01-31", "note": "Pi mesh convergence under TCG" } ] }
// `case` is the case id with * for any run of characters; `error` (optional) a regular expression the error message
// must match; `until` (optional) the last day (UTC) the entry holds: after it the failure counts as "known-expired".
import { existsSync, readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { z } from 'zod';
import { ConfigurationError } from '../errors/fleetlab-error.ts';

const Entry = z
  .object({
    case: z.string().min(1),
    error: z
      .string()
      .min(1)
      .refine((s) => {
        try {
          new RegExp(s);
          return true;
        } catch {
          return false;
        }
      }, 'not a valid regular expression')
      .optional(),
    bug: z.string().min(1),
    until: z.string().regex(/^\d{4}-\d{2}-\d{2}$/, 'a date, YYYY-MM-DD').optional(),
    note: z.string().optional(),
  })
  .strict();
const File = z.object({ known: z.array(Entry) }).strict();

/** One entry of the known-failures file. */
export type KnownFailure = z.infer<typeof Entry>;

/**
 * The entries of the known-failures file to use: `given`, else known-failures.json in the working directory when
 * there is one; none without either.
 */
export function loadDefaultKnownFailures(given?: string): KnownFailure[] {
  const path = given ?? (existsSync('known-failures.json') ? 'known-failures.json' : undefined);
  return path ? loadKnownFailures(path) : [];
}

/** Reads and checks a known-failures file; an error names the file and the entry's field. */
export function loadKnownFailures(path: string): KnownFailure[] {
  const file = resolve(path);
  let json: unknown;
  try {
    json = JSON.parse(readFileSync(file, 'utf8'));
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw new ConfigurationError(`known-failures file ${file} ${code ? `cannot be read (${code})` : `is not JSON: ${(err as Error).message}`}`);
  }
  const parsed = File.safeParse(json);
  if (!parsed.success) {
    const issues = parsed.error.issues.map((i) => `${i.path.join('.') || '(top level)'}: ${i.message}`);
    throw new ConfigurationError(`known-failures file ${file}: ${issues.join('; ')} (expected { "known": [ { "case", "bug", "error"?, "until"?, "note"? } ] })`);
  }
  return parsed.data.known;
}

/** The first entry whose case pattern matches `caseId` and whose error pattern (if any) matches `message`. */
export function knownEntryFor(known: KnownFailure[], caseId: string, message: string): KnownFailure | undefined {
  return known.find((k) => globToRegExp(k.case).test(caseId) && (k.error === undefined || new RegExp(k.error).test(message)));
}

/** A case pattern: * is any run of characters, everything else literal. */
function globToRegExp(glob: string): RegExp {
  return new RegExp(`^${glob.split('*').map((p) => p.replace(/[.+?^${}()|[\]\\]/g, '\\$&')).join('.*')}$`);
}
