# SPDX-License-Identifier: Apache-2.0
# Runs inside a PV guest VM started by tests/vm/pv-vm (through run-host, in a
# chroot of the build machine's root): OpenCL through libgpupass-icd.so and
# the VM's virtio-serial port org.gpupass.pv.0, to gpupass-pvd on the build
# machine. GPVM_ARG = ROLE:DIR (DIR: the driver's directory, shared).
#   big    clinfo (the port found by itself), vector add + reduction
#          (pv_basic), 5 x 4 MiB within its quota, then pv_hold stress
#          until the driver kills this VM's QEMU
#   small  clinfo, the 7th 4 MiB buffer over its 24 MiB quota refused with
#          CL_MEM_OBJECT_ALLOCATION_FAILURE, then, once the driver has
#          killed the other VM, pv_basic again: still served
# One PASS/FAIL line per step (lib.sh).
. "$GPVM_SRC/tests/vm/lib.sh"

role=${GPVM_ARG%%:*}
dir=${GPVM_ARG#*:}
T=$GPVM_BUILD/tests/pv
PORT=org.gpupass.pv.0

# Only our ICD; the port; clinfo finding it with no GPUPASS_SERVER.
pv_guest_start "$PORT"

export GPUPASS_SERVER=serial:$PORT
# runs a pv test program, PASS when it exits 0 with no "not ok" line
prog() {
	step=$1
	shift
	t0=$(now)
	"$@" >"/tmp/$step.out" 2>&1
	rc=$?
	if [ $rc -eq 0 ] && ! grep -q '^not ok' "/tmp/$step.out"; then
		pass "$step" "$(elapsed "$t0") s, $(grep -c '^ok' "/tmp/$step.out") checks"
	else
		fail "$step" "exit $rc: $(grep -m3 '^not ok\|Bail\|gpupass:' "/tmp/$step.out" | tr '\n' ' ')"
	fi
}

case $role in
big)
	prog vadd-reduce "$T/pv_basic"
	grep -q 'reduction sum: got 209188400, want 209188400' /tmp/vadd-reduce.out &&
		grep -q '^ok .* vadd results wrong: got 0, want 0' /tmp/vadd-reduce.out &&
		pass vadd-reduce-values || fail vadd-reduce-values "vector add / reduction results not checked"
	prog quota-within "$T/pv_quota" 4 5 0
	# until the driver kills this VM
	"$T/pv_hold" stress >/tmp/hold.out 2>&1 </dev/null &
	wait_for 120 grep -q ready /tmp/hold.out && pass hold-ready || fail hold-ready "$(cat /tmp/hold.out)"
	sleep 600
	;;
small)
	prog quota-refused "$T/pv_quota" 4 7 7
	grep -q 'allocation over memory_max refused: got -4, want -4' /tmp/quota-refused.out &&
		pass quota-error-code || fail quota-error-code "no CL_MEM_OBJECT_ALLOCATION_FAILURE (-4)"
	info "waiting for the driver to kill the other VM"
	# The shared root sits under an overlay, which caches that the file
	# was not there: drop the cached entries before each look.
	flag() { echo 2 >/proc/sys/vm/drop_caches; test -e "$dir/other-killed"; }
	if wait_for 240 flag; then
		prog after-kill "$T/pv_basic"
	else
		fail after-kill "the driver never killed the other VM"
	fi
	;;
*)
	fail role "unknown role '$role'"
	;;
esac
finish
