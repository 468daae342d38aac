#!/usr/bin/env node
// TEST DOUBLE — stands in for the `usbsdmux` command (Linux Automation's USB-SD-Mux) for the virtual lab
// (lab/virtual/virtual-lab.ts); a real lab uses the real one. Same command line and output as usbsdmux:
//   usbsdmux <sg-device> get            prints the mode: dut, host or off
//   usbsdmux <sg-device> dut|host|off   switches the card to the board, to the host's card reader, or to neither
// (usbsdmux's "client" is an old name of "dut" and is accepted). The <sg-device> is the virtual board's <board>.sg,
// beside which vlab.json names the board's control endpoint.
import { readFileSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';

const [sg, mode] = process.argv.slice(2);
const usage = 'usage: usbsdmux SG {get,dut,client,host,off}';
if (!sg || !mode || !['get', 'dut', 'client', 'host', 'off'].includes(mode)) {
  console.error(usage);
  process.exit(2);
}
let lab;
try {
  lab = JSON.parse(readFileSync(join(dirname(sg), 'vlab.json'), 'utf8'));
} catch (err) {
  console.error(`usbsdmux: ${sg}: no such USB-SD-Mux (${err.message})`);
  process.exit(1);
}
const board = lab.boards[basename(sg).replace(/\.sg$/, '')];
if (!board) {
  console.error(`usbsdmux: ${sg}: no such USB-SD-Mux`);
  process.exit(1);
}
const want = mode === 'client' ? 'dut' : mode;
const url = `${board.plug}/fleetlab-vlab/mux${want === 'get' ? '' : `?mode=${want}`}`;
try {
  const res = await fetch(url, { signal: AbortSignal.timeout(10_000) });
  const body = await res.json();
  if (!res.ok) throw new Error(body.error ?? `HTTP ${res.status}`);
  if (want === 'get') console.log(body.mode);
} catch (err) {
  console.error(`usbsdmux: ${sg}: ${err.message}`);
  process.exit(1);
}
