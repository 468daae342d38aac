// A VM's host link: a restricted user-mode NIC (restrict=on: the guest reaches nothing through it) that only
// 127.0.0.1 forwards reach: the guest's SSH server on a port chosen at each QEMU start, and whatever ports
// forwardPort() asks for, added to the running QEMU and again after every restart on the same host port while free.
import { ConfigurationError, InfrastructureError } from '../errors/fleetlab-error.ts';
import { freeTcpPort } from '../net/free-port.ts';
import type { HostLink } from '../protocols/machine.ts';
import type { QmpClient } from './qmp.ts';

export class HostForwards implements HostLink {
  /** The 127.0.0.1 port forwarded to the guest's port 22 by the current QEMU process. */
  sshPort: number | undefined;
  /** Guest TCP ports forwarded from 127.0.0.1, guest port to host port; kept across QEMU restarts. */
  private readonly forwards = new Map<number, number>();
  private readonly m: { readonly name: string; readonly enabled: boolean; running(): QmpClient | undefined; note(line: string): void };

  constructor(machine: { readonly name: string; readonly enabled: boolean; running(): QmpClient | undefined; note(line: string): void }) {
    this.m = machine;
  }

  /** A 127.0.0.1 port forwarded to the guest's TCP `guestPort` (the scenario's `hostLink: true`, or `ssh: true`). */
  async forwardPort(guestPort: number): Promise<number> {
    if (!Number.isInteger(guestPort) || guestPort < 1 || guestPort > 65535) throw new ConfigurationError(`forwardPort(${guestPort}): a guest TCP port is a whole number from 1 to 65535`);
    if (!this.m.enabled) throw new ConfigurationError(`machine ${this.m.name} has no host link to forward port ${guestPort} over; declare hostLink: true in the scenario (a restricted NIC that only 127.0.0.1 forwards reach)`);
    if (guestPort === 22 && this.sshPort) return this.sshPort;
    const known = this.forwards.get(guestPort);
    if (known !== undefined) return known;
    const qmp = this.m.running();
    if (!qmp) throw new InfrastructureError(`machine ${this.m.name} is not running; cannot forward its port ${guestPort}`);
    const hostPort = await freeTcpPort();
    await this.hostfwd(qmp, hostPort, guestPort);
    this.forwards.set(guestPort, hostPort);
    return hostPort;
  }

  /** Where an SSH client reaches the guest's port 22: the forward of the running QEMU (`what` says what was wanted). */
  sshServer(what: string): { host: string; port: number } {
    if (!this.m.enabled) throw new ConfigurationError(`machine ${this.m.name} has no SSH forward; declare ssh: true (or hostLink: true) in the scenario (it gives each machine a restricted 127.0.0.1 forward to port 22)`);
    if (!this.sshPort || !this.m.running()) throw new InfrastructureError(`machine ${this.m.name} is not running; cannot ${what}`);
    return { host: '127.0.0.1', port: this.sshPort };
  }

  /** A new QEMU process has none of the forwards: the same host ports again, or new ones where they were taken. */
  async restore(qmp: QmpClient): Promise<void> {
    for (const [guestPort, hostPort] of this.forwards) {
      try {
        await this.hostfwd(qmp, hostPort, guestPort);
      } catch {
        const fresh = await freeTcpPort();
        await this.hostfwd(qmp, fresh, guestPort);
        this.forwards.set(guestPort, fresh);
      }
    }
  }

  /** Adds one forward to the running QEMU; its human monitor answers errors as text. */
  private async hostfwd(qmp: QmpClient, hostPort: number, guestPort: number): Promise<void> {
    const out = await qmp.execute<string>('human-monitor-command', { 'command-line': `hostfwd_add ssh0 tcp:127.0.0.1:${hostPort}-:${guestPort}` });
    if (typeof out === 'string' && out.trim()) throw new InfrastructureError(`QEMU refused to forward 127.0.0.1:${hostPort} to port ${guestPort} of ${this.m.name}: ${out.trim()}`);
    this.m.note(`forward: 127.0.0.1:${hostPort} -> ${this.m.name}:${guestPort}`);
  }
}
