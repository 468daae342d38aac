// Truthful acceleration at a machine's start: the accelerator chooseAccel() picked, and under KVM a sign of life
// within KVM_SIGN_OF_LIFE_MS. A KVM that hangs the guest (or fails to start it) is an infrastructure error when KVM
// was asked for; when auto chose it, the machine starts again under TCG once, the probe's cache is corrected, and
// the fallback is said in the machine's facts.
import { FleetlabError, InfrastructureError } from '../errors/fleetlab-error.ts';
import { type AccelChoice, markKvmUnusable } from './accel-probe.ts';
import type { MachineProfile } from './profile.ts';

/** What a start under a chosen accelerator needs of its machine. */
export interface AccelStart {
  readonly name: string;
  readonly profile: MachineProfile;
  note(line: string): void;
  /** Starts one QEMU process under `accel`, `why` said in its log and facts. */
  launch(accel: 'kvm' | 'tcg' | 'hvf', why: string): Promise<void>;
  /** Undefined once the running process printed; else what was seen instead. */
  signOfLife(): Promise<string | undefined>;
  kill(by: string): Promise<void>;
}

/** Launches under `choice`; resolves with the fallback's description when auto's KVM gave way to TCG. */
export async function launchUnder(choice: AccelChoice, m: AccelStart): Promise<string | undefined> {
  if (choice.accel !== 'kvm') {
    await m.launch(choice.accel, choice.why);
    return undefined;
  }
  const silent = await m.launch('kvm', choice.why).then(
    () => m.signOfLife(),
    (err: unknown) => {
      // QEMU refusing its own arguments is no KVM problem; anything else at start under KVM counts as KVM's.
      if (err instanceof FleetlabError && err.kind === 'configuration') throw err;
      return `QEMU failed to start: ${(err as Error).message.split('\n').slice(0, 4).join(' / ')}`;
    },
  );
  if (!silent) return undefined;
  await m.kill('KVM fallback');
  const seen = `under -accel kvm ${silent}`;
  if (!choice.auto) {
    throw new InfrastructureError(
      `KVM: machine ${m.name} (profile ${m.profile.name}) was asked to run under KVM (${choice.why}), but ${seen}. KVM does not run this guest on this host; use --accel tcg (or auto, which falls back).`,
      { details: { machine: m.name, accel: 'kvm', seen } },
    );
  }
  const fallback = `auto chose KVM (its probe had passed), but ${seen}; restarted under TCG, and the probe's cache now says KVM is unusable`;
  m.note(fallback);
  await markKvmUnusable(`machine ${m.name} (profile ${m.profile.name}): ${seen} (the probe had passed earlier)`);
  await m.launch('tcg', `auto: ${fallback}`);
  return fallback;
}
