// Why a VM does not come up, said early and plainly: a host without the QEMU binary or firmware the profile needs
// (before anything starts), QEMU exiting while it starts (its own words: a rejected command line is a configuration
// error), and an image that prints a login prompt but has no backdoor (no NixOS test instrumentation).
import { existsSync } from 'node:fs';
import type { ConsoleLog } from '../console/console-log.ts';
import { ConfigurationError, type FleetlabError, InfrastructureError } from '../errors/fleetlab-error.ts';
import type { SupervisedProcess } from '../process/supervisor.ts';
import type { BackdoorShell } from '../shell/backdoor-shell.ts';
import { formatMs } from '../time/deadline.ts';
import { QEMU_PACKAGES, which } from './host-packages.ts';
import type { MachineProfile } from './profile.ts';

/** A serial login prompt with no backdoor greeting this long after it means the image has no test instrumentation. */
export const LOGIN_WITHOUT_BACKDOOR_MS = 15_000;

/** Checks the host can run `profile`: QEMU binary and firmware present. Throws ConfigurationError naming what to install. */
export function checkHostFor(profile: MachineProfile, name: string): void {
  const bin = profile.qemu.binary;
  if (!which(bin)) {
    const pkg = QEMU_PACKAGES[bin.split('/').pop()!];
    throw new ConfigurationError(
      `Machine ${name} (profile ${profile.name}) needs ${bin}, which is not installed.` +
        (pkg ? ` Install the Debian package ${pkg}: apt-get install ${pkg} (scripts/setup.sh does).` : ' Install QEMU for this architecture.'),
      { details: { field: 'qemu.binary', value: bin, package: pkg } },
    );
  }
  const fw = profile.firmware;
  const files = fw.kind === 'uefi' ? [fw.code, fw.vars] : fw.kind === 'bios-file' ? [fw.path] : [];
  for (const f of files) {
    if (!existsSync(f)) {
      const pkg = (fw as { package: string }).package;
      throw new ConfigurationError(
        `Machine ${name} (profile ${profile.name}) needs firmware ${f}, which is missing. Install the Debian package ${pkg}: apt-get install ${pkg}.`,
        { details: { field: 'firmware', value: f, package: pkg } },
      );
    }
  }
}

/** QEMU's exit during start: a configuration error when it rejected its command line, else an infrastructure error. */
export function startError(proc: SupervisedProcess, profile: MachineProfile, name: string): FleetlabError {
  const exit = proc.exitStatus;
  const how = exit?.signal ? `signal ${exit.signal}` : `exit code ${exit?.exitCode}`;
  const stderr = proc.stderrTail().trim();
  // "qemu-system-x86_64: -device virtio-blk-pci,…: The bootindex 0 has already been used": an option it refused.
  const rejected = exit?.exitCode === 1 && /^\S*qemu-system-[\w-]+: -[a-z]/m.test(stderr) && !/\bkvm\b|KVM|MSR/i.test(stderr);
  const message = [
    `QEMU of machine ${name} (profile ${profile.name}) exited while starting (${how})${rejected ? ': it rejected its command line' : ''}.`,
    stderr ? `QEMU said:\n${stderr.split('\n').slice(-10).map((l) => `    ${l}`).join('\n')}` : "QEMU's stderr was empty.",
    `command: ${proc.argv.join(' ')}`,
  ].join('\n');
  const details = { machine: name, exitCode: exit?.exitCode, signal: exit?.signal, stderr };
  return rejected ? new ConfigurationError(message, { details }) : new InfrastructureError(message, { details });
}

/**
 * Rejects when the serial console shows a login prompt and no backdoor greets within LOGIN_WITHOUT_BACKDOOR_MS
 * after it: the image lacks the NixOS test instrumentation, and waiting the whole budget would only hide that. Not
 * while a snapshot is restored: its machine had the backdoor when it was saved, and a restored getty reprints its
 * prompt while the backdoor, on a loaded host, may take longer than that to answer (a 64-node fleet's restore did).
 */
export function loginPromptWithoutBackdoor(m: { name: string; profile: MachineProfile; log: ConsoleLog; backdoor: BackdoorShell; promptThisBoot: string | undefined; restoring?: boolean }, signal?: AbortSignal): { failed: Promise<never>; cancel: () => void } {
  if (m.restoring) return { failed: new Promise<never>(() => undefined), cancel: () => undefined };
  let timer: NodeJS.Timeout | undefined;
  let prompt = '';
  let fail!: (err: Error) => void;
  const failed = new Promise<never>((_, reject) => (fail = reject));
  failed.catch(() => undefined);
  const isPrompt = (l: string) => /\blogin: *$/.test(l);
  const sessions = m.backdoor.sessions;
  // The timer starts at the first prompt-like line of this boot; the message quotes the latest one (banners say
  // "login:" too). A backdoor that greeted, even if its setup is still under way on a loaded host, is no failure.
  const seen = (line: string) => {
    prompt = line.trim();
    if (timer || m.backdoor.isReady) return;
    timer = setTimeout(() => {
      if (m.backdoor.isReady || m.backdoor.sessions > sessions || signal?.aborted) return;
      const shell = m.profile.guest.shell as { console: string };
      fail(
        new ConfigurationError(
          `Machine ${m.name} shows a login prompt on its serial console ${m.profile.serialConsole} ("${prompt}"), but no backdoor root shell greeted on ${shell.console} within ${formatMs(LOGIN_WITHOUT_BACKDOOR_MS)} after it: ` +
            `the image has no NixOS test instrumentation. Boot it with a profile whose guest.shell is { kind: 'serial-login', console: '${m.profile.serialConsole}' } and whose guest.login names a user and password the image accepts ` +
            `(see docs/profiles.md, "Serial-login shell channel"), or add the backdoor to the image (nix/ has a NixOS module for it).`,
          { details: { machine: m.name, prompt, lastLines: m.log.lastLines(20) } },
        ),
      );
    }, LOGIN_WITHOUT_BACKDOOR_MS);
  };
  // A prompt this boot printed before the wait began counts; one from before a crash or reset does not.
  if (m.promptThisBoot) seen(m.promptThisBoot);
  const off = m.log.onLine((l) => isPrompt(l) && seen(l));
  return {
    failed,
    cancel: () => {
      clearTimeout(timer);
      off();
    },
  };
}
