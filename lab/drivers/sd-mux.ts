// SD mux drivers: switch a board's SD card between the board ("dut") and the host's card reader ("host"), and write
// an image to it in host mode.
//
// - usbsdmux     Linux Automation's USB-SD-Mux: `usbsdmux <sg-device> dut|host|off|get`.
// - sd-mux-ctrl  SDWire (Tizen's sd-mux-ctrl): `sd-mux-ctrl --device-serial=<serial> --ts` (to the host, "test
//                server") or `--dut`.
// - mass-storage a card reader or a board in USB mass-storage mode: nothing to switch; the device is there or not.
// After a switch to the host, the card's block device can take a moment to appear: it is waited for (SETTLE_MS).
import { existsSync } from 'node:fs';
import { ConfigurationError, InfrastructureError } from '../../harness/errors/fleetlab-error.ts';
import type { SdMuxSpec } from '../inventory.ts';
import { writeImage, type WriteReport } from './image-writer.ts';
import { writeImageOnHost } from './remote-writer.ts';
import { shellQuote } from '../../harness/shell/guest-helper.ts';
import type { LabHost } from '../lab-host.ts';
import { runTool } from './run-tool.ts';

const COMMAND_MS = 15_000;
const SETTLE_MS = 10_000;

export type MuxMode = 'dut' | 'host' | 'off';

export interface SdMux {
  readonly describe: string;
  /** The block device the host sees in host mode. */
  readonly device: string;
  switch(mode: MuxMode): Promise<void>;
  /** Whether the card's block device is there (on the lab host, for a board that has one). */
  deviceExists(): Promise<boolean>;
  /** Writes the image onto the card's device and reads it back (image-writer.ts; remote-writer.ts on a lab host). */
  write(image: string): Promise<WriteReport>;
}

/** The board's SD mux; with `host`, its command runs and its card is written on that lab host, over SSH. */
export function sdMux(spec: SdMuxSpec, board: string, host?: LabHost): SdMux {
  const run = (argv: string[], b: string, tool: string) => runTool(argv, { who: `SD mux of board ${b}`, tool, timeoutMs: COMMAND_MS, host });
  const on = host ? ` on ${host.name}` : '';
  const io = {
    deviceExists: async () => (host ? (await host.exec(`test -e ${shellQuote(spec.device)}`, { timeoutMs: COMMAND_MS, what: `looking for ${spec.device}` })).exitCode === 0 : existsSync(spec.device)),
    write: (image: string) => (host ? writeImageOnHost(image, spec.device, host, board) : writeImage(image, spec.device)),
  };
  switch (spec.driver) {
    case 'usbsdmux': {
      const cmd = spec.command ?? 'usbsdmux';
      return { describe: `usbsdmux ${spec.control}${on}`, device: spec.device, ...io, switch: (mode) => run([cmd, spec.control, mode], board, 'usbsdmux (pip install usbsdmux)') };
    }
    case 'sd-mux-ctrl': {
      const cmd = spec.command ?? 'sd-mux-ctrl';
      return {
        describe: `sd-mux-ctrl ${spec.serial}${on}`,
        device: spec.device,
        ...io,
        switch: async (mode) => {
          if (mode === 'off') throw new ConfigurationError(`board ${board}: an SDWire has no "off"; switch it to dut or host`);
          await run([cmd, `--device-serial=${spec.serial}`, mode === 'host' ? '--ts' : '--dut'], board, 'sd-mux-ctrl');
        },
      };
    }
    case 'mass-storage':
      return { describe: `mass storage ${spec.device}${on}`, device: spec.device, ...io, switch: async () => undefined };
  }
}

/**
 * Flashes `image` onto the board's card: the mux to the host, the card's device waited for, the image written (with
 * its .bmap when it has one) and read back, then the mux to the board. The board should be off.
 */
export async function flashThroughMux(mux: SdMux, image: string, board: string, log: (line: string) => void = () => undefined): Promise<WriteReport> {
  if (!existsSync(image)) throw new ConfigurationError(`board ${board}: the image ${image} does not exist`);
  await mux.switch('host');
  log(`SD mux ${mux.describe}: host`);
  const until = Date.now() + SETTLE_MS;
  while (!(await mux.deviceExists())) {
    if (Date.now() > until) throw new InfrastructureError(`board ${board}: the card's block device ${mux.device} did not appear within ${SETTLE_MS / 1000} s of switching the mux to the host`);
    await new Promise((r) => setTimeout(r, 200));
  }
  const report = await mux.write(image);
  log(`wrote ${image} to ${mux.device}: ${report.bytesWritten} bytes in ${report.ranges} ranges${report.bmap ? ' (bmap)' : ''}, read back and verified`);
  await mux.switch('dut');
  log(`SD mux ${mux.describe}: dut`);
  return report;
}
