// The generations' stage-1 initrd (machines/testbed/stage1.ts): what it holds and leaves out, and a disk boot through
// it (GRUB on BIOS), whose booted generation names it as its initrd.
import { execa } from 'execa';
import { statSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { QemuMachine } from '../../harness/qemu/qemu-machine.ts';
import { ensureTestbed } from './build.ts';
import { testbedRecipes } from './index.ts';

const image = await ensureTestbed(testbedRecipes.x86_64!);
const list = async (cpio: string) => (await execa('cpio', ['-it', '--quiet'], { inputFile: cpio })).stdout.split('\n');

describe("the generations' stage-1 initrd", () => {
  let m: QemuMachine | undefined;
  afterAll(async () => {
    await m?.stop();
  });

  it('holds /init, busybox, the boot modules with their dependencies, and first-boot tools with their libraries; not the system', async () => {
    const files = await list(image.stage1);
    const has = (re: RegExp) => files.some((f) => re.test(f));
    for (const re of [/^init$/, /^bin\/busybox$/, /^etc\/fleetlab\/modules$/, /^etc\/fleetlab\/first-boot$/, /\/modules\.dep$/, /\/virtio_blk\.ko$/, /\/ext4\.ko$/, /\/jbd2\.ko$/, /\/mbcache\.ko$/, /\/vfat\.ko$/, /^sbin\/sfdisk$/, /^sbin\/resize2fs$/, /libfdisk\.so/, /libext2fs\.so/, /libc\.so\.6$/, /ld-linux-x86-64\.so\.2$/]) {
      expect(has(re), `stage 1 holds ${re}`).toBe(true);
    }
    // The system stays on the root: SSH, batman-adv, bash, the web page.
    for (const re of [/dropbear/, /batman-adv\.ko/, /^bin\/bash$/, /^srv\//]) expect(has(re), `stage 1 leaves out ${re}`).toBe(false);
    const small = statSync(image.stage1).size;
    const whole = statSync(image.initrd).size;
    // x86_64: 10.0 MB against 27.0 (busybox 2 MB, libc and the first-boot tools' libraries 4.4 MB, modules 3 MB).
    expect(small, `stage 1 ${small} bytes against the whole system's ${whole}`).toBeLessThan(whole / 2);
  });

  it('a disk boot goes through it: the booted generation names it as its initrd, and the root is mounted from stage 1', async () => {
    m = await QemuMachine.fromProfile('x86_64-bios', { name: 'stage1', logDir: join(tmpdir(), `fleetlab-test-${process.pid}`) });
    await m.start();
    await m.waitForShell({ timeout: 120_000 });
    expect(Number((await m.succeed('stat -L -c %s /run/booted-system/initrd')).trim())).toBe(statSync(image.stage1).size);
    expect(await readFile(m.log.path, 'utf8')).toMatch(/fleetlab stage 1: root LABEL=nixos \(\/dev\/vda2\) mounted/);
    // Stage 2 has the whole system: what stage 1 left out is there.
    await m.succeed('test -x /usr/sbin/dropbear && test -e /lib/modules/$(uname -r)/kernel/net/batman-adv/batman-adv.ko');
  });
});
