# SPDX-License-Identifier: Apache-2.0
# Runs inside the guest VM of bench/pv-vm/run (through tests/vm/run-host):
# bench/pv's pv_bench, PV platform only (PV_BENCH_ONLY=pv), over the VM's
# virtio-serial port with the data inline (GPUPASS_IVSHMEM=off), then with
# the ivshmem region. Every number goes out as "INFO bench MODE NAME VALUE".
# GPVM_ARG: the largest transfer in MiB.
# expect: bench-serial bench-ivshmem
. "$GPVM_SRC/tests/vm/lib.sh"

mkdir -p /tmp/vendors
echo "$GPVM_BUILD/libgpupass-icd.so" >/tmp/vendors/gpupass.icd
export OCL_ICD_VENDORS=/tmp/vendors GPUPASS_SERVER=serial:org.gpupass.pv.0 GPUPASS_DEBUG=1
export PV_BENCH_ONLY=pv PV_BENCH_MAX=${GPVM_ARG:-64} PV_BENCH_QUICK=1

bench() {
	mode=$1 want=$2
	shift 2
	t0=$(now)
	env "$@" "$GPVM_BUILD/bench/pv/pv_bench" >"/tmp/$mode.out" 2>"/tmp/$mode.err"
	rc=$?
	while read -r k v; do info "bench $mode $k $v"; done <"/tmp/$mode.out"
	if [ $rc -eq 0 ] && grep -q "$want" "/tmp/$mode.err"; then
		pass "bench-$mode" "$(elapsed "$t0") s"
	else
		fail "bench-$mode" "exit $rc: $(head -c 300 "/tmp/$mode.err" | tr '\n' ' ')"
	fi
}

bench serial "bulk data inline" GPUPASS_IVSHMEM=off
bench ivshmem "through the ivshmem region"
finish
