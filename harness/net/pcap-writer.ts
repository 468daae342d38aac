// Packet captures in libpcap format with nanosecond timestamps (magic a1b23c4d), linktype Ethernet: what Wireshark
// and tcpdump -r open. One file per network, written as frames enter the switch.
import { createWriteStream, mkdirSync, type WriteStream } from 'node:fs';
import { dirname } from 'node:path';

const LINKTYPE_ETHERNET = 1;
const SNAPLEN = 65535;
/** Wall-clock nanoseconds now: the wall clock read once, then the monotonic clock, so stamps never go backwards. */
const wallAtStart = BigInt(Date.now()) * 1_000_000n;
const monoAtStart = process.hrtime.bigint();
function nowNs(): bigint {
  return wallAtStart + (process.hrtime.bigint() - monoAtStart);
}

/** Appends Ethernet frames to a pcap file. */
export class PcapWriter {
  readonly path: string;
  private readonly out: WriteStream;
  /** Frames written so far. */
  frames = 0;

  constructor(path: string) {
    this.path = path;
    mkdirSync(dirname(path), { recursive: true });
    this.out = createWriteStream(path);
    const header = Buffer.alloc(24);
    header.writeUInt32LE(0xa1b23c4d, 0); // nanosecond-resolution pcap
    header.writeUInt16LE(2, 4);
    header.writeUInt16LE(4, 6);
    header.writeInt32LE(0, 8);
    header.writeUInt32LE(0, 12);
    header.writeUInt32LE(SNAPLEN, 16);
    header.writeUInt32LE(LINKTYPE_ETHERNET, 20);
    this.out.write(header);
  }

  /** One frame, stamped with the wall clock now (nanoseconds). */
  write(frame: Buffer, atNs: bigint = nowNs()): void {
    const rec = Buffer.alloc(16);
    rec.writeUInt32LE(Number(atNs / 1_000_000_000n), 0);
    rec.writeUInt32LE(Number(atNs % 1_000_000_000n), 4);
    const caplen = Math.min(frame.length, SNAPLEN);
    rec.writeUInt32LE(caplen, 8);
    rec.writeUInt32LE(frame.length, 12);
    this.out.write(Buffer.concat([rec, frame.subarray(0, caplen)]));
    this.frames++;
  }

  /** Flushes and closes the file. */
  close(): Promise<void> {
    return new Promise((resolve) => this.out.end(resolve));
  }
}
