// Files and folders between the host and a machine over its shell channel (no SSH): NTD's copy_from_host_via_shell
// and copy_from_vm. Host to guest: the bytes (a folder as a tar stream) go as base64 in chunks of commands, are
// decoded in the guest and checked by SHA-256 before they take the target's place. Guest to host: the guest makes the
// tar or copy and its SHA-256, the channel carries the bytes exactly (length-framed), the host checks the hash.
import { createHash, randomBytes } from 'node:crypto';
import { execa } from 'execa';
import { mkdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { basename, join, resolve } from 'node:path';
import { ConfigurationError, InfrastructureError } from '../errors/fleetlab-error.ts';
import type { CopyReport, ExecOptions, Shell } from '../protocols/shell.ts';
import { shellQuote } from './guest-helper.ts';
import { plain } from './plain.ts';

/** Raw bytes per command: 192 KiB, 256 KiB of base64 on the command line. */
const CHUNK = 192 * 1024;

const sha256 = (b: Buffer) => createHash('sha256').update(b).digest('hex');

/** What the guest needs for a copy; says which are missing, naming the machine. */
async function needTools(shell: Shell, what: string, tools: string[], opts?: ExecOptions): Promise<void> {
  const r = await plain(shell).execute(`for t in ${tools.join(' ')}; do command -v "$t" >/dev/null 2>&1 || echo "$t"; done`, opts);
  const missing = r.stdout.split('\n').filter(Boolean);
  if (missing.length) throw new ConfigurationError(`${what}: ${shell.machineName} lacks ${missing.join(', ')} (a copy over the shell channel needs ${tools.join(', ')} in the guest); copy over SSH instead (ssh().upload/download)`);
}

/**
 * Copies `hostPath` (a file, or a folder with what it holds) to `guestPath` on the machine. A file lands at
 * `guestPath` (its folder made); a folder's contents land in the folder `guestPath`, owned by root (the guest's
 * shell is root's). Files copied out are owned by whoever runs fleetlab.
 */
export async function copyToGuest(shell: Shell, hostPath: string, guestPath: string, opts?: ExecOptions): Promise<CopyReport> {
  const what = `copyToMachine(${hostPath}, ${guestPath})`;
  const st = await stat(hostPath).catch(() => undefined);
  if (!st || !(st.isFile() || st.isDirectory())) throw new ConfigurationError(`${what}: ${resolve(hostPath)} is no file or folder on the host`);
  if (!guestPath.startsWith('/')) throw new ConfigurationError(`${what}: the guest path must be absolute, not "${guestPath}"`);
  const kind = st.isDirectory() ? 'directory' : 'file';
  await needTools(shell, what, kind === 'directory' ? ['base64', 'sha256sum', 'tar'] : ['base64', 'sha256sum'], opts);
  const data = kind === 'directory' ? Buffer.from((await execa('tar', ['-C', hostPath, '--owner=0', '--group=0', '--numeric-owner', '-cf', '-', '.'], { encoding: 'buffer', maxBuffer: 2 ** 31 })).stdout) : await readFile(hostPath);
  const sum = sha256(data);
  const sh = plain(shell);
  const tmp = `/tmp/.fleetlab-copy-${randomBytes(6).toString('hex')}`;
  try {
    await sh.succeed(`: > ${tmp}.b64`, opts);
    for (let at = 0; at < data.length; at += CHUNK) await sh.succeed(`printf %s ${shellQuote(data.subarray(at, at + CHUNK).toString('base64'))} >> ${tmp}.b64`, opts);
    const dest = shellQuote(guestPath);
    const place = kind === 'directory' ? `mkdir -p ${dest} && tar -xf ${tmp} -C ${dest}` : `mkdir -p "$(dirname ${dest})" && mv -f ${tmp} ${dest}`;
    const r = await sh.execute(`base64 -d ${tmp}.b64 > ${tmp} || exit 3; s=$(sha256sum ${tmp}) && s=\${s%% *} && [ "$s" = ${sum} ] || { echo "sha256 $s"; exit 4; }; ${place} || exit 5`, opts);
    if (r.exitCode === 4) throw new InfrastructureError(`${what}: the bytes that reached ${shell.machineName} are not those sent (${r.stdout.trim()}, sent ${sum}): the channel corrupted them`);
    if (r.exitCode !== 0) throw new InfrastructureError(`${what}: ${r.exitCode === 3 ? 'decoding' : 'placing'} the copy on ${shell.machineName} failed (exit ${r.exitCode}): ${(r.stderr || r.stdout).trim()}`);
  } finally {
    await sh.execute(`rm -f ${tmp} ${tmp}.b64`, { timeout: 30_000 }).catch(() => undefined);
  }
  return { path: guestPath, kind, bytes: data.length, sha256: sum };
}

/**
 * Copies `guestPath` (a file, or a folder with what it holds) from the machine into the host folder `hostDir`, as
 * `hostDir/<its name>`. Returns where it landed.
 */
export async function copyFromGuest(shell: Shell, guestPath: string, hostDir: string, opts?: ExecOptions): Promise<CopyReport> {
  const what = `copyFromMachine(${guestPath})`;
  await needTools(shell, what, ['sha256sum', 'tar'], opts);
  const sh = plain(shell);
  const p = shellQuote(guestPath);
  const tmp = `/tmp/.fleetlab-copy-${randomBytes(6).toString('hex')}`;
  try {
    const made = await sh.execute(`if [ -d ${p} ]; then tar -C ${p} -cf ${tmp} . || exit 5; echo directory; elif [ -f ${p} ]; then cp ${p} ${tmp} || exit 5; echo file; else exit 4; fi; s=$(sha256sum ${tmp}) && echo "\${s%% *}"`, opts);
    if (made.exitCode === 4) throw new ConfigurationError(`${what}: ${shell.machineName} has no file or folder ${guestPath}`);
    if (made.exitCode !== 0) throw new InfrastructureError(`${what}: packing it on ${shell.machineName} failed (exit ${made.exitCode}): ${(made.stderr || made.stdout).trim()}`);
    const [kind, sum] = made.stdout.trim().split('\n') as ['file' | 'directory', string];
    const data = (await sh.execute(`cat ${tmp}`, opts)).stdoutBytes;
    if (sha256(data) !== sum) throw new InfrastructureError(`${what}: the bytes received from ${shell.machineName} are not those it sent (sha256 ${sha256(data)}, the guest's ${sum}): the channel corrupted them`);
    const target = join(resolve(hostDir), basename(guestPath.replace(/\/+$/, '')) || 'root');
    await mkdir(resolve(hostDir), { recursive: true });
    if (kind === 'directory') {
      await rm(target, { recursive: true, force: true });
      await mkdir(target, { recursive: true });
      await execa('tar', ['--no-same-owner', '-xf', '-', '-C', target], { input: data });
    } else {
      await writeFile(target, data);
    }
    return { path: target, kind, bytes: data.length, sha256: sum };
  } finally {
    await sh.execute(`rm -f ${tmp}`, { timeout: 30_000 }).catch(() => undefined);
  }
}
