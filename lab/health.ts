// A board's health check, by hand (`fleetlab lab check`) or on a schedule (`fleetlab lab health [--every 6h]`): its
// power switches off and on (and reads so, where the switch can tell), its card is flashed with the lab file's
// healthImage and read back (when it names one), its serial line carries the boot, a login shell answers and
// `uname -m` matches its profile. A pass takes the board out of quarantine; a failure puts it in,
// with the reason and its console log. Each check is recorded (lab status shows the last one, its result and age);
// a lab with healthMaxAgeHours hands no case a board whose last pass is older than that.
import { mkdirSync } from 'node:fs';
import { basename } from 'node:path';
import { InfrastructureError } from '../harness/errors/fleetlab-error.ts';
import type { Board } from './board.ts';
import type { LabSession } from './lab-session.ts';

export interface HealthVerdict {
  board: string;
  verdict: 'healthy' | 'quarantined' | 'busy';
  detail: string;
  ms: number;
  log?: string;
}

const ARCH = { x86_64: 'x86_64', aarch64: 'aarch64', arm: 'armv7l', i386: 'i686' } as const;

/** The steps of the check on a leased board; throws what failed. */
async function steps(board: Board, note: (step: string) => void): Promise<string> {
  const spec = board.spec;
  await board.power.set(false);
  if ((await board.power.get()) === true) throw new InfrastructureError(`power: switched off, ${board.power.describe} still reads on`);
  note('power off');
  if (spec.healthImage) {
    const r = await board.flash(spec.healthImage);
    note(`flashed and read back ${basename(spec.healthImage)} (${r.bytesWritten} bytes${r.bmap ? ', bmap' : ''})`);
  }
  await board.start({ timeout: spec.healthTimeoutMs });
  if ((await board.power.get()) === false) throw new InfrastructureError(`power: switched on, ${board.power.describe} reads off`);
  note('power on');
  await board.console().expect(/\S/, { timeout: Math.min(60_000, spec.healthTimeoutMs) }).catch(() => {
    throw new InfrastructureError(`serial: nothing came over ${board.serialDevice} within 60 s of power on`);
  });
  note('serial alive');
  await board.waitForShell({ timeout: spec.healthTimeoutMs });
  const arch = (await board.succeed('uname -m')).trim();
  const want = ARCH[board.profile.arch];
  if (arch !== want) throw new InfrastructureError(`uname -m says ${arch}, the profile ${board.profile.name} says ${want}`);
  note(`shell answers, ${arch}`);
  return arch;
}

/** Checks board `name` (leased for the check; a board leased or reserved by someone else is left alone: busy). */
export async function checkBoard(s: LabSession, name: string, opts: { logDir: string }): Promise<HealthVerdict> {
  const t0 = Date.now();
  const state = await s.store.state(name);
  if (state.state === 'leased' || state.state === 'reserved') {
    return { board: name, verdict: 'busy', detail: state.state === 'leased' ? `leased by ${state.owner} until ${state.expiresAt}: not checked` : `reserved by ${state.holder} until ${state.until}: not checked`, ms: 0 };
  }
  mkdirSync(opts.logDir, { recursive: true });
  return s.withBoard(
    name,
    async (board) => {
      const done: string[] = [];
      try {
        await steps(board, (step) => done.push(step));
        const detail = `${done.join(', ')} in ${((Date.now() - t0) / 1000).toFixed(1)} s`;
        await s.store.unquarantine(name);
        await s.store.recordHealth(name, { ok: true, detail, log: board.log.path });
        return { board: name, verdict: 'healthy' as const, detail, ms: Date.now() - t0, log: board.log.path };
      } catch (err) {
        const why = (err as Error).message.split('\n')[0]!;
        const detail = `${why}${done.length ? ` (passed: ${done.join(', ')})` : ''}`;
        await s.store.quarantine(name, `health check failed: ${detail}; log ${board.log.path}`);
        await s.store.recordHealth(name, { ok: false, detail, log: board.log.path });
        return { board: name, verdict: 'quarantined' as const, detail, ms: Date.now() - t0, log: board.log.path };
      } finally {
        await board.stop().catch(() => undefined);
      }
    },
    { whyFree: 'a health check needs it free', evenQuarantined: true, logDir: opts.logDir },
  );
}

/** "3 h 10 min", "42 s": how old a record is. */
export function age(iso: string, now = Date.now()): string {
  const s = Math.max(0, Math.round((now - Date.parse(iso)) / 1000));
  if (s < 60) return `${s} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min`;
  if (s < 86_400) return `${Math.floor(s / 3600)} h ${Math.floor((s % 3600) / 60)} min`;
  return `${Math.floor(s / 86_400)} d ${Math.floor((s % 86_400) / 3600)} h`;
}
