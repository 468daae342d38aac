// How a console reads a pattern: a string is a regular expression, as the NixOS test driver reads one; with
// { literal: true } it is plain text; a string that is no regex is refused at the call, naming the literal form.
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ConfigurationError } from '../errors/fleetlab-error.ts';
import { ConsoleLog } from './console-log.ts';
import { StreamConsole } from './stream-console.ts';

async function consoleWith(text: string): Promise<StreamConsole> {
  const c = new StreamConsole('ttyS0', 'm', new ConsoleLog(join(await mkdtemp(join(tmpdir(), 'fleetlab-console-')), 'm.log')));
  c.feed(Buffer.from(text));
  return c;
}

describe('console patterns', () => {
  it('reads a string as a regular expression (NTD), and as plain text with { literal: true }', async () => {
    expect((await (await consoleWith('Welcome to NixOS 26.05 (x86_64)\n')).expect('NixOS \\d+\\.\\d+', { timeout: '1s' }))[0]).toBe('NixOS 26.05');
    expect((await (await consoleWith('Welcome to NixOS 26.05 (x86_64)\n')).expect('26.05 (x86_64)', { literal: true, timeout: '1s' }))[0]).toBe('26.05 (x86_64)');
    // The same text as a regex: the parentheses group, so "(x86_64)" is not matched with its brackets.
    const c = await consoleWith('started (1 of 3)\n');
    await expect(c.expect('started (1 of 3)', { timeout: '500ms' })).rejects.toThrow(/to print text matching/);
  });

  it('refuses a string that is no regular expression at the call, naming { literal: true }', async () => {
    const c = await consoleWith('a (b\n');
    const err = await c.expect('a (b', { timeout: '1s' }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ConfigurationError);
    expect((err as Error).message).toMatch(/"a \(b" is no regular expression .*pass \{ literal: true \}/);
    expect((await c.expect('a (b', { literal: true, timeout: '1s' }))[0]).toBe('a (b');
  });
});
