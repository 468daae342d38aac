// apt's candidates, asked for many packages in one apt-cache call (as the testbed builds ask): every package found
// with its version and dependencies; a name apt does not know is a configuration error naming it and what to run.
import { describe, expect, it } from 'vitest';
import { ConfigurationError } from '../../harness/errors/fleetlab-error.ts';
import { aptShow, aptShowMany } from './debian-packages.ts';

describe('apt candidates', () => {
  it('answers many packages in one call, each with the version and dependencies one call for it gives', async () => {
    const many = await aptShowMany(['busybox-static', 'libc6', 'dash'], 'amd64');
    expect([...many.keys()].sort()).toEqual(['busybox-static', 'dash', 'libc6']);
    for (const name of ['busybox-static', 'dash']) expect(many.get(name)).toEqual(await aptShow(name, 'amd64'));
    expect(many.get('dash')!.depends).toMatch(/\blibc6\b/);
  });

  it('names a package apt does not know, among known ones', async () => {
    const err = await aptShowMany(['busybox-static', 'no-such-package-fleetlab'], 'amd64').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ConfigurationError);
    expect((err as Error).message).toMatch(/^apt knows no package no-such-package-fleetlab:amd64, needed for a testbed image\. Run "apt-get update"/);
  });
});
