// A REPL session: machines served (consoles, SSH) and published for `fleetlab console/ssh/attach`, the REPL on this
// terminal when asked, and on a Unix socket for `fleetlab attach`. A pause (pauses.ts) and `fleetlab up` are each one.
import { createServer, type Server, type Socket } from 'node:net';
import { join } from 'node:path';
import { cacheDir } from '../cache/cache-dir.ts';
import type { Machine } from '../protocols/machine.ts';
import { accessLines, serveMachines } from './machine-access.ts';
import { openRepl, type ReplEnd } from './repl.ts';
import { openSessionDir, type SessionInfo } from './sessions.ts';
import { holdTerminal } from './terminal.ts';

export interface ReplSessionOptions {
  id: string;
  kind: SessionInfo['kind'];
  title: string;
  outputDir?: string;
  machines: Machine[];
  bindings: Record<string, unknown>;
  prompt: string;
  /** Dot-commands that end the session (.continue, .abort), with their help. */
  commands: Record<string, string>;
  /** The REPL on this process's stdin/stdout too (a terminal, or `fleetlab up`'s stdin). */
  local?: { terminal: boolean };
  /** Printed first (after the terminal is held), then how to reach each machine. */
  banner: string;
  /** Printed after them, before the REPL's prompt. */
  hint: string;
  /** What an attached client is told first. */
  greeting: string;
  say(line: string): void;
}

/** How a session ended: one of its commands (from any REPL), or the local REPL's .exit / Ctrl-D / end of input. */
export type SessionEnd = { command: string } | { exit: true };

export interface ReplSession {
  /** The REPL's Unix socket. */
  replPath: string;
  /** Resolves once a command or the local REPL's exit ends it. */
  ended: Promise<SessionEnd>;
  /** Closes every REPL, the sockets and the session's folder (the machines keep running). */
  close(): void;
}

/** Opens the session: prints how to reach each machine, then serves. */
export function openReplSession(o: ReplSessionOptions): ReplSession {
  const release = o.local?.terminal ? holdTerminal() : undefined;
  const dir = openSessionDir(o.id);
  const served = serveMachines(o.machines, dir.dir);
  const replPath = join(dir.dir, 'repl.sock');
  const repls = new Set<{ close(): void }>();
  const clients = new Set<Socket>();
  let end!: (e: SessionEnd) => void;
  const ended = new Promise<SessionEnd>((r) => (end = r));
  const start = (input: NodeJS.ReadableStream, output: NodeJS.WritableStream, terminal: boolean, local: boolean) => {
    const r = openRepl({ input, output, terminal, prompt: o.prompt, bindings: o.bindings, commands: o.commands, historyFile: cacheDir('repl_history') });
    repls.add(r);
    void r.ended.then((e: ReplEnd) => {
      repls.delete(r);
      // An attached client that leaves only detaches; the local REPL's end ends the session.
      if ('command' in e || local) end(e);
    });
    return r;
  };
  const server = listenForAttach(replPath, (sock, terminal) => {
    sock.write(o.greeting.replace(/\n/g, '\r\n'));
    clients.add(sock);
    const r = start(sock, sock, terminal, false);
    r.server.on('exit', () => sock.end());
    sock.on('close', () => {
      clients.delete(sock);
      r.close();
    });
  });
  dir.publish({ id: o.id, kind: o.kind, pid: process.pid, title: o.title, outputDir: o.outputDir, repl: replPath, machines: served.machines });
  o.say(o.banner);
  for (const l of accessLines(served.machines)) o.say(l);
  o.say(o.hint);
  if (o.local) start(process.stdin, process.stdout, o.local.terminal, true);
  let closed = false;
  return {
    replPath,
    ended,
    close: () => {
      if (closed) return;
      closed = true;
      for (const r of [...repls]) r.close();
      for (const c of clients) c.end();
      server.close();
      served.close();
      dir.remove();
      release?.();
      if (o.local) {
        if (process.stdin.isTTY) process.stdin.setRawMode(false);
        process.stdin.pause();
      }
    },
  };
}

/** The line `fleetlab attach` sends first: whether it is a terminal (the REPL then edits lines) and its width. */
export interface AttachHello {
  fleetlabAttach: 1;
  terminal: boolean;
  columns?: number;
}

/**
 * A Unix socket for `fleetlab attach`: its clients first send an AttachHello line, then the REPL's input; any other
 * client (socat) gets a plain REPL. `onClient` gets the socket past that line.
 */
function listenForAttach(path: string, onClient: (sock: Socket, terminal: boolean) => void): Server {
  const server = createServer((sock) => {
    sock.on('error', () => undefined);
    let buf = Buffer.alloc(0);
    const onData = (d: Buffer) => {
      buf = Buffer.concat([buf, d]);
      const nl = buf.indexOf(10);
      if (nl < 0) return;
      sock.off('data', onData);
      sock.pause();
      let hello: AttachHello | undefined;
      try {
        const h = JSON.parse(buf.subarray(0, nl).toString()) as AttachHello;
        if (h.fleetlabAttach === 1) hello = h;
      } catch {
        /* a plain client (socat): its first line is the REPL's */
      }
      const rest = hello ? buf.subarray(nl + 1) : buf;
      if (rest.length) sock.unshift(rest);
      if (hello?.columns) Object.assign(sock, { columns: hello.columns });
      onClient(sock, !!hello?.terminal);
      sock.resume();
    };
    sock.on('data', onData);
  });
  server.listen(path);
  return server;
}
