// lab suggest: the udev database parsed and classified into lab-file lines (a serial adapter by its by-id link, an
// LXA USB-SD-Mux with its block device, a USB HID relay board; a virtual tty left out), on this host (where there is
// none of them: that is an answer too), and on a lab host over SSH (the stand-in host of lab/example-remote.ts).
import { execa } from 'execa';
import { readFileSync } from 'node:fs';
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { classify, parseUdevDb } from './discover.ts';
import { labSchema } from './inventory.ts';

const root = join(import.meta.dirname, '..');
const cli = join(root, 'harness/cli/main.ts');

describe('lab suggest', () => {
  it('turns the udev database into lab-file lines that a lab file accepts', () => {
    const found = classify(parseUdevDb(readFileSync(join(root, 'lab/fixtures/udev-export-db.txt'), 'utf8')));
    expect(found.map((f) => f.kind)).toEqual(['serial', 'usb-sd-mux', 'hid-relay']);
    expect(found[0]!.description).toBe('FTDI FT232R USB UART (serial A10KZ7QX, path pci-0000:00:14.0-usb-0:2:1.0, /dev/ttyUSB0)');
    expect(found[0]!.snippet).toBe("serial: { device: '/dev/serial/by-id/usb-FTDI_FT232R_USB_UART_A10KZ7QX-if00-port0', baud: 115200 },\n// or by the USB port it is plugged into: /dev/serial/by-path/pci-0000:00:14.0-usb-0:2:1.0-port0");
    expect(found[1]!.snippet).toBe("sdMux: { driver: 'usbsdmux', control: '/dev/usb-sd-mux/id-000000001234', device: '/dev/disk/by-id/usb-LinuxAut_sdmux_HS-SD_MMC_000000001234-0:0' },");
    expect(found[2]!.snippet).toBe("power: { driver: 'usbrelay', relay: 'BITFT_1' },  // relays BITFT_1 … BITFT_2");
    // The lines are valid in a lab file: a board made of them parses.
    const objectOf = (snippet: string) => new Function(`return { ${snippet.split('\n')[0]!.replace(/\/\/.*$/, '')} }`)() as Record<string, unknown>;
    const board = { profile: 'x86_64-direct', ...objectOf(found[0]!.snippet), ...objectOf(found[1]!.snippet), ...objectOf(found[2]!.snippet) };
    expect(labSchema.safeParse({ name: 'l', boards: { b: board } }).success).toBe(true);
  });

  it('on this host and on a lab host over SSH: what it finds, or that it finds none', async () => {
    const here = await execa(process.execPath, [cli, 'lab', 'suggest'], { cwd: root, reject: false });
    expect(here.exitCode, here.stderr).toBe(0);
    expect(here.stdout).toMatch(/^this host: (no USB serial adapter, USB-SD-Mux, SDWire or USB HID relay found|\d+ devices?; lab-file lines for each:)/);
    const dir = await mkdtemp(join(tmpdir(), 'fleetlab-suggest-'));
    const remote = await execa(process.execPath, [cli, 'lab', 'suggest', '--lab', 'lab/example-remote.ts', '--lab-db', join(dir, 'lab.sqlite'), '--host', 'shelf1'], { cwd: root, reject: false, timeout: 120_000, env: { FLEETLAB_RLAB_DIR: join(dir, 'rlab') } });
    expect(remote.exitCode, remote.stderr).toBe(0);
    expect(remote.stdout).toMatch(/^lab host shelf1 \(\S+@127\.0\.0\.1:\d+\): (no USB serial adapter|\d+ devices?)/);
    const bad = await execa(process.execPath, [cli, 'lab', 'suggest', '--lab', 'lab/example-remote.ts', '--lab-db', join(dir, 'lab.sqlite'), '--host', 'shelf9'], { cwd: root, reject: false, timeout: 120_000, env: { FLEETLAB_RLAB_DIR: join(dir, 'rlab2') } });
    expect(bad.exitCode).toBe(2);
    expect(bad.stderr).toContain('has no host "shelf9"; it has shelf1');
  }, 180_000);
});
