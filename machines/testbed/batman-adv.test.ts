// The testbed's batman-adv (machines/testbed/batman-adv.ts): built from the kernel's own Debian source without
// network coding, for the x86_64 and aarch64 testbeds' kernels; Debian's module beside it has network coding (and its
// 10 ms worker). Symbols are read with readelf from the modules themselves.
import { execa } from 'execa';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { BATMAN_ADV_KO, batmanAdvPackages, batmanAdvWithoutNc } from './batman-adv.ts';
import { kernelRelease, resolveKernel, unpackDeb } from './debian-packages.ts';
import { aarch64Testbed } from './aarch64.ts';
import { x86_64Testbed } from './x86_64.ts';

const dirs: string[] = [];
afterAll(() => Promise.all(dirs.map((d) => rm(d, { recursive: true, force: true }))));

const functions = async (ko: string) => (await execa('readelf', ['-sW', ko])).stdout.split('\n').filter((l) => / FUNC /.test(l)).map((l) => l.trim().split(/\s+/).at(-1)!);

describe.each([x86_64Testbed, aarch64Testbed])('batman-adv for the $name testbed', (recipe) => {
  it("has no network coding, B.A.T.M.A.N. IV and V as Debian's has them, and the kernel's vermagic; Debian's own has the network-coding worker", async () => {
    const kernel = await resolveKernel(recipe.kernelPackage, recipe.debArch);
    const kver = kernelRelease(kernel);
    const ko = await batmanAdvWithoutNc(kernel, await batmanAdvPackages(kernel, recipe.debArch), recipe.debArch, () => undefined);
    const ours = await functions(ko);
    expect(ours.filter((f) => f.startsWith('batadv_nc_'))).toEqual([]);
    for (const f of ['batadv_iv_init', 'batadv_v_init', 'batadv_mcast_init', 'batadv_dat_init', 'batadv_bla_init']) expect(ours, f).toContain(f);
    const vermagic = (await execa('strings', [ko])).stdout.split('\n').find((l) => l.startsWith('vermagic='));
    expect(vermagic).toMatch(new RegExp(`^vermagic=${kver.replace(/\./g, '\\.')} `));

    const deb = await mkdtemp(join(tmpdir(), 'fleetlab-batman-'));
    dirs.push(deb);
    await unpackDeb(kernel, deb);
    const theirs = await functions(join(deb, 'lib/modules', kver, BATMAN_ADV_KO));
    expect(theirs).toContain('batadv_nc_worker');
  }, 600_000);
});
