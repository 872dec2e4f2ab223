# SPDX-License-Identifier: Apache-2.0
# vm-vsock: PV over vsock inside a guest VM (no /dev/vhost-vsock on the build
# machines, so the guest's own vsock_loopback transport carries it):
# gpupass-pvd (PoCL) listens on vsock:PORT with [guest local] cid = 1, and
# tests/pv/pv_vsock.py runs clinfo and pv_basic (vector add + reduction
# checked) with GPUPASS_SERVER=vsock:1:PORT, then the same CID refused once
# the config names another. Its TAP points carry [step] tags, reported here.
# expect: loopback listen clinfo vadd identity refused refused-log
. "$GPVM_SRC/tests/vm/lib.sh"

out=/tmp/pv_vsock.out
t0=$(now)
/usr/bin/python3 "$GPVM_SRC/tests/pv/pv_vsock.py" "$GPVM_BUILD" "$GPVM_BUILD/tests/pv" vsock \
	>"$out" 2>&1
rc=$?
info "pv_vsock.py exited $rc after $(elapsed "$t0") s"
if grep -q '# SKIP' "$out"; then
	fail loopback "skipped inside the VM: $(grep -m1 SKIP "$out")"
fi
while IFS= read -r line; do
	case $line in
	"ok "*"[loopback]"* | "ok "*"[listen]"* | "ok "*"[clinfo]"* | "ok "*"[vadd]"* | \
		"ok "*"[identity]"* | "ok "*"[refused]"* | "ok "*"[refused-log]"*)
		step=${line#*\[}
		step=${step%%\]*}
		pass "$step" "$(echo "${line#*\] }" | cut -c1-160)"
		;;
	"not ok "*)
		step=${line#*\[}
		case $line in *"["*"]"*) step=${step%%\]*} ;; *) step=pv_vsock ;; esac
		fail "$step" "$(echo "$line" | cut -c1-300)"
		;;
	esac
done <"$out"
[ $rc -eq 0 ] || fail pv_vsock "exit $rc: $(grep -v '^ok\|^#' "$out" | tail -5 | tr '\n' ' ' | cut -c1-400)"
finish
