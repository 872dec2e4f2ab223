#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""`gpupass survey` end to end on fake trees: output values and exit codes.

Usage: test_survey_cli.py GPUPASS GP-MKFIXTURE FAKEGPU-ICD. Prints TAP.

The OpenCL loader is pointed at a vendors directory holding only the fake
GPU ICD (FAKEGPU-ICD, an .icd file), which reports a GPU at each address the
fixtures use, unless a case says otherwise: the PV check needs a host OpenCL
device at the GPU's address.
"""
import json
import os
import shutil
import subprocess
import sys
import tempfile

GPUPASS, MKFIXTURE, FAKEGPU_ICD = sys.argv[1], sys.argv[2], sys.argv[3]
TMP = tempfile.mkdtemp(prefix="gp-cli-")
results = []

# OpenCL vendors: only the fake GPU; none at all.
FAKE_VENDORS = os.path.join(TMP, "vendors-fake")
os.mkdir(FAKE_VENDORS)
shutil.copy(FAKEGPU_ICD, FAKE_VENDORS)
EMPTY_VENDORS = os.path.join(TMP, "vendors-empty")
os.mkdir(EMPTY_VENDORS)
POCL_ICD = "/etc/OpenCL/vendors/pocl.icd"
# Every GPU address of the fixtures below: each gets a host OpenCL device.
FIXTURE_GPUS = "0000:3b:00.0,0000:01:00.0,0000:03:00.0,0000:00:02.0,0000:5e:00.0"
DEFAULT_CL = {"OCL_ICD_VENDORS": FAKE_VENDORS, "FAKEGPU_PCI": FIXTURE_GPUS}


def fixture(name):
    d = os.path.join(TMP, name)
    if not os.path.isdir(d):
        subprocess.run([MKFIXTURE, name, d], check=True)
    return d


def gp(*args, root=None, cl=None):
    argv = [GPUPASS] + (["--root", root] if root else []) + list(args)
    env = dict(os.environ)
    env.pop("GPUPASS_ROOT", None)
    for k in ("FAKEGPU_PCI", "FAKEGPU_PLATFORM", "FAKEGPU_SUFFIX"):
        env.pop(k, None)
    env.update(DEFAULT_CL if cl is None else cl)
    p = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=60)
    return p.returncode, p.stdout, p.stderr


def check(name, cond, detail=""):
    results.append((name, bool(cond), detail))


def survey_json(root, *extra, cl=None):
    rc, out, err = gp("survey", "--json", *extra, root=root, cl=cl)
    try:
        return rc, json.loads(out), err
    except ValueError as e:
        return rc, {"error": str(e), "out": out}, err


def codes(gpu, method="dda"):
    return [p["code"] for p in gpu["methods"][method]["problems"]]


def by_addr(doc, addr):
    for g in doc.get("gpus", []):
        if g["address"] == addr:
            return g
    return {"methods": {"dda": {"problems": [], "ready": None},
                        "pv": {"problems": [], "ready": None}}}


# --help and usage errors
rc, out, err = gp("survey", "--help")
check("survey --help exits 0 and shows usage", rc == 0 and "Usage:" in out and "--json" in out)
rc, out, err = gp("survey", "--bogus")
check("unknown option exits 2", rc == 2, err)
rc, out, err = gp("survey", "a", "b", root=fixture("server-t4"))
check("two queries exit 2", rc == 2 and "one ADDRESS" in err, err)
rc, out, err = gp("survey", root=os.path.join(TMP, "does-not-exist"))
check("missing --root exits 2 with one line", rc == 2 and len(err.strip().splitlines()) == 1
      and "does-not-exist" in err, err)
empty = os.path.join(TMP, "empty")
os.mkdir(empty)
rc, out, err = gp("survey", root=empty)
check("root without /sys/bus/pci exits 1 naming it", rc == 1 and "/sys" in err, err)

# the fixture tool itself
p = subprocess.run([MKFIXTURE, "--list"], capture_output=True, text=True)
names = [l.split()[0] for l in p.stdout.splitlines()]
check("gp-mkfixture --list names every tree", p.returncode == 0 and "server-t4" in names
      and "broken-resource" in names and len(names) >= 20, p.stdout)
p = subprocess.run([MKFIXTURE, "no-such-tree", os.path.join(TMP, "x")], capture_output=True, text=True)
check("gp-mkfixture: unknown name exits 2", p.returncode == 2 and "no-such-tree" in p.stderr, p.stderr)

# the healthy server: table, JSON, detail
root = fixture("server-t4")
rc, out, err = gp("survey", root=root)
row = [l for l in out.splitlines() if l.startswith("0000:3b:00.0")]
check("table has the T4 row", rc == 0 and len(row) == 1 and "Tesla" in row[0], out)
check("table row: driver, group, DDA yes, PV yes, no problem",
      row and " nvidia " in row[0] and " 30 " in row[0] and row[0].rstrip().endswith("yes  yes  -"),
      row)
check("table header line", "ADDRESS" in out and "TOP PROBLEM" in out and "IOMMU on (4 groups)" in out, out)
rc, doc, err = survey_json(root)
g = by_addr(doc, "0000:3b:00.0")
check("--json: schema and host", rc == 0 and doc.get("schema") == "gpupass.survey/1"
      and doc["host"]["iommu"] == {"enabled": True, "groups": 4}
      and doc["host"]["vfio_pci"] == "loaded" and doc["host"]["kernel"] == "6.1.0-18-amd64", doc)
check("--json: T4 identity", g.get("vendor_id") == "10de" and g.get("device_id") == "1eb8"
      and g.get("class") == "030200" and g.get("driver") == "nvidia"
      and g.get("vendor") == "NVIDIA Corporation" and "Tesla T4" in g.get("name", "")
      and g.get("location_path") == "PCIROOT(3A)#PCI(0000)#PCI(0000)", g)
check("--json: T4 group, resets, interrupts", g.get("iommu_group") == 30
      and g.get("group_members") == ["0000:3b:00.0"] and g.get("reset_methods") == ["flr", "bus"]
      and g.get("msi") is True and g.get("msix") is True, g)
check("--json: T4 BARs and MMIO", [(b["index"], b["size"], b["is_64bit"], b["prefetchable"])
                                   for b in g.get("bars", [])] ==
      [(0, 16 << 20, False, False), (1, 256 << 20, True, True), (3, 32 << 20, True, True)]
      and g.get("mmio") == {"low_bytes": 16 << 20, "high_bytes": 288 << 20}, g.get("bars"))
check("--json: T4 ready for both, no problems",
      g["methods"]["dda"] == {"ready": True, "problems": []}
      and g["methods"]["pv"] == {"ready": True, "problems": []}, g.get("methods"))
rc, out, err = gp("survey", "tesla t4", root=root)
check("detail by name: every section", rc == 0 and "Checks:" in out and "BAR1" in out
      and "256 MiB" in out and "PCIROOT(3A)#PCI(0000)#PCI(0000)" in out
      and "DDA (whole GPU to one VM): ready" in out, out)
rc, doc1, err = survey_json(root, "3b:00.0")
check("detail --json by short address is one GPU", rc == 0 and doc1.get("address") == "0000:3b:00.0", doc1)
rc, out, err = gp("survey", "PCIROOT(3A)#PCI(0000)#PCI(0000)", root=root)
check("detail by location path", rc == 0 and out.count("0000:3b:00.0") >= 1, err)

# lookups that fail
root = fixture("two-nvidia")
rc, out, err = gp("survey", "nvidia", root=root)
check("ambiguous name exits 2 listing both", rc == 2 and "0000:3b:00.0" in err
      and "0000:5e:00.0" in err and "matches 2 GPUs" in err, err)
rc, out, err = gp("survey", "radeon", root=root)
check("unknown name exits 2", rc == 2 and "no GPU matches 'radeon'" in err, err)
rc, out, err = gp("survey", "0000:3a:00.0", root=root)
check("a bridge's address is not a GPU: exit 2", rc == 2, err)

# no GPU
root = fixture("no-gpu")
rc, out, err = gp("survey", root=root)
check("no GPU: says so, exit 0", rc == 0 and "no GPU found (looked at 2 PCI devices)" in out, out)
rc, doc, err = survey_json(root)
check("no GPU: --json has an empty list", rc == 0 and doc.get("gpus") == [], doc)

# each problem code on its fixture, through the binary
CASES = [
    ("iommu-off", "0000:01:00.0", "dda", "iommu-disabled", "error", False),
    ("no-iommu-group", "0000:3b:00.0", "dda", "no-iommu-group", "error", False),
    ("group-nic", "0000:03:00.0", "dda", "group-shared", "error", False),
    ("workstation", "0000:01:00.0", "dda", "group-companion", "info", True),
    ("rmrr", "0000:3b:00.0", "dda", "rmrr", "error", False),
    ("no-acs", "0000:3b:00.0", "dda", "no-acs", "warning", True),
    ("no-reset-no-msi", "0000:00:02.0", "dda", "no-reset", "warning", True),
    ("reset-quirk", "0000:3b:00.0", "dda", "reset-quirk", "warning", True),
    ("no-reset-no-msi", "0000:00:02.0", "dda", "no-msi", "warning", True),
    ("workstation", "0000:01:00.0", "dda", "boot-vga", "warning", True),
    ("in-use", "0000:3b:00.0", "dda", "in-use", "warning", True),
    ("vfio-not-loaded", "0000:3b:00.0", "dda", "vfio-not-loaded", "info", True),
    ("vfio-missing", "0000:3b:00.0", "dda", "vfio-missing", "error", False),
    ("big-bar", "0000:3b:00.0", "dda", "large-bar", "info", True),
    ("already-dismounted", "0000:3b:00.0", "dda", "already-dismounted", "info", True),
    ("no-host-driver", "0000:3b:00.0", "pv", "no-host-driver", "error", False),
]
for fx, addr, method, code, sev, ready in CASES:
    rc, doc, err = survey_json(fixture(fx))
    g = by_addr(doc, addr)
    probs = [p for p in g["methods"][method]["problems"] if p["code"] == code]
    check(f"{code} fires on {fx} ({sev}, {method} ready={ready})",
          rc == 0 and len(probs) == 1 and probs[0]["severity"] == sev
          and probs[0]["message"] and probs[0]["fix"] and g["methods"][method]["ready"] == ready,
          g["methods"])
    healthy = by_addr(survey_json(fixture("server-t4"))[1], "0000:3b:00.0")
    check(f"{code} does not fire on server-t4", code not in codes(healthy, method))

rc, doc, err = survey_json(fixture("vfio-not-loaded"))
check("host vfio_pci available", doc.get("host", {}).get("vfio_pci") == "available", doc.get("host"))
rc, doc, err = survey_json(fixture("vfio-missing"))
check("host vfio_pci missing", doc.get("host", {}).get("vfio_pci") == "missing", doc.get("host"))
rc, doc, err = survey_json(fixture("iommu-off"))
check("host iommu off", doc.get("host", {}).get("iommu") == {"enabled": False, "groups": 0}
      and by_addr(doc, "0000:01:00.0").get("iommu_group", 0) is None, doc.get("host"))
rc, doc, err = survey_json(fixture("sriov-igpu"))
g = by_addr(doc, "0000:00:02.0")
check("SR-IOV iGPU: sriov and mdev types", g.get("sriov") == {"total_vfs": 7, "num_vfs": 0}
      and g.get("mdev_types") == [{"id": "i915-GVTg_V5_4", "name": "GVTg_V5_4", "available": 2},
                                  {"id": "i915-GVTg_V5_8", "name": "GVTg_V5_8", "available": 1}], g)
rc, doc, err = survey_json(fixture("big-bar"))
g = by_addr(doc, "0000:3b:00.0")
check("big BAR: 128 GiB 64-bit", any(b["size"] == 128 << 30 and b["is_64bit"] for b in g.get("bars", []))
      and g["mmio"]["high_bytes"] == (128 << 30) + (32 << 20), g.get("bars"))
rc, out, err = gp("survey", "01:00.0", root=fixture("workstation"))
check("detail lists each fix", rc == 0 and out.count("fix: ") == 2 and "[warning] boot-vga" in out
      and "[info] group-companion" in out, out)

# bad input: the broken GPU is reported, the other still surveyed
for fx, f in [("broken-config", "config"), ("broken-config-missing", "config"),
              ("broken-class", "class"), ("broken-iommu-link", "iommu_group"),
              ("broken-resource", "resource")]:
    rc, doc, err = survey_json(fixture(fx))
    t4, vga = by_addr(doc, "0000:3b:00.0"), by_addr(doc, "0000:00:02.0")
    msgs = [p["message"] for p in t4["methods"]["dda"]["problems"] if p["code"] == "sysfs-unreadable"]
    check(f"{fx}: exit 0, T4 sysfs-unreadable naming {f}, VGA surveyed",
          rc == 0 and len(doc.get("gpus", [])) == 2 and msgs
          and f"/sys/bus/pci/devices/0000:3b:00.0/{f}" in msgs[0]
          and t4["methods"]["dda"]["ready"] is False
          and vga["methods"]["dda"]["ready"] is True and "no-reset" in codes(vga), (msgs, err))
    rc, out, err = gp("survey", root=fixture(fx))
    check(f"{fx}: table shows both GPUs", rc == 0 and "0000:3b:00.0" in out and "0000:00:02.0" in out
          and "sysfs-unreadable" in out, out)

# PV needs a host OpenCL device at the GPU's address (through the real loader)
root = fixture("server-t4")


def pv(doc, addr="0000:3b:00.0"):
    return by_addr(doc, addr)["methods"]["pv"]


def pv_codes(doc, addr="0000:3b:00.0"):
    return [p["code"] for p in pv(doc, addr)["problems"]]


rc, doc, err = survey_json(root, cl={"OCL_ICD_VENDORS": FAKE_VENDORS, "FAKEGPU_PCI": "0000:3b:00.0"})
g = by_addr(doc, "0000:3b:00.0")
check("opencl: fake GPU at the T4's address -> PV ready",
      rc == 0 and pv(doc) == {"ready": True, "problems": []}
      and g.get("opencl") == [{"platform": "FakeGPU OpenCL", "device": "FakeGPU 0"}], g)
check("opencl: host.opencl lists the platform and device with its address",
      doc.get("host", {}).get("opencl") == {
          "probed": True, "skipped_platforms": [], "pv_only": [],
          "platforms": [{"name": "FakeGPU OpenCL", "vendor": "gpupass tests",
                         "version": "OpenCL 1.2 FakeGPU",
                         "devices": [{"name": "FakeGPU 0", "type": "gpu", "pci": "0000:3b:00.0",
                                      "pci_source": "cl_khr_pci_bus_info"}]}]},
      doc.get("host"))
rc, out, err = gp("survey", "3b:00.0", root=root,
                  cl={"OCL_ICD_VENDORS": FAKE_VENDORS, "FAKEGPU_PCI": "0000:3b:00.0"})
check("opencl: detail has the check line and the host's platforms",
      rc == 0 and "  ok    OpenCL           FakeGPU OpenCL: FakeGPU 0 (cl_khr_pci_bus_info)" in out
      and "Host OpenCL: FakeGPU OpenCL (1 device)" in out
      and "PV (shared through gpupass-pvd): ready" in out, out)

rc, doc, err = survey_json(root, cl={"OCL_ICD_VENDORS": FAKE_VENDORS, "FAKEGPU_PCI": "0000:5e:00.0"})
probs = [p for p in pv(doc)["problems"] if p["code"] == "no-opencl-device"]
check("opencl: fake GPU elsewhere -> no-opencl-device naming what it saw",
      rc == 0 and pv(doc)["ready"] is False and len(probs) == 1 and probs[0]["severity"] == "error"
      and "FakeGPU OpenCL: FakeGPU 0 (gpu, at 0000:5e:00.0)" in probs[0]["message"]
      and "nvidia-opencl-icd" in probs[0]["fix"] and "clinfo" in probs[0]["fix"]
      and by_addr(doc, "0000:3b:00.0")["methods"]["dda"]["ready"] is True
      and by_addr(doc, "0000:3b:00.0").get("opencl") == [], doc)
rc, out, err = gp("survey", root=root, cl={"OCL_ICD_VENDORS": FAKE_VENDORS, "FAKEGPU_PCI": "0000:5e:00.0"})
row = [l for l in out.splitlines() if l.startswith("0000:3b:00.0")]
check("opencl: table shows PV no, no-opencl-device", rc == 0 and row
      and row[0].rstrip().endswith("yes  no   no-opencl-device error"), out)

rc, doc, err = survey_json(root, cl={"OCL_ICD_VENDORS": EMPTY_VENDORS})
probs = [p for p in pv(doc)["problems"] if p["code"] == "no-opencl-platform"]
check("opencl: empty vendors dir -> no-opencl-platform (error, fix names the ICD packages)",
      rc == 0 and pv(doc)["ready"] is False and len(probs) == 1 and probs[0]["severity"] == "error"
      and "nvidia-opencl-icd" in probs[0]["fix"] and "clinfo -l" in probs[0]["fix"]
      and doc["host"]["opencl"] == {"probed": True, "platforms": [], "skipped_platforms": [],
                                    "pv_only": []}, doc)

if os.path.exists(POCL_ICD):
    rc, doc, err = survey_json(root, cl={"OCL_ICD_VENDORS": POCL_ICD})
    probs = [p for p in pv(doc)["problems"] if p["code"] == "no-opencl-device"]
    plats = doc.get("host", {}).get("opencl", {}).get("platforms", [])
    cpu = plats[0]["devices"][0] if plats and plats[0]["devices"] else {}
    check("opencl: PoCL only -> no-opencl-device naming the PoCL CPU device",
          rc == 0 and pv(doc)["ready"] is False and len(probs) == 1
          and plats and plats[0]["name"] == "Portable Computing Language"
          and cpu.get("type") == "cpu" and cpu.get("pci") is None
          and f"Portable Computing Language: {cpu.get('name')} (cpu, never a GPU)" in probs[0]["message"],
          (doc.get("host"), probs))
else:
    check("opencl: PoCL only (skipped: no PoCL here)", True)

rc, doc, err = survey_json(root, cl={"OCL_ICD_VENDORS": FAKE_VENDORS, "FAKEGPU_PCI": "0000:3b:00.0",
                                     "FAKEGPU_PLATFORM": "gpupass PV (remote: FakeGPU OpenCL)"})
check("opencl: a platform named like gpupass's PV is skipped -> no-opencl-platform",
      rc == 0 and pv_codes(doc) == ["no-opencl-platform"]
      and doc["host"]["opencl"]["platforms"] == []
      and doc["host"]["opencl"]["skipped_platforms"] == ["gpupass PV (remote: FakeGPU OpenCL)"]
      and "gpupass's own PV platform" in pv(doc)["problems"][0]["message"], doc.get("host"))

rc, doc, err = survey_json(root, cl={"OCL_ICD_VENDORS": FAKE_VENDORS, "FAKEGPU_PCI": "none,cpu"})
probs = [p for p in pv(doc)["problems"] if p["code"] == "opencl-no-pci-info"]
check("opencl: GPU device without PCI info -> opencl-no-pci-info naming it, not the CPU",
      rc == 0 and pv_codes(doc) == ["opencl-no-pci-info"] and probs[0]["severity"] == "error"
      and "FakeGPU 0 (gpu, no PCI location)" in probs[0]["message"]
      and "FakeCPU" not in probs[0]["message"], doc)

rc, doc, err = survey_json(fixture("two-nvidia"),
                           cl={"OCL_ICD_VENDORS": FAKE_VENDORS, "FAKEGPU_PCI": "nv:0000:5e:00.0,amd:3b:00.0"})
check("opencl: NVIDIA and AMD attribute queries match too",
      rc == 0 and pv(doc)["ready"] is True and pv(doc, "0000:5e:00.0")["ready"] is True
      and [d["pci"] for d in doc["host"]["opencl"]["platforms"][0]["devices"]] == ["0000:5e:00.0", "3b:00.0"],
      doc.get("host"))

# A GPU without a host driver gets no OpenCL check (no-host-driver says
# it all); the probe still runs, to list the devices that are not GPUs.
rc, doc, err = survey_json(fixture("no-host-driver"), cl={"OCL_ICD_VENDORS": EMPTY_VENDORS})
check("opencl: GPU without a host driver: only no-host-driver",
      rc == 0 and pv_codes(doc) == ["no-host-driver"]
      and by_addr(doc, "0000:3b:00.0").get("opencl") == [], doc)
rc, doc, err = survey_json(fixture("no-gpu"))
check("opencl: no GPU: the fake GPUs (elsewhere on the PCI bus) are not PV only",
      rc == 0 and doc["host"]["opencl"]["probed"] is True
      and doc["host"]["opencl"]["pv_only"] == [], doc.get("host"))
# OpenCL devices that are not PCI GPUs: listed as "PV only, not a GPU"
# (a CPU device, a GPU that reports no location), in the table and --json.
cpu_cl = {"OCL_ICD_VENDORS": FAKE_VENDORS, "FAKEGPU_PCI": "cpu,none"}
rc, doc, err = survey_json(fixture("no-gpu"), cl=cpu_cl)
check("opencl: a CPU device and a GPU without location are PV only, with their notes",
      rc == 0 and doc["host"]["opencl"]["pv_only"] == [
          {"name": "FakeCPU 0", "platform": "FakeGPU OpenCL", "type": "cpu", "pci": None,
           "note": "not a GPU: guest kernels run on the host's CPU"},
          {"name": "FakeGPU 1", "platform": "FakeGPU OpenCL", "type": "gpu", "pci": None,
           "note": "a GPU with no PCI location the survey can check"}], doc.get("host"))
rc, out, err = gp("survey", root=fixture("no-gpu"), cl=cpu_cl)
check("opencl: the table lists them under 'PV only, not a GPU' with how to use one",
      rc == 0 and "PV only, not a GPU" in out and "--gpu-name NAME --force" in out
      and "FakeCPU 0 (FakeGPU OpenCL, cpu): not a GPU: guest kernels run on the host's CPU"
      in out, out)
for code in ("no-opencl-platform", "no-opencl-device", "opencl-no-pci-info"):
    healthy = survey_json(fixture("server-t4"))[1]
    check(f"{code} does not fire on server-t4 with its OpenCL device",
          code not in pv_codes(healthy) and pv(healthy)["ready"] is True)

# sysfs bytes that are not UTF-8 (a class file, a label) reach messages:
# the document stays valid UTF-8 JSON, each bad byte shown as U+FFFD
bad = fixture("server-t4") + "-badutf8"
shutil.copytree(fixture("server-t4"), bad, symlinks=True)
dev = os.path.realpath(os.path.join(bad, "sys/bus/pci/devices/0000:3b:00.0"))
with open(os.path.join(dev, "class"), "wb") as f:
    f.write(b"0x03\xff00\n")
argv = [GPUPASS, "--root", bad, "survey", "--json"]
env = dict(os.environ, **DEFAULT_CL)
raw = subprocess.run(argv, capture_output=True, env=env, timeout=60).stdout
try:
    doc = json.loads(raw.decode("utf-8"))
    msgs = [p["message"] for p in by_addr(doc, "0000:3b:00.0")["methods"]["dda"]["problems"]]
    check("non-UTF-8 sysfs bytes: --json is valid UTF-8 JSON, the byte shown as U+FFFD",
          any("0x03\ufffd00" in m for m in msgs), msgs)
except (UnicodeDecodeError, ValueError) as e:
    check("non-UTF-8 sysfs bytes: --json is valid UTF-8 JSON", False, "%s: %r" % (e, raw[:300]))

# this machine's real /sys: runs, parses, says what it found (a container
# without PCI devices must get the clear failure instead)
if os.path.isdir("/sys/bus/pci/devices"):
    rc, doc, err = survey_json(None)
    check("real /sys: --json exits 0 and parses", rc == 0 and doc.get("schema") == "gpupass.survey/1"
          and doc["host"]["pci_devices"] == len(os.listdir("/sys/bus/pci/devices")), (doc, err))
    rc, out, err = gp("survey")
    check("real /sys: table exits 0", rc == 0 and ("no GPU found (looked at" in out or "ADDRESS" in out), out)
else:
    rc, out, err = gp("survey")
    check("no /sys/bus/pci here: exit 1 with a reason", rc == 1 and "/sys" in err, err)

shutil.rmtree(TMP, ignore_errors=True)
print(f"1..{len(results)}")
for i, (name, ok, detail) in enumerate(results, 1):
    print(f"{'ok' if ok else 'not ok'} {i} - {name}")
    if not ok:
        for line in str(detail).splitlines()[:20]:
            print(f"# {line}")
sys.exit(0 if all(ok for _, ok, _ in results) else 1)
