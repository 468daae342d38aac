// The testbed's stand-ins for util-linux's setsid and coreutils' nohup (machines/testbed/rootfs/usr/bin), which
// busybox-static lacks or has without the option nixos-anywhere needs: run on this host under busybox sh, as on the
// testbed, over the host's busybox.
import { execa } from 'execa';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { which } from '../../harness/qemu/host-packages.ts';

const BIN = join(import.meta.dirname, 'rootfs/usr/bin');
const run = (tool: string, args: string[], input?: string) => execa('busybox', ['sh', join(BIN, tool), ...args], { reject: false, input, env: { PATH: `${BIN}:${process.env.PATH}` } });

describe.skipIf(!which('busybox'))('setsid and nohup stand-ins', () => {
  it('setsid --wait runs PROGRAM in a session of its own, waits for it and exits with its status (nixos-anywhere checks `setsid --wait true`)', async () => {
    expect((await run('setsid', ['--wait', 'true'])).exitCode).toBe(0);
    expect((await run('setsid', ['-w', 'sh', '-c', 'exit 7'])).exitCode).toBe(7);
    // Its session is its own (session id = its pid), its stdin the caller's, and it ran before setsid returned.
    const r = await run('setsid', ['--wait', 'sh', '-c', 'read line; echo "$line $(cut -d" " -f6 /proc/$$/stat) $$"; sleep 0.3; echo done'], 'hello\n');
    const [line, done] = r.stdout.trim().split('\n');
    const [word, sid, pid] = line!.split(' ');
    expect([word, sid, done]).toEqual(['hello', pid, 'done']);
    const bad = await run('setsid', ['--bogus', 'true']);
    expect([bad.exitCode, bad.stderr]).toEqual([1, "setsid: unrecognized option '--bogus'"]);
    expect((await run('setsid', ['-w'])).stderr).toBe('setsid: no command specified');
  });

  it('nohup runs PROGRAM with SIGHUP ignored', async () => {
    const r = await run('nohup', ['sh', '-c', 'kill -HUP $$; echo survived']);
    expect([r.exitCode, r.stdout]).toEqual([0, 'survived']);
    expect((await run('nohup', [])).exitCode).toBe(125);
  });
});
