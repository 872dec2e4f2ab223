# SPDX-License-Identifier: Apache-2.0
# Runs inside a PV guest VM started by tests/vm/pv-shm-vm (through run-host,
# in a chroot of the build machine's root): the VM has a virtio-serial port
# org.gpupass.pv.0 and an ivshmem-plain device (1af4:1110) whose BAR2 is the
# file gpupass-pvd's [guest] section names. pv_bulk (write, read, copy and
# maps of 1, 4 and 16 MiB, every word checked) runs with the data through
# the region (the ICD's GPUPASS_DEBUG line says so), then with
# GPUPASS_IVSHMEM=off (inline on the port). One PASS/FAIL line per step.
# expect: port ivshmem-device bulk-shm region-used bulk-inline inline-used
. "$GPVM_SRC/tests/vm/lib.sh"

T=$GPVM_BUILD/tests/pv
PORT=org.gpupass.pv.0
SIZES=${GPVM_ARG:-1 4 16}

pv_guest_port "$PORT"

ivs=
for d in /sys/bus/pci/devices/*; do
	[ "$(cat "$d/vendor")" = 0x1af4 ] && [ "$(cat "$d/device")" = 0x1110 ] && ivs=$d
done
if [ -n "$ivs" ] && [ -e "$ivs/resource2" ]; then
	pass ivshmem-device "${ivs##*/}, resource2 $(stat -c %s "$ivs/resource2") bytes"
else
	fail ivshmem-device "no 1af4:1110 device with a resource2"
fi

export GPUPASS_SERVER=serial:$PORT GPUPASS_DEBUG=1
# runs pv_bulk, PASS when it exits 0 with no "not ok" line
bulk() {
	step=$1
	t0=$(now)
	# shellcheck disable=SC2086 # SIZES is a list of sizes
	"$T/pv_bulk" $SIZES >"/tmp/$step.out" 2>&1
	rc=$?
	if [ $rc -eq 0 ] && ! grep -q '^not ok' "/tmp/$step.out"; then
		pass "$step" "$(elapsed "$t0") s, $(grep -c '^ok' "/tmp/$step.out") checks, MiB: $SIZES"
	else
		fail "$step" "exit $rc: $(grep -m3 '^not ok\|Bail\|gpupass:' "/tmp/$step.out" | tr '\n' ' ')"
	fi
	grep '^# ' "/tmp/$step.out" | while read -r l; do info "$step: ${l#\# }"; done
}

bulk bulk-shm
l=$(grep -m1 'gpupass: bulk data' /tmp/bulk-shm.out)
case $l in
*"through the ivshmem region"*) pass region-used "$l" ;;
*) fail region-used "${l:-no GPUPASS_DEBUG line}" ;;
esac

GPUPASS_IVSHMEM=off bulk bulk-inline
l=$(grep -m1 'gpupass: bulk data' /tmp/bulk-inline.out)
case $l in
*"inline"*) pass inline-used "$l" ;;
*) fail inline-used "${l:-no GPUPASS_DEBUG line}" ;;
esac
finish
