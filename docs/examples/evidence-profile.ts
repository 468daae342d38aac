// my-fleet/machines/kiosk.ts: a profile whose failing cases also fetch the app's log, and not the whole journal.
import base from 'fleetlab/machines/x86_64-uefi';
import { extendProfile } from 'fleetlab';
export default extendProfile(base, {
  name: 'kiosk',
  // #region sample
  guest: { evidence: { add: [{ name: 'app-log', command: 'tail -n 500 /var/log/app.log' }], ignore: ['journal'] } },
  // #endregion
});
