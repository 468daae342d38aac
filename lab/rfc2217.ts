// A serial line over RFC 2217 (Telnet Com Port Control): what ser2net's `telnet(rfc2217)` accepter speaks. The
// telnet layer is undone (IAC sequences answered or stripped, 0xFF doubled on the way out) and the line's settings
// (baud, 8 data bits, no parity, 1 stop bit) are set through the COM-PORT-OPTION, acknowledged by the server before
// the line is used. The result is a Duplex the board's console and shell channel read and write like a socket.
import { connect, type Socket } from 'node:net';
import { Duplex } from 'node:stream';
import { InfrastructureError } from '../harness/errors/fleetlab-error.ts';

const IAC = 255;
const DONT = 254;
const DO = 253;
const WONT = 252;
const WILL = 251;
const SB = 250;
const SE = 240;
/** Telnet options: BINARY, SUPPRESS-GO-AHEAD, COM-PORT-OPTION. */
const BINARY = 0;
const SGA = 3;
const COM_PORT = 44;
/** COM-PORT-OPTION commands, client to server (the server answers each with the command + 100). */
const SET_BAUDRATE = 1;
const SET_DATASIZE = 2;
const SET_PARITY = 3;
const SET_STOPSIZE = 4;

export class Rfc2217Stream extends Duplex {
  readonly socket: Socket;
  /** The settings the server acknowledged, by command (SET_BAUDRATE: the baud it set). */
  readonly acked = new Map<number, number>();
  private state: 'data' | 'iac' | 'option' | 'sb' | 'sb-iac' = 'data';
  private verb = 0;
  private sb: number[] = [];
  private readonly onAck = new Set<() => void>();
  /** Options this side agreed to perform, and asked the server to. */
  private readonly weWill = new Set<number>();
  private readonly theyWill = new Set<number>();

  constructor(socket: Socket) {
    super();
    this.socket = socket;
    socket.on('data', (d: Buffer) => this.receive(d));
    socket.on('close', () => {
      this.push(null);
      this.destroy();
    });
    socket.on('error', (err) => this.destroy(err));
  }

  override _read(): void {}

  override _write(chunk: Buffer, _enc: BufferEncoding, cb: (err?: Error | null) => void): void {
    // 0xFF in the data is doubled (IAC IAC).
    const out: number[] = [];
    for (const b of chunk) out.push(...(b === IAC ? [IAC, IAC] : [b]));
    this.socket.write(Buffer.from(out), cb);
  }

  override _destroy(err: Error | null, cb: (err?: Error | null) => void): void {
    this.socket.destroy();
    cb(err);
  }

  private receive(d: Buffer): void {
    const data: number[] = [];
    for (const b of d) {
      switch (this.state) {
        case 'data':
          if (b === IAC) this.state = 'iac';
          else data.push(b);
          break;
        case 'iac':
          if (b === IAC) {
            data.push(IAC);
            this.state = 'data';
          } else if (b === SB) {
            this.sb = [];
            this.state = 'sb';
          } else if (b >= WILL && b <= DONT) {
            this.verb = b;
            this.state = 'option';
          } else this.state = 'data'; // NOP, GA and other two-byte commands
          break;
        case 'option':
          this.negotiate(this.verb, b);
          this.state = 'data';
          break;
        case 'sb':
          if (b === IAC) this.state = 'sb-iac';
          else this.sb.push(b);
          break;
        case 'sb-iac':
          if (b === SE) {
            this.subnegotiation(this.sb);
            this.state = 'data';
          } else {
            this.sb.push(b);
            this.state = 'sb';
          }
          break;
      }
    }
    if (data.length) this.push(Buffer.from(data));
  }

  /**
   * Binary both ways, no go-aheads, the com port option; everything else refused. An answer that confirms what is
   * already agreed (or was asked for) is not answered again, so no negotiation loops.
   */
  private negotiate(verb: number, option: number): void {
    const wanted = option === BINARY || option === SGA || option === COM_PORT;
    if (verb === DO) {
      if (!wanted) this.socket.write(Buffer.from([IAC, WONT, option]));
      else if (!this.weWill.has(option)) {
        this.weWill.add(option);
        this.socket.write(Buffer.from([IAC, WILL, option]));
      }
    } else if (verb === WILL) {
      if (!wanted || option === COM_PORT) this.socket.write(Buffer.from([IAC, DONT, option]));
      else if (!this.theyWill.has(option)) {
        this.theyWill.add(option);
        this.socket.write(Buffer.from([IAC, DO, option]));
      }
    }
  }

  private subnegotiation(sb: number[]): void {
    if (sb[0] !== COM_PORT || sb.length < 2) return;
    const cmd = sb[1]! - 100;
    const value = sb.length >= 6 && cmd === SET_BAUDRATE ? Buffer.from(sb.slice(2, 6)).readUInt32BE(0) : (sb[2] ?? 0);
    this.acked.set(cmd, value);
    for (const f of this.onAck) f();
  }

  /** Sets the line (baud, 8N1) and waits until the server has acknowledged each setting. */
  async configure(baud: number, timeoutMs: number, where: string): Promise<void> {
    const sub = (cmd: number, value: number[]) => Buffer.from([IAC, SB, COM_PORT, cmd, ...value.flatMap((v) => (v === IAC ? [IAC, IAC] : [v])), IAC, SE]);
    const b = Buffer.alloc(4);
    b.writeUInt32BE(baud);
    for (const o of [COM_PORT, BINARY, SGA]) this.weWill.add(o);
    for (const o of [BINARY, SGA]) this.theyWill.add(o);
    this.socket.write(Buffer.from([IAC, WILL, COM_PORT, IAC, WILL, BINARY, IAC, DO, BINARY, IAC, WILL, SGA, IAC, DO, SGA]));
    this.socket.write(Buffer.concat([sub(SET_BAUDRATE, [...b]), sub(SET_DATASIZE, [8]), sub(SET_PARITY, [1]), sub(SET_STOPSIZE, [1])]));
    const all = [SET_BAUDRATE, SET_DATASIZE, SET_PARITY, SET_STOPSIZE];
    await new Promise<void>((resolve, reject) => {
      const check = () => {
        if (all.every((c) => this.acked.has(c))) {
          clearTimeout(t);
          this.onAck.delete(check);
          resolve();
        }
      };
      const t = setTimeout(() => {
        this.onAck.delete(check);
        reject(new InfrastructureError(`the serial server ${where} did not acknowledge the line settings (${baud} 8N1) over RFC 2217 within ${timeoutMs} ms: is it a telnet(rfc2217) port? A raw port is serial: { tcp: '${where}' }`));
      }, timeoutMs);
      this.onAck.add(check);
      check();
    });
    if (this.acked.get(SET_BAUDRATE) !== baud) throw new InfrastructureError(`the serial server ${where} set ${this.acked.get(SET_BAUDRATE)} baud when asked for ${baud}`);
  }
}

/** Connects to an RFC 2217 port and sets its line; the stream once the server acknowledged it. */
export async function openRfc2217(target: string, baud: number, timeoutMs: number): Promise<Rfc2217Stream> {
  const [host, port] = target.split(/:(?=\d+$)/) as [string, string];
  const socket = connect({ host, port: Number(port) });
  socket.setNoDelay(true);
  await new Promise<void>((resolve, reject) => {
    const t = setTimeout(() => {
      socket.destroy();
      reject(new InfrastructureError(`the serial server ${target} did not accept a connection within ${timeoutMs} ms`));
    }, timeoutMs);
    socket.once('connect', () => {
      clearTimeout(t);
      resolve();
    });
    socket.once('error', (err) => {
      clearTimeout(t);
      reject(new InfrastructureError(`the serial server ${target}: ${err.message}`, { cause: err }));
    });
  });
  const stream = new Rfc2217Stream(socket);
  try {
    await stream.configure(baud, timeoutMs, target);
  } catch (err) {
    stream.destroy();
    throw err;
  }
  return stream;
}
