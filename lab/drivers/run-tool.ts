// A lab tool's command line (gpioset, usbrelay, a power command, usbsdmux, sd-mux-ctrl), run here or, for a board on
// a lab host, on that host over its SSH connection: the power and SD-mux drivers both run theirs through it.
import { execa } from 'execa';
import { ConfigurationError, InfrastructureError } from '../../harness/errors/fleetlab-error.ts';
import { shellQuote } from '../../harness/shell/guest-helper.ts';
import type { LabHost } from '../lab-host.ts';

/**
 * Runs `argv` (here, or on `host`); a tool that is not installed is a configuration error, a timeout or a non-zero
 * exit an infrastructure error, each prefixed with `who` ("power: pi4-01", "SD mux of board pi4-01").
 */
export async function runTool(argv: string[], o: { who: string; tool: string; timeoutMs: number; host?: LabHost }): Promise<void> {
  const [file, ...args] = argv as [string, ...string[]];
  const line = argv.join(' ');
  const where = o.host ? ` on ${o.host.describe}` : '';
  let r: { exitCode?: number; stdout: string; stderr: string };
  if (o.host) {
    r = await o.host.exec(argv.map(shellQuote).join(' '), { timeoutMs: o.timeoutMs, what: `${o.who}: ${line}` });
    if (r.exitCode === 127) throw new ConfigurationError(`${o.who}: ${o.tool} is not installed${where} (${file})`);
  } else {
    const x = await execa(file, args, { reject: false, timeout: o.timeoutMs });
    if ((x as { code?: string }).code === 'ENOENT') throw new ConfigurationError(`${o.who}: ${o.tool} is not installed (${file})`);
    if (x.timedOut) throw new InfrastructureError(`${o.who}: ${line} did not finish within ${o.timeoutMs / 1000} s`);
    r = { exitCode: x.exitCode, stdout: String(x.stdout), stderr: String(x.stderr) };
  }
  if (r.exitCode !== 0) throw new InfrastructureError(`${o.who}: ${line}${where} exited ${r.exitCode}: ${(r.stderr || r.stdout).trim().slice(0, 300)}`);
}
