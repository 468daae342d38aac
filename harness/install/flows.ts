// The install flows bound to a case: phases as its steps, the installer's output in its log, what was installed in
// its JUnit properties (install.kind, install.disk, install.root, install.bootloader, install.firmware, ...).
import type { InstallFlows } from '../runner/scenario.ts';
import { fromIso, sdImage, type InstallReport, type StepRunner } from './install.ts';
import { nixosAnywhere } from './nixos-anywhere.ts';

export function installFlows(step: StepRunner, log: (line: string) => void, property: (name: string, value: string | number) => void): InstallFlows {
  const record = (kind: string, r: InstallReport) => {
    property('install.kind', kind);
    if (r.disk) property('install.disk', r.disk);
    property('install.root', r.root);
    property('install.rootBytes', r.rootBytes);
    property('install.bootloader', r.bootloader);
    property('install.firmware', r.firmware);
    property('install.generation', r.booted.generation ?? 'none');
    if (r.output) for (const line of r.output.trim().split('\n')) log(`${kind === 'nixos-anywhere' ? 'nixos-anywhere' : 'installer'}: ${line}`);
    return r;
  };
  return {
    fromIso: async (machine, opts) => record('iso', await fromIso(machine, opts, step)),
    sdImage: async (machine, opts) => record('sd-image', await sdImage(machine, opts, step)),
    nixosAnywhere: async (machine, opts) => {
      const r = await nixosAnywhere(machine, opts, step);
      if (r.rebooted) {
        record('nixos-anywhere', r);
        return r;
      }
      property('install.kind', 'nixos-anywhere');
      for (const line of r.output.trim().split('\n')) log(`nixos-anywhere: ${line}`);
      return r;
    },
  };
}
