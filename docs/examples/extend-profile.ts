// my-fleet/machines/debian-serial.ts
import base from 'fleetlab/machines/x86_64-direct';          // or: import { profiles } from 'fleetlab'
import { extendProfile } from 'fleetlab';
export default extendProfile(base, {
  name: 'debian-serial',
  boot: { kind: 'disk', image: '/srv/images/debian12.qcow2' },
  consoles: [{ name: 'serial0', device: 'serial' }],
  guest: { shell: { kind: 'serial-login', console: 'serial0' }, login: { user: 'root', password: 'secret' } },
});
