// Sizes as people write them: "4G", "512M", "1.5GiB", "2T", or bytes. Binary units (K = 1024), as qemu-img reads them.
import { ConfigurationError } from '../errors/fleetlab-error.ts';

const UNITS: Record<string, number> = { '': 1, b: 1, k: 2 ** 10, m: 2 ** 20, g: 2 ** 30, t: 2 ** 40 };

/** Bytes of `v`; a configuration error naming `field` when it is no size, or not whole 512-byte sectors. */
export function parseSize(v: unknown, field: string): number {
  const hint = 'write a size like "4G", "512M" or "1.5GiB" (binary units), or a number of bytes';
  let bytes: number | undefined;
  if (typeof v === 'number') bytes = v;
  else if (typeof v === 'string') {
    const m = /^\s*(\d+(?:\.\d+)?)\s*([kmgt]?)(?:i?b)?\s*$/i.exec(v) ?? /^\s*(\d+)\s*()b?\s*$/i.exec(v);
    if (m) bytes = Math.round(Number(m[1]) * UNITS[m[2]!.toLowerCase()]!);
  }
  if (bytes === undefined || !Number.isFinite(bytes)) throw new ConfigurationError(`${field}: "${String(v)}" is no size; ${hint}`, { details: { field, value: v } });
  if (bytes < 2 ** 20) throw new ConfigurationError(`${field}: ${String(v)} is ${bytes} bytes; a disk needs at least 1M`, { details: { field, value: v } });
  if (bytes % 512 !== 0) throw new ConfigurationError(`${field}: ${String(v)} is ${bytes} bytes, not a whole number of 512-byte sectors`, { details: { field, value: v } });
  return bytes;
}
