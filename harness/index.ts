// fleetlab's public API: what scenario files and user profiles import (`import { scenario } from 'fleetlab'`).
// Importing it also registers fleetlab's testbed recipes with the QEMU provider.
import '../machines/testbed/register.ts';

export { scenario } from './runner/scenario.ts';
export { need } from './protocols/machine.ts';
export type { Capabilities, Capability, FabricNet, HostLink, MachineFacts, MachineLog, MachineState, SshOptions } from './protocols/machine.ts';
export type { Machine, ScenarioContext, ScenarioSpec, SetupSpec, StartMode, InstallFlows } from './runner/scenario.ts';
export type { Duration } from './time/duration.ts';
export { retry } from './time/retry.ts';
export type { RetryOptions } from './time/retry.ts';
export { fromIso as installFromIso, sdImage as installSdImage, ISO_PHASES, SD_PHASES } from './install/install.ts';
export type { InstallReport, IsoInstallOptions, SdInstallOptions, StepRunner } from './install/install.ts';
export { testbed } from './install/testbed-media.ts';
export { nixosAnywhere, ANYWHERE_PHASES } from './install/nixos-anywhere.ts';
export type { AnywhereReport, NixosAnywhereOptions } from './install/nixos-anywhere.ts';
export type { Media, MediaSpec } from './protocols/media.ts';
export type { FabricHandle, LinkHandle } from './net/fabric-handle.ts';
export type { LinkConditions, LinkStats, NetworkSpec, Network } from './net/fabric.ts';
export { defineProfile, extendProfile } from './qemu/profile.ts';
export type { MachineProfile, MachineProfileInput } from './qemu/profile.ts';
export { profiles } from './builtin-profiles.ts';
export { QemuMachine } from './qemu/qemu-machine.ts';
export { FleetlabError, TestFailure, InfrastructureError, ConfigurationError, TimeoutError, CommandError } from './errors/fleetlab-error.ts';
export { BUILTIN_CONSOLE_CHECKS } from './console/console-checks.ts';
export type { ConsoleCheck, ConsoleCheckHit, ConsoleCheckSettings } from './console/console-checks.ts';
export type { Console, ExpectOptions } from './protocols/console.ts';
export type { Shell, ExecResult, ExecOptions } from './protocols/shell.ts';
export type { Power } from './protocols/power.ts';
export type { Screen } from './protocols/screen.ts';
export { rollout, waveCounts } from './nixos/rollout.ts';
export type { RolloutOptions, RolloutResult, WaveSize } from './nixos/rollout.ts';
export type { NixosHelpers, Generation, ActivationResult, BootState, Booted, Bootloader, CrashPoint, SwitchAction, CopyOptions, CopyResult, CopyVia } from './nixos/nixos.ts';
export type { GenerationSpec, ServiceSpec, Toplevel } from './nixos/generation.ts';
export type { BrowserChecks, BrowserOpenOptions } from './browser/browser.ts';
export type { Page } from 'playwright-core';
export { defineLab } from '../lab/inventory.ts';
export type { LabInput, BoardSpec } from '../lab/inventory.ts';
export type { Board } from '../lab/board.ts';
