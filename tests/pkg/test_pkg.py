# SPDX-License-Identifier: Apache-2.0
"""Packaging checks, TAP output.

argv: meson, build dir, scripts/guest-setup, libgpupass-icd.so
"""
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time

MESON, BUILD, GUEST_SETUP, ICD = sys.argv[1:5]
ICD = os.path.join(BUILD, ICD)  # meson passes it relative to the build dir
n = 0
failed = 0


def ok(cond, name, detail=''):
    global n, failed
    n += 1
    print(('ok' if cond else 'not ok') + ' %d - %s' % (n, name))
    if not cond:
        failed += 1
        for line in str(detail).splitlines():
            print('#   ' + line)


def run(args, **kw):
    return subprocess.run(args, capture_output=True, text=True, **kw)


def options():
    r = run([MESON, 'introspect', '--buildoptions', BUILD])
    return {o['name']: o['value'] for o in json.loads(r.stdout)}


def gs(*args):
    # Through /bin/sh (dash on Debian): the script must be POSIX sh.
    return run(['/bin/sh', GUEST_SETUP] + list(args))


def listing(root):
    out = []
    for d, _, files in os.walk(root):
        out += [os.path.relpath(os.path.join(d, f), root) for f in files]
    return sorted(out)


def test_install(tmp):
    dest = os.path.join(tmp, 'dest')
    r = run([MESON, 'install', '-C', BUILD, '--no-rebuild', '--quiet', '--destdir', dest])
    ok(r.returncode == 0, 'meson install --destdir succeeds', r.stdout + r.stderr)
    o = options()
    pre = o['prefix'].lstrip('/')
    files = listing(dest)
    expect = [
        os.path.join(pre, o['sbindir'], 'gpupass'),
        os.path.join(pre, o['sbindir'], 'gpupass-pvd'),
        os.path.join(pre, o['libdir'], 'libgpupass-icd.so'),
        'etc/OpenCL/vendors/gpupass.icd',
        os.path.join(pre, o['datadir'], 'gpupass/guest-setup'),
        os.path.join(pre, o['datadir'], 'doc/gpupass/pvd.conf.example'),
    ] + [os.path.join(pre, o['mandir'], 'man8', m) for m in
         ('gpupass.8', 'gpupass-pvd.8', 'gpupass-vm.8', 'gpupass-dda.8', 'gpupass-survey.8')]
    for e in expect:
        ok(e in files, 'installed: ' + e, '\n'.join(files))
    # systemd's own directories come from pkg-config: found by their tail.
    units = {}
    for tail in ('systemd/system/gpupass-vms.service', 'systemd/system/gpupass-pvd.service',
                 'sysusers.d/gpupass.conf', 'tmpfiles.d/gpupass.conf'):
        hits = [f for f in files if f.endswith(tail)]
        ok(len(hits) == 1, 'installed once: */' + tail, '\n'.join(files))
        if hits:
            units[tail.split('/')[-1] + ('' if 'systemd/' in tail else '@' + tail.split('/')[0])] = \
                os.path.join(dest, hits[0])
    gs_inst = os.path.join(dest, pre, o['datadir'], 'gpupass/guest-setup')
    ok(os.access(gs_inst, os.X_OK), 'guest-setup is installed executable')
    with open(os.path.join(dest, 'etc/OpenCL/vendors/gpupass.icd')) as f:
        ok(f.read().strip() == 'libgpupass-icd.so', 'gpupass.icd names the ICD')
    sbin = os.path.join('/', pre, o['sbindir'])
    pvd = open(units['gpupass-pvd.service']).read() if 'gpupass-pvd.service' in units else ''
    ok('@SBINDIR@' not in pvd and sbin + '/gpupass-pvd --config /etc/gpupass/pvd.conf' in pvd
       and 'exec ' + sbin + '/gpupass-pvd;' in pvd,
       'gpupass-pvd.service runs the installed server, with and without /etc/gpupass/pvd.conf', pvd)
    tmpf = open(units.get('gpupass.conf@tmpfiles.d', os.devnull)).read()
    ok('d /run/gpupass 1775 root gpupass' in tmpf, 'tmpfiles.d makes /run/gpupass', tmpf)
    sysu = open(units.get('gpupass.conf@sysusers.d', os.devnull)).read()
    ok('u gpupass ' in sysu and 'm gpupass render' in sysu, 'sysusers.d makes the user gpupass', sysu)
    return dest, sbin, units


def test_verify(tmp, dest, sbin, units):
    sa = shutil.which('systemd-analyze')
    if not sa:
        print('ok %d # SKIP systemd-analyze verify: systemd-analyze is not installed' % (n + 1))
        return 1
    # The units name the final sbindir: point it into DESTDIR for verify,
    # which checks that each Exec* program exists.
    d = os.path.join(tmp, 'units')
    os.makedirs(d)
    paths = []
    for u in ('gpupass-pvd.service', 'gpupass-vms.service'):
        if u not in units:
            continue
        text = open(units[u]).read().replace(sbin + '/', os.path.join(dest, sbin.lstrip('/')) + '/')
        paths.append(os.path.join(d, u))
        with open(paths[-1], 'w') as f:
            f.write(text)
    r = run([sa, 'verify', '--man=no'] + paths)
    # Lines about our units only: verify also reports on unrelated units
    # of the machine it runs on.
    ours = [l for l in (r.stdout + r.stderr).splitlines() if 'gpupass' in l]
    ok(r.returncode == 0 and not ours, 'systemd-analyze verify: both units clean',
       r.stdout + r.stderr)
    return 0


def test_example_config(tmp, dest, sbin):
    # The shipped example is a configuration the installed server accepts.
    o = options()
    example = os.path.join(dest, o['prefix'].lstrip('/'), o['datadir'], 'doc/gpupass/pvd.conf.example')
    sock = os.path.join(tmp, 'run/pv.sock')
    p = subprocess.Popen([os.path.join(dest, sbin.lstrip('/'), 'gpupass-pvd'), '--config', example,
                          '--listen', 'unix:' + sock],
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    for _ in range(600):
        if os.path.exists(sock) or p.poll() is not None:
            break
        time.sleep(0.05)
    up = os.path.exists(sock)
    p.terminate()
    out = p.communicate(timeout=30)[0]
    ok(up and p.returncode == 0 and 'to 1 guest section(s)' in out,
       'gpupass-pvd serves with pvd.conf.example, ends cleanly on SIGTERM',
       'rc=%s\n%s' % (p.returncode, out))
    ok(not os.path.exists(sock), 'gpupass-pvd removed its socket')


def test_guest_setup(tmp):
    r = gs('--help')
    ok(r.returncode == 0 and 'Usage: guest-setup' in r.stdout and '--uninstall' in r.stdout,
       'guest-setup --help', r.stdout + r.stderr)
    for args, what in ((['--bogus'], "unknown option or argument '--bogus'"),
                       (['extra'], "unknown option or argument 'extra'"),
                       (['--prefix'], 'option --prefix needs an argument'),
                       (['--prefix', 'rel/dir'], '--prefix must be an absolute path'),
                       (['--root', os.path.join(tmp, 'nope')], 'no such directory'),
                       (['--root', tmp, '--icd', os.path.join(tmp, 'nope.so')], 'no such file')):
        r = gs(*args)
        lines = r.stderr.strip().splitlines()
        ok(r.returncode == 2 and len(lines) == 1 and what in lines[0] and not r.stdout,
           'guest-setup %s: exit 2, one line: %s' % (' '.join(args), what),
           'rc=%d\n%s%s' % (r.returncode, r.stdout, r.stderr))

    root = os.path.join(tmp, 'guest')
    os.makedirs(os.path.join(root, 'etc'))
    with open(os.path.join(root, 'etc/debian_version'), 'w') as f:
        f.write('12.0\n')
    r = gs('--root', root, '--icd', ICD, '--dry-run')
    ok(r.returncode == 0 and 'would' in r.stdout and listing(root) == ['etc/debian_version'],
       'guest-setup --dry-run changes nothing', r.stdout + r.stderr + str(listing(root)))

    r = gs('--root', root, '--icd', ICD)
    lib = '/usr/local/lib/gpupass/libgpupass-icd.so'
    ok(r.returncode == 0, 'guest-setup into a scratch root', r.stdout + r.stderr)
    icdf = os.path.join(root, 'etc/OpenCL/vendors/gpupass.icd')
    ok(os.path.isfile(icdf) and open(icdf).read() == lib + '\n',
       'gpupass.icd holds the absolute path of the installed ICD',
       open(icdf).read() if os.path.isfile(icdf) else 'missing')
    inst = os.path.join(root, lib.lstrip('/'))
    ok(os.path.isfile(inst) and open(inst, 'rb').read() == open(ICD, 'rb').read(),
       'the ICD is copied byte for byte')
    ok('apt-get install ocl-icd-libopencl1 clinfo' in r.stderr,
       'a guest without libOpenCL.so.1 is told what to install', r.stderr)
    ok('not verified' in r.stdout and 'tried serial:org.gpupass.pv.0' in r.stdout
       and 'then unix:/run/gpupass/pv.sock' in r.stdout,
       'no channel: says which channels it tried', r.stdout)

    # Channel discovery, in the ICD's order: the named virtio port first.
    port = os.path.join(root, 'sys/class/virtio-ports/vport1p1')
    os.makedirs(port)
    with open(os.path.join(port, 'name'), 'w') as f:
        f.write('org.qemu.guest_agent.0\n')
    os.makedirs(os.path.join(root, 'run/gpupass'))
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    srv.bind(os.path.join(root, 'run/gpupass/pv.sock'))
    r = gs('--root', root, '--icd', ICD)
    ok(r.returncode == 0 and 'channel: unix:/run/gpupass/pv.sock' in r.stdout,
       'channel: the unix socket when no port is named org.gpupass.pv.0', r.stdout + r.stderr)
    with open(os.path.join(port, 'name'), 'w') as f:
        f.write('org.gpupass.pv.0\n')
    r = gs('--root', root, '--icd', ICD)
    ok(r.returncode == 0 and 'channel: serial:org.gpupass.pv.0' in r.stdout,
       'channel: the virtio-serial port org.gpupass.pv.0 first', r.stdout + r.stderr)
    srv.close()
    shutil.rmtree(os.path.join(root, 'sys'))
    shutil.rmtree(os.path.join(root, 'run'))

    loader = os.path.join(root, 'usr/lib/x86_64-linux-gnu/libOpenCL.so.1')
    os.makedirs(os.path.dirname(loader))
    open(loader, 'w').close()
    r = gs('--root', root, '--icd', ICD, '--prefix', '/opt/gp')
    ok(r.returncode == 0 and 'warning' not in r.stderr
       and open(icdf).read() == '/opt/gp/lib/gpupass/libgpupass-icd.so\n',
       'guest-setup --prefix /opt/gp, loader present: no warning', r.stdout + r.stderr)

    r = gs('--root', root, '--uninstall', '--prefix', '/opt/gp', '--dry-run')
    ok(r.returncode == 0 and os.path.exists(icdf), 'guest-setup --uninstall --dry-run keeps the files',
       r.stdout + r.stderr)
    r = gs('--root', root, '--uninstall', '--prefix', '/opt/gp')
    ok(r.returncode == 0 and not os.path.exists(icdf)
       and not os.path.exists(os.path.join(root, 'opt/gp/lib/gpupass')),
       'guest-setup --uninstall removes gpupass.icd and the ICD', r.stdout + r.stderr)
    r = gs('--root', root, '--uninstall')
    ok(r.returncode == 0 and not os.path.exists(inst) and os.path.exists(loader),
       'guest-setup --uninstall of the default prefix; nothing else touched', str(listing(root)))

    # Without --icd: the build dir beside the script (a source tree layout).
    src = os.path.join(tmp, 'src')
    os.makedirs(os.path.join(src, 'scripts'))
    os.makedirs(os.path.join(src, 'build'))
    shutil.copy(GUEST_SETUP, os.path.join(src, 'scripts/guest-setup'))
    shutil.copy(ICD, os.path.join(src, 'build/libgpupass-icd.so'))
    r = run(['/bin/sh', os.path.join(src, 'scripts/guest-setup'), '--root', root])
    ok(r.returncode == 0 and os.path.isfile(inst), 'guest-setup finds ../build/libgpupass-icd.so',
       r.stdout + r.stderr)
    os.remove(os.path.join(src, 'build/libgpupass-icd.so'))
    r = run(['/bin/sh', os.path.join(src, 'scripts/guest-setup'), '--root', root])
    ok(r.returncode == 2 and 'give --icd FILE' in r.stderr, 'no ICD anywhere: exit 2, says what to do',
       r.stdout + r.stderr)


def main():
    with tempfile.TemporaryDirectory(prefix='gp-pkg-') as tmp:
        dest, sbin, units = test_install(tmp)
        skipped = test_verify(tmp, dest, sbin, units)
        test_example_config(tmp, dest, sbin)
        test_guest_setup(tmp)
    print('1..%d' % (n + skipped))
    return 1 if failed else 0


sys.exit(main())
