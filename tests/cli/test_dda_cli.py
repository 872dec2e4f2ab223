#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""`gpupass dismount|mount|assign|unassign|vm` on fake trees, from outside:
exit codes, one-line errors naming the device and the VM, --json, and
nothing changed by a refusal. (A fake tree has no kernel behind it, so
binding itself is tested in tests/unit/test_bind.c with a modelled kernel.)

Usage: test_dda_cli.py GPUPASS GP-MKFIXTURE. Prints TAP.
"""
import json
import os
import shutil
import subprocess
import sys
import tempfile

GPUPASS, MKFIXTURE = sys.argv[1], sys.argv[2]
TMP = tempfile.mkdtemp(prefix="gp-dda-cli-")
results = []


def fixture(name):
    d = os.path.join(TMP, name)
    if not os.path.isdir(d):
        subprocess.run([MKFIXTURE, name, d], check=True)
    return d


def gp(*args, root=None, state=None, env_extra=None):
    argv = [GPUPASS]
    argv += ["--root", root] if root else []
    argv += ["--state-dir", state or os.path.join(TMP, "state")]
    argv += list(args)
    env = dict(os.environ)
    env.pop("GPUPASS_ROOT", None)
    env.pop("GPUPASS_STATE_DIR", None)
    env.update(env_extra or {})
    p = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=120)
    return p.returncode, p.stdout, p.stderr


def check(name, cond, detail=""):
    results.append((name, bool(cond), detail))


def one_line(err):
    return len([l for l in err.strip().splitlines() if l]) == 1


def tree(root):
    """Every path, link target and small file content under root."""
    out = []
    for d, dirs, files in os.walk(root):
        for n in sorted(dirs + files):
            p = os.path.join(d, n)
            if os.path.islink(p):
                out.append(p + " -> " + os.readlink(p))
            elif os.path.isfile(p) and os.path.getsize(p) < 65536:
                with open(p, "rb") as f:
                    out.append(p + " = " + repr(f.read()))
            else:
                out.append(p)
    return "\n".join(sorted(out))


KERNEL = os.path.join(TMP, "vmlinuz")
with open(KERNEL, "w") as f:
    f.write("not a kernel")

# --help of every command
for cmd in (["dismount"], ["mount"], ["assign"], ["unassign"], ["vm"], ["vm", "create"],
            ["vm", "start"], ["vm", "stop"], ["vm", "verify"], ["vm", "log"]):
    rc, out, err = gp(*cmd, "--help")
    check("%s --help exits 0 with usage" % " ".join(cmd), rc == 0 and "Usage:" in out, err)

rc, out, err = gp("dismount")
check("dismount without a GPU exits 2", rc == 2 and one_line(err), err)
rc, out, err = gp("vm", "frobnicate", "x")
check("unknown vm command exits 2", rc == 2, err)

# unknown, ambiguous, refused: nothing changes
root = fixture("two-nvidia")
before = tree(root)
rc, out, err = gp("dismount", "0000:99:00.0", root=root)
check("unknown GPU: exit 2, one line naming it", rc == 2 and one_line(err) and "0000:99:00.0" in err, err)
rc, out, err = gp("dismount", "NVIDIA", root=root)
check("ambiguous name: exit 2 naming both GPUs",
      rc == 2 and "0000:3b:00.0" in err and "0000:5e:00.0" in err, err)
rc, out, err = gp("mount", "0000:99:00.0", root=root)
check("mount of an unknown GPU exits 2", rc == 2, err)
check("two-nvidia tree unchanged", tree(root) == before)

root = fixture("workstation")
before = tree(root)
rc, out, err = gp("dismount", "0000:01:00.0", root=root)
check("boot-vga needs --force: exit 1, one line with the code and --force",
      rc == 1 and one_line(err) and "boot-vga" in err and "--force" in err
      and "0000:01:00.0" in err, err)
check("workstation tree unchanged", tree(root) == before)

root = fixture("group-nic")
before = tree(root)
for force in ([], ["--force"]):
    rc, out, err = gp("dismount", "0000:03:00.0", *force, root=root)
    check("shared group refused %s: exit 1 naming the NIC" % (force or ""),
          rc == 1 and "0000:04:00.0" in err and "group-shared" in err, err)
check("group-nic tree unchanged", tree(root) == before)

root = fixture("vfio-missing")
before = tree(root)
rc, out, err = gp("dismount", "0000:3b:00.0", root=root)
check("vfio-pci missing: exit 1 naming vfio", rc == 1 and "vfio" in err, err)
check("vfio-missing tree unchanged", tree(root) == before)

# VMs
root = fixture("two-nvidia")
before = tree(root)
st = os.path.join(TMP, "vmstate")
rc, out, err = gp("vm", "create", "v1", "--memory", "4X", "--kernel", KERNEL, root=root, state=st)
check("invalid memory size: exit 2 naming the VM and the value",
      rc == 2 and one_line(err) and "v1" in err and "4X" in err, err)
rc, out, err = gp("vm", "create", "v1", "--memory", "1M", "--kernel", KERNEL, root=root, state=st)
check("too little memory: exit 2", rc == 2 and "v1" in err, err)
rc, out, err = gp("vm", "create", "v1", "--kernel", "/nonexistent/vmlinuz", root=root, state=st)
check("missing kernel: exit != 0 naming it", rc != 0 and "/nonexistent/vmlinuz" in err and "v1" in err, err)
rc, out, err = gp("vm", "create", "v1", "--disk", "/nonexistent/d.qcow2", root=root, state=st)
check("missing disk: exit != 0 naming it", rc != 0 and "/nonexistent/d.qcow2" in err, err)
rc, out, err = gp("vm", "create", "v1", "--kernel", KERNEL, "--gpu-passthrough", "pv", root=root, state=st)
check("pv refused (no PV-ready GPU on the fake tree): exit 1", rc == 1 and "PV-ready" in err and "v1" in err, err)
rc, out, err = gp("vm", "create", "v1", "--kernel", KERNEL, "--gpu-passthrough", "warp", root=root, state=st)
check("unknown passthrough: exit 2", rc == 2 and "warp" in err, err)
rc, out, err = gp("vm", "create", "v1", "--kernel", KERNEL, "--gpu-passthrough", "dda",
                  "--gpu-count", "5", root=root, state=st)
check("--gpu-count too large: exit 1, how many match and are ready",
      rc == 1 and one_line(err) and "v1" in err and "2 match" in err and "ready" in err, err)
rc, out, err = gp("vm", "list", "--json", root=root, state=st)
check("refusals created no VM", rc == 0 and json.loads(out)["vms"] == [], out + err)
check("two-nvidia tree unchanged by the refusals", tree(root) == before)

rc, out, err = gp("vm", "create", "v1", "--memory", "512M", "--cpus", "1", "--kernel", KERNEL,
                  "--append", "console=ttyS0", root=root, state=st)
check("vm create without GPU: exit 0", rc == 0 and "v1" in out, err)
rc, out, err = gp("vm", "create", "v1", "--kernel", KERNEL, root=root, state=st)
check("duplicate name: exit 1", rc == 1 and "already exists" in err, err)
rc, out, err = gp("vm", "show", "v1", "--json", root=root, state=st)
doc = json.loads(out) if rc == 0 else {}
check("vm show --json", doc.get("name") == "v1" and doc.get("memory") == 512 << 20
      and doc.get("cpus") == 1 and doc.get("state") == "stopped"
      and doc.get("gpu_passthrough") == "none" and doc.get("gpus") == [], out + err)
rc, out, err = gp("vm", "set", "v1", "--cpus", "3", root=root, state=st)
rc2, out2, err2 = gp("vm", "status", "v1", "--json", root=root, state=st)
check("vm set changes it", rc == 0 and json.loads(out2)["cpus"] == 3, err + err2)
rc, out, err = gp("vm", "start", "v1", root=root, state=st,
                  env_extra={"GPUPASS_QEMU": "/nonexistent/qemu-system-x86_64"})
check("QEMU missing: exit != 0, one line naming VM and package",
      rc != 0 and one_line(err) and "v1" in err and "qemu-system-x86" in err, err)
rc, out, err = gp("vm", "status", "v1", root=root, state=st)
check("still stopped", rc == 0 and "stopped" in out, out + err)
rc, out, err = gp("assign", "0000:3b:00.0", "--vm", "ghost", root=root, state=st)
check("assign to a VM that does not exist: exit 2 naming it", rc == 2 and "ghost" in err, err)
rc, out, err = gp("unassign", "0000:3b:00.0", root=root, state=st)
check("unassign of a GPU nobody holds: exit 2", rc == 2 and "not assigned" in err, err)
rc, out, err = gp("vm", "save", "v1", root=root, state=st)
check("vm save refused", rc == 1 and "never saves" in err, err)
rc, out, err = gp("vm", "stop", "--all", root=root, state=st)
check("vm stop --all with nothing running: exit 0", rc == 0, err)
rc, out, err = gp("vm", "stop", "v1", "--timeout", "soon", root=root, state=st)
check("bad --timeout: exit 2", rc == 2 and "soon" in err, err)
rc, out, err = gp("vm", "log", "v1", root=root, state=st)
check("vm log of a never-started VM", rc == 0 and "never started" in out, out + err)
rc, out, err = gp("vm", "delete", "v1", root=root, state=st)
check("vm delete", rc == 0, err)
rc, out, err = gp("vm", "show", "v1", root=root, state=st)
check("vm show of a deleted VM: exit 2", rc == 2 and "v1" in err, err)
check("two-nvidia tree unchanged by the VM commands", tree(root) == before)

# Garbage on every option and name: exit 2, one line naming the value,
# no VM made, the tree unchanged.
st3 = os.path.join(TMP, "garbage")
root = fixture("two-nvidia")
before = tree(root)
bad_opts = [
    (["--memory", "0"], "0"), (["--memory", "-1G"], "-1G"), (["--memory", "4X"], "4X"),
    (["--memory", "99999999999999999999G"], "99999999999999999999G"),
    (["--memory", "1.5G"], "1.5G"), (["--memory", "65T"], "65T"), (["--memory", ""], "''"),
    (["--cpus", "0"], "0"), (["--cpus", "10000"], "10000"), (["--cpus", "-1"], "-1"),
    (["--cpus", "2x"], "2x"), (["--cpus", "99999999999"], "99999999999"),
    (["--gpu-passthrough", "dda", "--gpu-count", "-1"], "-1"),
    (["--gpu-passthrough", "dda", "--gpu-count", "17"], "16"),
    (["--gpu-passthrough", "dda", "--gpu-count", "0"], "at least 1"),
    (["--gpu-count", "1"], "dda"), (["--accel", "warp"], "warp"),
    (["--initrd", KERNEL], "--kernel"),
]
for extra, want in bad_opts:
    args = ["vm", "create", "g1"] + extra
    if "--initrd" not in extra:
        args += ["--kernel", KERNEL]
    rc, out, err = gp(*args, root=root, state=st3)
    check("vm create %s: exit 2, one line naming it" % " ".join(extra),
          rc == 2 and one_line(err) and want in err and "g1" in err, err)
for name in ("a/b", "..", "../etc", "x" * 64, "h\u00e9llo", "", ".hidden", "a b", "a\nb"):
    for cmd in (["vm", "create", name, "--kernel", KERNEL], ["vm", "show", name],
                ["vm", "start", name], ["vm", "delete", name], ["vm", "stop", name]):
        rc, out, err = gp(*cmd, root=root, state=st3)
        check("%s %r: exit 2, one line" % (" ".join(cmd[:2]), name),
              rc == 2 and one_line(err), err)
    rc, out, err = gp("assign", "0000:3b:00.0", "--vm", name, root=root, state=st3)
    check("assign --vm %r: exit 2" % name, rc == 2 and one_line(err), err)
rc, out, err = gp("vm", "list", "--json", root=root, state=st3)
check("no VM made by garbage", rc == 0 and json.loads(out)["vms"] == [], out + err)
check("no runtime directory made by garbage",
      not os.path.exists(os.path.join(st3, "vms")) or os.listdir(os.path.join(st3, "vms")) == [])
check("two-nvidia tree unchanged by garbage", tree(root) == before)

# A damaged state database: one line naming it and the fix, exit 1, the
# file left as it was (never "repaired" into something else).
# An empty file too: SQLite would take it for a new database and every VM
# and dismount would be forgotten silently.
for garbage in (os.urandom(8192), b"SQLite format 3\0" + b"\xff" * 4096, b""):
    st4 = os.path.join(TMP, "damaged")
    shutil.rmtree(st4, ignore_errors=True)
    os.makedirs(st4)
    db = os.path.join(st4, "gpupass.db")
    with open(db, "wb") as f:
        f.write(garbage)
    for cmd in (["vm", "list"], ["dismount", "0000:3b:00.0"], ["mount", "0000:3b:00.0"],
                ["vm", "stop", "--all"]):
        rc, out, err = gp(*cmd, root=root, state=st4)
        check("damaged database, %s: exit 1, one line naming it" % " ".join(cmd),
              rc == 1 and one_line(err) and db in err and "damaged" in err, err)
    with open(db, "rb") as f:
        check("damaged database left as it was", f.read() == garbage)
    check("nothing else written next to it", sorted(os.listdir(st4)) == ["gpupass.db"],
          os.listdir(st4))
check("two-nvidia tree unchanged by a damaged database", tree(root) == before)
# A database path that is a directory is said to be one.
st5 = os.path.join(TMP, "dirdb")
os.makedirs(os.path.join(st5, "gpupass.db"))
rc, out, err = gp("vm", "list", root=root, state=st5)
check("state database path is a directory: exit 1, said so",
      rc == 1 and one_line(err) and "is a directory" in err, err)

# A pidfile naming another process (here: this test itself, or pid 1):
# never taken for the VM's QEMU, never signalled.
st5 = os.path.join(TMP, "pidf")
rc, out, err = gp("vm", "create", "p1", "--kernel", KERNEL, root=root, state=st5)
vmdir = os.path.join(st5, "vms", "p1")
os.makedirs(vmdir, exist_ok=True)
for content in ("%d\n" % os.getpid(), "1\n", "garbage\n", "-1\n", ""):
    with open(os.path.join(vmdir, "qemu.pid"), "w") as f:
        f.write(content)
    rc, out, err = gp("vm", "status", "p1", "--json", root=root, state=st5)
    check("pidfile %r: status stopped" % content,
          rc == 0 and json.loads(out)["state"] == "stopped", out + err)
    with open(os.path.join(vmdir, "qemu.pid"), "w") as f:
        f.write(content)
    rc, out, err = gp("vm", "stop", "p1", "--force", root=root, state=st5)
    check("pidfile %r: vm stop exits 0 and signals nobody" % content, rc == 0, err)

# The systemd unit meson configured: host stop powers the VMs off, never
# saves them.
unit = os.path.join(os.path.dirname(GPUPASS), "gpupass-vms.service")
if os.path.exists(unit):
    with open(unit) as f:
        text = f.read()
    lines = [l.strip() for l in text.splitlines() if not l.startswith("#")]
    stops = [l for l in lines if l.startswith("ExecStop=")]
    check("unit: one ExecStop, gpupass vm stop --all from the installed sbindir",
          len(stops) == 1 and stops[0].split("=", 1)[1].split()[0].endswith("/sbin/gpupass")
          and " vm stop --all " in stops[0] + " " and "@" not in text, stops)
    check("unit: ordered before shutdown, stops at shutdown",
          "Conflicts=shutdown.target" in lines and any(
              l.startswith("Before=") and "shutdown.target" in l for l in lines), text)
    check("unit: nothing saves or suspends",
          not any(w in l for l in lines if l.startswith("Exec")
                  for w in ("save", "snapshot", "migrate", "suspend")), text)
    tsec = [l for l in lines if l.startswith("TimeoutStopSec=")]
    check("unit: systemd waits longer than the VMs' own timeout",
          tsec and int(tsec[0].split("=")[1]) > int(stops[0].split("--timeout")[1].split()[0]),
          text)

# Real QEMUs, paused (-S) so nothing boots: start, status, stop --all.
if shutil.which("qemu-system-x86_64"):
    import time
    st2 = os.path.join(TMP, "runstate")
    for n in ("r1", "r2"):
        disk = os.path.join(TMP, n + ".img")  # QEMU locks its images
        with open(disk, "wb") as f:
            f.truncate(1 << 20)
        gp("vm", "create", n, "--memory", "128M", "--cpus", "1", "--disk", disk,
           "--qemu-arg", "-S", root=root, state=st2)
        rc, out, err = gp("vm", "start", n, root=root, state=st2)
        check("vm start %s (paused QEMU)" % n, rc == 0 and "started" in out, err)
    rc, out, err = gp("vm", "start", "r1", root=root, state=st2)
    check("vm start of a running VM: exit 0, already running", rc == 0 and "already" in out, err)
    rc, out, err = gp("vm", "list", "--json", root=root, state=st2)
    states = {v["name"]: v["state"] for v in json.loads(out)["vms"]} if rc == 0 else {}
    check("vm list --json shows both paused with a pid",
          states == {"r1": "paused", "r2": "paused"}, out + err)
    rc, out, err = gp("vm", "log", "r1", root=root, state=st2)
    check("vm log shows the QEMU command line", rc == 0 and "-machine q35" in out, out + err)
    t0 = time.monotonic()
    rc, out, err = gp("vm", "stop", "--all", "--timeout", "2", root=root, state=st2)
    took = time.monotonic() - t0
    check("vm stop --all turns both off within one timeout",
          rc == 0 and out.count("turned off") == 2 and took < 8, "%s %s %.1fs" % (out, err, took))
    rc, out, err = gp("vm", "status", "r2", "--json", root=root, state=st2)
    check("stopped afterwards", rc == 0 and json.loads(out)["state"] == "stopped", out + err)
    rc, out, err = gp("vm", "list", root=root, state=st2, env_extra={})
    check("no repair reported after a clean stop", "repaired" not in err, err)

shutil.rmtree(TMP, ignore_errors=True)
print("TAP version 13")
print("1..%d" % len(results))
for i, (name, ok, detail) in enumerate(results, 1):
    print("%s %d - %s" % ("ok" if ok else "not ok", i, name))
    if not ok and detail:
        for line in str(detail).splitlines()[:6]:
            print("# " + line)
sys.exit(0 if all(ok for _, ok, _ in results) else 1)
