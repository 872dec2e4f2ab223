# SPDX-License-Identifier: Apache-2.0
# Sourced by the test scripts that tests/vm/run-host runs inside the emulated
# host (in a chroot of the build machine's root). Each step reports one line
# on $GPVM_RESULTS:  PASS <step>  |  FAIL <step>: <why>  |  INFO <text>.

: "${GPVM_RESULTS:=/dev/stdout}"
GPUPASS=$GPVM_BUILD/gpupass
NFAIL=0

report() {
	echo "$*" >"$GPVM_RESULTS"
	[ "$GPVM_RESULTS" = /dev/stdout ] || echo "$*"
}
pass() { report "PASS $1${2:+ ($2)}"; }
fail() {
	report "FAIL $1: $2"
	NFAIL=$((NFAIL + 1))
}
info() { report "INFO $*"; }
# check STEP WHY COMMAND...: PASS when the command succeeds.
check() {
	step=$1 why=$2
	shift 2
	if "$@"; then pass "$step"; else fail "$step" "$why"; fi
}
finish() { [ "$NFAIL" -eq 0 ]; exit $?; }

# Seconds since boot, with centiseconds, for timings.
now() { cut -d' ' -f1 /proc/uptime; }
elapsed() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }

dev_driver() { # ADDR -> driver name or "none"
	if [ -e "/sys/bus/pci/devices/$1/driver" ]; then
		basename "$(readlink "/sys/bus/pci/devices/$1/driver")"
	else
		echo none
	fi
}
dev_group() { basename "$(readlink "/sys/bus/pci/devices/$1/iommu_group")"; }

# wait_for SECONDS COMMAND...: runs the command once a second until it
# succeeds (1) or SECONDS pass. Slow on purpose: every fork costs the nested
# guest CPU time on the emulated host's single vCPU.
wait_for() {
	t=$1 n=0
	shift
	while ! "$@"; do
		n=$((n + 1))
		[ $n -ge "$t" ] && return 1
		sleep 1
	done
	return 0
}

# The nested guest: the same Debian kernel (uncompressed, booted through its
# PVH entry), the guest initramfs of tests/vm/prepare (busybox + pciutils'
# lspci), no disk, no default VGA. The command line skips what only costs
# time under TCG inside TCG (crypto self-tests, speculation mitigations).
. "$GPVM_CACHE/vm.env"
# shellcheck disable=SC2034 # used by the test scripts that source this
{
	NESTED_KERNEL=$GUEST_KERNEL
	NESTED_INITRD=$GUEST_INITRD
	NESTED_APPEND="console=ttyS0 loglevel=4 panic=-1 tsc=reliable no_timer_check mitigations=off cryptomgr.notests"
}

# nested_sees LOG VENDOR:DEVICE CLASS: the nested guest printed its
# lspci and sysfs lists, and the assigned device is there with that class.
# The nested guest has no VGA of its own (-nodefaults / -vga none), so a
# 1234:1111 of class 0300 there can only be the assigned device.
nested_sees() {
	log=$1 id=$2 class=$3
	grep -q 'NESTED-END' "$log" || return 1
	grep -q "NESTED-LSPCI .*\[$class\]: .*\[$id\]" "$log" || return 1
	v=${id%:*} d=${id#*:}
	grep -q "NESTED-DEV [0-9a-f:.]* 0x$v 0x$d 0x${class}00" "$log" || return 1
	# exactly one such device: a default VGA (also 1234:1111) would make
	# the check prove nothing
	[ "$(grep -c "NESTED-DEV [0-9a-f:.]* 0x$v 0x$d " "$log")" -eq 1 ]
}

# survey_name ADDR: the GPU's name as `gpupass survey --json` reports it
# (what --gpu-name matches); empty when the survey cannot say.
survey_name() {
	"$GPUPASS" survey --json 2>/dev/null | /usr/bin/python3 -c '
import json, sys
s = json.load(sys.stdin)
print(next(g["name"] for g in s["gpus"] if g["address"] == sys.argv[1]))' "$1" 2>/dev/null
}

# pv_guest_port PORT: inside a PV guest VM, the ICD of the build tree as
# the loader's only vendor, and the virtio-serial port named PORT found
# (step "port", its device in $dev; the test ends without one).
pv_guest_port() {
	mkdir -p /tmp/vendors
	echo "$GPVM_BUILD/libgpupass-icd.so" >/tmp/vendors/gpupass.icd
	export OCL_ICD_VENDORS=/tmp/vendors
	dev=''
	for d in /sys/class/virtio-ports/*; do
		[ "$(cat "$d/name" 2>/dev/null)" = "$1" ] && dev=/dev/${d##*/}
	done
	if [ -n "$dev" ] && [ -c "$dev" ]; then
		pass port "$1 is $dev"
	else
		fail port "no virtio-serial port named $1 ($(ls /sys/class/virtio-ports 2>&1))"
		finish
	fi
}

# pv_guest_start PORT: pv_guest_port, then clinfo with no GPUPASS_SERVER,
# the ICD finding the port by itself (step "clinfo").
pv_guest_start() {
	pv_guest_port "$1"
	t0=$(now)
	if clinfo >/tmp/clinfo.out 2>&1 && grep -q 'gpupass PV (remote:' /tmp/clinfo.out &&
		grep -q 'Number of devices  *1' /tmp/clinfo.out; then
		pass clinfo "$(elapsed "$t0") s, $(grep -m1 'Device Name' /tmp/clinfo.out | sed 's/  */ /g')"
	else
		fail clinfo "$(tail -3 /tmp/clinfo.out | tr '\n' ' ')"
	fi
}
