// The QEMU MachineProvider: a role's VM from its profile, the case's fabric NICs and host link; given back by stopping it.
import type { NicPlan } from '../net/fabric.ts';
import type { AcquiredMachine, AcquireOptions, MachineProvider } from '../protocols/provider.ts';
import type { MachineProfile } from './profile.ts';
import { QemuMachine } from './qemu-machine.ts';

/** What a role's VM is made from. */
export interface VmRequest {
  profile: MachineProfile;
  /** Its NICs on the scenario's networks. */
  nics?: NicPlan[];
  /** A restricted user-mode NIC for 127.0.0.1 forwards (ssh: true or hostLink: true). */
  hostLink?: boolean;
}

export class QemuProvider implements MachineProvider<VmRequest> {
  private readonly accel: 'auto' | 'kvm' | 'tcg' | 'hvf' | undefined;

  constructor(opts: { accel?: 'auto' | 'kvm' | 'tcg' | 'hvf' } = {}) {
    this.accel = opts.accel;
  }

  async acquire(request: VmRequest, opts: AcquireOptions): Promise<AcquiredMachine> {
    const machine = new QemuMachine(request.profile, {
      name: opts.role,
      logDir: opts.logDir,
      accel: this.accel,
      consoleChecks: opts.consoleChecks,
      nics: request.nics,
      hostLink: request.hostLink,
      onConsoleLine: opts.onConsoleLine,
    });
    return { machine, release: () => machine.stop() };
  }
}
