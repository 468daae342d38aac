// One small strategy per boot loader NixOS installs (systemd-boot, GRUB, U-Boot's extlinux, the Pi's firmware-only
// boot): how to read what the next boot will do, how to choose a generation for the next boot only, and how to pick
// one in the real menu. Written against the loaders' own files and variables, as bootctl, grub-reboot and a person at
// the console use them; machine.nixos (nixos.ts) picks the strategy of the machine's /boot.
import { ConfigurationError } from '../errors/fleetlab-error.ts';
import type { WaitOptions } from '../protocols/wait-options.ts';
import { shellQuote } from '../shell/guest-helper.ts';
import { type Deadline, sleep } from '../time/deadline.ts';
import type { NixosMachine } from './nixos-machine.ts';
import { plain } from '../shell/plain.ts';

/**
 * raspi-firmware: the Pi's firmware-only boot, cmdline.txt on the FIRMWARE partition, no menu. Legacy: nixpkgs removed
 * boot.loader.raspberryPi (NixOS/nixpkgs#241534), so only older NixOS releases and third-party flakes (such as
 * nixos-raspberrypi) boot this way; nixpkgs' own Pi images boot U-Boot and extlinux.
 */
export type Bootloader = 'systemd-boot' | 'grub' | 'extlinux' | 'raspi-firmware';

/** What the next boot will do, read from the boot loader's own files and variables. */
export interface BootState {
  bootloader: Bootloader;
  /** The default entry: systemd-boot loader.conf `default` (a pattern), GRUB's default, extlinux DEFAULT. */
  default: string;
  /** A one-shot entry for the next boot only: LoaderEntryOneShot (systemd-boot), grubenv next_entry (GRUB). */
  oneShot?: string;
  /** GRUB: grubenv saved_entry. */
  savedEntry?: string;
  /** systemd-boot: every entry file with its boot counter ("+LEFT-DONE"), by id. */
  entries: Array<{ id: string; file: string; triesLeft?: number; triesDone?: number }>;
  /** GRUB: the grubenv block could not be read as one (corrupt or truncated); GRUB then boots its default. */
  grubenvValid?: boolean;
}

/** systemd's vendor GUID for the boot loader interface's EFI variables (LoaderEntryOneShot, ...). */
export const LOADER_GUID = '4a67b082-0a4c-41cf-b6c7-440b29bb8c4f';

/** A boot menu choice under way: the keys to type once the machine reboots, and the command that undoes its preparation. */
export interface MenuChoice {
  keys(): Promise<void>;
  restore?: string;
}

/** What a strategy drives: the machine, and keys into its screen (a machine without one says so). */
export interface LoaderContext {
  m: NixosMachine;
  /** systemd-boot's EFI system partition: /boot, /boot/efi or /efi (boot.loader.efi.efiSysMountPoint). */
  esp: string;
  sendKeys(...combos: string[]): Promise<void>;
}

/** One boot loader's ways. */
export interface BootLoaderStrategy {
  state(c: LoaderContext, opts?: WaitOptions): Promise<BootState>;
  /** Chooses generation `n` for the next boot (only, where the loader has a one-shot). */
  setNextBoot(c: LoaderContext, n: number, opts?: WaitOptions): Promise<void>;
  /** Prepares the menu to choose generation `n` at the next boot (a longer timeout) and says what to type. */
  menu(c: LoaderContext, n: number, deadline: Deadline): Promise<MenuChoice>;
}

/** The strategy of boot loader `bl`. */
export function bootLoader(bl: Bootloader): BootLoaderStrategy {
  return STRATEGIES[bl];
}

/**
 * Writes one of systemd's boot loader interface variables through efivarfs, as `bootctl` does: 4 bytes of
 * attributes (non-volatile, boot service, runtime access), then the value as UTF-16LE text with a NUL.
 */
async function writeLoaderVariable(m: NixosMachine, name: string, value: string, opts?: WaitOptions): Promise<void> {
  const data = Buffer.concat([Buffer.from([7, 0, 0, 0]), Buffer.from(`${value}\0`, 'utf16le')]);
  const octal = [...data].map((b) => `\\${b.toString(8).padStart(3, '0')}`).join('');
  const v = `/sys/firmware/efi/efivars/${name}-${LOADER_GUID}`;
  await plain(m).succeed(`[ -e ${v} ] && chattr -i ${v} 2>/dev/null; printf '${octal}' > ${v}`, opts);
}

/** Rewrites grubenv with `vars` merged into what it holds (a fresh block when it is corrupt): 1024 bytes, as grub-editenv writes it. */
export async function writeGrubenv(c: LoaderContext, vars: Record<string, string>, opts?: WaitOptions): Promise<void> {
  const merged: Record<string, string> = {};
  if ((await STRATEGIES.grub.state(c, opts)).grubenvValid) {
    const env = await plain(c.m).succeed("head -c 1024 /boot/grub/grubenv | tr '\\000' '?'", opts);
    for (const m of env.matchAll(/^([A-Za-z_][A-Za-z0-9_]*)=(.*)$/gm)) merged[m[1]!] = m[2]!;
  }
  Object.assign(merged, vars);
  let text = '# GRUB Environment Block\n' + Object.entries(merged).filter(([, v]) => v !== '').map(([k, v]) => `${k}=${v}\n`).join('');
  if (text.length > 1024) throw new ConfigurationError(`grubenv would exceed its 1024 bytes`);
  text += '#'.repeat(1024 - text.length);
  await plain(c.m).succeed(`printf %s ${shellQuote(text)} > /boot/grub/grubenv.tmp && sync && mv -f /boot/grub/grubenv.tmp /boot/grub/grubenv && sync`, opts);
}

/**
 * Generation `n`'s place in extlinux.conf's menu (0 is "NixOS - Default"): U-Boot's choice is this plus one. A
 * freshly flashed NixOS sd-image has only "nixos-default" (its builder ran before any generation link existed): that
 * entry stands for the profile's current generation until the first switch writes the numbered ones.
 */
export async function extlinuxEntry(m: NixosMachine, n: number, opts?: WaitOptions): Promise<number> {
  const out = await plain(m).succeed('readlink /nix/var/nix/profiles/system; cat /boot/extlinux/extlinux.conf', opts);
  const current = /system-(\d+)-link/.exec(out.split('\n')[0]!)?.[1];
  const labels = [...out.matchAll(/^LABEL (\S+)/gm)].map((x) => x[1]!);
  let at = labels.indexOf(`nixos-${n}`);
  if (at < 0 && String(n) === current) at = labels.indexOf('nixos-default');
  if (at < 0) throw new ConfigurationError(`machine ${m.name}: extlinux.conf has no entry for generation ${n} (labels: ${labels.join(', ')})`);
  return at;
}

const systemdBoot: BootLoaderStrategy = {
  async state({ m, esp }, opts) {
    const out = await plain(m).succeed(
      `sed -n 's/^default[[:space:]]*//p' ${esp}/loader/loader.conf; echo ---; ls ${esp}/loader/entries; echo ---; v=/sys/firmware/efi/efivars/LoaderEntryOneShot-${LOADER_GUID}; [ -e $v ] && tail -c +5 $v | tr -d '\\000'; true`,
      opts,
    );
    const [def, list, oneShot] = out.split('---\n');
    const entries = list!.trim().split('\n').filter((f) => f.endsWith('.conf')).map((file) => {
      const x = /^(.*?)(?:\+(\d+)(?:-(\d+))?)?\.conf$/.exec(file)!;
      return { id: `${x[1]}.conf`, file, triesLeft: x[2] === undefined ? undefined : Number(x[2]), triesDone: x[2] === undefined ? undefined : Number(x[3] ?? 0) };
    });
    return { bootloader: 'systemd-boot', default: def!.trim(), oneShot: oneShot?.trim() || undefined, entries };
  },
  async setNextBoot({ m }, n, opts) {
    await writeLoaderVariable(m, 'LoaderEntryOneShot', `nixos-generation-${n}.conf`, opts);
  },
  async menu(c, n, deadline) {
    // The menu's order: entries sorted by version, newest first, those with no tries left last; and the default.
    const s = await this.state(c);
    const entries = s.entries.map((e) => ({ ...e, n: Number(/(\d+)/.exec(e.id)?.[1] ?? 0), bad: e.triesLeft === 0 }));
    entries.sort((a, b) => Number(a.bad) - Number(b.bad) || b.n - a.n);
    const order = entries.map((e) => e.id);
    const pattern = new RegExp(`^${s.default.replace(/[.+]/g, '\\$&').replace(/\*/g, '.*')}$`);
    const from = Math.max(0, order.findIndex((id) => pattern.test(id)));
    const to = order.indexOf(`nixos-generation-${n}.conf`);
    if (to < 0) throw new ConfigurationError(`machine ${c.m.name}: systemd-boot has no entry for generation ${n} (entries: ${order.join(', ')})`);
    await writeLoaderVariable(c.m, 'LoaderConfigTimeoutOneShot', '30');
    // The firmware's console input: the PC keyboard through QMP on x86; the serial line (VT100 arrow keys) on
    // aarch64 virt, which has no keyboard.
    const serial = c.m.profile.arch === 'aarch64';
    const press = (key: 'down' | 'up' | 'ret') => (serial ? c.m.sendConsole({ down: '\x1b[B', up: '\x1b[A', ret: '\r' }[key]) : c.sendKeys(key));
    return {
      keys: async () => {
        await c.m.waitForConsoleText(/Boot in \d+ s/, { deadline });
        await sleep(300);
        for (let k = from; k < to; k++) await press('down');
        for (let k = from; k > to; k--) await press('up');
        await press('ret');
      },
    };
  },
};

const grub: BootLoaderStrategy = {
  async state({ m }, opts) {
    const out = await plain(m).succeed("head -c 1024 /boot/grub/grubenv 2>/dev/null | tr '\\000' '?'; echo; echo ---; wc -c < /boot/grub/grubenv 2>/dev/null || echo 0", opts);
    const [env, size] = out.split('\n---\n');
    const valid = env!.startsWith('# GRUB Environment Block\n') && Number(size!.trim()) === 1024;
    const vars = valid ? Object.fromEntries([...env!.matchAll(/^([A-Za-z_][A-Za-z0-9_]*)=(.*)$/gm)].map((x) => [x[1]!, x[2]!])) : {};
    return { bootloader: 'grub', default: '0', oneShot: vars.next_entry || undefined, savedEntry: vars.saved_entry || undefined, entries: [], grubenvValid: valid };
  },
  async setNextBoot(c, n, opts) {
    // What grub-reboot writes: next_entry names the submenu entry by title.
    const cfg = await plain(c.m).succeed('cat /boot/grub/grub.cfg', opts);
    const title = new RegExp(`menuentry "(NixOS - Configuration ${n} \\([^"]*\\))"`).exec(cfg)?.[1];
    if (!title) throw new ConfigurationError(`machine ${c.m.name}: /boot/grub/grub.cfg has no entry for generation ${n}`);
    await writeGrubenv(c, { next_entry: `NixOS - All configurations>${title}` }, opts);
  },
  async menu(c, n, deadline) {
    const cfg = await plain(c.m).succeed('cat /boot/grub/grub.cfg');
    const titles = [...cfg.matchAll(/menuentry "(NixOS - Configuration (\d+) [^"]*)"/g)].map((x) => Number(x[2]));
    const at = titles.indexOf(n);
    if (at < 0) throw new ConfigurationError(`machine ${c.m.name}: GRUB has no entry for generation ${n}`);
    await plain(c.m).succeed("cp /boot/grub/grub.cfg /boot/grub/grub.cfg.fleetlab-menu && sed -i 's/^\\([[:space:]]*\\)set timeout=[0-9]*$/\\1set timeout=30/' /boot/grub/grub.cfg && sync");
    return {
      restore: '[ -e /boot/grub/grub.cfg.fleetlab-menu ] && mv -f /boot/grub/grub.cfg.fleetlab-menu /boot/grub/grub.cfg; sync',
      keys: async () => {
        await c.m.waitForConsoleText(/NixOS - All configurations/, { deadline });
        await sleep(300);
        await c.sendKeys('down');
        await c.sendKeys('ret');
        await c.m.waitForConsoleText(/NixOS - Configuration \d+/, { deadline });
        await sleep(300);
        for (let k = 0; k < at; k++) await c.sendKeys('down');
        await c.sendKeys('ret');
      },
    };
  },
};

const extlinux: BootLoaderStrategy = {
  async state({ m }, opts) {
    const def = (await plain(m).succeed("sed -n 's/^DEFAULT[[:space:]]*//p' /boot/extlinux/extlinux.conf", opts)).trim();
    return { bootloader: 'extlinux', default: def, entries: [] };
  },
  async setNextBoot({ m }, n, opts) {
    // U-Boot has no one-shot: DEFAULT stays until the next switch.
    await plain(m).succeed(`sed -i 's/^DEFAULT .*/DEFAULT nixos-${n}/' /boot/extlinux/extlinux.conf && sync`, opts);
  },
  async menu({ m }, n, deadline) {
    const at = await extlinuxEntry(m, n);
    await plain(m).succeed("cp /boot/extlinux/extlinux.conf /boot/extlinux/extlinux.conf.fleetlab-menu && sed -i 's/^TIMEOUT .*/TIMEOUT 300/' /boot/extlinux/extlinux.conf && sync");
    // U-Boot's menu: on the serial console, or the profile's boot loader console (the Pi's mini UART).
    const con = m.console(m.profile.bootloaderConsole ?? m.profile.serialConsole);
    con.mark();
    return {
      restore: '[ -e /boot/extlinux/extlinux.conf.fleetlab-menu ] && mv -f /boot/extlinux/extlinux.conf.fleetlab-menu /boot/extlinux/extlinux.conf; sync',
      keys: async () => {
        await con.expect(/Enter choice:/, { deadline });
        await con.write(`${at + 1}\n`);
      },
    };
  },
};

const raspiFirmware: BootLoaderStrategy = {
  async state({ m }, opts) {
    // The firmware boots what cmdline.txt says: the generation is the one whose toplevel its init= names.
    const init = /(?:^|\s)init=(\S+)\/init(?:\s|$)/.exec(await plain(m).succeed('cat /boot/firmware/cmdline.txt', opts))?.[1] ?? '';
    return { bootloader: 'raspi-firmware', default: init, entries: [] };
  },
  async setNextBoot({ m }) {
    throw new ConfigurationError(`machine ${m.name}: the Raspberry Pi's firmware-only boot has no one-shot entry; switch the profile (switch(..., { action: 'boot' }) or rollback()) instead`);
  },
  async menu({ m }) {
    throw new ConfigurationError(`machine ${m.name}: the Raspberry Pi's firmware-only boot has no menu to choose from (the legacy boot.loader.raspberryPi layout); switch the profile instead`);
  },
};

const STRATEGIES: Record<Bootloader, BootLoaderStrategy> = { 'systemd-boot': systemdBoot, grub, extlinux, 'raspi-firmware': raspiFirmware };
