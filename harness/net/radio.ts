// A radio model for a mesh network: its members stand at positions on a plane (a topology's, or written out), and
// each link's loss and delay follow from the distance between its ends; beyond `range` the link is down. Every pair
// of members is a possible link, so ctx.net.move(node, x, y) can bring links up and down as a node walks.
//   networks: { mesh: { topology: randomGeometric('node', { radius: 1.6, seed: 7 }), radio: { range: 1.6 }, batman: true } }
// The model (a simple one, stated so a test can check it): at distance d ≤ range, loss = lossAtRange · (d / range)²
// and delay = delayMs + delayMsPerUnit · d; past range, down.

/** How distance sets a link's conditions. */
export interface RadioModel {
  /** How far a node is heard, in the positions' units; past it the link is down. */
  range: number;
  /** Loss at the edge of the range (0..1); it grows with the square of the distance from 0. Default 0.2. */
  lossAtRange?: number;
  /** Delay of every link in ms, plus delayMsPerUnit per unit of distance. Defaults 1 and 2. */
  delayMs?: number;
  delayMsPerUnit?: number;
}

export type Radio = Required<RadioModel>;

/** `m` with its defaults. */
export function radioWithDefaults(m: RadioModel): Radio {
  return { lossAtRange: 0.2, delayMs: 1, delayMsPerUnit: 2, ...m };
}

/** The conditions of a link whose ends are `d` apart. */
export function radioConditions(d: number, r: Radio): { up: boolean; loss: number; delayMs: number } {
  if (d > r.range) return { up: false, loss: 0, delayMs: 0 };
  const f = d / r.range;
  return { up: true, loss: Math.round(r.lossAtRange * f * f * 10_000) / 10_000, delayMs: Math.round(r.delayMs + r.delayMsPerUnit * d) };
}

/** What is wrong with radio model `m` for a network of `members` at `positions`, or undefined. */
export function radioProblem(m: unknown, members: string[], positions: Record<string, [number, number]> | undefined): string | undefined {
  if (typeof m !== 'object' || m === null || Array.isArray(m)) return `expected { range, lossAtRange?, delayMs?, delayMsPerUnit? }, got ${JSON.stringify(m)}`;
  const r = m as Record<string, unknown>;
  const extra = Object.keys(r).filter((k) => !['range', 'lossAtRange', 'delayMs', 'delayMsPerUnit'].includes(k));
  if (extra.length) return `unknown setting ${extra.map((k) => `"${k}"`).join(', ')} (known: range, lossAtRange, delayMs, delayMsPerUnit)`;
  if (typeof r.range !== 'number' || !(r.range > 0)) return `range: ${JSON.stringify(r.range)} is not a distance above 0`;
  if (r.lossAtRange !== undefined && (typeof r.lossAtRange !== 'number' || !(r.lossAtRange >= 0 && r.lossAtRange <= 1))) return `lossAtRange: ${JSON.stringify(r.lossAtRange)} is not a probability from 0 to 1`;
  for (const k of ['delayMs', 'delayMsPerUnit'] as const) if (r[k] !== undefined && (typeof r[k] !== 'number' || !(r[k] >= 0))) return `${k}: ${JSON.stringify(r[k])} is not a number of ms from 0`;
  const unplaced = members.filter((x) => !positions?.[x]);
  if (unplaced.length) return `places its members by distance, but ${unplaced.join(', ')} ${unplaced.length > 1 ? 'have' : 'has'} no position: give the network a topology (grid, ring, line, randomGeometric) or positions: { name: [x, y] }`;
  return undefined;
}

/** Distance between two places. */
export function distance(a: [number, number], b: [number, number]): number {
  return Math.hypot(a[0] - b[0], a[1] - b[1]);
}
