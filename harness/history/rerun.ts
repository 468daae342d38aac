// investigate --rerun: the case run twice more, each time with one half from the last good run and the other from the
// first bad one — the last good run's inputs (--input: the system under test) with the first bad run's scenario code,
// and the first bad run's inputs with the last good run's code — each code side checked out from git into a worktree
// of its own. Which of the two fails names the side the failure follows: the system, the scenario code, neither
// (sporadic, or the infrastructure) or both (something outside the two changed: fleetlab, the images, the host).
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, rm, symlink } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, relative, resolve } from 'node:path';
import { execa } from 'execa';
import { escapeRegExp } from '../console/stream-console.ts';
import { sameInputs } from './history.ts';
import type { Investigation } from './investigate.ts';

export type Side = 'system' | 'scenario code' | 'neither' | 'both' | 'undecided';

export interface Rerun {
  /** What it combines: "last good inputs + first bad code" or the other way round. */
  label: string;
  inputs: Record<string, string>;
  /** The scenario code's commit, or "working tree" (a run outside git). */
  code: string;
  exitCode: number;
  status: 'passed' | 'failed' | 'error';
  outputDir: string;
  /** An error's last words (fleetlab's message), when it ended in one. */
  why?: string;
}

export interface RerunVerdict {
  reruns: Rerun[];
  follows: Side;
  text: string;
}

/** How a rerun is started: fleetlab's CLI as `command` + `args`, with `env`. */
export interface RerunOptions {
  cwd: string;
  command: string;
  args: string[];
  env?: Record<string, string>;
  /** Where the reruns' report folders go. */
  outputRoot: string;
}

/** The two reruns of the investigated case and the side its failure follows. */
export async function rerunSides(inv: Investigation, opts: RerunOptions): Promise<RerunVerdict> {
  const good = inv.lastGood;
  if (!good) return { reruns: [], follows: 'undecided', text: 'no rerun: the case has no last good run to take a half from' };
  const bad = inv.firstBad;
  const file = inv.caseId.split('::')[0]!;
  const worktrees: Array<{ repo: string; dir: string }> = [];
  try {
    const codeAt = async (commit: string): Promise<{ cwd: string; code: string }> => {
      const repo = gitRoot(dirname(resolve(opts.cwd, file)));
      if (!repo || commit === 'unknown') return { cwd: opts.cwd, code: 'working tree' };
      const dir = await mkdtemp(join(tmpdir(), `fleetlab-rerun-${commit.slice(0, 8)}-`));
      execFileSync('git', ['-C', repo, 'worktree', 'add', '--detach', '--force', dir, commit], { stdio: 'ignore' });
      worktrees.push({ repo, dir });
      // A checkout has no node_modules: the repository's own serve it (its scenarios' and profiles' packages).
      if (existsSync(join(repo, 'node_modules')) && !existsSync(join(dir, 'node_modules'))) await symlink(join(repo, 'node_modules'), join(dir, 'node_modules'));
      return { cwd: join(dir, relative(repo, resolve(opts.cwd))), code: commit.slice(0, 12) };
    };
    const runOne = async (label: string, inputs: Record<string, string>, commit: string, folder: string): Promise<Rerun> => {
      const at = await codeAt(commit);
      const outputDir = join(opts.outputRoot, folder);
      const r = await execa(opts.command, [...opts.args, 'run', file, '--grep', `^${escapeRegExp(inv.caseId)}$`, '--history', 'none', '--output', outputDir, ...Object.entries(inputs).map(([k, v]) => `--input=${k}=${v}`)], {
        cwd: at.cwd,
        reject: false,
        env: { ...opts.env, CI: '1' },
      });
      const exitCode = r.exitCode ?? 3;
      const status = exitCode === 0 ? 'passed' : exitCode === 1 ? 'failed' : 'error';
      return { label, inputs, code: at.code, exitCode, status, outputDir, ...(status === 'error' ? { why: lastLine(r.stderr) || lastLine(r.stdout) } : {}) };
    };
    const a = await runOne('last good inputs + first bad code', good.run.inputs ?? {}, bad.run.commit, 'good-inputs-bad-code');
    const b = await runOne('first bad inputs + last good code', bad.run.inputs ?? {}, good.run.commit, 'bad-inputs-good-code');
    return { reruns: [a, b], ...verdict(a, b, inv) };
  } finally {
    for (const w of worktrees) {
      try {
        execFileSync('git', ['-C', w.repo, 'worktree', 'remove', '--force', w.dir], { stdio: 'ignore' });
      } catch {
        await rm(w.dir, { recursive: true, force: true });
      }
    }
  }
}

function verdict(a: Rerun, b: Rerun, inv: Investigation): { follows: Side; text: string } {
  const notes: string[] = [];
  if (sameInputs(inv.lastGood?.run.inputs, inv.firstBad.run.inputs)) notes.push('the two runs had the same inputs: the system is not an input of these runs (give it with --input to pin it)');
  if (inv.lastGood?.run.commit === inv.firstBad.run.commit) notes.push('the two runs had the same scenario code');
  const note = notes.length ? ` (${notes.join('; ')})` : '';
  if (a.status === 'error' || b.status === 'error') return { follows: 'undecided', text: `undecided: a rerun ended in an error, not a verdict (${[a, b].filter((r) => r.status === 'error').map((r) => `${r.label}: exit ${r.exitCode}${r.why ? `: ${r.why}` : ''}; see ${r.outputDir}`).join('; ')})${note}` };
  if (a.status === 'passed' && b.status === 'failed') return { follows: 'system', text: `the failure follows the system: it passes with the last good inputs and the new code, and fails with the new inputs and the last good code${note}` };
  if (a.status === 'failed' && b.status === 'passed') return { follows: 'scenario code', text: `the failure follows the scenario code: it fails with the new code on the last good inputs, and passes with the last good code on the new inputs${note}` };
  if (a.status === 'passed') return { follows: 'neither', text: `neither: both reruns passed, so the failure did not come back (sporadic, or the infrastructure)${note}` };
  return { follows: 'both', text: `both reruns failed: something outside the inputs and the scenario code changed (fleetlab, the images, the host), or the failure needs both halves${note}` };
}

/** The last non-empty line of a command's output. */
function lastLine(text: string): string {
  return text.split('\n').map((l) => l.trim()).filter(Boolean).at(-1) ?? '';
}

function gitRoot(dir: string): string | undefined {
  try {
    return execFileSync('git', ['-C', dir, 'rev-parse', '--show-toplevel'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim() || undefined;
  } catch {
    return undefined;
  }
}
