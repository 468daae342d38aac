// Faults through the real CLI: a QEMU killed mid-step, the network switch killed mid-wait, a kernel panic, an initramfs
// too big for the memory and a stage-1 failure while booting. Each case ends within seconds as an infrastructure error
// (exit 3), the JUnit file is valid and names what happened, and no QEMU is left running.
import { execa } from 'execa';
import { XMLParser } from 'fast-xml-parser';
import { mkdtemp, readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { testbedImage } from '../qemu/testbed-source.ts';
import { processesMatching } from '../testing/processes.ts';

const root = join(import.meta.dirname, '../..');
type Case = { '@_name': string; error?: { '@_message': string } };

describe('faults end cases at once', () => {
  let run: Awaited<ReturnType<typeof execa>>;
  let cases: Case[];
  let seconds: number;

  beforeAll(async () => {
    const dir = await mkdtemp(join(tmpdir(), 'fleetlab-faults-'));
    const img = await testbedImage('x86_64', 'test');
    const t0 = performance.now();
    run = await execa(process.execPath, [join(root, 'harness/cli/main.ts'), 'run', 'harness/runner/fixtures/faults.ts', '--workers', '4', '--output', dir], {
      cwd: root,
      reject: false,
      timeout: 240_000,
      env: { CI: '1', NO_COLOR: '1', FLEETLAB_TEST_KERNEL: img.kernel, FLEETLAB_TEST_INITRD: img.initrd },
    });
    seconds = (performance.now() - t0) / 1000;
    const xml = new XMLParser({ ignoreAttributes: false }).parse(await readFile(join(dir, 'junit.xml'), 'utf8'));
    cases = ([] as Case[]).concat(xml.testsuites.testsuite.testcase);
  }, 300_000);

  const error = (name: string) => cases.find((c) => c['@_name'].startsWith(name))?.error?.['@_message'] ?? '(no error element)';

  it('exits 3 (infrastructure) long before any budget', () => {
    expect(run.exitCode, String(run.stdout) + String(run.stderr)).toBe(3);
    expect(seconds).toBeLessThan(90);
    expect(cases).toHaveLength(5);
  });

  it('QEMU killed during reboot(): the error names the machine, the wait and the signal', () => {
    const msg = error('qemu killed during reboot');
    expect(msg).toMatch(/^Machine victim died while fleetlab waited for /);
    expect(msg).toContain('signal SIGKILL');
  });

  it('the network switch killed during a wait: the wait ends at once, naming the network and the signal', () => {
    const msg = error('switch killed during a wait');
    expect(msg).toMatch(/^the switch of network lan \(fleetlab-switch\[\d+\]\) ended while the case ran; the machines on it are cut off\./);
    expect(msg).toContain('signal SIGKILL');
  });

  it('a kernel panic while booting is an infrastructure error with the panic line', () => {
    const msg = error('kernel panic while booting');
    expect(msg).toMatch(/Console check "kernel-panic" fired on panicky: console serial0 shows a kernel panic while the machine booted/);
    expect(msg).toMatch(/Kernel panic - not syncing/);
  });

  it("stage 1 that finds no root fails on NixOS's stage-1 words, not after the budget", () => {
    const msg = error('stage 1 finds no root');
    expect(msg).toMatch(/Console check "emergency-shell" fired on rootless/);
    expect(msg).toMatch(/root LABEL=no-such-label could not be mounted/);
  });

  it('an initramfs that does not unpack in too little memory fails at once, naming the check', () => {
    const msg = error('initramfs too big for memory');
    expect(msg).toMatch(/Console check "initramfs-unpack" fired on cramped: console serial0 shows an initramfs that did not unpack/);
    expect(msg).toMatch(/Initramfs unpacking failed/);
  });

  it('leaves no QEMU behind', () => {
    for (const name of ['victim', 'panicky', 'rootless', 'cramped', 'cutoff']) expect(processesMatching(`process=fleetlab-${name}`)).toEqual([]);
  });
});
