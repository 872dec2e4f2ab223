# SPDX-License-Identifier: Apache-2.0
# vm-survey: `gpupass survey` on a real kernel with a real Intel IOMMU.
# Topology (run-host --topology vga,bochs-display,shared): VGA at 00:02.0 on
# bochs-drm (boot VGA), bochs-display at 00:05.0, and behind a conventional
# pci-bridge at 00:06.0 a secondary-vga (01:01.0) sharing its IOMMU group
# with an e1000 NIC (01:02.0). Every expected value is read from the kernel's
# sysfs here, or is a fact of QEMU's emulated devices.
# expect: survey-json vfio-available host-iommu host-kernel gpu-found
# expect: gpu-identity gpu-location gpu-group gpu-reset gpu-bars gpu-msi
# expect: gpu-boot-vga gpu-dda-ready gpu-pv-no-opencl display-found shared-group
# expect: survey-table survey-detail survey-readonly vfio-loaded
. "$GPVM_SRC/tests/vm/lib.sh"
WORK=$(mktemp -d)

if [ ! -x "$GPUPASS" ]; then
	fail survey-json "$GPUPASS is missing"
	finish
fi
if ! "$GPUPASS" survey --help >$WORK/help 2>&1; then
	fail survey-json "this gpupass has no working 'survey' command yet: $GPUPASS survey --help says: $(head -n 2 $WORK/help | tr '\n' ' ')"
	finish
fi

snapshot() { # bindings and overrides of every PCI device
	for d in /sys/bus/pci/devices/*; do
		echo "${d##*/} $(dev_driver ${d##*/}) $(cat $d/driver_override 2>/dev/null)"
	done
}
snapshot >$WORK/before

# The real facts the survey must report, from the kernel.
G2=$(dev_group 0000:00:02.0)
G5=$(dev_group 0000:00:05.0)
GS=$(dev_group 0000:01:01.0)
NGROUPS=$(ls /sys/kernel/iommu_groups | wc -l)
info "groups: 00:02.0=$G2 00:05.0=$G5 01:01.0=$GS (with $(ls /sys/kernel/iommu_groups/$GS/devices | tr '\n' ' ')) total=$NGROUPS"

# check_json FILE VFIO_STATE: one PASS/FAIL line per step, on stdout.
check_json() {
	/usr/bin/python3 - "$1" "$2" "$G2" "$G5" "$GS" "$NGROUPS" "$(uname -r)" <<'EOF'
import json, sys
path, vfio, g2, g5, gs, ngroups, kver = sys.argv[1:]
out = []
def step(name, ok, why):
    out.append(f"PASS {name}" if ok else f"FAIL {name}: {why}")
try:
    s = json.load(open(path))
except ValueError as e:
    print(f"FAIL survey-json: not JSON: {e}")
    sys.exit(0)
step("survey-json", s.get("schema") == "gpupass.survey/1" and isinstance(s.get("gpus"), list),
     f"schema {s.get('schema')!r}, gpus {type(s.get('gpus')).__name__}")
host = s.get("host", {})
step(f"vfio-{vfio}", host.get("vfio_pci") == vfio, f"host.vfio_pci is {host.get('vfio_pci')!r}, want {vfio!r}")
if vfio == "loaded":
    for line in out: print(line)
    sys.exit(0)
io = host.get("iommu", {})
step("host-iommu", io.get("enabled") is True and io.get("groups") == int(ngroups),
     f"host.iommu is {io}, want enabled and {ngroups} groups")
step("host-kernel", host.get("kernel") == kver, f"host.kernel is {host.get('kernel')!r}, want {kver!r}")
gpus = {g.get("address"): g for g in s.get("gpus", [])}
g = gpus.get("0000:00:02.0")
step("gpu-found", g is not None, f"0000:00:02.0 not among {list(gpus)}")
if g is None:
    for line in out: print(line)
    sys.exit(0)
def codes(gpu, method):
    return [p.get("code") for p in gpu.get("methods", {}).get(method, {}).get("problems", [])]
want = {"vendor_id": "1234", "device_id": "1111", "class": "030000", "driver": "bochs-drm",
        "subsystem_vendor_id": "1af4", "subsystem_device_id": "1100"}
bad = {k: g.get(k) for k, v in want.items() if g.get(k) != v}
step("gpu-identity", not bad, f"wrong: {bad}, want {want}")
step("gpu-location", g.get("location_path") == "PCIROOT(0)#PCI(0200)",
     f"location_path {g.get('location_path')!r}, want 'PCIROOT(0)#PCI(0200)'")
step("gpu-group", g.get("iommu_group") == int(g2) and g.get("group_members") == ["0000:00:02.0"]
     and "group-shared" not in codes(g, "dda"),
     f"iommu_group {g.get('iommu_group')} members {g.get('group_members')}, want {g2} alone")
step("gpu-reset", g.get("reset_methods") == [] and "no-reset" in codes(g, "dda"),
     f"reset_methods {g.get('reset_methods')}, dda problems {codes(g, 'dda')}: want [] and no-reset")
bars = {b.get("index"): b for b in g.get("bars", [])}
b0, b2 = bars.get(0, {}), bars.get(2, {})
step("gpu-bars", b0.get("size") == 16 << 20 and b0.get("prefetchable") is True
     and b0.get("is_64bit") is False and b2.get("size") == 4096 and b2.get("prefetchable") is False
     and g.get("mmio") == {"low_bytes": (16 << 20) + 4096, "high_bytes": 0},
     f"bars {g.get('bars')} mmio {g.get('mmio')}: want BAR0 16 MiB prefetchable 32-bit, "
     "BAR2 4 KiB, low 16781312")
step("gpu-msi", g.get("msi") is False and g.get("msix") is False and "no-msi" in codes(g, "dda"),
     f"msi {g.get('msi')} msix {g.get('msix')} problems {codes(g, 'dda')}: the emulated VGA has neither")
step("gpu-boot-vga", g.get("boot_vga") is True and "boot-vga" in codes(g, "dda"),
     f"boot_vga {g.get('boot_vga')} problems {codes(g, 'dda')}")
dda = g.get("methods", {}).get("dda", {})
errs = [p for p in dda.get("problems", []) if p.get("severity") == "error"]
step("gpu-dda-ready", dda.get("ready") is True and not errs and "rmrr" not in codes(g, "dda")
     and "iommu-disabled" not in codes(g, "dda"),
     f"dda {dda}: only warnings/info expected here")
pv = g.get("methods", {}).get("pv", {})
# The emulated VGA has a host driver (bochs-drm) but no OpenCL driver: the
# host's only OpenCL platform is PoCL on the CPU, which never drives a GPU.
pvmsg = " ".join(p.get("message", "") for p in pv.get("problems", []))
step("gpu-pv-no-opencl", pv.get("ready") is False and "no-opencl-device" in codes(g, "pv")
     and "Portable Computing Language" in pvmsg,
     f"pv {pv}: want not ready with no-opencl-device naming PoCL's CPU device")
d = gpus.get("0000:00:05.0")
step("display-found", d is not None and d.get("class") == "038000" and d.get("iommu_group") == int(g5)
     and d.get("group_members") == ["0000:00:05.0"] and d.get("boot_vga") is False,
     f"0000:00:05.0: {d and {k: d.get(k) for k in ('class', 'iommu_group', 'group_members', 'boot_vga')}}")
sh = gpus.get("0000:01:01.0")
if sh is None:
    step("shared-group", False, f"0000:01:01.0 (secondary-vga behind the bridge) not among {list(gpus)}")
else:
    probs = [p for p in sh.get("methods", {}).get("dda", {}).get("problems", []) if p.get("code") == "group-shared"]
    step("shared-group", sh.get("class") == "038000" and sh.get("iommu_group") == int(gs)
         and "0000:01:02.0" in sh.get("group_members", [])
         and sh.get("location_path") == "PCIROOT(0)#PCI(0600)#PCI(0100)"
         and probs and probs[0].get("severity") == "error" and "0000:01:02.0" in probs[0].get("message", "")
         and sh["methods"]["dda"].get("ready") is False,
         f"0000:01:01.0: group {sh.get('iommu_group')} members {sh.get('group_members')} "
         f"location {sh.get('location_path')} group-shared {probs} ready {sh['methods']['dda'].get('ready')}: "
         "want an error naming the NIC 0000:01:02.0 and dda not ready")
for line in out: print(line)
EOF
}

# vfio-pci is on disk but not loaded yet: "available".
if "$GPUPASS" survey --json >$WORK/s1.json 2>$WORK/s1.err; then
	check_json $WORK/s1.json available >$WORK/r1
	while read -r line; do report "$line"; done <$WORK/r1
	grep -q '^FAIL' $WORK/r1 && NFAIL=$((NFAIL + 1))
else
	fail survey-json "gpupass survey --json exited $?: $(head -n 3 $WORK/s1.err)"
fi

"$GPUPASS" survey >$WORK/table 2>&1
rc=$?
check survey-table "gpupass survey exited $rc or did not list 0000:00:02.0: $(head -n 5 $WORK/table)" \
	grep -q '0000:00:02.0' $WORK/table
[ $rc -eq 0 ] || fail survey-table "exit $rc"
sed 's/^/table: /' $WORK/table

"$GPUPASS" survey 0000:00:02.0 >$WORK/detail 2>&1
rc=$?
check survey-detail "gpupass survey 0000:00:02.0 exited $rc or shows no no-reset: $(head -n 5 $WORK/detail)" \
	grep -q 'no-reset' $WORK/detail
[ $rc -eq 0 ] || fail survey-detail "exit $rc"
sed 's/^/detail: /' $WORK/detail

snapshot >$WORK/after
check survey-readonly "the survey changed a binding: $(diff $WORK/before $WORK/after | tr '\n' ' ')" \
	cmp -s $WORK/before $WORK/after

modprobe vfio-pci
if "$GPUPASS" survey --json >$WORK/s2.json 2>$WORK/s2.err; then
	check_json $WORK/s2.json loaded >$WORK/r2
	while read -r line; do report "$line"; done <$WORK/r2
	grep -q '^FAIL' $WORK/r2 && NFAIL=$((NFAIL + 1))
else
	fail vfio-loaded "gpupass survey --json exited $? with vfio-pci loaded: $(head -n 3 $WORK/s2.err)"
fi
finish
