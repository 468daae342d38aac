// What killed fleetlab processes leave in the temp dir is swept by the next one once the owner is gone.
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { makeTempDir, removeTempDir, sweepLeftovers } from './temp-dirs.ts';

describe('temp dir sweep', () => {
  it("removes dirs of dead owners, keeps live owners' dirs and recent logs of dead ones", async () => {
    const tmp = await mkdtemp(join(tmpdir(), 'sweep-'));
    // A real process that has ended: its owner stamp names a pid that is gone.
    const child = spawn('true');
    const deadPid = await new Promise<number>((r) => child.on('exit', () => r(child.pid!)));
    const mine = await makeTempDir('fleetlab-sweeptest-');
    const myStamp = await readFile(join(mine, '.fleetlab-owner'), 'utf8');
    const make = async (name: string, owner?: string, ageHours = 0) => {
      const d = join(tmp, name);
      await mkdir(d);
      if (owner) await writeFile(join(d, '.fleetlab-owner'), owner);
      const t = new Date(Date.now() - ageHours * 3600_000);
      await utimes(d, t, t);
      return d;
    };
    const deadRun = await make('fleetlab-main-abc', `${deadPid} 12345`);
    const deadState = await make('fleetlab-state-main-abc', `${deadPid} 12345`);
    const liveRun = await make('fleetlab-main-live', myStamp);
    const reusedPid = await make('fleetlab-main-reused', `${process.pid} 1`); // my pid, another start time: not me
    const recentLogs = await make('fleetlab-logs-main-1', `${deadPid} 12345`);
    const oldLogs = await make('fleetlab-logs-main-2', `${deadPid} 12345`, 2);
    const unownedNew = await make('fleetlab-old-version');
    const unownedOld = await make('fleetlab-older-version', undefined, 30);
    const notOurs = await make('something-else', `${deadPid} 1`);
    const removed = sweepLeftovers(tmp);
    expect(removed.sort()).toEqual([deadRun, deadState, reusedPid, oldLogs, unownedOld].sort());
    for (const d of [liveRun, recentLogs, unownedNew, notOurs]) expect(existsSync(d)).toBe(true);
    await removeTempDir(mine);
  });
});
