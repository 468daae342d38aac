// Who owns the terminal: a REPL opened on it (a pause, `fleetlab up`) holds it, and the console reporter's live block
// stays off it until it is given back.

let holders = 0;
const onHold = new Set<() => void>();

/** Calls `fn` whenever a REPL takes the terminal (the console reporter erases its live block). */
export function whenTerminalHeld(fn: () => void): void {
  onHold.add(fn);
}

/** Marks the terminal as held by a REPL until the returned function is called. */
export function holdTerminal(): () => void {
  holders++;
  for (const fn of onHold) fn();
  let released = false;
  return () => {
    if (!released) holders--;
    released = true;
  };
}

/** True while a REPL holds the terminal. */
export function terminalHeld(): boolean {
  return holders > 0;
}
