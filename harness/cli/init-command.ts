// fleetlab init: a starter for a fleet repository that adds fleetlab as a dependency: a smoke scenario, a profile of
// its own that extends a built-in one, and CI jobs (GitHub Actions, GitLab) that run the scenarios in shards side by
// side and merge them into one junit.xml and report.html.
// It never overwrites a file unless told to (--force), and says what it wrote and what it left alone.
import { existsSync } from 'node:fs';
import { appendFile, mkdir, readFile, writeFile } from 'node:fs/promises';
import { dirname, join, relative } from 'node:path';

const SCENARIO = `// A first scenario: boot a machine, run commands in it, reboot it.
//   npx fleetlab run scenarios/smoke.ts                         on fleetlab's default VM
//   npx fleetlab run scenarios/smoke.ts --machine my-device     on the profile in machines/my-device.ts
import assert from 'node:assert/strict';
import { scenario } from 'fleetlab';

export const smoke = scenario({
  name: 'smoke',
  machines: { main: 'x86_64-direct' },
  timeout: 5 * 60_000,
  async run({ machines: { main }, step }) {
    await step('the shell answers', async () => {
      assert.equal((await main.succeed('echo hello')).trim(), 'hello');
      assert.equal((await main.execute('exit 3')).exitCode, 3);
    });
    await step('hostname is the machine name', async () => {
      assert.equal((await main.succeed('hostname')).trim(), main.name);
    });
    await step('reboot changes the boot id', async () => {
      const before = await main.bootId();
      await main.reboot();
      assert.notEqual(await main.bootId(), before);
    });
  },
});
`;

const PROFILE = `// A machine profile of this fleet: fleetlab's x86_64 UEFI VM with more memory. Profiles in machines/ are found by
// name (--machine my-device, or machines: { main: 'my-device' } in a scenario); see fleetlab's docs/profiles.md for every field.
import { extendProfile, profiles } from 'fleetlab';

export default extendProfile(profiles['x86_64-uefi']!, {
  name: 'my-device',
  description: 'x86_64 UEFI mini PC of the fleet (fleetlab testbed guest)',
  qemu: { memoryMiB: 512 },
});
`;

const CONFIG = `// fleetlab's defaults for this repository: \`fleetlab run\`, \`list\` and \`gate\` read them; an option on the command
// line overrides them, and \`--project NAME\` lays a project's settings over them. Every key: fleetlab's docs/config.md.
import { defineConfig } from 'fleetlab';

export default defineConfig({
  paths: ['scenarios'],
  retries: 1,
  gate: { failOn: ['new', 'still-failing', 'known-expired'], maxInfraErrors: 0 },
  projects: {
    // Pull requests: the fleet's own profile only.
    pr: { machine: ['my-device'] },
    // Nightly: the whole matrix, each case twice, warm starts.
    nightly: { machine: ['my-device', 'x86_64-bios', 'aarch64-uefi'], repeatEach: 2, warm: true },
  },
});
`;

const GITHUB = `# fleetlab scenarios on every push, split into shards that run side by side (one job each: add numbers to
# matrix.shard to split wider; each job takes its index from GitHub's strategy context), then one job that merges the
# shards' junit.xml into one report.html; junit.xml feeds the test summary, the reports are kept as artifacts.
name: fleetlab
on: [push, pull_request]
jobs:
  scenarios:
    runs-on: ubuntu-24.04
    timeout-minutes: 60
    strategy:
      fail-fast: false
      matrix:
        shard: [1, 2]
    steps:
      - uses: actions/checkout@v4
      - uses: actions/setup-node@v4
        with: { node-version: 24, cache: npm }
      - run: npm ci
      - run: sudo npx fleetlab setup        # QEMU, firmware and tools from apt; testbed images, cached
      - uses: actions/cache@v4
        with:
          path: ~/.cache/fleetlab
          key: fleetlab-\${{ runner.os }}-\${{ hashFiles('package-lock.json') }}
      - run: npx fleetlab run scenarios/ --shard $((\${{ strategy.job-index }} + 1))/\${{ strategy.job-total }} -o reports/shard-\${{ matrix.shard }}
        env: { CI: 'true' }
      - if: always()
        uses: actions/upload-artifact@v4
        with:
          name: fleetlab-shard-\${{ matrix.shard }}
          path: reports/shard-\${{ matrix.shard }}/
  report:
    needs: scenarios
    if: always()
    runs-on: ubuntu-24.04
    steps:
      - uses: actions/checkout@v4
      - uses: actions/setup-node@v4
        with: { node-version: 24, cache: npm }
      - run: npm ci
      - uses: actions/download-artifact@v4
        with: { pattern: fleetlab-shard-*, path: reports/shards }
      - run: npx fleetlab report merge reports/shards/* -o reports/all/junit.xml --history none
      - if: always()
        uses: actions/upload-artifact@v4
        with: { name: fleetlab-report, path: reports/all/ }
      - if: always()
        uses: mikepenz/action-junit-report@v5
        with: { report_paths: reports/all/junit.xml }
`;

const GITLAB = `# fleetlab scenarios in GitLab CI: include this file from .gitlab-ci.yml (include: local: ci/fleetlab.gitlab-ci.yml).
# The scenarios run in shards side by side (parallel: N; each job takes its shard from CI_NODE_INDEX/CI_NODE_TOTAL),
# then fleetlab-report merges the shards' junit.xml into one report.html.
fleetlab:
  image: debian:12
  timeout: 1h
  parallel: 2
  variables: { CI: 'true' }
  before_script:
    - apt-get update -qq && apt-get install -y -qq nodejs npm
    - npm ci
    - npx fleetlab setup
  script:
    - npx fleetlab run scenarios/ --shard $CI_NODE_INDEX/$CI_NODE_TOTAL -o reports/shard-$CI_NODE_INDEX
  artifacts:
    when: always
    paths: [reports/shard-*/]
    reports:
      junit: reports/shard-*/junit.xml

fleetlab-report:
  image: debian:12
  needs: [fleetlab]
  when: always
  before_script:
    - apt-get update -qq && apt-get install -y -qq nodejs npm
    - npm ci
  script:
    - npx fleetlab report merge reports/shard-* -o reports/all/junit.xml --history none
  artifacts:
    when: always
    paths: [reports/all/]
`;

/** The files init writes, by path relative to the repository. */
export const STARTER_FILES: Readonly<Record<string, string>> = {
  'fleetlab.config.ts': CONFIG,
  'scenarios/smoke.ts': SCENARIO,
  'machines/my-device.ts': PROFILE,
  '.github/workflows/fleetlab.yml': GITHUB,
  'ci/fleetlab.gitlab-ci.yml': GITLAB,
};

export interface InitResult {
  written: string[];
  kept: string[];
}

/** Writes the starter into `dir`; existing files are kept unless `force`. reports/ goes into .gitignore. */
export async function initRepository(dir: string, opts: { force?: boolean } = {}): Promise<InitResult> {
  const result: InitResult = { written: [], kept: [] };
  for (const [path, text] of Object.entries(STARTER_FILES)) {
    const file = join(dir, path);
    if (existsSync(file) && !opts.force) {
      result.kept.push(path);
      continue;
    }
    await mkdir(dirname(file), { recursive: true });
    await writeFile(file, text);
    result.written.push(path);
  }
  const ignore = join(dir, '.gitignore');
  const lines = existsSync(ignore) ? (await readFile(ignore, 'utf8')).split('\n') : [];
  if (!lines.some((l) => /^\/?reports\/?$/.test(l.trim()))) {
    await appendFile(ignore, `${lines.length && lines.at(-1) !== '' ? '\n' : ''}# fleetlab's run output\nreports/\n`);
    result.written.push(relative(dir, ignore));
  }
  return result;
}
