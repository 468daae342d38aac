// scenarios/update-rollback.ts on the x86 machines: GRUB on BIOS, systemd-boot on UEFI, GRUB on 32-bit UEFI.
import { updateRollbackSuite } from './update-rollback-suite.ts';

updateRollbackSuite(['x86_64-bios', 'x86_64-uefi', 't100ta']);
