#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""Suite 'conformance': piglit's OpenCL tests (Debian package piglit) run
natively on the host's platform and through gpupass PV in the same run.

A test fails when it passes natively and not through PV, or when either
run times out (a hang is a bug whichever side has it). Tests that fail or
skip natively are reported, not judged. A few differences are known and
explained in KNOWN below; they are reported as skips with the reason.

Usage: piglit.py BUILD_DIR GROUP_REGEX [--sample-execute N] [--list]
  GROUP_REGEX selects tests by piglit name, e.g. '^(api|custom)@'.
  --sample-execute N keeps one in N of the 638 program@execute tests
  (make test: a spread of them in its time budget).
  PIGLIT_TIMEOUT (s, default 60) bounds each run; PIGLIT_JSON=FILE keeps
  every result and time, native and PV.
"""
import ast
import gzip
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET

PIGLIT = "/usr/lib/x86_64-linux-gnu/piglit"
BUILD, PATTERN = sys.argv[1], sys.argv[2]
TIMEOUT = float(os.environ.get("PIGLIT_TIMEOUT", "60"))

# Differences that are understood; each says why, and what to do instead.
KNOWN = {
    "program@build@include-directories":
        "-I names a directory of the guest; the host's compiler cannot read the guest's files "
        "(pass headers with clCompileProgram's input_headers instead)",
}


def tests():
    """(name, argv) of every OpenCL test piglit lists, in its order."""
    root = ET.fromstring(gzip.open(os.path.join(PIGLIT, "tests/cl.xml.gz")).read())
    out = []
    for t in root.findall("Test"):
        opt = {e.attrib["name"]: e.attrib["value"] for e in t.findall("option")}
        if t.attrib["type"] == "cl":
            cmd = ast.literal_eval(opt["command"])
            argv = [os.path.join(PIGLIT, "bin", cmd[0])] + cmd[1:]
        elif t.attrib["type"] == "cl_prog":
            argv = [os.path.join(PIGLIT, "bin", "cl-program-tester"),
                    os.path.join(PIGLIT, ast.literal_eval(opt["filename"]))]
        else:
            continue
        out.append((t.attrib["name"], argv))
    return out


def run_one(argv, env):
    """piglit's verdict (pass/fail/skip/warn/crash/timeout), seconds, output."""
    t0 = time.monotonic()
    p = subprocess.Popen(argv, env=env, cwd=PIGLIT, stdout=subprocess.PIPE,
                         stderr=subprocess.STDOUT, text=True, errors="replace",
                         start_new_session=True)
    try:
        out, _ = p.communicate(timeout=TIMEOUT)
    except subprocess.TimeoutExpired:
        os.killpg(p.pid, signal.SIGKILL)
        out, _ = p.communicate()
        return "timeout", time.monotonic() - t0, out
    found = re.findall(r'PIGLIT: \{"result": "(\w+)"', out)
    verdict = found[-1] if found else "crash(rc %d)" % p.returncode
    return verdict, time.monotonic() - t0, out


def start_server(tmp):
    sock = os.path.join(tmp, "pv.sock")
    cfg = os.path.join(tmp, "pvd.ini")
    with open(cfg, "w") as f:
        f.write("[server]\nlisten = unix:%s\n[guest default]\n" % sock)
    env = dict(os.environ)
    env.pop("OCL_ICD_VENDORS", None)
    log = open(os.path.join(tmp, "pvd.log"), "w")
    proc = subprocess.Popen([os.path.join(BUILD, "gpupass-pvd"), "--config", cfg,
                             "--state-dir", os.path.join(tmp, "state")],
                            stdout=log, stderr=log, env=env)
    for _ in range(600):
        if os.path.exists(sock):
            return proc, sock
        if proc.poll() is not None:
            break
        time.sleep(0.05)
    print("Bail out! gpupass-pvd did not start: " + open(os.path.join(tmp, "pvd.log")).read())
    sys.exit(1)


def main():
    chosen = [(n, a) for n, a in tests() if re.search(PATTERN, n)]
    if "--sample-execute" in sys.argv:
        every = int(sys.argv[sys.argv.index("--sample-execute") + 1])
        seen = [0]

        def keep(name):
            if not name.startswith("program@execute@"):
                return True
            seen[0] += 1
            return seen[0] % every == 1
        chosen = [(n, a) for n, a in chosen if keep(n)]
    if "--list" in sys.argv:
        for n, _ in chosen:
            print(n)
        return 0
    if not os.path.exists(os.path.join(PIGLIT, "bin", "cl-program-tester")):
        print("1..0 # SKIP piglit is not installed (apt-get install piglit)")
        return 0
    if b"__asan_init" in open(os.path.join(BUILD, "libgpupass-icd.so"), "rb").read():
        print("1..0 # SKIP piglit's binaries are not built with ASan: they cannot load an "
              "ASan-built ICD (the gcc build runs this suite)")
        return 0
    results, bad = {}, 0
    with tempfile.TemporaryDirectory(prefix="gpupass-piglit-") as tmp:
        proc, sock = start_server(tmp)
        vend = os.path.join(tmp, "vendors")
        os.makedirs(vend)
        with open(os.path.join(vend, "gpupass.icd"), "w") as f:
            f.write(os.path.join(os.path.abspath(BUILD), "libgpupass-icd.so") + "\n")
        native = dict(os.environ)
        native.pop("OCL_ICD_VENDORS", None)
        pv = dict(native, OCL_ICD_VENDORS=vend, GPUPASS_SERVER="unix:" + sock)
        try:
            for i, (name, argv) in enumerate(chosen, 1):
                nr, nt, _ = run_one(argv, native)
                pr, pt, pout = run_one(argv, pv)
                results[name] = {"native": nr, "native_s": round(nt, 2), "pv": pr,
                                 "pv_s": round(pt, 2)}
                what = "%s: native %s (%.1f s), PV %s (%.1f s)" % (name, nr, nt, pr, pt)
                if "timeout" in (nr, pr):
                    ok = False
                elif nr == "pass" and pr != "pass" and name in KNOWN:
                    print("ok %d - %s # SKIP known difference: %s" % (i, what, KNOWN[name]))
                    continue
                else:
                    ok = nr != "pass" or pr == "pass"
                print("%s %d - %s" % ("ok" if ok else "not ok", i, what), flush=True)
                if not ok:
                    bad += 1
                    for line in pout.splitlines()[-15:]:
                        print("#   " + line)
        finally:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
    print("1..%d" % len(chosen))
    counts = {}
    for r in results.values():
        for side in ("native", "pv"):
            key = (side, r[side].split("(")[0])
            counts[key] = counts.get(key, 0) + 1
    for side in ("native", "pv"):
        print("# %-6s %s" % (side, ", ".join("%s %d" % (k[1], v) for k, v in sorted(counts.items())
                                             if k[0] == side)))
    if os.environ.get("PIGLIT_JSON"):
        with open(os.environ["PIGLIT_JSON"], "w") as f:
            json.dump(results, f, indent=1, sort_keys=True)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
