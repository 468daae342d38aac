// What a NixOS generation is to fleetlab: a toplevel store path and its closure. Real NixOS toplevels come from your
// own `nix build`; the testbed builds small NixOS-shaped ones on the host (machines/testbed/generations.ts).

/** A service of a testbed generation, run by the testbed's service manager stand-in (/etc/fleetlab/units). */
export interface ServiceSpec {
  name: string;
  /** oneshot: healthy when the command exits 0; simple: healthy while it runs. Default oneshot. */
  type?: 'oneshot' | 'simple';
  command: string;
}

/** What makes one testbed generation differ from another. */
export interface GenerationSpec {
  /** networking.hostName in NixOS terms: part of the toplevel's name. Default "testbed". */
  host?: string;
  /** system.nixos.label: the toplevel's version string (nixos-version) and name suffix. */
  version: string;
  services?: ServiceSpec[];
  /** Files of the generation's /etc, by path under /etc. */
  etc?: Record<string, string>;
  /** boot.kernelParams beyond the boot loader's own. */
  kernelParams?: string[];
  /** system.configurationRevision. */
  configurationRevision?: string;
  /**
   * A generation that does not boot: its init is missing, so stage 1 fails ("stage 2 init script … not found"); with
   * boot.panic_on_fail in kernelParams the kernel panics, and panic=N reboots it, as on NixOS.
   */
  broken?: 'no-init';
  /**
   * The boot loader this system installs (boot.loader.* in NixOS terms), as the testbed's bootloader.conf spells it
   * (flavour, boot_mount, append, timeout, loader: the store path of its binaries, ...). Set on systems an installer
   * installs: nixos-install writes the machine's /etc/fleetlab/bootloader.conf from it and the mounted devices.
   */
  bootloader?: Record<string, string>;
  /** Store paths (already under the closure's root) this system depends on beyond its kernel and initrd. */
  extraClosure?: string[];
  /**
   * Packages of the system (environment.systemPackages in NixOS terms): each a store path
   * /nix/store/<hash>-<name>-<version> in the closure, its bin/ files linked into the toplevel's sw/bin.
   */
  packages?: PackageSpec[];
}

/** A package of a testbed generation: its name, version and files (by path under the store path; bin/* executable). */
export interface PackageSpec {
  name: string;
  version: string;
  files: Record<string, string>;
}

/** A built generation: its store path in the guest, and where its closure lies on the host. */
export interface Toplevel {
  /** /nix/store/<hash>-nixos-system-<host>-<version> */
  path: string;
  /** The host directory holding nix/store/<paths> of the closure. */
  root: string;
  /** Store paths of the closure, dependencies first, the toplevel last. */
  closure: string[];
  spec: GenerationSpec;
}

/** Closures of the toplevels built in this process, by toplevel path: the run history's system identity reads them. */
const builtClosures = new Map<string, string[]>();

/** Notes `top`'s closure, so a machine found running it has a known closure even without Nix on it. */
export function rememberClosure(top: Toplevel): Toplevel {
  builtClosures.set(top.path, top.closure);
  return top;
}

/** The closure of a toplevel built in this process, if it was. */
export function knownClosure(path: string): string[] | undefined {
  return builtClosures.get(path);
}
