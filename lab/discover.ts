// `fleetlab lab suggest`: the lab hardware attached to a host (this one, or a lab host over SSH) found by its stable
// udev properties and printed as lab-file snippets: USB serial adapters (by /dev/serial/by-id, else their serial
// number; their ID_PATH noted), LXA USB-SD-Muxes and SDWires (by serial number), and USB HID relay boards. The udev
// database comes from `udevadm info --export-db`; without udevadm (a container), the same properties are read from
// sysfs. Finding nothing is an answer too.
export interface UdevDevice {
  devpath: string;
  name?: string;
  links: string[];
  props: Record<string, string>;
}

export interface Found {
  kind: 'serial' | 'usb-sd-mux' | 'sdwire' | 'hid-relay';
  /** "FTDI FT232R USB UART (serial A10KZ7QX, path pci-0000:00:14.0-usb-0:2:1.0)". */
  description: string;
  /** The lab-file lines for it. */
  snippet: string;
}

/** Parses `udevadm info --export-db`: records separated by blank lines, "P:" path, "N:" node, "S:" links, "E:" properties. */
export function parseUdevDb(text: string): UdevDevice[] {
  const out: UdevDevice[] = [];
  for (const block of text.split(/\n\s*\n/)) {
    const d: UdevDevice = { devpath: '', links: [], props: {} };
    for (const line of block.split('\n')) {
      const m = /^([A-Z]): (.*)$/.exec(line);
      if (!m) continue;
      const [, k, v] = m as unknown as [string, string, string];
      if (k === 'P') d.devpath = v;
      else if (k === 'N') d.name = v;
      else if (k === 'S') d.links.push(v);
      else if (k === 'E') {
        const eq = v.indexOf('=');
        if (eq > 0) d.props[v.slice(0, eq)] = v.slice(eq + 1);
      }
    }
    if (d.devpath) out.push(d);
  }
  return out;
}

const q = (s: string) => `'${s.replace(/\\/g, '\\\\').replace(/'/g, "\\'")}'`;

/** The devices worth a line in a lab file, with their snippets. */
export function classify(devices: UdevDevice[]): Found[] {
  const found: Found[] = [];
  const usb = (d: UdevDevice) => `${d.props.ID_VENDOR_ID ?? '?'}:${d.props.ID_MODEL_ID ?? '?'}`;
  const label = (d: UdevDevice) => `${(d.props.ID_VENDOR ?? '').replace(/_/g, ' ')} ${(d.props.ID_MODEL ?? '').replace(/_/g, ' ')}`.trim() || usb(d);
  const serialOf = (d: UdevDevice) => d.props.ID_SERIAL_SHORT ?? d.props.ID_USB_SERIAL_SHORT;
  const where = (d: UdevDevice) => [serialOf(d) ? `serial ${serialOf(d)}` : undefined, d.props.ID_PATH ? `path ${d.props.ID_PATH}` : undefined, d.name ? `/dev/${d.name}` : undefined].filter(Boolean).join(', ');
  const isSdMux = (d: UdevDevice) => /Linux.Automation/i.test(d.props.ID_VENDOR ?? '') && /usb-sd-mux/i.test(d.props.ID_MODEL ?? '');
  const isSdWire = (d: UdevDevice) => usb(d) === '04e8:6001' || /sd-?wire/i.test(d.props.ID_MODEL ?? '');
  const blockOf = (serial: string | undefined) => devices.find((b) => b.props.SUBSYSTEM === 'block' && b.props.DEVTYPE === 'disk' && serialOf(b) === serial);
  const diskLink = (b: UdevDevice | undefined) => b?.links.find((l) => l.startsWith('disk/by-id/')) ?? (b?.name ? b.name : undefined);
  for (const d of devices) {
    const sub = d.props.SUBSYSTEM;
    if (sub === 'tty' && (d.props.ID_BUS === 'usb' || d.props.ID_VENDOR_ID) && !isSdWire(d)) {
      const byId = d.links.find((l) => l.startsWith('serial/by-id/'));
      const line = byId ? `serial: { device: ${q(`/dev/${byId}`)}, baud: 115200 },` : serialOf(d) ? `serial: { device: ${q(`/dev/${d.name}`)}, baud: 115200 },  // no by-id link: /dev/${d.name} may change` : `serial: { device: ${q(`/dev/${d.name}`)}, baud: 115200 },`;
      const byPath = d.links.find((l) => l.startsWith('serial/by-path/'));
      found.push({ kind: 'serial', description: `${label(d)} (${where(d)})`, snippet: `${line}${byPath ? `\n// or by the USB port it is plugged into: /dev/${byPath}` : ''}` });
    } else if (sub === 'scsi_generic' && isSdMux(d)) {
      const serial = serialOf(d);
      const control = d.links.find((l) => l.startsWith('usb-sd-mux/')) ?? (serial ? `usb-sd-mux/id-${serial}` : d.name);
      found.push({ kind: 'usb-sd-mux', description: `LXA USB-SD-Mux (${where(d)})`, snippet: `sdMux: { driver: 'usbsdmux', control: ${q(`/dev/${control}`)}, device: ${q(`/dev/${diskLink(blockOf(serial)) ?? 'sdX'}`)} },` });
    } else if ((sub === 'usb' && d.props.DEVTYPE === 'usb_device' && isSdWire(d)) || (sub === 'tty' && isSdWire(d))) {
      const serial = serialOf(d) ?? 'SERIAL';
      found.push({ kind: 'sdwire', description: `SDWire (${where(d)})`, snippet: `sdMux: { driver: 'sd-mux-ctrl', serial: ${q(serial)}, device: ${q(`/dev/${diskLink(blockOf(serial)) ?? 'sdX'}`)} },` });
    } else if (sub === 'hidraw' && usb(d) === '16c0:05df') {
      const relays = /(\d+)$/.exec(d.props.ID_MODEL ?? '')?.[1];
      const serial = serialOf(d) ?? 'SERIAL';
      found.push({ kind: 'hid-relay', description: `USB HID relay board${relays ? ` with ${relays} relays` : ''} (${where(d)})`, snippet: `power: { driver: 'usbrelay', relay: ${q(`${serial}_1`)} },  // relays ${serial}_1${relays ? ` … ${serial}_${relays}` : ''}` });
    }
  }
  return found;
}

/**
 * A shell script that prints the udev database: udevadm's where it is installed, else the same records built from
 * sysfs for the devices lab suggest knows (USB ttys, SCSI generic and block devices, hidraw), with their links.
 */
export const UDEV_DB_SCRIPT = `if command -v udevadm >/dev/null 2>&1; then udevadm info --export-db; exit; fi
for dev in /sys/class/tty/ttyUSB* /sys/class/tty/ttyACM* /sys/class/scsi_generic/sg* /sys/class/block/sd? /sys/class/hidraw/hidraw*; do
  [ -e "$dev" ] || continue
  name=$(basename "$dev"); sub=$(basename "$(readlink -f "$dev/subsystem")"); path=$(readlink -f "$dev/device" 2>/dev/null || true)
  u=$path; while [ -n "$u" ] && [ "$u" != / ] && [ ! -e "$u/idVendor" ]; do u=$(dirname "$u"); done
  [ -e "$u/idVendor" ] || continue
  echo "P: \${dev#/sys}"; echo "N: $name"
  for l in /dev/serial/by-id/* /dev/serial/by-path/* /dev/disk/by-id/* /dev/usb-sd-mux/*; do [ "$(readlink -f "$l" 2>/dev/null)" = "/dev/$name" ] && echo "S: \${l#/dev/}"; done
  echo "E: SUBSYSTEM=$sub"; echo "E: ID_BUS=usb"
  [ "$sub" = block ] && echo "E: DEVTYPE=disk"
  echo "E: ID_VENDOR_ID=$(cat "$u/idVendor")"; echo "E: ID_MODEL_ID=$(cat "$u/idProduct")"
  [ -e "$u/serial" ] && echo "E: ID_SERIAL_SHORT=$(cat "$u/serial")"
  [ -e "$u/manufacturer" ] && echo "E: ID_VENDOR=$(cat "$u/manufacturer" | tr ' ' _)"
  [ -e "$u/product" ] && echo "E: ID_MODEL=$(cat "$u/product" | tr ' ' _)"
  echo
done`;

/** What `lab suggest` prints for what it found on `where`. */
export function suggestion(found: Found[], where: string): string {
  if (!found.length) return `${where}: no USB serial adapter, USB-SD-Mux, SDWire or USB HID relay found (udev database and sysfs read)`;
  return [`${where}: ${found.length} device${found.length === 1 ? '' : 's'}; lab-file lines for each:`, ...found.map((f) => `\n// ${f.kind}: ${f.description}\n${f.snippet}`)].join('\n');
}
