# SPDX-License-Identifier: Apache-2.0
# vm-dda: the DDA chain through gpupass on a real kernel (issue 3).
# Topology (run-host --topology vga,shared): VGA at 00:02.0 on bochs-drm
# (alone in its group; warnings boot-vga and no-reset), and behind a
# conventional pci-bridge a secondary-vga (01:01.0) sharing its IOMMU group
# with an e1000 NIC (01:02.0) on e1000: DDA must refuse that one.
# Steps: vm create (refused without --force, then with it) -> vm start ->
# vm verify (QMP) -> the nested guest's lspci -nn shows the GPU -> mount
# refused while the VM holds it -> vm stop -> mount -> back on bochs-drm;
# dismount of the shared-group GPU refused, with and without --force.
# expect: commands start-on-bochs vm-create-refused vm-create gpu-on-vfio
# expect: vm-start qmp-up qemu-confined vfio-handed vm-verify nested-lspci mount-refused-held vm-stop
# expect: vfio-back vm-stop-graceful
# expect: mount back-on-bochs dismount-shared-refused shared-untouched
# expect: dismount-mount survey-dismounted vm-delete
# expect: hand-create hand-dismount hand-assign hand-start hand-verify hand-stop
# expect: hand-unassign hand-mount dismount-race
. "$GPVM_SRC/tests/vm/lib.sh"
GPU=0000:00:02.0
SHARED=0000:01:01.0
NIC=0000:01:02.0
WORK=$(mktemp -d)
D=$WORK/state
GP() { "$GPUPASS" --state-dir "$D" "$@"; }

# 1. The commands of issue 3 must exist; a missing one fails the test by name.
missing=
for c in "dismount" "mount" "vm create" "vm start" "vm verify" "vm stop" "vm log" "vm delete"; do
	# shellcheck disable=SC2086
	if ! GP $c --help >$WORK/help 2>&1; then
		missing="$missing '$c'"
		info "gpupass $c --help: $(head -n 1 $WORK/help)"
	fi
done
if [ -n "$missing" ]; then
	fail commands "this gpupass lacks the command(s)$missing of issue 3 (their --help fails); vm-dda cannot run before they exist"
	finish
fi
pass commands

check start-on-bochs "driver is $(dev_driver $GPU), want bochs-drm" \
	test "$(dev_driver $GPU)" = bochs-drm
GROUP=$(dev_group $GPU)

# The GPU's name as the survey reports it; the shared-group GPU has the same
# name, so vm create must pick the one that is DDA-ready.
GPU_NAME=$(survey_name $GPU)
[ -n "$GPU_NAME" ] || GPU_NAME="1111"
info "gpu name: $GPU_NAME"

APPEND="$NESTED_APPEND gp.after=wait"
create() {
	GP vm create g1 --memory 256M --cpus 1 --kernel "$NESTED_KERNEL" \
		--initrd "$NESTED_INITRD" --append "$APPEND" \
		--gpu-passthrough dda --gpu-name "$GPU_NAME" --gpu-count 1 "$@"
}

# 2. boot-vga and no-reset are warnings: without --force, refused, and
# nothing changes on the host.
create >$WORK/out 2>&1
rc=$?
if [ $rc -ne 0 ] && [ "$(dev_driver $GPU)" = bochs-drm ]; then
	pass vm-create-refused "exit $rc: $(head -n 1 $WORK/out)"
else
	fail vm-create-refused "exit $rc, driver $(dev_driver $GPU): want a refusal (warnings boot-vga, no-reset need --force) and no change"
fi

t0=$(now)
create --force >$WORK/out 2>&1
rc=$?
check vm-create "gpupass vm create --force exited $rc: $(head -n 3 $WORK/out | tr '\n' ' ')" test $rc -eq 0
check gpu-on-vfio "after vm create $GPU is on $(dev_driver $GPU), want vfio-pci; /dev/vfio/$GROUP" \
	test "$(dev_driver $GPU)" = vfio-pci -a -c /dev/vfio/$GROUP
[ "$(dev_driver $SHARED)" = bochs-drm ] ||
	fail vm-create "vm create touched the shared-group GPU $SHARED (now $(dev_driver $SHARED))"
info "time vm-create (with dismount) $(elapsed $t0) s"

t0=$(now)
GP vm start g1 >$WORK/out 2>&1
rc=$?
check vm-start "gpupass vm start exited $rc: $(head -n 3 $WORK/out | tr '\n' ' ')" test $rc -eq 0
# vm start returns once QMP answers; then vm verify (QMP query-pci) must
# show the GPU in the guest's PCI tree, once the guest firmware has
# numbered the bus behind the root port.
info "time vm-start-to-qmp $(elapsed $t0) s"
GP vm status g1 >$WORK/status 2>&1
check qmp-up "gpupass vm status g1 after vm start: $(head -n 1 $WORK/status)" \
	grep -Eq 'running|starting' $WORK/status
# QEMU confined as libvirt does it: an unprivileged user once started,
# QEMU's seccomp filter, no capabilities (and still the GPU, below).
qpid=$(cat "$D/vms/g1/qemu.pid" 2>/dev/null)
quid=$(awk '/^Uid:/ { print $3 }' /proc/$qpid/status 2>/dev/null)
qsec=$(awk '/^Seccomp:/ { print $2 }' /proc/$qpid/status 2>/dev/null)
qcap=$(awk '/^CapEff:/ { print $2 }' /proc/$qpid/status 2>/dev/null)
check qemu-confined "QEMU $qpid: uid '$quid' (want not 0), Seccomp '$qsec' (want 2), CapEff '$qcap'" \
	test -n "$quid" -a "$quid" != 0 -a "$qsec" = 2 -a "$qcap" = 0000000000000000
# ... and its VFIO group node belongs to QEMU's user while it holds it.
vown=$(stat -c %U /dev/vfio/$GROUP 2>/dev/null)
check vfio-handed "/dev/vfio/$GROUP belongs to '$vown' while g1 runs, want gpupass-qemu" \
	test "$vown" = gpupass-qemu
# --wait: vm verify asks again each second until the guest shows it.
verified() {
	GP vm verify g1 --json --agent-timeout 1 --wait 120 >$WORK/verify 2>&1 &&
	/usr/bin/python3 -c '
import json, sys
v = json.load(open(sys.argv[1]))
d = [x for x in v["devices"] if x["host_address"] == "0000:00:02.0"]
ok = v["ok"] and len(d) == 1 and d[0]["ids"] == "1234:1111" and d[0]["in_query_pci"] and d[0]["guest_address"]
print(d[0]["guest_address"] if ok else "", file=open(sys.argv[2], "w"))
sys.exit(not ok)' $WORK/verify $WORK/guest-addr
}
if verified; then
	pass vm-verify "guest address $(cat $WORK/guest-addr)"
	info "time vm-start-to-verified $(elapsed $t0) s"
else
	fail vm-verify "gpupass vm verify g1 --json never showed 0000:00:02.0 (1234:1111) in query-pci within 120 s: $(head -c 300 $WORK/verify)"
fi
sed 's/^/verify: /' $WORK/verify

# The nested guest prints lspci -nn on its console, which vm log shows.
guest_done() { GP vm log g1 >$WORK/guest.log 2>&1 && grep -q NESTED-END $WORK/guest.log; }
if wait_for 360 guest_done; then
	info "time nested-guest-lspci $(elapsed $t0) s after vm start"
	check nested-lspci "the nested guest's lspci -nn has no 1234:1111 of class 0300" \
		nested_sees $WORK/guest.log 1234:1111 0300
	# where the guest's lspci sees it is where vm verify said it is
	ga=$(grep -o 'NESTED-LSPCI [0-9a-f:.]* VGA compatible controller \[0300\]: .*\[1234:1111\]' $WORK/guest.log | cut -d' ' -f2)
	case "$(cat $WORK/guest-addr 2>/dev/null)" in
	*"$ga") [ -n "$ga" ] && info "nested lspci shows the GPU at $ga, as vm verify said" ;;
	*) fail nested-lspci "nested lspci shows the GPU at '$ga', vm verify said '$(cat $WORK/guest-addr 2>/dev/null)'" ;;
	esac
else
	fail nested-lspci "the nested guest printed no NESTED-END within 360 s (vm log: $(tail -n 2 $WORK/guest.log | tr '\n' ' '))"
fi
grep 'NESTED-\|vfio' $WORK/guest.log | sed 's/^/guest: /'

GP mount $GPU >$WORK/out 2>&1
rc=$?
if [ $rc -ne 0 ] && [ "$(dev_driver $GPU)" = vfio-pci ]; then
	pass mount-refused-held "exit $rc: $(head -n 1 $WORK/out)"
else
	fail mount-refused-held "mount while g1 runs: exit $rc, driver $(dev_driver $GPU): want a refusal"
fi

t0=$(now)
GP vm stop g1 --timeout 60 >$WORK/out 2>&1
rc=$?
check vm-stop "gpupass vm stop exited $rc: $(head -n 3 $WORK/out | tr '\n' ' ')" test $rc -eq 0
info "time vm-stop $(elapsed $t0) s"
vown=$(stat -c %U:%G /dev/vfio/$GROUP 2>/dev/null)
check vfio-back "/dev/vfio/$GROUP belongs to '$vown' after vm stop, want root:root" \
	test "$vown" = root:root
# vm stop asks first (ACPI power button, handled by acpid in the guest).
GP vm log g1 >$WORK/guest.log 2>&1
check vm-stop-graceful "the guest never saw a power-down request (no NESTED-POWERDOWN in vm log): forced off?" \
	grep -q NESTED-POWERDOWN $WORK/guest.log

t0=$(now)
GP mount $GPU >$WORK/out 2>&1
rc=$?
check mount "gpupass mount $GPU exited $rc: $(head -n 3 $WORK/out | tr '\n' ' ')" test $rc -eq 0
info "time mount $(elapsed $t0) s"
check back-on-bochs "$GPU is on $(dev_driver $GPU) after mount, want bochs-drm (override '$(cat /sys/bus/pci/devices/$GPU/driver_override)')" \
	test "$(dev_driver $GPU)" = bochs-drm -a "$(cat /sys/bus/pci/devices/$GPU/driver_override)" = "(null)"

# 3. The shared group: refused, even with --force, and nothing changes.
ok=1
for f in "" "--force"; do
	# shellcheck disable=SC2086
	GP dismount $SHARED $f >$WORK/out 2>&1
	rc=$?
	if [ $rc -eq 0 ] || ! grep -q "$NIC" $WORK/out; then
		ok=0
		fail dismount-shared-refused "dismount $SHARED $f: exit $rc, message '$(head -n 1 $WORK/out)': want a refusal naming $NIC"
	fi
	info "dismount $SHARED $f: exit $rc: $(head -n 1 $WORK/out)"
done
[ $ok -eq 1 ] && pass dismount-shared-refused
check shared-untouched "after the refusals $SHARED is on $(dev_driver $SHARED), $NIC on $(dev_driver $NIC)" \
	test "$(dev_driver $SHARED)" = bochs-drm -a "$(dev_driver $NIC)" = e1000

# 4. dismount + mount by themselves (also what bench/dda times); while
# dismounted, the survey says so.
t0=$(now)
if GP dismount $GPU --force >$WORK/out 2>&1 && [ "$(dev_driver $GPU)" = vfio-pci ]; then
	t1=$(now)
	"$GPUPASS" survey --json >$WORK/s.json 2>&1
	/usr/bin/python3 -c '
import json, sys
g = next(g for g in json.load(open(sys.argv[1]))["gpus"] if g["address"] == "0000:00:02.0")
codes = [p["code"] for p in g["methods"]["dda"]["problems"]]
sys.exit(not (g["driver"] == "vfio-pci" and "already-dismounted" in codes and g["methods"]["pv"]["ready"] is False))
' $WORK/s.json
	rc=$?
	check survey-dismounted "survey of the dismounted GPU does not say vfio-pci / already-dismounted / pv not ready: $(head -c 200 $WORK/s.json)" \
		test $rc -eq 0
	t2=$(now)
	if GP mount $GPU >>$WORK/out 2>&1 && [ "$(dev_driver $GPU)" = bochs-drm ]; then
		pass dismount-mount
	else
		fail dismount-mount "mount: driver now $(dev_driver $GPU): $(tail -n 3 $WORK/out | tr '\n' ' ')"
	fi
	info "time dismount $(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.2f", b - a }') s, mount $(elapsed $t2) s"
else
	fail dismount-mount "dismount --force: driver now $(dev_driver $GPU): $(head -n 3 $WORK/out | tr '\n' ' ')"
fi

GP vm delete g1 >$WORK/out 2>&1
rc=$?
check vm-delete "gpupass vm delete g1 exited $rc: $(head -n 1 $WORK/out); $GPU on $(dev_driver $GPU)" \
	test $rc -eq 0 -a "$(dev_driver $GPU)" = bochs-drm

# 5. The README's by-hand path: a VM made without a GPU, then dismount,
# assign, start (QMP shows the GPU), stop, unassign (a none VM again), mount.
GP vm create t1 --memory 256M --cpus 1 --kernel "$NESTED_KERNEL" --initrd "$NESTED_INITRD" \
	--append "$NESTED_APPEND" >$WORK/out 2>&1
rc=$?
check hand-create "vm create t1 (no GPU) exited $rc: $(head -n 1 $WORK/out)" test $rc -eq 0
GP dismount $GPU --force >$WORK/out 2>&1
check hand-dismount "dismount $GPU --force: $(head -n 1 $WORK/out); driver $(dev_driver $GPU)" \
	test "$(dev_driver $GPU)" = vfio-pci
GP assign $GPU --vm t1 >$WORK/out 2>&1
rc=$?
check hand-assign "assign $GPU --vm t1 exited $rc: $(head -n 1 $WORK/out)" test $rc -eq 0
GP vm start t1 >$WORK/out 2>&1
rc=$?
check hand-start "vm start t1 exited $rc: $(head -n 2 $WORK/out | tr '\n' ' ')" test $rc -eq 0
GP vm verify t1 --json --agent-timeout 1 --wait 120 >$WORK/verify 2>&1
check hand-verify "vm verify t1 did not show $GPU: $(head -c 300 $WORK/verify)" \
	grep -q '"host_address": *"0000:00:02.0"' $WORK/verify
GP vm stop t1 --force >$WORK/out 2>&1
rc=$?
GP vm status t1 >$WORK/status 2>&1
check hand-stop "vm stop t1 --force exited $rc: $(head -n 1 $WORK/out); status $(head -n 1 $WORK/status)" \
	grep -q "t1: stopped" $WORK/status
GP unassign $GPU >$WORK/out 2>&1
rc=$?
GP vm show t1 --json >$WORK/show 2>&1
check hand-unassign "unassign exited $rc ($(head -n 1 $WORK/out)); t1 is none again: $(grep gpu_passthrough $WORK/show)" \
	grep -q '"gpu_passthrough": *"none"' $WORK/show
GP mount $GPU >$WORK/out 2>&1
check hand-mount "mount $GPU: $(head -n 1 $WORK/out); driver $(dev_driver $GPU)" \
	test "$(dev_driver $GPU)" = bochs-drm
GP vm delete t1 >/dev/null 2>&1

# 6. Two dismounts of one GPU at once: exactly one does it; the other is
# refused naming the gpupass (pid) that holds the GPU, or, when it comes
# after the first finished, finds it already dismounted. Never both.
GP dismount $GPU --force >$WORK/race1 2>&1 &
p1=$!
GP dismount $GPU --force >$WORK/race2 2>&1 &
p2=$!
wait $p1; r1=$?
wait $p2; r2=$?
did=$(cat $WORK/race1 $WORK/race2 | grep -c "dismounted; its IOMMU group")
already=$(cat $WORK/race1 $WORK/race2 | grep -c "already dismounted")
busy=$(cat $WORK/race1 $WORK/race2 | grep -c "another gpupass (pid")
info "race: exit $r1 '$(head -n 1 $WORK/race1)' / exit $r2 '$(head -n 1 $WORK/race2)'"
check dismount-race "two dismounts at once: exit $r1/$r2, $did dismounted line(s), $already already, $busy busy" \
	test "$(dev_driver $GPU)" = vfio-pci -a \( \( $((r1 + r2)) -ne 0 -a $busy -eq 1 -a $did -eq 1 \) -o \
	\( $r1 -eq 0 -a $r2 -eq 0 -a $already -eq 1 -a $did -eq 1 \) \)
GP mount $GPU >/dev/null 2>&1
finish
