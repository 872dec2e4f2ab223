# SPDX-License-Identifier: Apache-2.0
# vm-vfio-manual: the DDA chain by hand on a real kernel, no gpupass: the
# emulated GPU 0000:00:02.0 goes from bochs-drm to vfio-pci, into a nested
# QEMU guest that must see it (lspci -nn), and back to bochs-drm.
# Proves the machinery the vm-dda test relies on; timings as INFO lines.
# expect: start-on-bochs vfio-modules bind-vfio dev-vfio nested-qmp nested-boot
# expect: nested-lspci nested-powerdown unbind-vfio back-on-bochs
. "$GPVM_SRC/tests/vm/lib.sh"
GPU=0000:00:02.0
SYS=/sys/bus/pci/devices/$GPU
WORK=$(mktemp -d)

check start-on-bochs "driver is $(dev_driver $GPU), want bochs-drm" \
	test "$(dev_driver $GPU)" = bochs-drm
GROUP=$(dev_group $GPU)
info "group $GROUP members: $(ls /sys/kernel/iommu_groups/$GROUP/devices | tr '\n' ' ')"

check vfio-modules "modprobe vfio-pci failed" modprobe vfio-pci

t0=$(now)
echo vfio-pci >$SYS/driver_override
echo $GPU >$SYS/driver/unbind
echo $GPU >/sys/bus/pci/drivers_probe
check bind-vfio "driver is $(dev_driver $GPU) after drivers_probe, want vfio-pci" \
	test "$(dev_driver $GPU)" = vfio-pci
check dev-vfio "/dev/vfio/$GROUP did not appear" wait_for 5 test -c /dev/vfio/$GROUP
info "time dismount-by-hand $(elapsed $t0) s"

# The nested guest: 256 MiB, 1 CPU, TCG inside TCG, no defaults (so no VGA
# of its own), the GPU at slot 05.0 of the nested q35, a QMP socket. It
# prints its lspci and waits; QMP system_powerdown must turn it off through
# ACPI, with the device assigned.
QMP="$GPVM_SRC/tests/vm/qmp"
t0=$(now)
timeout 400 qemu-system-x86_64 -nodefaults -no-user-config -nographic \
	-machine q35,accel=tcg -cpu max -m 256M -smp 1 \
	-kernel "$NESTED_KERNEL" -initrd "$NESTED_INITRD" \
	-append "$NESTED_APPEND gp.after=wait" \
	-device vfio-pci,host=$GPU,bus=pcie.0,addr=05.0 \
	-serial file:$WORK/nested.log -monitor none -no-reboot \
	-qmp unix:$WORK/qmp.sock,server=on,wait=off \
	>$WORK/qemu.log 2>&1 &
qpid=$!
if "$QMP" $WORK/qmp.sock --wait 60 query-pci >$WORK/query-pci.json; then
	info "time qemu-start-to-qmp $(elapsed $t0) s"
	check nested-qmp "QMP query-pci does not list 1234:1111 class 0300 at slot 5: $(cat $WORK/query-pci.json)" \
		/usr/bin/python3 -c '
import json, sys
devs = [d for b in json.load(open(sys.argv[1])) for d in b["devices"]]
sys.exit(not any(d["slot"] == 5 and d["id"]["vendor"] == 0x1234 and d["id"]["device"] == 0x1111
                 and d["class_info"]["class"] == 0x0300 for d in devs))' $WORK/query-pci.json
else
	fail nested-qmp "QMP never answered"
fi
if wait_for 360 grep -q NESTED-WAITING $WORK/nested.log; then
	info "time nested-guest-boot $(elapsed $t0) s (qemu start to lspci printed)"
fi
t1=$(now)
"$QMP" $WORK/qmp.sock system_powerdown >/dev/null
wait_for 60 sh -c "! kill -0 $qpid 2>/dev/null"
if kill -0 $qpid 2>/dev/null; then
	kill $qpid
	sleep 1
fi
wait $qpid
rc=$?
sed 's/^/nested: /' $WORK/nested.log
sed 's/^/qemu: /' $WORK/qemu.log
check nested-boot "the nested guest never reached its /init (qemu exit $rc)" \
	grep -q NESTED-BEGIN $WORK/nested.log
check nested-lspci "lspci in the nested guest does not show 1234:1111 class 0300 at 00:05.0" \
	nested_sees $WORK/nested.log 1234:1111 0300
grep -q 'NESTED-LSPCI 00:05.0 ' $WORK/nested.log || fail nested-lspci "the device is not at 00:05.0 in the guest"
check nested-powerdown "the nested guest did not power down on QMP system_powerdown within 60 s (qemu exit $rc)" \
	sh -c "[ $rc -eq 0 ] && grep -q NESTED-POWERDOWN $WORK/nested.log"
info "time nested-powerdown $(elapsed $t1) s; whole nested run $(elapsed $t0) s"
grep -q 'no available reset mechanism' $WORK/qemu.log &&
	info "qemu: no available reset mechanism for $GPU (expected: reset_method empty)"

t0=$(now)
echo >$SYS/driver_override
echo $GPU >$SYS/driver/unbind
echo $GPU >/sys/bus/pci/drivers_probe
check unbind-vfio "still on vfio-pci" test "$(dev_driver $GPU)" != vfio-pci
check back-on-bochs "driver is $(dev_driver $GPU), want bochs-drm" \
	test "$(dev_driver $GPU)" = bochs-drm
info "time mount-by-hand $(elapsed $t0) s"
finish
