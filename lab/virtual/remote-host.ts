// TEST DOUBLE — a second lab host, played by this machine: Debian's real OpenSSH server on a loopback port, with a
// user of its own (fleetlab-lab, made once when fleetlab runs as root; else the current user), and Debian's real
// ser2net exporting the virtual boards' serial lines as RFC 2217 ports. What a shelf with a Pi on it would run; only
// the address is this machine's. fleetlab's production code (lab/lab-host.ts, lab/rfc2217.ts) knows nothing of it.
import { execa } from 'execa';
import { chmodSync, chownSync, existsSync, mkdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { userInfo } from 'node:os';
import { dirname, join } from 'node:path';
import { spawnSupervised, type SupervisedProcess } from '../../harness/process/supervisor.ts';
import { Deadline, pollUntil } from '../../harness/time/deadline.ts';
import { createConnection } from 'node:net';

export const LAB_USER = 'fleetlab-lab';

export interface RemoteHostOptions {
  dir: string;
  sshPort: number;
  /** Serial lines to export: a device (a pty) on a TCP port, RFC 2217. */
  exports: Array<{ device: string; port: number }>;
  /** Files the host's user works on (the cards it writes, the muxes' control files): made readable and writable for it. */
  share?: string[];
}

/** `path` readable and writable for any user, and every folder above it passable (a lab user in the disk group, here). */
function share(path: string): void {
  if (!existsSync(path)) return;
  chmodSync(path, statSync(path).isDirectory() ? 0o755 : 0o666);
  for (let d = dirname(path); d !== dirname(d); d = dirname(d)) {
    const mode = statSync(d).mode;
    if (!(mode & 0o001)) chmodSync(d, (mode & 0o7777) | 0o011);
  }
}

export interface RemoteHost {
  user: string;
  /** The key the lab file gives for the host's user. */
  privateKey: string;
  /** The server's host key, "ssh-ed25519 AAAA…", to pin. */
  hostKey: string;
  sshd: SupervisedProcess;
  ser2net: () => SupervisedProcess;
  /** Stops ser2net and starts it again (a ser2net restarted mid-case). */
  restartSer2net(): Promise<void>;
  close(): Promise<void>;
}

async function listening(port: number, what: string): Promise<void> {
  const up = await pollUntil(
    () =>
      new Promise<true | undefined>((resolve) => {
        const s = createConnection({ host: '127.0.0.1', port }, () => {
          s.destroy();
          resolve(true);
        });
        s.on('error', () => resolve(undefined));
      }),
    { deadline: Deadline.after(15_000, what, { unscaled: true }), intervalMs: 100 },
  );
  if (up.timedOut) throw new Error(`${what}: nothing listens on 127.0.0.1:${port} after 15 s`);
}

/** The user the host's SSH server lets in: fleetlab-lab (made if missing) as root, else whoever runs this. */
async function labUser(): Promise<{ name: string; uid: number; gid: number; home: string }> {
  const me = userInfo();
  if (me.uid !== 0) return { name: me.username, uid: me.uid, gid: me.gid, home: me.homedir };
  const id = await execa('id', ['-u', LAB_USER], { reject: false });
  if (id.exitCode !== 0) await execa('useradd', ['--system', '--create-home', '--home-dir', `/var/lib/${LAB_USER}`, '--shell', '/bin/sh', LAB_USER]);
  // A system account is locked ("!" for its password), and sshd without PAM turns locked accounts away even for a
  // key: "*" is no password, not locked.
  await execa('usermod', ['-p', '*', LAB_USER]);
  const uid = Number((await execa('id', ['-u', LAB_USER])).stdout);
  const gid = Number((await execa('id', ['-g', LAB_USER])).stdout);
  return { name: LAB_USER, uid, gid, home: `/var/lib/${LAB_USER}` };
}

export async function startRemoteHost(o: RemoteHostOptions): Promise<RemoteHost> {
  mkdirSync(o.dir, { recursive: true });
  const user = await labUser();
  for (const p of o.share ?? []) share(p);
  const key = join(o.dir, 'lab-key');
  const hostKeyFile = join(o.dir, 'ssh_host_ed25519_key');
  if (!existsSync(key)) await execa('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', 'fleetlab lab host', '-f', key]);
  if (!existsSync(hostKeyFile)) await execa('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', hostKeyFile]);
  // sshd reads authorized keys as the user, who cannot see into a private temp dir: the key goes to the user's home,
  // a file per port (each process its own host).
  const sshDir = join(user.home, '.ssh');
  mkdirSync(sshDir, { recursive: true, mode: 0o700 });
  const authorized = join(sshDir, `fleetlab-lab-host-${o.sshPort}`);
  writeFileSync(authorized, readFileSync(`${key}.pub`));
  chmodSync(authorized, 0o600);
  if (userInfo().uid === 0) {
    chownSync(sshDir, user.uid, user.gid);
    chownSync(authorized, user.uid, user.gid);
  }
  mkdirSync('/run/sshd', { recursive: true });
  const conf = join(o.dir, 'sshd_config');
  writeFileSync(
    conf,
    [`Port ${o.sshPort}`, 'ListenAddress 127.0.0.1', `HostKey ${hostKeyFile}`, `AuthorizedKeysFile ${authorized}`, `PidFile ${join(o.dir, 'sshd.pid')}`, 'UsePAM no', 'StrictModes no', 'PasswordAuthentication no', 'KbdInteractiveAuthentication no', `AllowUsers ${user.name}`, 'PermitRootLogin prohibit-password', 'LogLevel ERROR'].join('\n') + '\n',
  );
  const sshd = spawnSupervised('sshd (lab host stand-in)', '/usr/sbin/sshd', ['-D', '-e', '-f', conf]);
  const s2nConf = join(o.dir, 'ser2net.yaml');
  writeFileSync(s2nConf, o.exports.map((e, i) => `connection: &line${i}\n  accepter: telnet(rfc2217),tcp,127.0.0.1,${e.port}\n  connector: serialdev,${e.device},115200n81,local\n  options:\n    kickolduser: true\n`).join(''));
  const startSer2net = () => spawnSupervised('ser2net (lab host stand-in)', '/usr/sbin/ser2net', ['-n', '-c', s2nConf, '-P', join(o.dir, 'ser2net.pid')]);
  let ser2net = startSer2net();
  try {
    await listening(o.sshPort, 'the lab host stand-in\'s sshd');
    for (const e of o.exports) await listening(e.port, `ser2net's port for ${e.device}`);
  } catch (err) {
    await Promise.all([sshd.stop(), ser2net.stop()]);
    throw new Error(`${(err as Error).message}\nsshd: ${sshd.stderrTail()}\nser2net: ${ser2net.stderrTail()}`);
  }
  const pub = readFileSync(`${hostKeyFile}.pub`, 'utf8').trim().split(/\s+/);
  return {
    user: user.name,
    privateKey: key,
    hostKey: `${pub[0]} ${pub[1]}`,
    sshd,
    ser2net: () => ser2net,
    async restartSer2net() {
      await ser2net.stop();
      ser2net = startSer2net();
      for (const e of o.exports) await listening(e.port, `ser2net's port for ${e.device}`);
    },
    async close() {
      await Promise.all([sshd.stop(), ser2net.stop()]);
      rmSync(authorized, { force: true });
    },
  };
}
