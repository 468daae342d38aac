// lab/bench-3.ts
import { defineLab } from 'fleetlab';          // inside this repository: './inventory.ts'

export default defineLab({
  name: 'bench-3',
  leaseTtlSeconds: 30,                            // a runner killed with SIGKILL loses its boards 30 s later
  boards: {
    'pi4-01': {
      profile: './profiles/rpi4.ts',              // aarch64, U-Boot + extlinux, shell: { kind: 'serial-login', console: 'serial0' }
      tags: ['rpi4'],
      serial: { device: '/dev/serial/by-id/usb-FTDI_FT232R_USB_UART_A10KZ7QX-if00-port0', baud: 115200 },
      power: { driver: 'shelly-gen2', url: 'http://10.0.40.21', id: 0, offDelayMs: 3000 },
      sdMux: { driver: 'usbsdmux', control: '/dev/usb-sd-mux/id-000000001234', device: '/dev/disk/by-id/usb-LinuxAut_sdmux_HS-SD_MMC_000000001234-0:0' },
      network: { address: '10.0.40.101' },
      login: { user: 'root', password: 'test' },
    },
  },
});
