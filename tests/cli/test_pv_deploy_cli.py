#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""`gpupass vm create|set|show|delete --gpu-passthrough pv` on a fake tree,
with the fake GPU ICD as the host's OpenCL: the PV-ready check, the
[guest NAME] section in gpupass-pvd's config (other sections intact), the
ivshmem file, gpupass-pvd started or reloaded (tests/cli/fake-pvd.py as the
server), --share for every method, the state database, and refusals that
change nothing. Real QEMU (paused, -S) for the argv of vm start.

Usage: test_pv_deploy_cli.py GPUPASS GP-MKFIXTURE FAKEGPU-ICD FAKE-PVD.
Prints TAP.
"""
import json
import pwd
import os
import shutil
import fcntl
import signal
import sqlite3
import stat
import subprocess
import sys
import tempfile
import time

GPUPASS, MKFIXTURE, FAKEGPU_ICD, FAKE_PVD_SRC = sys.argv[1:5]
TMP = tempfile.mkdtemp(prefix="gp-pvdeploy-cli-")
# QEMU runs as gpupass-qemu: it passes through to the PV sockets below (a
# folder it cannot search is refused at vm start, checked further down).
os.chmod(TMP, 0o711)
os.mkdir(os.path.join(TMP, "bin"))
# Named gpupass-pvd: gpupass only signals a process of that name.
FAKE_PVD = os.path.join(TMP, "bin", "gpupass-pvd")
shutil.copy(FAKE_PVD_SRC, FAKE_PVD)
os.chmod(FAKE_PVD, 0o755)
RECORD = os.path.join(TMP, "pvd.record")
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
    env.update({"GPUPASS_PVD": FAKE_PVD, "FAKEPVD_RECORD": RECORD})
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


def record():
    try:
        with open(RECORD) as f:
            return f.read().splitlines()
    except FileNotFoundError:
        return []


def pvd_pid():
    try:
        with open(os.path.join(ST, "pvd.pid")) as f:
            return int(f.read().strip())
    except (OSError, ValueError):
        return 0


def stop_pvd():
    pid = pvd_pid()
    if pid:
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        for _ in range(100):
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                break
            time.sleep(0.05)
        os.unlink(os.path.join(ST, "pvd.pid"))


def alive(pid):
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except OSError:
        return False


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
# A host whose OpenCL device is not a PCI GPU (a CPU platform such as
# PoCL): PV only by explicit choice. Without --force the refusal names it.
cpu_cl = {"OCL_ICD_VENDORS": FAKE_VENDORS, "FAKEGPU_PCI": "cpu"}
rc, out, err = gp("vm", "create", "p1", "--kernel", KERNEL, "--gpu-passthrough", "pv",
                  "--gpu-name", "fakecpu", cl=cpu_cl)
check("a CPU OpenCL device matches --gpu-name: exit 1, names it and --force",
      rc == 1 and "FakeCPU 0" in err and "not a GPU" in err and "--force" in err, err)
check("refusals left no VM", vm_names() == [], vm_names())
check("refusals left the config as it was", conf() == OTHER, conf())
check("refusals started no gpupass-pvd", record() == [] and pvd_pid() == 0, record())

rc, out, err = gp("vm", "create", "pcpu", "--kernel", KERNEL, "--gpu-passthrough", "pv",
                  "--gpu-name", "fakecpu", "--force", cl=cpu_cl)
check("with --force: created, a warning says guest kernels run on the host's CPU",
      rc == 0 and "pcpu" in vm_names() and "warning: VM pcpu: PV on 'FakeCPU 0'" in out
      and "guest kernels run on the host's CPU" in out, out + err)
rc, out, err = gp("vm", "delete", "pcpu", cl=cpu_cl)
check("the PV-only VM deleted, its section gone", rc == 0 and vm_names() == []
      and conf().rstrip() == OTHER.rstrip(), err + conf())
# Back to where the next checks start: no server, no record.
subprocess.run(["pkill", "-f", FAKE_PVD])
for f_ in (RECORD, os.path.join(ST, "pvd.pid")):
    if os.path.exists(f_):
        os.unlink(f_)
with open(CONF, "w") as f:
    f.write(OTHER)
# Create: section added, other sections intact.
rc, out, err = gp("vm", "create", "p1", "--kernel", KERNEL, "--gpu-passthrough", "pv",
                  "--gpu-name", "T4", "--gpu-memory-max", "2G", "--gpu-weight", "3")
check("create pv: exit 0", rc == 0, err)
sock = os.path.join(ST, "pv", "p1.sock")
shm = os.path.join(ST, "pv", "p1.shm")
# socket_owner: gpupass-pvd gives the socket to the user QEMU runs as.
want = OTHER + ("\n[guest p1]\nsocket = %s\nmemory_max = 2147483648\nweight = 3\n"
                "socket_owner = gpupass-qemu\n"
                "ivshmem = %s\n" % (sock, shm))
check("config: [guest p1] appended with its ivshmem file, the rest intact", conf() == want,
      conf())
check("the pv socket directory exists", os.path.isdir(os.path.join(ST, "pv")))
st_shm = os.stat(shm) if os.path.exists(shm) else None
check("ivshmem file: 64 MiB (the default), sparse, mode 0660",
      st_shm and st_shm.st_size == 64 << 20 and st_shm.st_blocks * 512 < (1 << 20)
      and stat.S_IMODE(st_shm.st_mode) == 0o660, st_shm)
pid1 = pvd_pid()
check("gpupass-pvd started: progress line, pid reported, pidfile written",
      pid1 > 0 and alive(pid1) and "gpupass-pvd is not running; starting it" in out
      and ("gpupass-pvd started (pid %d)" % pid1) in out
      and os.path.join(ST, "pvd.log") in out, out + err)
check("gpupass-pvd given the config and the pidfile, listens on the VM's socket",
      record()[0] == "argv --config %s --pidfile %s" % (CONF, os.path.join(ST, "pvd.pid"))
      and "listen " + sock in record() and stat.S_ISSOCK(os.stat(sock).st_mode), record())
check("its output goes to <state-dir>/pvd.log",
      "serving (fake)" in open(os.path.join(ST, "pvd.log")).read())
rc, out, err = gp("vm", "show", "p1", "--json")
doc = json.loads(out) if rc == 0 else {}
check("show --json: method pv and its settings",
      doc.get("gpu_passthrough") == "pv" and doc.get("shares") == []
      and doc.get("pv") == {"socket": sock, "memory_max": 2147483648, "weight": 3,
                            "shm_size": 64 << 20, "shm_file": shm}, out + err)
rc, out, err = gp("vm", "show", "p1")
check("show: method and settings",
      rc == 0 and "gpu-passthrough: pv" in out and "gpu-weight:      3" in out
      and "gpu-memory-max:  2" in out and sock in out and "gpu-shm:         64 MiB (%s)" % shm in out,
      out + err)

# Set: weight changes in place; bad weight changes nothing.
rc, out, err = gp("vm", "set", "p1", "--gpu-weight", "9")
check("set --gpu-weight 9: exit 0", rc == 0, err)
for _ in range(50):
    if "hup" in record():
        break
    time.sleep(0.05)
check("vm set sends SIGHUP to the running gpupass-pvd (no second one)",
      record().count("hup") == 1 and sum(l.startswith("argv") for l in record()) == 1
      and pvd_pid() == pid1, record())
want9 = want.replace("weight = 3", "weight = 9")
check("config: the section replaced, the rest intact", conf() == want9, conf())
rc, out, err = gp("vm", "set", "p1", "--gpu-weight", "1001")
check("set --gpu-weight 1001: exit 2, nothing changed", rc == 2 and conf() == want9, err)
rc, out, err = gp("vm", "show", "p1", "--json")
check("state DB has weight 9", rc == 0 and json.loads(out)["pv"]["weight"] == 9, out + err)

# Bad --gpu-shm values: exit 2, nothing changed.
for val in ("3M", "512K", "32G", "x", "-1"):
    rc, out, err = gp("vm", "set", "p1", "--gpu-shm", val)
    check("set --gpu-shm %s: exit 2, config and file unchanged" % val,
          rc == 2 and val in err and conf() == want9
          and os.stat(shm).st_size == 64 << 20, err)
rc, out, err = gp("vm", "create", "n0", "--kernel", KERNEL, "--gpu-shm", "64M")
check("--gpu-shm without pv: exit 2", rc == 2 and "pv" in err and "n0" not in vm_names(), err)
rc, out, err = gp("vm", "set", "p1", "--gpu-shm", "16M")
check("set --gpu-shm 16M (stopped): file resized", rc == 0 and os.stat(shm).st_size == 16 << 20,
      err)
rc, out, err = gp("vm", "set", "p1", "--gpu-shm", "0")
check("set --gpu-shm 0: file and ivshmem line gone",
      rc == 0 and not os.path.exists(shm) and "ivshmem" not in conf(), err + conf())
rc, out, err = gp("vm", "set", "p1", "--gpu-shm", "64M")
check("set --gpu-shm 64M: back", rc == 0 and conf() == want9, err + conf())

# Another PV VM through --pvd-config elsewhere, with no server running:
# one is started on that config; then to none removes the section.
stop_pvd()
alt = os.path.join(TMP, "alt.conf")
rc, out, err = gp("vm", "create", "p2", "--kernel", KERNEL, "--gpu-passthrough", "pv",
                  "--pvd-config", alt)
check("create with --pvd-config: written there, not in the default",
      rc == 0 and "[guest p2]" in open(alt).read() and "[guest p2]" not in conf(), err)
check("gpupass-pvd started on that config",
      ("argv --config %s --pidfile %s" % (alt, os.path.join(ST, "pvd.pid"))) in record()
      and pvd_pid() != pid1 and alive(pvd_pid()), record())
rc, out, err = gp("vm", "set", "p2", "--gpu-passthrough", "none",
                  env_extra={"GPUPASS_PVD_CONFIG": alt})
check("set to none: section removed (GPUPASS_PVD_CONFIG)",
      rc == 0 and "[guest p2]" not in open(alt).read(), err + open(alt).read())

# A pidfile naming another program (a pid reused after a reboot) is not
# signalled: a new server is started.
stop_pvd()
sleeper = subprocess.Popen(["/usr/bin/python3", "-c",
                            "import signal,sys,time\n"
                            "signal.signal(signal.SIGHUP, lambda *a: (print('HUP', flush=True), sys.exit(0)))\n"
                            "print('ready', flush=True)\ntime.sleep(30)"],
                           stdout=subprocess.PIPE, text=True)
sleeper.stdout.readline()
with open(os.path.join(ST, "pvd.pid"), "w") as f:
    f.write("%d\n" % sleeper.pid)
rc, out, err = gp("vm", "create", "p3", "--kernel", KERNEL, "--gpu-passthrough", "pv",
                  "--gpu-shm", "0")
time.sleep(0.2)
check("stale pidfile (not gpupass-pvd): not signalled, a new server started",
      rc == 0 and sleeper.poll() is None and pvd_pid() not in (0, sleeper.pid)
      and "gpupass-pvd started" in out, out + err)
check("--gpu-shm 0: no ivshmem line, no file",
      "ivshmem" not in conf().split("[guest p3]")[1]
      and not os.path.exists(os.path.join(ST, "pv", "p3.shm")), conf())
sleeper.kill()
sleeper.wait()
gp("vm", "delete", "p3")

# Garbage in the pidfile: never a process signalled, a new server started.
for junk in ("", "x\n", "-5\n", "1\n", "99999999999\n", "%d\n" % os.getpid(), "\0\xff"):
    stop_pvd()
    with open(os.path.join(ST, "pvd.pid"), "w") as f:
        f.write(junk)
    rc, out, err = gp("vm", "create", "p6", "--kernel", KERNEL, "--gpu-passthrough", "pv",
                      "--gpu-shm", "0")
    check("pidfile %r: a new gpupass-pvd started" % junk,
          rc == 0 and "gpupass-pvd started" in out and pvd_pid() > 0, out + err)
    gp("vm", "delete", "p6")

# A server that cannot start: the VM is created, a warning says why.
stop_pvd()
rc, out, err = gp("vm", "create", "p4", "--kernel", KERNEL, "--gpu-passthrough", "pv",
                  env_extra={"FAKEPVD_MODE": "fail"})
check("gpupass-pvd exits at start: VM created, warning with its message and the fix",
      rc == 0 and "p4" in vm_names() and "exited while starting" in err
      and "unknown key 'bogus'" in err and "gpupass-pvd --config" in err, out + err)
rc, out, err = gp("vm", "delete", "p4")
rc, out, err = gp("vm", "create", "p4", "--kernel", KERNEL, "--gpu-passthrough", "pv",
                  env_extra={"GPUPASS_PVD": os.path.join(TMP, "no-such-pvd")})
check("no gpupass-pvd binary: VM created, warning says so",
      rc == 0 and "was not found" in err and "GPUPASS_PVD" in err, out + err)
rc, out, err = gp("vm", "delete", "p4")
check("delete p4: its ivshmem file removed",
      rc == 0 and not os.path.exists(os.path.join(ST, "pv", "p4.shm")), err)

# --share, for every method.
DATA = os.path.join(TMP, "data")
os.mkdir(DATA)
COMMA = os.path.join(TMP, "a,readonly=off")
os.mkdir(COMMA)
AFILE = os.path.join(TMP, "afile")
open(AFILE, "w").close()
DISK = os.path.join(TMP, "disk.img")
with open(DISK, "wb") as f:
    f.truncate(1 << 20)
before = vm_names()
conf_before = conf()
bad_shares = [
    (["data:ro"], 2, "not HOSTDIR:TAG"),
    ([DATA], 2, "not HOSTDIR:TAG"),
    ([DATA + ":"], 2, "not HOSTDIR:TAG"),
    (["data:tag"], 2, "absolute"),
    ([DATA + ":a b"], 2, "not valid"),
    ([DATA + ":" + "t" * 32], 2, "not HOSTDIR:TAG"),
    ([DATA + ":t,x=1"], 2, "not valid"),
    ([COMMA + ":c"], 2, "without ','"),
    ([os.path.join(TMP, "missing") + ":m"], 2, "not an existing directory"),
    ([AFILE + ":f"], 2, "not an existing directory"),
    ([DATA + ":d", TMP + ":d:ro"], 2, "given twice"),
    ([DATA + ":t%d" % i for i in range(9)], 2, "at most 8"),
]
for method in ("none", "pv"):
    for shares, code, msg in bad_shares:
        argv = ["vm", "create", "s1", "--disk", DISK, "--gpu-passthrough", method]
        for sh in shares:
            argv += ["--share", sh]
        rc, out, err = gp(*argv)
        check("%s: --share %s: exit %d (%s)" % (method, " ".join(shares)[:60], code, msg),
              rc == code and msg in err and "s1" in err, err)
check("bad shares left no VM and the config as it was",
      vm_names() == before and conf() == conf_before, vm_names())
rc, out, err = gp("vm", "create", "s1", "--disk", DISK, "--memory", "64M", "--cpus", "1",
                  "--accel", "tcg", "--qemu-arg", "-S", "--share", DATA + ":data",
                  "--share", "/:hostroot:ro")
rc2, out2, err2 = gp("vm", "show", "s1", "--json")
doc = json.loads(out2) if rc2 == 0 else {}
check("create none VM with two shares: stored in order",
      rc == 0 and doc.get("shares") == [{"dir": DATA, "tag": "data", "readonly": False},
                                         {"dir": "/", "tag": "hostroot", "readonly": True}],
      err + out2 + err2)
rc, out, err = gp("vm", "show", "s1")
check("show: the shares", "share:           %s as data (read-write)" % DATA in out
      and "share:           / as hostroot (read-only)" in out, out)
# Shares are stored as the folders they really are: "..", "." and a
# symlink resolved (a link could later be pointed elsewhere).
link = os.path.join(os.path.dirname(DATA), "data-link")
os.symlink(DATA, link)
rc, out, err = gp("vm", "create", "s3", "--disk", DISK, "--memory", "64M", "--cpus", "1",
                  "--share", os.path.join(DATA, "..", os.path.basename(DATA), ".") + ":dots",
                  "--share", link + ":linked:ro")
rc2, out2, err2 = gp("vm", "show", "s3", "--json")
doc = json.loads(out2) if rc2 == 0 else {}
check("shares normalised: '..' and a symlink stored as the real folder",
      rc == 0 and [s_["dir"] for s_ in doc.get("shares", [])] == [os.path.realpath(DATA)] * 2,
      err + out2 + err2)
gp("vm", "delete", "s3")
rc, out, err = gp("vm", "create", "s2", "--disk", DISK, "--gpu-passthrough", "dda",
                  "--share", DATA + ":data")
check("dda VM with a share: refused for want of a GPU, not for the share",
      rc == 1 and "s2" not in vm_names() and "share" not in err, err)


def cmdline(name):
    try:
        with open(os.path.join(ST, "vms", name, "qemu.pid")) as f:
            pid = int(f.read().strip())
        with open("/proc/%d/cmdline" % pid, "rb") as f:
            return f.read().decode().split("\0")
    except (OSError, ValueError):
        return []


if shutil.which("qemu-system-x86_64"):
    rc, out, err = gp("vm", "start", "s1", "--timeout", "60")
    cl = cmdline("s1")
    check("vm start: QEMU runs with both 9p exports",
          rc == 0 and "local,id=gpshare0,path=%s,security_model=none,readonly=off,"
          "multidevs=remap" % DATA in cl
          and "virtio-9p-pci,fsdev=gpshare1,mount_tag=hostroot" in cl
          and "local,id=gpshare1,path=/,security_model=none,readonly=on,multidevs=remap" in cl,
          out + err + " ".join(cl))
    # QEMU confined as libvirt does it: its own unprivileged user after
    # start-up, QEMU's seccomp filter, no_new_privs, no capabilities.
    status_ = {}
    try:
        with open("/proc/%d/status" % int(open(os.path.join(ST, "vms", "s1", "qemu.pid")).read())) as f:
            status_ = dict(l.split(":", 1) for l in f.read().splitlines() if ":" in l)
    except (OSError, ValueError):
        pass
    qemu_uid = int(status_.get("Uid", "0 0").split()[1])
    check("QEMU runs as gpupass-qemu (not 0), seccomp 2, no_new_privs, no capabilities",
          qemu_uid != 0 and qemu_uid == pwd.getpwnam("gpupass-qemu").pw_uid
          and status_.get("Seccomp", "").strip() == "2"
          and status_.get("NoNewPrivs", "").strip() == "1"
          and int(status_.get("CapEff", "1").strip(), 16) == 0, status_)
    rc, out, err = gp("vm", "show", "s1")
    check("vm show says what confines the running QEMU",
          "qemu:            runs as gpupass-qemu (uid %d), seccomp on, no_new_privs on, "
          "capabilities 0000000000000000" % qemu_uid in out, out)
    rc, out, err = gp("vm", "set", "s1", "--share", "none")
    check("set --share while running: exit 1, unchanged",
          rc == 1 and "running" in err and "s1" in err
          and len(json.loads(gp("vm", "show", "s1", "--json")[1])["shares"]) == 2, err)
    rc, out, err = gp("vm", "set", "s1", "--memory", "128M")
    check("set of another setting while running still works", rc == 0, err)

    # vm verify --wait: a VM with nothing to prove answers at once; a dda
    # VM whose GPU never shows is asked again each second until --wait ends.
    t0 = time.monotonic()
    rc, out, err = gp("vm", "verify", "s1", "--wait", "5", "--agent-timeout", "0")
    check("verify --wait 5, nothing assigned: verified at once (one query)",
          rc == 0 and "(1 query until verified)" in out and time.monotonic() - t0 < 4, out + err)
    db = sqlite3.connect(os.path.join(ST, "gpupass.db"))
    db.execute("UPDATE vm SET passthrough = 'dda', gpu_count = 1 WHERE name = 's1'")
    db.commit()
    t0 = time.monotonic()
    rc, out, err = gp("vm", "verify", "s1", "--wait", "3", "--agent-timeout", "0")
    dt = time.monotonic() - t0
    check("verify --wait 3, dda VM with no GPU seen: exit 1 after ~3 s, asked again",
          rc == 1 and "NOT verified" in out and 1.8 <= dt < 8
          and "queries over the whole --wait" in out, "%.1f s: %s" % (dt, out + err))
    t0 = time.monotonic()
    rc, out, err = gp("vm", "verify", "s1", "--agent-timeout", "0")
    check("verify without --wait: one query", rc == 1 and time.monotonic() - t0 < 3, out + err)
    db.execute("UPDATE vm SET passthrough = 'none', gpu_count = 0 WHERE name = 's1'")
    db.commit()
    db.close()
    rc, out, err = gp("vm", "verify", "s2x", "--wait", "3")
    check("verify --wait of a VM that does not exist: exit 2 at once", rc == 2, err)

    # assign, vm set and vm start take the VM's lock, the one vm start holds
    # from its "running?" check until QEMU answers: while another holds it
    # they wait, then see the VM as it is.
    lockf = open(os.path.join(ST, "locks", "vm.s1.lock"), "a+")
    fcntl.flock(lockf, fcntl.LOCK_EX)
    base = [GPUPASS, "--root", ROOT, "--state-dir", ST]
    envl = dict(os.environ, GPUPASS_PVD=FAKE_PVD, FAKEPVD_RECORD=RECORD, **READY)
    waiting = {name: subprocess.Popen(base + argv, env=envl, stdout=subprocess.PIPE,
                                      stderr=subprocess.PIPE, text=True)
               for name, argv in (("set", ["vm", "set", "s1", "--share", "none"]),
                                  ("assign", ["assign", "0000:3b:00.0", "--vm", "s1"]),
                                  ("start", ["vm", "start", "s1"]))}
    time.sleep(1.5)
    check("while the VM's lock is held, vm set / assign / vm start wait",
          all(p.poll() is None for p in waiting.values()),
          {k: p.poll() for k, p in waiting.items()})
    fcntl.flock(lockf, fcntl.LOCK_UN)
    lockf.close()
    res = {k: (p.wait(60),) + p.communicate() for k, p in waiting.items()}
    check("then: vm set refused (running), assign refused (running), start: already",
          res["set"][0] == 1 and "running" in res["set"][2]
          and res["assign"][0] == 1 and "is running" in res["assign"][2]
          and res["start"][0] == 0 and "already running" in res["start"][1], res)
    gp("vm", "stop", "s1", "--force")
    # The disk's format is the one read at create: a guest that writes a
    # qcow2 header naming a host file into its raw disk does not change
    # how the next start opens it (QEMU would have read the host file).
    with open(DISK, "rb") as f:
        disk_before = f.read()
    hdr = bytearray(512)
    hdr[0:4] = b"QFI\xfb"
    for off, val, n in ((4, 2, 4), (8, 104, 8), (16, 11, 4), (20, 16, 4), (24, 1 << 20, 8),
                        (36, 1, 4), (40, 128 << 10, 8), (48, 64 << 10, 8), (56, 1, 4)):
        hdr[off:off + n] = val.to_bytes(n, "big")
    hdr[104:115] = b"/etc/shadow"
    with open(DISK, "r+b") as f:
        f.write(hdr)
    rc, out, err = gp("vm", "start", "s1", "--timeout", "60")
    cl = cmdline("s1")
    check("a qcow2 header written into a raw disk: the next start still passes format=raw",
          rc == 0 and "file=%s,if=virtio,format=raw" % DISK in cl
          and not any("qcow2" in a or "shadow" in a for a in cl), out + err + " ".join(cl))
    gp("vm", "stop", "s1", "--force")
    # A VM of an older gpupass (no recorded format) is not started on a
    # guess: the operator records the format once.
    db = sqlite3.connect(os.path.join(ST, "gpupass.db"))
    db.execute("UPDATE vm SET disk_format = '' WHERE name = 's1'")
    db.commit()
    db.close()
    rc, out, err = gp("vm", "start", "s1", "--timeout", "60")
    check("no recorded disk format: start refused, naming vm set --disk-format",
          rc != 0 and "--disk-format" in err and not cmdline("s1"), err)
    rc, out, err = gp("vm", "set", "s1", "--disk-format", "raw")
    rc2, out2, err2 = gp("vm", "show", "s1", "--json")
    check("vm set --disk-format raw records it", rc == 0
          and json.loads(out2).get("disk_format") == "raw", err + out2 + err2)
    with open(DISK, "wb") as f:
        f.write(disk_before)
    # PV VM: ivshmem region and the server's socket; the region file is
    # made again at start (the state directory is /run: gone after a reboot).
    rc, out, err = gp("vm", "create", "p5", "--disk", DISK, "--memory", "64M", "--cpus", "1",
                      "--accel", "tcg", "--qemu-arg", "-S", "--gpu-passthrough", "pv",
                      "--gpu-shm", "2M")
    shm5 = os.path.join(ST, "pv", "p5.shm")
    os.unlink(shm5)
    stop_pvd()
    os.chmod(TMP, 0o700)
    rc, out, err = gp("vm", "start", "p5", "--timeout", "60")
    check("vm start pv: a folder QEMU's user cannot search is refused, naming it and chmod",
          rc != 0 and ("the folder %s (mode 0700)" % TMP) in err and "chmod o+x" in err
          and not cmdline("p5"), err)
    os.chmod(TMP, 0o711)
    rc, out, err = gp("vm", "start", "p5", "--timeout", "60")
    cl = cmdline("p5")
    check("vm start pv: gpupass-pvd started first, region file made again, QEMU has it",
          rc == 0 and "gpupass-pvd started" in out and os.path.getsize(shm5) == 2 << 20
          and "memory-backend-file,id=gpupass-shm,share=on,mem-path=%s,size=2097152" % shm5 in cl
          and "ivshmem-plain,memdev=gpupass-shm" in cl
          and "socket,id=gppv,path=%s,reconnect=1" % os.path.join(ST, "pv", "p5.sock") in cl,
          out + err + " ".join(cl))
    rc, out, err = gp("vm", "set", "p5", "--gpu-shm", "4M")
    check("set --gpu-shm while running: exit 1, unchanged",
          rc == 1 and "running" in err and os.path.getsize(shm5) == 2 << 20, err)
    n_started = sum(l.startswith("argv") for l in record())
    rc, out, err = gp("vm", "start", "p5")
    check("vm start of a running VM: no second server", rc == 0 and "already running" in out
          and sum(l.startswith("argv") for l in record()) == n_started, out + err)
    gp("vm", "stop", "p5", "--force")
    rc, out, err = gp("vm", "set", "s1", "--share", "none")
    check("set --share none (stopped): no shares", rc == 0 and json.loads(
        gp("vm", "show", "s1", "--json")[1])["shares"] == [], err)
    gp("vm", "delete", "p5")
    check("delete p5: region file and section gone",
          not os.path.exists(shm5) and "[guest p5]" not in conf())
else:
    print("# qemu-system-x86_64 missing: vm start checks skipped")

# Delete: the section goes, the others stay.
rc, out, err = gp("vm", "delete", "p1")
check("delete: exit 0", rc == 0, err)
check("config: [guest p1] removed, the rest intact", conf() == OTHER + "\n" or conf() == OTHER,
      conf())

stop_pvd()
shutil.rmtree(TMP, ignore_errors=True)
print("TAP version 13")
print("1..%d" % len(results))
for i, (name, ok, detail) in enumerate(results, 1):
    print("%s %d - %s" % ("ok" if ok else "not ok", i, name))
    if not ok and detail:
        for line in str(detail).splitlines()[:8]:
            print("# " + line)
sys.exit(0 if all(ok for _, ok, _ in results) else 1)
