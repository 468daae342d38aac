// A scenario role booting your own image (docs/profiles.md).
import { scenario } from 'fleetlab';

export const kiosk = scenario({
  name: 'kiosk image',
// #region sample
  machines: { kiosk: { profile: 'x86_64-uefi', image: '../result/nixos.img' } },
// #endregion
  async run() {},
});
