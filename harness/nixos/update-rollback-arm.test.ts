// scenarios/update-rollback.ts on the Arm machines: systemd-boot on UEFI, extlinux under U-Boot on virt and on the Pi.
import { updateRollbackSuite } from './update-rollback-suite.ts';

updateRollbackSuite(['aarch64-uefi', 'aarch64-uboot', 'raspi3b']);
