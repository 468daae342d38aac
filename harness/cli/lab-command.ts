// fleetlab lab …: a lab's boards, their leases, reservations and quarantine; power and health checks by hand.
import type { Argv } from 'yargs';
import { ConfigurationError, InfrastructureError } from '../errors/fleetlab-error.ts';
import type { Board } from '../../lab/board.ts';
import { LabSession } from '../../lab/lab-session.ts';
import { ownerId } from '../../lab/lease-store.ts';
import { age, checkBoard, type HealthVerdict } from '../../lab/health.ts';
import { makeTempDir } from '../process/temp-dirs.ts';
import { execa } from 'execa';
import { LabHost } from '../../lab/lab-host.ts';
import { loadLab } from '../../lab/inventory.ts';
import { classify, parseUdevDb, suggestion, UDEV_DB_SCRIPT } from '../../lab/discover.ts';
import { join, resolve } from 'node:path';

/** "2h", "90m", "1h30m", "45s" in ms. */
export function parseDuration(text: string): number {
  const m = /^(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?$/.exec(text.trim());
  if (!m || !text.trim() || (!m[1] && !m[2] && !m[3])) throw new ConfigurationError(`--for ${JSON.stringify(text)}: a duration such as 2h, 90m, 1h30m or 45s`);
  return ((Number(m[1] ?? 0) * 60 + Number(m[2] ?? 0)) * 60 + Number(m[3] ?? 0)) * 1000;
}

/** Who a person is, for reservations: $FLEETLAB_USER, else the login name and host. */
function personId(): string {
  return process.env.FLEETLAB_USER ?? `${process.env.USER ?? 'someone'}@${ownerId('x').split(':')[0]}`;
}

const labOptions = <T>(y: Argv<T>) =>
  y
    .option('lab', { type: 'string', describe: 'The lab inventory (lab/*.ts); every subcommand but suggest needs it' })
    .option('lab-db', { type: 'string', describe: "Where the lab's leases are: a SQLite file or postgres://… (default: ~/.local/state/fleetlab/lab-<name>.sqlite)" });

async function withLab<T>(argv: { lab?: string; labDb?: string }, fn: (s: LabSession) => Promise<T>, provision = false): Promise<T> {
  if (!argv.lab) throw new ConfigurationError('this fleetlab lab subcommand needs --lab FILE (a lab inventory, such as lab/example-virtual.ts)');
  const s = await LabSession.open(argv.lab, { db: argv.labDb, provision });
  try {
    return await fn(s);
  } finally {
    await s.close();
  }
}

type LabArgs = { lab?: string; labDb?: string };

/** `lab status`: every board with its state. */
async function status(argv: LabArgs & { json: boolean }): Promise<void> {
  const rows = await withLab(argv, async (s) => Promise.all((await s.status()).map(async (r) => ({ ...r, health: await s.store.health(r.board) }))));
  if (argv.json) {
    console.log(JSON.stringify({ lab: argv.lab, boards: rows }, null, 2));
    return;
  }
  for (const r of rows) {
    const detail = r.state === 'leased' ? `by ${r.owner} until ${r.expiresAt}` : r.state === 'reserved' ? `by ${r.holder} until ${r.until}${r.reason ? ` (${r.reason})` : ''}` : r.state === 'quarantined' ? `since ${r.since}: ${r.reason}` : '';
    const h = r.health ? `  health: ${r.health.ok ? 'passed' : 'failed'} ${age(r.health.at)} ago${r.health.ok || r.state === 'quarantined' ? '' : ` (${r.health.detail})`}` : '  health: never checked';
    console.log(`${r.board.padEnd(16)} ${r.state.padEnd(12)} ${detail}`.trimEnd() + (r.tags.length ? `  [${r.tags.join(', ')}]` : '') + h);
  }
}

/** `lab reserve`: the first board no one else holds, reserved for a person (leased for a moment so no runner takes it meanwhile). */
async function reserve(argv: LabArgs & { boards: string; for: string; reason?: string }): Promise<void> {
  const ms = parseDuration(argv.for);
  await withLab(argv, async (s) => {
    const candidates = s.candidates(argv.boards);
    const who = personId();
    const lease = await s.store.acquire(candidates, s.owner, 10_000);
    if (!lease) throw new InfrastructureError(`no board of ${candidates.join(', ')} is free to reserve; see fleetlab lab status`);
    await s.store.reserve(lease.board, who, Date.now() + ms, argv.reason);
    await s.store.release(lease.board, s.owner);
    console.log(`${lease.board} reserved by ${who} until ${new Date(Date.now() + ms).toISOString()}`);
  });
}

/** `lab release`: ends a reservation (yours, or with --force anyone's). */
async function release(argv: LabArgs & { board: string; force: boolean }): Promise<void> {
  await withLab(argv, async (s) => {
    const [board] = s.candidates(argv.board);
    await s.store.unreserve(board!, argv.force ? undefined : personId());
    console.log(`${board}: ${(await s.store.state(board!)).state}`);
  });
}

/** `lab acquire`: a lease held, renewed, until Ctrl-C. */
async function acquire(argv: LabArgs & { boards: string }): Promise<void> {
  await withLab(argv, async (s) => {
    const lease = await s.store.acquire(s.candidates(argv.boards), s.owner, s.ttlMs);
    if (!lease) throw new InfrastructureError(`no board of ${argv.boards} is free; see fleetlab lab status`);
    console.log(`${lease.board} leased by ${s.owner}; Ctrl-C releases it`);
    const renew = setInterval(() => void s.store.renew(lease.board, s.owner, s.ttlMs), s.ttlMs / 3);
    await new Promise<void>((done) => {
      process.once('SIGINT', done);
      process.once('SIGTERM', done);
    });
    clearInterval(renew);
    await s.store.release(lease.board, s.owner);
    console.log(`${lease.board} released`);
  });
}

/** Runs `fn` with board `name` of the lab (provisioned), leased for it and given back after. */
function withBoard<T>(argv: LabArgs & { board: string }, opts: { whyFree: string; evenQuarantined?: boolean }, fn: (board: Board, name: string, s: LabSession) => Promise<T>): Promise<T> {
  return withLab(
    argv,
    async (s) => {
      const [name] = s.candidates(argv.board);
      return s.withBoard(name!, (board) => fn(board, name!, s), opts);
    },
    true,
  );
}

/** `lab power`: on, off or cycle. */
async function power(argv: LabArgs & { board: string; action: string }): Promise<void> {
  await withBoard(argv, { whyFree: 'fleetlab lab status says by whom' }, async (board, name) => {
    if (argv.action !== 'on') await board.power.set(false);
    if (argv.action === 'cycle') await new Promise((r) => setTimeout(r, board.spec.power.offDelayMs));
    if (argv.action !== 'off') await board.power.set(true);
    console.log(`${name}: power ${argv.action} (${board.power.describe})`);
  });
}

/** `lab console`: this terminal on the board's serial line until Ctrl-]. */
async function attach(argv: LabArgs & { board: string }): Promise<void> {
  await withBoard(argv, { whyFree: 'fleetlab lab status says by whom' }, async (board, name) => {
    try {
      const con = await board.attachConsole();
      process.stderr.write(`attached to ${name}'s serial line ${board.serialDevice} (Ctrl-] to detach); log ${board.log.path}\n`);
      const off = board.log.onLine((line) => process.stdout.write(`${line}\r\n`));
      if (process.stdin.isTTY) process.stdin.setRawMode(true);
      await new Promise<void>((done) => {
        process.stdin.on('data', (d: Buffer) => {
          if (d.includes(0x1d)) return done();
          void con.write(d.toString('utf8')).catch(() => done());
        });
        process.stdin.once('end', () => done());
      });
      off();
      if (process.stdin.isTTY) process.stdin.setRawMode(false);
      process.stdin.pause();
    } finally {
      board.detachConsole();
    }
  });
}

/** One line of a health verdict. */
function verdictLine(v: HealthVerdict): string {
  return `${v.board}: ${v.verdict}: ${v.detail}${v.log ? `; log ${v.log}` : ''}`;
}

/** `lab check`: one board's health check; a pass takes it out of quarantine, a failure puts it in. */
async function check(argv: LabArgs & { board: string }): Promise<void> {
  const v = await withLab(argv, async (s) => {
    if (!s.lab.boards[argv.board]) throw new ConfigurationError(`${s.label} has no board "${argv.board}"; it has ${Object.keys(s.lab.boards).join(', ')}`);
    return checkBoard(s, argv.board, { logDir: await makeTempDir('fleetlab-logs-lab-') });
  }, true);
  console.log(verdictLine(v));
  process.exitCode = v.verdict === 'quarantined' ? 3 : 0;
}

/**
 * `lab health`: every board's (or the named ones') health check, one after the other, a verdict line each; with
 * --every, again on that schedule until Ctrl-C. Exit 3 when a board was quarantined.
 */
async function health(argv: LabArgs & { boards?: string[]; every?: string; output?: string }): Promise<void> {
  const everyMs = argv.every ? parseDuration(argv.every) : undefined;
  let stop = false;
  const onSignal = () => (stop = true);
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  try {
    await withLab(argv, async (s) => {
      const names = argv.boards?.length ? argv.boards.flatMap((b) => s.candidates(b)) : Object.keys(s.lab.boards);
      for (;;) {
        const round = new Date().toISOString().replace(/[:.]/g, '-');
        const dir = resolve(argv.output ?? join('reports', 'lab-health'), round);
        let quarantined = 0;
        for (const name of names) {
          if (stop) break;
          const v = await checkBoard(s, name, { logDir: join(dir, name) });
          if (v.verdict === 'quarantined') quarantined++;
          console.log(verdictLine(v));
        }
        process.exitCode = quarantined ? 3 : 0;
        if (!everyMs || stop) return;
        console.log(`lab health: next round at ${new Date(Date.now() + everyMs).toISOString()} (Ctrl-C ends)`);
        for (const until = Date.now() + everyMs; Date.now() < until && !stop; ) await new Promise((r) => setTimeout(r, Math.min(1000, until - Date.now())));
        if (stop) return;
      }
    }, true);
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
}

/** `lab suggest`: the lab hardware on this host, or on a lab host of --lab over SSH, as lab-file lines. */
async function suggest(argv: LabArgs & { host?: string }): Promise<void> {
  let out: string;
  if (argv.host) {
    // The host named before the lab is provisioned (its provision hook may start a lab's worth of stand-ins).
    if (!argv.lab) throw new ConfigurationError('fleetlab lab suggest --host needs --lab FILE, whose hosts it names');
    const lab = await loadLab(argv.lab);
    if (!lab.hosts[argv.host]) throw new ConfigurationError(`lab ${lab.name} (${lab.file}) has no host "${argv.host}"; it has ${Object.keys(lab.hosts).join(', ') || 'none'}`);
    out = await withLab(argv, async (s) => {
      const host = new LabHost(argv.host!, s.lab.hosts[argv.host!]!);
      try {
        const r = await host.exec(UDEV_DB_SCRIPT, { timeoutMs: 30_000, what: 'reading its udev database' });
        if (r.exitCode !== 0) throw new InfrastructureError(`${host.describe}: reading its udev database exited ${r.exitCode}: ${r.stderr.trim().slice(0, 300)}`);
        return suggestion(classify(parseUdevDb(r.stdout)), host.describe);
      } finally {
        host.close();
      }
    }, true);
  } else {
    const r = await execa('sh', ['-c', UDEV_DB_SCRIPT], { reject: false, timeout: 30_000 });
    if (r.exitCode !== 0) throw new InfrastructureError(`reading this host's udev database exited ${r.exitCode}: ${r.stderr.trim().slice(0, 300)}`);
    out = suggestion(classify(parseUdevDb(r.stdout)), 'this host');
  }
  console.log(out);
}

/** `lab`'s subcommands. */
export function labCommand<T>(yy: Argv<T>) {
  const board = <U>(z: Argv<U>) => z.positional('board', { type: 'string', demandOption: true });
  return labOptions(yy)
    .command('status', 'Every board with its state: free, leased (owner, expiry), reserved (holder, end) or quarantined (reason)', (z) => z.option('json', { type: 'boolean', default: false, describe: 'Print JSON' }), (argv) => status(argv))
    .command(
      'reserve <boards>',
      'Reserve a board (or the first free one of tag:<tag>) for a person; runs skip it (or wait) until the end',
      (z) =>
        z
          .positional('boards', { type: 'string', demandOption: true, describe: 'board:<name>, <name> or tag:<tag>' })
          .option('for', { type: 'string', default: '2h', describe: 'How long: 2h, 90m, 1h30m' })
          .option('reason', { type: 'string', describe: 'Why, shown in status' }),
      (argv) => reserve(argv),
    )
    .command('release <board>', "End your reservation of a board (--force: anyone's reservation)", (z) => board(z).option('force', { type: 'boolean', default: false }), (argv) => release(argv))
    .command('acquire <boards>', 'Lease a board (or one of tag:<tag>) and hold it, renewed, until Ctrl-C', (z) => z.positional('boards', { type: 'string', demandOption: true }), (argv) => acquire(argv))
    .command('power <board> <action>', 'Switch a board: on, off or cycle (it must not be leased by someone else)', (z) => board(z).positional('action', { type: 'string', choices: ['on', 'off', 'cycle'], demandOption: true }), (argv) => power(argv))
    .command('console <board>', "Attach this terminal to a board's serial line (leased while attached; the power left as it is); Ctrl-] detaches", (z) => board(z), (argv) => attach(argv))
    .command('check <board>', 'Health check: power off and on (read back), the serial line alive, a login shell, uname; a pass takes the board out of quarantine, a failure puts it in', (z) => board(z), (argv) => check(argv))
    .command(
      'health [boards..]',
      "Every board's health check (or those named: <name>, board:<name>, tag:<tag>), a verdict line each; failures are quarantined with the reason and log; --every repeats",
      (z) =>
        z
          .positional('boards', { type: 'string', array: true })
          .option('every', { type: 'string', describe: 'Check again on this schedule (6h, 30m) until Ctrl-C' })
          .option('output', { alias: 'o', type: 'string', describe: 'Where the checks\' console logs go (default: reports/lab-health/<time>/<board>/)' }),
      (argv) => health(argv),
    )
    .command('suggest', 'The USB serial adapters, USB-SD-Muxes, SDWires and HID relays on this host (or --host, a lab host of --lab, over SSH), by their udev properties, as lab-file lines', (z) => z.option('host', { type: 'string', describe: 'A host of the --lab file' }), (argv) => suggest(argv))
    .demandCommand(1, 'lab needs a subcommand: status, reserve, release, acquire, power, console, check, health or suggest');
}
