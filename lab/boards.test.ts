// Scenarios on the virtual lab's boards, through the real drivers: a serial line that is a pseudo-terminal opened by
// serialport, a Tasmota plug over HTTP, an SD mux switched by a usbsdmux-compatible command. smoke.ts passes on a
// board picked by tag (the JUnit case names the board, its serial device and power driver); a card flashed through
// the mux boots; a power cut in the middle of a boot is recovered from; SSH reaches a board's network address;
// console checks, an unplugged serial line and a board that hangs end their cases; `lab check` takes a board out of
// quarantine.
import { execa } from 'execa';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { XMLParser } from 'fast-xml-parser';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SqliteLeases } from './leases.ts';

const root = join(import.meta.dirname, '..');
const cli = join(root, 'harness/cli/main.ts');
const fleetlab = (args: string[]) => execa(process.execPath, [cli, ...args], { cwd: root, reject: false, timeout: 480_000, env: { CI: 'true', NO_COLOR: '1' } });

describe('scenarios on virtual lab boards', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'fleetlab-boards-'));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('smoke.ts passes on a board picked by tag; JUnit names the board, serial device and power driver', async () => {
    const db = join(dir, 'smoke.sqlite');
    const out = join(dir, 'smoke');
    const r = await fleetlab(['run', 'scenarios/smoke.ts', '--lab', 'lab/example-virtual.ts', '--lab-db', db, '--machine', 'tag:virtual', '--output', out]);
    expect(r.exitCode, r.stdout + r.stderr).toBe(0);
    expect(r.stdout).toMatch(/✓ passed scenarios\/smoke\.ts::smoke\[tag:virtual\] .*main: board/);
    const doc = new XMLParser({ ignoreAttributes: false, attributeNamePrefix: '' }).parse(await readFile(join(out, 'junit.xml'), 'utf8'));
    const props = Object.fromEntries((doc.testsuites.testsuite.testcase.properties.property as Array<{ name: string; value: string }>).map((p) => [p.name, p.value]));
    expect(props['machine.board']).toMatch(/^vboard-[12]$/);
    expect(props['machine.board.serial']).toMatch(new RegExp(`/${props['machine.board']}\\.tty$`));
    expect(props['machine.board.power']).toMatch(/^tasmota http:\/\/127\.0\.0\.1:\d+$/);
    // The board went back to the lab, and no one else took it meanwhile.
    const store = new SqliteLeases(db);
    expect(await store.state(props['machine.board']!)).toEqual({ state: 'free' });
    await store.close();
  }, 500_000);

  it('a card flashed through the SD mux boots, an SD image installs by the VM flow, a power cut mid-boot is recovered from, SSH reaches a board (two boards at once)', async () => {
    const out = join(dir, 'faults');
    const r = await fleetlab(['run', 'lab/fixtures/board-scenarios.ts', '--grep', '^(a card flashed|an SD image installed|a power cut|ssh to a board)', '--workers', '2', '--lab', 'lab/example-virtual.ts', '--lab-db', join(dir, 'faults.sqlite'), '--output', out]);
    expect(r.exitCode, r.stdout + r.stderr).toBe(0);
    expect(r.stdout).toMatch(/✓ the flashed system booted/);
    // install.sdImage on a board: the card written through its mux, the root grown to the board's own card.
    expect(r.stdout).toMatch(/✓ write card[\s\S]*✓ first boot/);
    expect(r.stdout).toMatch(/✓ power on again: the board comes up/);
    expect(r.stdout).toMatch(/✓ the same system over SSH and over the serial line/);
    const report = JSON.parse(await readFile(join(out, 'report.json'), 'utf8'));
    const boards = report.results.map((c: { attempts: Array<{ machines: Array<{ board: { board: string } }> }> }) => c.attempts[0]!.machines[0]!.board.board);
    expect(new Set(boards).size).toBe(2);
  }, 500_000);

  it("console checks on a board: an unexpected kernel panic fails its case naming the check; an expected one passes and the board comes up again", async () => {
    const out = join(dir, 'checks');
    const r = await fleetlab(['run', 'lab/fixtures/board-scenarios.ts', '--grep', 'panic', '--workers', '2', '--lab', 'lab/example-virtual.ts', '--lab-db', join(dir, 'checks.sqlite'), '--output', out]);
    expect(r.exitCode, r.stdout + r.stderr).toBe(1);
    const report = JSON.parse(await readFile(join(out, 'report.json'), 'utf8'));
    const byName = Object.fromEntries(report.results.map((c: { scenario: string; status: string; attempts: Array<{ error?: { kind: string; message: string } }> }) => [c.scenario, c]));
    const panicked = byName['a board whose kernel panics'];
    expect(panicked.status, JSON.stringify(panicked)).toBe('failed');
    expect(panicked.attempts[0].error.kind).toBe('test-failure');
    expect(panicked.attempts[0].error.message).toMatch(/Console check "kernel-panic" fired on dut: console \S+ shows/);
    expect(panicked.attempts[0].error.message).toMatch(/Kernel panic/);
    expect(byName['an expected panic on a board'].status, JSON.stringify(byName['an expected panic on a board'])).toBe('passed');
  }, 500_000);

  it('a serial line unplugged in the middle of a command ends the case within 5 s as an infrastructure error naming the line', async () => {
    const out = join(dir, 'unplugged');
    const r = await fleetlab(['run', 'lab/fixtures/board-scenarios.ts', '--grep', 'unplugged', '--lab', 'lab/example-virtual.ts', '--lab-db', join(dir, 'unplugged.sqlite'), '--output', out]);
    expect(r.exitCode, r.stdout + r.stderr).toBe(3);
    const attempt = JSON.parse(await readFile(join(out, 'report.json'), 'utf8')).results[0].attempts[0];
    expect(attempt.error.kind).toBe('infrastructure');
    expect(attempt.error.message).toMatch(/^Machine vboard-[12] died while fleetlab waited for .*: its serial line \S+\.tty closed: \S+ no longer exists/);
    expect(attempt.error.message).not.toMatch(/QEMU/);
    const ms = Number(/the command ended (\d+) ms after the unplug/.exec(attempt.output.join('\n'))?.[1]);
    expect(ms).toBeLessThan(5000);
  }, 300_000);

  it("a board that hangs mid-command (its line silent past the profile's limit) ends the case as an infrastructure error naming the line", async () => {
    const out = join(dir, 'hangs');
    const r = await fleetlab(['run', 'lab/fixtures/board-scenarios.ts', '--grep', 'hangs', '--lab', 'lab/example-virtual.ts', '--lab-db', join(dir, 'hangs.sqlite'), '--output', out]);
    expect(r.exitCode, r.stdout + r.stderr).toBe(3);
    const attempt = JSON.parse(await readFile(join(out, 'report.json'), 'utf8')).results[0].attempts[0];
    expect(attempt.error.kind).toBe('infrastructure');
    expect(attempt.error.message).toMatch(/^Machine vboard-[12] died while fleetlab waited for the guest shell to answer command: sleep 120: its serial line \S+\.tty was silent for 2\d s while a command ran \(the limit is 20 s: guest\.shell\.silenceLimitSeconds of profile vboard\)/);
    // The heartbeats came (every 5 s) until the freeze; then 20 s of silence, told within the next second or two.
    const ms = Number(/the command ended (\d+) ms after the freeze/.exec(attempt.output.join('\n'))?.[1]);
    expect(ms).toBeGreaterThan(14_000);
    expect(ms).toBeLessThan(25_000);
  }, 300_000);

  it('lab check: a healthy board leaves quarantine', async () => {
    const db = join(dir, 'check.sqlite');
    const store = new SqliteLeases(db);
    await store.quarantine('vboard-2', 'suspected flaky console');
    await store.close();
    const r = await fleetlab(['lab', 'check', 'vboard-2', '--lab', 'lab/example-virtual.ts', '--lab-db', db]);
    expect(r.exitCode, r.stdout + r.stderr).toBe(0);
    expect(r.stdout).toMatch(/vboard-2: healthy: power off, power on, serial alive, shell answers, aarch64 in [\d.]+ s; log /);
    const status = await fleetlab(['lab', 'status', '--lab', 'lab/example-virtual.ts', '--lab-db', db, '--json']);
    expect(JSON.parse(status.stdout).boards[1]).toMatchObject({ board: 'vboard-2', state: 'free' });
  }, 300_000);
});
