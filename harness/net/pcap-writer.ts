// Packet captures in libpcap format with nanosecond timestamps (magic a1b23c4d), linktype Ethernet: what Wireshark
// and tcpdump -r open. One file per network, written as frames enter the switch.
import { createWriteStream, mkdirSync, type WriteStream } from 'node:fs';
import { dirname } from 'node:path';

const LINKTYPE_ETHERNET = 1;
const SNAPLEN = 65535;
/** Wall-clock time at start (ms) and the monotonic clock then: stamps are start + monotonic elapsed, never backwards. */
const wallAtStartMs = Date.now();
const monoAtStart = process.hrtime();
/** Wall-clock seconds and nanoseconds now. */
function now(): [number, number] {
  const [s, ns] = process.hrtime(monoAtStart);
  const total = (wallAtStartMs % 1000) * 1e6 + ns;
  return [Math.floor(wallAtStartMs / 1000) + s + Math.floor(total / 1e9), total % 1e9];
}
/** Records are gathered and written once per turn of the event loop, or when this many bytes wait. */
const FLUSH_BYTES = 256 * 1024;

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

  /** One frame, stamped with the wall clock now (nanoseconds). Written out before the event loop's next turn. */
  write(frame: Buffer): void {
    const [sec, nsec] = now();
    const caplen = Math.min(frame.length, SNAPLEN);
    const rec = Buffer.allocUnsafe(16 + caplen);
    rec.writeUInt32LE(sec, 0);
    rec.writeUInt32LE(nsec, 4);
    rec.writeUInt32LE(caplen, 8);
    rec.writeUInt32LE(frame.length, 12);
    frame.copy(rec, 16, 0, caplen);
    this.pending.push(rec);
    this.pendingBytes += rec.length;
    this.frames++;
    if (this.pendingBytes >= FLUSH_BYTES) this.flush();
    else if (!this.flushQueued) {
      this.flushQueued = true;
      setImmediate(() => this.flush());
    }
  }

  private pending: Buffer[] = [];
  private pendingBytes = 0;
  private flushQueued = false;

  private flush(): void {
    this.flushQueued = false;
    if (!this.pending.length || this.out.closed || this.out.writableEnded) return;
    this.out.write(this.pending.length === 1 ? this.pending[0]! : Buffer.concat(this.pending, this.pendingBytes));
    this.pending = [];
    this.pendingBytes = 0;
  }

  /** Flushes and closes the file. */
  close(): Promise<void> {
    this.flush();
    return new Promise((resolve) => this.out.end(resolve));
  }
}
