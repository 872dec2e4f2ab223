#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""`gpupass vm create|set|show|delete --gpu-passthrough pv` on a fake tree,
with the fake GPU ICD as the host's OpenCL: the PV-ready check, the
[guest NAME] section in gpupass-pvd's config (other sections intact), the
state database, and refusals that change nothing.

Usage: test_pv_deploy_cli.py GPUPASS GP-MKFIXTURE FAKEGPU-ICD. Prints TAP.
"""
import json
import os
import shutil
import subprocess
import sys
import tempfile

GPUPASS, MKFIXTURE, FAKEGPU_ICD = sys.argv[1], sys.argv[2], sys.argv[3]
TMP = tempfile.mkdtemp(prefix="gp-pvdeploy-cli-")
results = []
FAKE_VENDORS = os.path.join(TMP, "vendors-fake")
os.mkdir(FAKE_VENDORS)
shutil.copy(FAKEGPU_ICD, FAKE_VENDORS)
EMPTY_VENDORS = os.path.join(TMP, "vendors-empty")
os.mkdir(EMPTY_VENDORS)
READY = {"OCL_ICD_VENDORS": FAKE_VENDORS, "FAKEGPU_PCI": "0000:3b:00.0"}
ROOT = os.path.join(TMP, "root")
subprocess.run([MKFIXTURE, "server-t4", ROOT], check=True)
ST = os.path.join(TMP, "st")
os.mkdir(ST)
CONF = os.path.join(ST, "pvd.conf")
KERNEL = os.path.join(TMP, "vmlinuz")
with open(KERNEL, "w") as f:
    f.write("not a kernel")


def gp(*args, cl=None, env_extra=None):
    argv = [GPUPASS, "--root", ROOT, "--state-dir", ST] + list(args)
    env = dict(os.environ)
    for k in ("GPUPASS_ROOT", "GPUPASS_STATE_DIR", "GPUPASS_PVD_CONFIG", "FAKEGPU_PCI"):
        env.pop(k, None)
    env.update(READY if cl is None else cl)
    env.update(env_extra or {})
    p = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=120)
    return p.returncode, p.stdout, p.stderr


def check(name, cond, detail=""):
    results.append((name, bool(cond), detail))


def conf():
    try:
        with open(CONF) as f:
            return f.read()
    except FileNotFoundError:
        return None


def vm_names():
    rc, out, err = gp("vm", "list", "--json")
    return sorted(v["name"] for v in json.loads(out)["vms"]) if rc == 0 else err


OTHER = ("# managed partly by hand\n[server]\nlisten = unix:/tmp/x.sock\n\n"
         "[guest other]\nsocket = /tmp/other.sock\nweight = 7\n")
with open(CONF, "w") as f:
    f.write(OTHER)

# Refusals: nothing changes (no VM, config as it was).
for val in ("4X", "0", "-1"):
    rc, out, err = gp("vm", "create", "p1", "--kernel", KERNEL, "--gpu-passthrough", "pv",
                      "--gpu-memory-max", val)
    check("--gpu-memory-max %s: exit 2 naming the VM and value" % val,
          rc == 2 and "p1" in err and val in err, err)
for val in ("0", "1001", "x"):
    rc, out, err = gp("vm", "create", "p1", "--kernel", KERNEL, "--gpu-passthrough", "pv",
                      "--gpu-weight", val)
    check("--gpu-weight %s: exit 2" % val, rc == 2 and "p1" in err and "1 to 1000" in err, err)
rc, out, err = gp("vm", "create", "p1", "--kernel", KERNEL, "--gpu-passthrough", "pv",
                  cl={"OCL_ICD_VENDORS": EMPTY_VENDORS})
check("no OpenCL platform: exit 1 with the survey's reason",
      rc == 1 and "PV-ready" in err and "no-opencl-platform" in err and "p1" in err, err)
rc, out, err = gp("vm", "create", "p1", "--kernel", KERNEL, "--gpu-passthrough", "pv",
                  cl={"OCL_ICD_VENDORS": FAKE_VENDORS, "FAKEGPU_PCI": "0000:5e:00.0"})
check("OpenCL device elsewhere: exit 1, no-opencl-device",
      rc == 1 and "no-opencl-device" in err, err)
rc, out, err = gp("vm", "create", "p1", "--kernel", KERNEL, "--gpu-passthrough", "pv",
                  "--gpu-name", "Radeon")
check("no GPU matches the name: exit 1, 0 match", rc == 1 and "0 match" in err, err)
check("refusals left no VM", vm_names() == [], vm_names())
check("refusals left the config as it was", conf() == OTHER, conf())

# Create: section added, other sections intact.
rc, out, err = gp("vm", "create", "p1", "--kernel", KERNEL, "--gpu-passthrough", "pv",
                  "--gpu-name", "T4", "--gpu-memory-max", "2G", "--gpu-weight", "3")
check("create pv: exit 0", rc == 0, err)
sock = os.path.join(ST, "pv", "p1.sock")
want = OTHER + "\n[guest p1]\nsocket = %s\nmemory_max = 2147483648\nweight = 3\n" % sock
check("config: [guest p1] appended, the rest intact", conf() == want, conf())
check("the pv socket directory exists", os.path.isdir(os.path.join(ST, "pv")))
rc, out, err = gp("vm", "show", "p1", "--json")
doc = json.loads(out) if rc == 0 else {}
check("show --json: method pv and its settings",
      doc.get("gpu_passthrough") == "pv"
      and doc.get("pv") == {"socket": sock, "memory_max": 2147483648, "weight": 3}, out + err)
rc, out, err = gp("vm", "show", "p1")
check("show: method and settings",
      rc == 0 and "gpu-passthrough: pv" in out and "gpu-weight:      3" in out
      and "gpu-memory-max:  2" in out and sock in out, out + err)

# Set: weight changes in place; bad weight changes nothing.
rc, out, err = gp("vm", "set", "p1", "--gpu-weight", "9")
check("set --gpu-weight 9: exit 0", rc == 0, err)
want9 = want.replace("weight = 3", "weight = 9")
check("config: the section replaced, the rest intact", conf() == want9, conf())
rc, out, err = gp("vm", "set", "p1", "--gpu-weight", "1001")
check("set --gpu-weight 1001: exit 2, nothing changed", rc == 2 and conf() == want9, err)
rc, out, err = gp("vm", "show", "p1", "--json")
check("state DB has weight 9", rc == 0 and json.loads(out)["pv"]["weight"] == 9, out + err)

# Another PV VM through --pvd-config elsewhere; then to none removes it.
alt = os.path.join(TMP, "alt.conf")
rc, out, err = gp("vm", "create", "p2", "--kernel", KERNEL, "--gpu-passthrough", "pv",
                  "--pvd-config", alt)
check("create with --pvd-config: written there, not in the default",
      rc == 0 and "[guest p2]" in open(alt).read() and "[guest p2]" not in conf(), err)
rc, out, err = gp("vm", "set", "p2", "--gpu-passthrough", "none",
                  env_extra={"GPUPASS_PVD_CONFIG": alt})
check("set to none: section removed (GPUPASS_PVD_CONFIG)",
      rc == 0 and "[guest p2]" not in open(alt).read(), err + open(alt).read())

# SIGHUP to the pid in <state>/pvd.pid.
sleeper = subprocess.Popen(["/usr/bin/python3", "-c",
                            "import signal,sys,time\n"
                            "signal.signal(signal.SIGHUP, lambda *a: (print('HUP', flush=True), sys.exit(0)))\n"
                            "print('ready', flush=True)\ntime.sleep(30)"],
                           stdout=subprocess.PIPE, text=True)
sleeper.stdout.readline()
with open(os.path.join(ST, "pvd.pid"), "w") as f:
    f.write("%d\n" % sleeper.pid)
rc, out, err = gp("vm", "set", "p1", "--gpu-memory-max", "1G")
try:
    line = sleeper.stdout.readline().strip()
    sleeper.wait(timeout=10)
except subprocess.TimeoutExpired:
    sleeper.kill()
    line = "timeout"
check("vm set sends SIGHUP to the pid in pvd.pid", rc == 0 and line == "HUP", line + err)
os.unlink(os.path.join(ST, "pvd.pid"))

# Delete: the section goes, the others stay.
rc, out, err = gp("vm", "delete", "p1")
check("delete: exit 0", rc == 0, err)
check("config: [guest p1] removed, the rest intact", conf() == OTHER + "\n" or conf() == OTHER,
      conf())

shutil.rmtree(TMP, ignore_errors=True)
print("TAP version 13")
print("1..%d" % len(results))
for i, (name, ok, detail) in enumerate(results, 1):
    print("%s %d - %s" % ("ok" if ok else "not ok", i, name))
    if not ok and detail:
        for line in str(detail).splitlines()[:8]:
            print("# " + line)
sys.exit(0 if all(ok for _, ok, _ in results) else 1)
