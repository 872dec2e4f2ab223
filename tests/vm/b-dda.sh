# SPDX-License-Identifier: Apache-2.0
# The inside of bench/dda (run by tests/vm/run-host, topology vga): times, in
# the emulated host, GPUPASS_BENCH_RUNS times each (GPVM_ARG, default 5):
#   by-hand   sysfs dismount (driver_override, unbind, drivers_probe) + mount
#   qemu-qmp  qemu-system-x86_64 with the GPU assigned, start until QMP answers
#   gpupass   dismount + mount; vm start (returns when QMP answers); vm start
#             until vm verify finds the GPU in the guest's PCI tree
# One `INFO BENCH <metric> <seconds>` line per sample; bench/dda prints
# the medians. A gpupass command that is missing gives `INFO BENCH-NA`.
# expect: bench
. "$GPVM_SRC/tests/vm/lib.sh"
GPU=0000:00:02.0
SYS=/sys/bus/pci/devices/$GPU
RUNS=${GPVM_ARG:-5}
WORK=$(mktemp -d)
D=$WORK/state
QMP="$GPVM_SRC/tests/vm/qmp"
GP() { "$GPUPASS" --state-dir "$D" "$@"; }
ts() { date +%s.%N; }
sample() { # METRIC T0 T1
	info "BENCH $1 $(awk -v a="$2" -v b="$3" 'BEGIN { printf "%.4f", b - a }')"
}
modprobe vfio-pci || { fail bench "modprobe vfio-pci"; finish; }

bind_to() { # DRIVER-OVERRIDE ("" for none)
	echo "$1" >$SYS/driver_override
	[ -e $SYS/driver ] && echo $GPU >$SYS/driver/unbind
	echo $GPU >/sys/bus/pci/drivers_probe
}

i=0
while [ $i -lt "$RUNS" ]; do
	t0=$(ts)
	bind_to vfio-pci
	t1=$(ts)
	bind_to ""
	t2=$(ts)
	[ "$(dev_driver $GPU)" = bochs-drm ] || { fail bench "by hand: $GPU not back on bochs-drm"; finish; }
	sample by-hand-dismount "$t0" "$t1"
	sample by-hand-mount "$t1" "$t2"
	i=$((i + 1))
done

bind_to vfio-pci
i=0
while [ $i -lt "$RUNS" ]; do
	rm -f $WORK/q.sock
	t0=$(ts)
	qemu-system-x86_64 -nodefaults -no-user-config -display none \
		-machine q35,accel=tcg -cpu max -m 256M -smp 1 \
		-kernel "$NESTED_KERNEL" -initrd "$NESTED_INITRD" -append "$NESTED_APPEND" \
		-device vfio-pci,host=$GPU -serial null -monitor none \
		-qmp unix:$WORK/q.sock,server=on,wait=off >/dev/null 2>&1 &
	qpid=$!
	"$QMP" $WORK/q.sock --wait 60 query-status >/dev/null || { fail bench "QMP never answered"; finish; }
	t1=$(ts)
	sample qemu-start-to-qmp "$t0" "$t1"
	"$QMP" $WORK/q.sock quit >/dev/null 2>&1
	wait $qpid
	i=$((i + 1))
done
bind_to ""

have=1
for c in "dismount" "mount" "vm create" "vm start" "vm verify" "vm stop" "vm delete"; do
	# shellcheck disable=SC2086
	if ! GP $c --help >/dev/null 2>&1; then
		info "BENCH-NA gpupass has no '$c' command"
		have=0
	fi
done
if [ $have -eq 1 ]; then
	i=0
	while [ $i -lt "$RUNS" ]; do
		t0=$(ts)
		GP dismount $GPU --force >/dev/null || { fail bench "gpupass dismount failed"; finish; }
		t1=$(ts)
		GP mount $GPU >/dev/null || { fail bench "gpupass mount failed"; finish; }
		t2=$(ts)
		sample gpupass-dismount "$t0" "$t1"
		sample gpupass-mount "$t1" "$t2"
		i=$((i + 1))
	done
	GP vm create b1 --memory 256M --cpus 1 --kernel "$NESTED_KERNEL" --initrd "$NESTED_INITRD" \
		--append "$NESTED_APPEND" --gpu-passthrough dda --gpu-name "$(survey_name $GPU)" --force >$WORK/out 2>&1 ||
		{ fail bench "gpupass vm create: $(head -n 1 $WORK/out)"; finish; }
	i=0
	while [ $i -lt "$RUNS" ]; do
		t0=$(ts)
		# vm start returns once QMP answers.
		GP vm start b1 >$WORK/out 2>&1 || { fail bench "gpupass vm start: $(head -n 1 $WORK/out)"; finish; }
		t1=$(ts)
		n=0
		until GP vm verify b1 --agent-timeout 1 >/dev/null 2>&1; do
			n=$((n + 1))
			[ $n -lt 300 ] || { fail bench "vm verify never succeeded"; finish; }
			sleep 0.5
		done
		t2=$(ts)
		sample gpupass-vm-start-to-qmp "$t0" "$t1"
		sample gpupass-vm-start-to-verified "$t0" "$t2"
		GP vm stop b1 --force >/dev/null 2>&1
		i=$((i + 1))
	done
	GP vm delete b1 >/dev/null 2>&1
	GP mount $GPU >/dev/null 2>&1
fi
pass bench
finish
