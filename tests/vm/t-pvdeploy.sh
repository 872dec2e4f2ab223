# SPDX-License-Identifier: Apache-2.0
# Runs inside the PV guest VM that tests/vm/pv-deploy made and started
# through gpupass alone (vm create --gpu-passthrough pv --share /:hostroot:ro,
# vm start): tests/vm/host-init mounted the share and runs this in a chroot
# of it. OpenCL goes through libgpupass-icd.so and the port
# org.gpupass.pv.0 that gpupass wired to the gpupass-pvd it started.
# GPVM_ARG = SHM: the ivshmem region's size in bytes gpupass was asked for
# (0: none expected).
# The results go to the console (the VM's log, `gpupass vm log`): gpupass
# gives the VM one serial port, so host-init's /dev/ttyS1 is absent and
# lib.sh echoes each line to the console as well.
# expect: share port clinfo ivshmem vadd-reduce vadd-reduce-values garbage pvd-down pvd-back hold-ready
{ : >"${GPVM_RESULTS:-/dev/stdout}"; } 2>/dev/null || GPVM_RESULTS=/dev/stdout
. "$GPVM_SRC/tests/vm/lib.sh"

shm=${GPVM_ARG:-0}
T=$GPVM_BUILD/tests/pv
PORT=org.gpupass.pv.0

# host-init mounted the share gpupass exported (under the overlay that is
# this chroot's root): seen from init's root, outside this chroot.
if grep -q '^hostroot [^ ]* 9p ro,' /proc/1/mounts; then
	pass share "$(grep -m1 '^hostroot ' /proc/1/mounts | cut -d' ' -f1-3)"
else
	fail share "no read-only 9p mount of the tag hostroot: $(grep 9p /proc/1/mounts | tr '\n' ' ')"
fi

# Only our ICD; the port; clinfo finding it with no GPUPASS_SERVER.
pv_guest_start "$PORT"

# The ivshmem-plain region (1af4:1110, PCI class 0500): its BAR2 is the
# region, of the size gpupass was given.
found=''
for d in /sys/bus/pci/devices/*; do
	[ "$(cat "$d/vendor")" = 0x1af4 ] && [ "$(cat "$d/device")" = 0x1110 ] && found=$d
done
if [ "$shm" = 0 ]; then
	if [ -z "$found" ]; then
		pass ivshmem "none asked for, none present"
	else
		fail ivshmem "an ivshmem device at ${found##*/} although --gpu-shm 0"
	fi
elif [ -n "$found" ]; then
	# line 3 of resource: BAR2 as "start end flags" in hex
	bar2=$(sed -n 3p "$found/resource")
	s=${bar2%% *}
	e=${bar2#* }
	e=${e%% *}
	size=$((e - s + 1))
	if [ "$size" = "$shm" ]; then
		pass ivshmem "${found##*/}, BAR2 $size bytes"
	else
		fail ivshmem "${found##*/}: BAR2 is $size bytes, want $shm"
	fi
else
	fail ivshmem "no ivshmem-plain device (1af4:1110) in the guest"
fi

t0=$(now)
"$T/pv_basic" >/tmp/vadd.out 2>&1
rc=$?
if [ $rc -eq 0 ] && ! grep -q '^not ok' /tmp/vadd.out; then
	pass vadd-reduce "$(elapsed "$t0") s, $(grep -c '^ok' /tmp/vadd.out) checks"
else
	fail vadd-reduce "exit $rc: $(grep -m3 '^not ok\|Bail\|gpupass:' /tmp/vadd.out | tr '\n' ' ')"
fi
grep -q 'reduction sum: got 209188400, want 209188400' /tmp/vadd.out &&
	grep -q '^ok .* vadd results wrong: got 0, want 0' /tmp/vadd.out &&
	pass vadd-reduce-values ||
	fail vadd-reduce-values "vector add / reduction results not checked"

# Garbage written into the port by a guest program (issue 5, bad input):
# the server ends that stream's session with a logged reason and serves
# the next program on the same port.
head -c 65536 /dev/urandom >"$dev" 2>/dev/null &
gpid=$!
sleep 2
kill "$gpid" 2>/dev/null
wait "$gpid" 2>/dev/null
t0=$(now)
if "$T/pv_basic" >/tmp/vadd2.out 2>&1 && ! grep -q '^not ok' /tmp/vadd2.out; then
	pass garbage "64 KiB of random bytes into $dev, then pv_basic passed ($(elapsed "$t0") s)"
else
	fail garbage "after garbage: $(grep -m3 '^not ok\|Bail\|gpupass:' /tmp/vadd2.out | tr '\n' ' ')"
fi

# gpupass-pvd down while the VM runs: the ICD says so clearly and the VM
# works again once the service is back (QEMU reconnects the port). The host
# driver (tests/vm/pv-deploy) stops and restarts the server when it sees
# these WAIT lines, and tells us through marker files under $M, which this
# guest sees through the host-root share: read on the 9p mount itself
# (init's /lower), as the overlay that is our root caches what it looked
# up.
M=/proc/1/root/lower$GPVM_BUILD/vm-pv-deploy.markers
report "WAIT pvd-down"
if wait_for 120 test -e "$M/down"; then
	t0=$(now)
	timeout 90 "$T/pv_basic" >/tmp/down.out 2>&1
	rc=$?
	msg=$(grep -m1 '^gpupass:' /tmp/down.out)
	if [ $rc -ne 0 ] && [ $rc -ne 124 ] && [ -n "$msg" ]; then
		pass pvd-down "exit $rc after $(elapsed "$t0") s: $msg"
	else
		fail pvd-down "exit $rc, no clear message: $(tail -3 /tmp/down.out | tr '\n' ' ')"
	fi
else
	fail pvd-down "the host did not stop gpupass-pvd"
fi
report "WAIT pvd-back"
if wait_for 120 test -e "$M/up"; then
	t0=$(now)
	ok=''
	for _ in 1 2 3 4 5; do
		if "$T/pv_basic" >/tmp/back.out 2>&1 && ! grep -q '^not ok' /tmp/back.out; then
			ok=1
			break
		fi
		sleep 2
	done
	if [ -n "$ok" ]; then
		pass pvd-back "pv_basic passed $(elapsed "$t0") s after the server came back"
	else
		fail pvd-back "$(grep -m3 '^not ok\|Bail\|gpupass:' /tmp/back.out | tr '\n' ' ')"
	fi
else
	fail pvd-back "the host did not restart gpupass-pvd"
fi

# Objects held on the server (a 64 MiB buffer, a queue, a program, work
# waiting on a user event) until the driver stops this VM with gpupass.
"$T/pv_hold" userwait >/tmp/hold.out 2>&1 </dev/null &
if wait_for 120 grep -q waiting /tmp/hold.out; then
	pass hold-ready
else
	fail hold-ready "$(cat /tmp/hold.out)"
	finish
fi
sleep 600
finish
