// The REPL of a pause and of `fleetlab up`: Node's repl with the machines and the case's context bound, `await` at
// top level, tab completion and a history file. Commands run outside the scenario's deadlines: each machine method
// waits as long as its own default (or { timeout }) allows, and ends when its machine dies.
import repl, { type REPLServer } from 'node:repl';
import { outsideDeadlines } from '../time/deadline.ts';

export interface ReplOptions {
  input: NodeJS.ReadableStream;
  output: NodeJS.WritableStream;
  /** Line editing, colours and completion previews (a terminal, or an attach from one). */
  terminal: boolean;
  prompt: string;
  /** Names bound in the REPL's context. */
  bindings: Record<string, unknown>;
  /** Dot-commands that end the REPL with their name (.continue, .abort), with their help. */
  commands: Record<string, string>;
  /** Where the REPL keeps its history across sessions. */
  historyFile?: string;
}

/** How a REPL ended: one of its commands, or .exit / Ctrl-D / its stream closing. */
export type ReplEnd = { command: string } | { exit: true };

/** Starts a REPL; `ended` resolves once one of its commands, .exit or Ctrl-D ends it. */
export function openRepl(o: ReplOptions): { server: REPLServer; ended: Promise<ReplEnd>; close(): void } {
  const server = repl.start({ prompt: o.prompt, input: o.input, output: o.output, terminal: o.terminal, useColors: o.terminal, ignoreUndefined: true });
  for (const [name, value] of Object.entries(o.bindings)) Object.defineProperty(server.context, name, { value, writable: true, configurable: true, enumerable: true });
  const evaluate = server.eval;
  (server as { eval: REPLServer['eval'] }).eval = function (this: REPLServer, ...args: Parameters<REPLServer['eval']>) {
    outsideDeadlines(() => evaluate.apply(this, args));
  } as REPLServer['eval'];
  let end!: (e: ReplEnd) => void;
  const ended = new Promise<ReplEnd>((r) => (end = r));
  for (const [name, help] of Object.entries(o.commands)) {
    server.defineCommand(name, {
      help,
      action() {
        end({ command: name });
        server.close();
      },
    });
  }
  server.on('exit', () => end({ exit: true }));
  if (o.historyFile) server.setupHistory(o.historyFile, () => undefined);
  return { server, ended, close: () => server.close() };
}

/** Names a REPL can bind a machine to: an identifier that is not a binding already. */
export function bindable(name: string, taken: Record<string, unknown>): boolean {
  return /^[A-Za-z_$][\w$]*$/.test(name) && !(name in taken) && !['await', 'this', 'process', 'require', 'globalThis'].includes(name);
}
