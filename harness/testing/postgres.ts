// A real PostgreSQL for tests, from Debian's postgresql package: a throwaway cluster in a temp dir, run as the
// postgres user (the server refuses root), listening only on a Unix socket in that dir. Stopped by stop(); a
// supervised child, so it dies with the test process.
import { execa } from 'execa';
import { chmod, chown, mkdir, readdir } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { spawnSupervised } from '../process/supervisor.ts';
import { makeTempDir, removeTempDir } from '../process/temp-dirs.ts';

export interface TestPostgres {
  url: string;
  stop(): Promise<void>;
}

export async function startPostgres(): Promise<TestPostgres> {
  const versions = existsSync('/usr/lib/postgresql') ? (await readdir('/usr/lib/postgresql')).sort() : [];
  const bin = versions.length ? join('/usr/lib/postgresql', versions.at(-1)!, 'bin') : undefined;
  if (!bin) throw new Error('PostgreSQL is not installed: apt-get install postgresql (scripts/setup.sh does)');
  const dir = await makeTempDir('fleetlab-pg-');
  await chmod(dir, 0o755);
  const data = join(dir, 'data');
  await mkdir(data);
  const { uid, gid } = await ids('postgres');
  await chown(data, uid, gid);
  await chown(dir, uid, gid);
  const asPostgres = ['setpriv', `--reuid=${uid}`, `--regid=${gid}`, '--init-groups', '--'];
  await execa(asPostgres[0]!, [...asPostgres.slice(1), join(bin, 'initdb'), '-D', data, '-U', 'postgres', '-A', 'trust', '--no-sync'], { timeout: 120_000 });
  const server = spawnSupervised('postgres', asPostgres[0]!, [...asPostgres.slice(1), join(bin, 'postgres'), '-D', data, '-k', dir, '-c', 'listen_addresses=', '-c', 'fsync=off']);
  const sock = join(dir, '.s.PGSQL.5432');
  const until = Date.now() + 60_000;
  while (!existsSync(sock)) {
    if (!server.running || Date.now() > until) throw new Error(`PostgreSQL did not start: ${server.stderrTail()}`);
    await new Promise((r) => setTimeout(r, 100));
  }
  return {
    url: `postgresql://postgres@localhost/postgres?host=${encodeURIComponent(dir)}`,
    stop: async () => {
      await server.stop();
      await removeTempDir(dir);
    },
  };
}

async function ids(user: string): Promise<{ uid: number; gid: number }> {
  const [uid, gid] = await Promise.all([execa('id', ['-u', user]), execa('id', ['-g', user])]);
  return { uid: Number(uid.stdout), gid: Number(gid.stdout) };
}
