// Work over many items, a few at a time: starting a fleet's machines, a rollout's wave, reading every mesh member's
// routes. At most `slots` calls run at once, items taken in order; the first failure stops taking new items and is
// thrown once the calls already started have ended (none is left running behind the caller).

/** Runs `fn` on every item, at most `slots` at a time, in order; rejects with the first failure once the started ones end. */
export async function inSlots<T>(items: T[], slots: number, fn: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  let failed: { err: unknown } | undefined;
  const worker = async () => {
    while (!failed && next < items.length) {
      const item = items[next++]!;
      await fn(item).catch((err: unknown) => {
        failed ??= { err };
      });
    }
  };
  await Promise.all(Array.from({ length: Math.min(slots, items.length) }, worker));
  if (failed) throw failed.err;
}
