// What processes cost the host, measured from /proc: a busy process takes about a core and an idle one nearly none
// over idleUsage()'s window, memory a process touches shows in its RSS and PSS and in the host's peak.
import { execa } from 'execa';
import { describe, expect, it } from 'vitest';
import { hostMemory, hostProcessOf, idleUsage, MemoryPeak, processUsage } from './usage.ts';

const node = process.execPath;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('host usage', () => {
  it('idleUsage: a spinning process takes most of a core, a sleeping one almost none; PSS and RSS of what they hold', async () => {
    const spin = execa(node, ['-e', 'for (;;);'], { reject: false });
    // Holds 64 MiB it wrote (its own pages), then sleeps.
    const hold = execa(node, ['-e', 'globalThis.b = Buffer.alloc(64 << 20, 1); console.log("ready"); setInterval(() => {}, 1e6)'], { reject: false });
    try {
      await new Promise<void>((r) => hold.stdout!.once('data', () => r()));
      const u = await idleUsage([{ name: 'spin', hostProcess: hostProcessOf(() => spin.pid) }, { name: 'hold', hostProcess: hostProcessOf(() => hold.pid) }], { seconds: 2 });
      expect(u.seconds).toBeGreaterThanOrEqual(1.9);
      const [s, h] = u.machines;
      expect(s!.name).toBe('spin');
      // A busy loop on a 2-core host beside whatever else runs: well above an idle process, at most one core.
      expect(s!.cpuPct).toBeGreaterThan(40);
      expect(s!.cpuPct).toBeLessThanOrEqual(105);
      expect(h!.cpuPct).toBeLessThan(5);
      expect(h!.rssMiB).toBeGreaterThan(64);
      expect(h!.pssMiB).toBeGreaterThan(60);
      expect(u.cpuPct.max).toBe(s!.cpuPct);
      expect(u.cpuPct.mean).toBeCloseTo((s!.cpuPct + h!.cpuPct) / 2, 1);
      expect(u.switchCpuPct).toBeUndefined();
    } finally {
      spin.kill('SIGKILL');
      hold.kill('SIGKILL');
      await Promise.all([spin, hold]);
    }
  });

  it('says which machine has no host process, or stopped running; a gone pid has no usage', async () => {
    await expect(idleUsage([{ name: 'vboard-1' }], { seconds: 1 })).rejects.toThrow('idleUsage: machine vboard-1 has no host process (only a VM has one)');
    await expect(idleUsage([{ name: 'off', hostProcess: hostProcessOf(() => undefined) }], { seconds: 1 })).rejects.toThrow('idleUsage: machine off is not running');
    await expect(idleUsage([], { seconds: 1 })).rejects.toThrow('at least one machine');
    const done = execa(node, ['-e', '0']);
    await done;
    expect(processUsage(done.pid!)).toBeUndefined();
    expect(processUsage(process.pid)!.cpuSeconds).toBeGreaterThan(0);
  });

  it("MemoryPeak: the host's memory in use at its peak covers what a process held in between", async () => {
    const peak = new MemoryPeak(100).start();
    const before = hostMemory();
    expect(before.usedMiB).toBe(before.totalMiB - before.availableMiB);
    const hold = execa(node, ['-e', 'globalThis.b = Buffer.alloc(1024 << 20, 1); console.log("ready"); setTimeout(() => {}, 1000)'], { reject: false });
    await new Promise<void>((r) => hold.stdout!.once('data', () => r()));
    const during = hostMemory().usedMiB;
    await hold;
    await sleep(500);
    const m = peak.stop();
    expect(m.totalMiB).toBe(before.totalMiB);
    // Sampled every 100 ms while the GiB was held (other processes on the host move the figures a little).
    expect(m.peakMiB).toBeGreaterThanOrEqual(during - 64);
    expect(m.peakMiB - m.startMiB).toBeGreaterThan(512);
    expect(hostMemory().usedMiB).toBeLessThan(m.peakMiB);
  });
});
