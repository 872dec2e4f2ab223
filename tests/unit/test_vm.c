/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The VM backend and deployment: the QEMU command line, the MMIO window,
 * QMP parsing, a real QEMU (TCG, paused, seconds), and every bad input of
 * `vm create`/`assign`/`vm start` refused with the tree and the database
 * unchanged.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <pthread.h>
#include <pwd.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cmocka.h>

#include "fakesys.h"
#include "host/deploy.h"
#include "host/pvconf.h"
#include "host/vm/disk.h"
#include "host/vm/qemu.h"
#include "host/vm/qmp.h"
#include "kmodel.h"

#define GiB (1ull << 30)
#define MiB (1ull << 20)

static bool argv_has(const struct gp_strv *a, const char *s)
{
	return gp_strv_contains(a, s);
}

/* The value that follows option @opt whose value starts with @prefix. */
static const char *argv_opt(const struct gp_strv *a, const char *opt, const char *prefix)
{
	for (size_t i = 0; i + 1 < a->n; i++) {
		if (strcmp(a->v[i], opt) == 0 && strncmp(a->v[i + 1], prefix, strlen(prefix)) == 0)
			return a->v[i + 1];
	}
	return NULL;
}

static struct gp_vm_hostdev hostdev(const char *addr, uint64_t bar0, bool b0_64, uint64_t bar2,
				    bool b2_64)
{
	struct gp_vm_hostdev d = { 0 };

	snprintf(d.address, sizeof(d.address), "%s", addr);
	d.bar_size[0] = bar0;
	d.bar_mem[0] = bar0 != 0;
	d.bar_64[0] = b0_64;
	d.bar_size[2] = bar2;
	d.bar_mem[2] = bar2 != 0;
	d.bar_64[2] = b2_64;
	return d;
}

static uint64_t hole_of(const struct gp_vm_hostdev *d, size_t nfn)
{
	struct gp_vm_card c = { .fn = d, .nfn = nfn };

	return gp_vm_hole64_size(&c, 1);
}

static void test_hole64(void **state)
{
	struct gp_vm_hostdev d[3];
	struct gp_vm_card cards[2];

	(void)state;
	assert_int_equal(gp_vm_hole64_size(NULL, 0), 32 * GiB);
	/* Small BARs: QEMU's default is kept, never shrunk. */
	d[0] = hostdev("0000:01:00.0", 256 * MiB, true, 32 * MiB, true);
	assert_int_equal(hole_of(d, 1), 32 * GiB);
	/* 32-bit BARs do not count toward the 64-bit window. */
	d[0] = hostdev("0000:01:00.0", 64 * GiB, false, 0, false);
	assert_int_equal(hole_of(d, 1), 32 * GiB);
	/* An A100 80GB: a 128 GiB BAR and a 32 MiB one. Its root port's
	 * window is rounded up to its 128 GiB alignment (256), plus 128 of
	 * margin for an unaligned hole start. */
	d[0] = hostdev("0000:5e:00.0", 128 * GiB, true, 32 * MiB, true);
	assert_int_equal(hole_of(d, 1), 384 * GiB);
	/* Two 16 GiB cards, each behind its own root port: each window is
	 * 16 G + 256 M rounded to 32 G, at 16 G alignment: 64 + 16 margin. */
	d[0] = hostdev("0000:03:00.0", 16 * GiB, true, 256 * MiB, true);
	d[1] = hostdev("0000:04:00.0", 16 * GiB, true, 256 * MiB, true);
	cards[0] = (struct gp_vm_card){ .fn = &d[0], .nfn = 1 };
	cards[1] = (struct gp_vm_card){ .fn = &d[1], .nfn = 1 };
	assert_int_equal(gp_vm_hole64_size(cards, 2), 80 * GiB);
	/* The same BARs as two functions of one card share one window:
	 * 32 G + 512 M rounded to 48 G, + 16 margin. */
	assert_int_equal(hole_of(d, 2), 64 * GiB);
	/* A garbled, not-power-of-two size is aligned as the next power. */
	d[0] = hostdev("0000:03:00.0", 48 * GiB, true, 0, false);
	assert_int_equal(hole_of(d, 1), 128 * GiB);
	/* Absurd sizes saturate instead of overflowing. */
	d[0] = hostdev("0000:03:00.0", UINT64_MAX, true, UINT64_MAX / 3, true);
	assert_true(hole_of(d, 1) >= 32 * GiB);
	assert_int_equal(hole_of(d, 1) % GiB, 0);
	/* I/O BARs are ignored. */
	d[2] = hostdev("0000:05:00.0", 0, false, 0, false);
	d[2].bar_size[4] = 256;
	d[2].bar_64[4] = true;
	d[2].bar_mem[4] = false;
	assert_int_equal(hole_of(&d[2], 1), 32 * GiB);
}

static void base_paths(struct gp_vm_paths *p)
{
	memset(p, 0, sizeof(*p));
	strcpy(p->dir, "/run/gpupass/vms/x");
	strcpy(p->qmp, "/run/gpupass/vms/x/qmp.sock");
	strcpy(p->qga, "/run/gpupass/vms/x/qga.sock");
	strcpy(p->pid, "/run/gpupass/vms/x/qemu.pid");
	strcpy(p->log, "/run/gp,log/console.log");
}

/* A qcow2 header (QEMU's docs/interop/qcow2.txt, version 2, big-endian)
 * naming @backing, as a guest can write it into the first sector of its
 * raw disk: 1 MiB virtual size, 64 KiB clusters, an L1 table at 128 KiB
 * and a refcount table at 64 KiB (zeros: qemu-img takes that). */
static void put_be(unsigned char *p, uint64_t v, int n)
{
	for (int i = n - 1; i >= 0; i--, v >>= 8)
		p[i] = (unsigned char)v;
}

static void write_qcow2_header(const char *path, const char *backing)
{
	unsigned char h[512] = { 'Q', 'F', 'I', 0xfb };
	size_t n = strlen(backing);
	FILE *f = fopen(path, "r+b");

	assert_non_null(f);
	put_be(h + 4, 2, 4);          /* version */
	put_be(h + 8, 104, 8);        /* backing_file_offset */
	put_be(h + 16, n, 4);         /* backing_file_size */
	put_be(h + 20, 16, 4);        /* cluster_bits */
	put_be(h + 24, 1 << 20, 8);   /* size */
	put_be(h + 36, 1, 4);         /* l1_size */
	put_be(h + 40, 128 << 10, 8); /* l1_table_offset */
	put_be(h + 48, 64 << 10, 8);  /* refcount_table_offset */
	put_be(h + 56, 1, 4);         /* refcount_table_clusters */
	memcpy(h + 104, backing, n);
	assert_int_equal(fwrite(h, 1, sizeof(h), f), sizeof(h));
	fclose(f);
}

/* The disk format is the one recorded at create: a raw disk whose guest
 * wrote a qcow2 header naming a host file is still started as raw (QEMU
 * would otherwise open the host file as its backing file); no recorded
 * format, no start; a recorded backing file is passed explicitly. */
static void test_disk_format_fixed(void **state)
{
	char dir[] = "/tmp/gp-disk-XXXXXX", disk[64], want[160];
	struct gp_vm_config cfg;
	struct gp_vm_paths p;
	struct gp_vm_launch l = { &cfg, "/usr/bin/qemu-system-x86_64", "tcg", NULL, 0, &p, NULL, NULL, NULL, 0, NULL };
	struct gp_strv a = { 0 };
	struct gp_disk_info info;
	struct gp_why why = { "" };

	(void)state;
	assert_non_null(mkdtemp(dir));
	snprintf(disk, sizeof(disk), "%s/guest.img", dir);
	/* A plain raw image at create. */
	{
		FILE *f = fopen(disk, "wb");

		assert_non_null(f);
		assert_int_equal(ftruncate(fileno(f), 1 << 20), 0);
		fclose(f);
	}
	assert_int_equal(gp_disk_inspect("vm1", disk, NULL, NULL, &info, &why), 0);
	assert_string_equal(info.format, "raw");
	assert_string_equal(info.backing, "");
	base_paths(&p);
	gp_vm_config_init(&cfg, "vm1");
	strcpy(cfg.disk, disk);
	strcpy(cfg.disk_format, info.format);
	/* Then the guest writes a qcow2 header into its disk. */
	write_qcow2_header(disk, "/etc/shadow");
	assert_int_equal(gp_vm_build_argv(&l, &a), 0);
	snprintf(want, sizeof(want), "file=%s,if=virtio,format=raw", disk);
	assert_true(argv_has(&a, want));
	gp_strv_clear(&a);
	/* A probe now would say qcow2 with a backing file: the reason the
	 * format is never probed again (and such a backing is refused). */
	assert_int_equal(gp_disk_inspect("vm1", disk, NULL, NULL, &info, &why), -EPERM);
	assert_non_null(strstr(why.msg, "/etc/shadow"));
	/* No recorded format (a VM of an older gpupass): no start. */
	cfg.disk_format[0] = '\0';
	assert_int_equal(gp_vm_build_argv(&l, &a), -EINVAL);
	gp_strv_clear(&a);
	/* The recorded backing chain, explicit. */
	strcpy(cfg.disk_format, "qcow2");
	strcpy(cfg.disk_backing, "/var/lib/images/base.raw");
	strcpy(cfg.disk_backing_format, "raw");
	assert_int_equal(gp_vm_build_argv(&l, &a), 0);
	snprintf(want, sizeof(want), "file=%s,if=virtio,format=qcow2,backing.driver=raw,"
		 "backing.file.filename=/var/lib/images/base.raw", disk);
	assert_true(argv_has(&a, want));
	gp_strv_clear(&a);
	unlink(disk);
	rmdir(dir);
}

/* gp_disk_inspect with real qemu-img images: a qcow2 with a backing file
 * only with --allow-backing naming its folder; --disk-format given is
 * taken, not probed; a format gpupass does not start is refused. */
static void test_disk_inspect(void **state)
{
	char dir[] = "/tmp/gp-disk-XXXXXX", cmd[512], base[64], ov[64], vmdk[64], other[64];
	struct gp_disk_info info;
	struct gp_why why = { "" };

	(void)state;
	assert_non_null(mkdtemp(dir));
	snprintf(base, sizeof(base), "%s/base.raw", dir);
	snprintf(ov, sizeof(ov), "%s/ov.qcow2", dir);
	snprintf(vmdk, sizeof(vmdk), "%s/d.vmdk", dir);
	snprintf(other, sizeof(other), "%s/other", dir);
	snprintf(cmd, sizeof(cmd), "qemu-img create -q -f raw %s 1M && qemu-img create -q -f qcow2 "
		 "-b %s -F raw %s && qemu-img create -q -f vmdk %s 1M && mkdir %s", base, base, ov,
		 vmdk, other);
	if (system(cmd) != 0)
		skip();
	assert_int_equal(gp_disk_inspect("vm2", ov, NULL, NULL, &info, &why), -EPERM);
	assert_non_null(strstr(why.msg, "--allow-backing"));
	assert_int_equal(gp_disk_inspect("vm2", ov, NULL, other, &info, &why), -EPERM);
	assert_int_equal(gp_disk_inspect("vm2", ov, NULL, dir, &info, &why), 0);
	assert_string_equal(info.format, "qcow2");
	assert_string_equal(info.backing, base);
	assert_string_equal(info.backing_format, "raw");
	/* Told raw: taken as raw, the header is data. */
	assert_int_equal(gp_disk_inspect("vm2", ov, "raw", NULL, &info, &why), 0);
	assert_string_equal(info.format, "raw");
	assert_string_equal(info.backing, "");
	assert_int_equal(gp_disk_inspect("vm2", vmdk, NULL, NULL, &info, &why), -ENOTSUP);
	assert_non_null(strstr(why.msg, "vmdk"));
	assert_int_equal(gp_disk_inspect("vm2", base, "vhdx", NULL, &info, &why), -EINVAL);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	assert_int_equal(system(cmd), 0);
}

static void test_argv(void **state)
{
	struct gp_vm_config cfg;
	struct gp_vm_paths p;
	struct gp_vm_hostdev fns[2] = {
		hostdev("0000:01:00.0", 16 * MiB, false, 256 * MiB, true),
		hostdev("0000:01:00.1", 16 * 1024, false, 0, false),
	};
	struct gp_vm_card card = { fns, 2 };
	struct gp_vm_launch l = { &cfg, "/usr/bin/qemu-system-x86_64", "tcg", &card, 1, &p, NULL, NULL, NULL, 0, NULL };
	struct gp_strv a = { 0 };

	(void)state;
	base_paths(&p);
	gp_vm_config_init(&cfg, "gpu-vm");
	cfg.memory = 4 * GiB;
	cfg.cpus = 3;
	strcpy(cfg.kernel, "/k/vmlinuz");
	strcpy(cfg.initrd, "/k/initrd");
	strcpy(cfg.append, "console=ttyS0 quiet");
	strcpy(cfg.extra, "-device  virtio-rng-pci");
	assert_int_equal(gp_vm_build_argv(&l, &a), 0);
	assert_string_equal(a.v[0], "/usr/bin/qemu-system-x86_64");
	assert_non_null(argv_opt(&a, "-machine", "q35,accel=tcg"));
	assert_non_null(argv_opt(&a, "-cpu", "max"));
	assert_non_null(argv_opt(&a, "-m", "4096m"));
	assert_non_null(argv_opt(&a, "-smp", "3"));
	assert_true(argv_has(&a, "-nodefaults"));
	/* Confined as libvirt does it: QEMU's seccomp filter, and here (no
	 * user to change to) no set*id calls either. */
	assert_non_null(argv_opt(&a, "-sandbox", "on,obsolete=deny,elevateprivileges=deny,"
				 "spawn=deny,resourcecontrol=deny"));
	assert_false(argv_has(&a, "-runas"));
	{
		struct gp_strv b = { 0 };

		l.run_as = "gpupass-qemu";
		assert_int_equal(gp_vm_build_argv(&l, &b), 0);
		assert_non_null(argv_opt(&b, "-runas", "gpupass-qemu"));
		assert_non_null(argv_opt(&b, "-sandbox", "on,obsolete=deny,elevateprivileges=allow,"
					 "spawn=deny,resourcecontrol=deny"));
		gp_strv_clear(&b);
		l.run_as = NULL;
	}
	/* Both functions in one slot behind one root port, numbers kept. */
	assert_non_null(argv_opt(&a, "-device",
		"pcie-root-port,id=gprp0,bus=pcie.0,addr=0x10,chassis=1,slot=1"));
	assert_true(argv_has(&a, "vfio-pci,host=0000:01:00.0,id=gpu0f0,bus=gprp0,addr=0x0.0,"
				 "multifunction=on"));
	assert_true(argv_has(&a, "vfio-pci,host=0000:01:00.1,id=gpu0f1,bus=gprp0,addr=0x0.1"));
	assert_true(argv_has(&a, "q35-pcihost.pci-hole64-size=32G"));
	/* QMP, agent, console; a ',' in a path is doubled. */
	assert_true(argv_has(&a, "socket,id=gpqmp,path=/run/gpupass/vms/x/qmp.sock,server=on,wait=off"));
	assert_true(argv_has(&a, "chardev=gpqmp,mode=control"));
	assert_true(argv_has(&a, "virtserialport,bus=gpvser.0,chardev=gpqga,"
				 "name=org.qemu.guest_agent.0"));
	assert_true(argv_has(&a, "file,id=gpcon,path=/run/gp,,log/console.log,append=on"));
	assert_non_null(argv_opt(&a, "-kernel", "/k/vmlinuz"));
	assert_non_null(argv_opt(&a, "-initrd", "/k/initrd"));
	assert_non_null(argv_opt(&a, "-append", "console=ttyS0 quiet"));
	assert_string_equal(a.v[a.n - 1], "virtio-rng-pci");
	assert_string_equal(a.v[a.n - 2], "-device");
	/* Never a save/migrate helper: no -incoming, no -loadvm. */
	assert_false(argv_has(&a, "-incoming"));
	assert_false(argv_has(&a, "-loadvm"));
	gp_strv_clear(&a);

	/* KVM: -cpu host. */
	l.accel = "kvm";
	assert_int_equal(gp_vm_build_argv(&l, &a), 0);
	assert_non_null(argv_opt(&a, "-cpu", "host"));
	assert_non_null(argv_opt(&a, "-machine", "q35,accel=kvm"));
	gp_strv_clear(&a);

	/* No function 0 among the assigned: renumbered from 0. */
	snprintf(fns[0].address, sizeof(fns[0].address), "0000:01:00.2");
	snprintf(fns[1].address, sizeof(fns[1].address), "0000:01:00.3");
	assert_int_equal(gp_vm_build_argv(&l, &a), 0);
	assert_true(argv_has(&a, "vfio-pci,host=0000:01:00.2,id=gpu0f0,bus=gprp0,addr=0x0.0,"
				 "multifunction=on"));
	assert_true(argv_has(&a, "vfio-pci,host=0000:01:00.3,id=gpu0f1,bus=gprp0,addr=0x0.1"));
	gp_strv_clear(&a);
	/* Migration switched off on every assigned function. */
	l.vfio_migration_prop = "enable-migration=off";
	assert_int_equal(gp_vm_build_argv(&l, &a), 0);
	assert_true(argv_has(&a, "vfio-pci,host=0000:01:00.2,id=gpu0f0,bus=gprp0,addr=0x0.0,"
				 "multifunction=on,enable-migration=off"));
	assert_true(argv_has(&a, "vfio-pci,host=0000:01:00.3,id=gpu0f1,bus=gprp0,addr=0x0.1,"
				 "enable-migration=off"));
	l.vfio_migration_prop = NULL;
	gp_strv_clear(&a);

	/* No GPU: no vfio, no hole setting, no PV port. */
	l.ncards = 0;
	assert_int_equal(gp_vm_build_argv(&l, &a), 0);
	assert_null(argv_opt(&a, "-global", "q35-pcihost"));
	assert_null(argv_opt(&a, "-chardev", "socket,id=gppv"));
	gp_strv_clear(&a);
	/* PV: the server's socket (reconnecting, ',' doubled) behind the port
	 * the guest ICD opens, on the existing virtio-serial bus. */
	l.pv_socket = "/run/gp,pv/pv/gpu-vm.sock";
	assert_int_equal(gp_vm_build_argv(&l, &a), 0);
	assert_non_null(argv_opt(&a, "-chardev",
				 "socket,id=gppv,path=/run/gp,,pv/pv/gpu-vm.sock,reconnect=1"));
	assert_non_null(argv_opt(&a, "-device",
				 "virtserialport,bus=gpvser.0,chardev=gppv,name=org.gpupass.pv.0"));
	l.pv_socket = NULL;
	gp_strv_clear(&a);

	/* PV region: a shared file backend and ivshmem-plain, ',' doubled. */
	l.pv_shm_path = "/run/gp,x/pv/gpu-vm.shm";
	l.pv_shm_size = 64 * MiB;
	assert_int_equal(gp_vm_build_argv(&l, &a), 0);
	assert_non_null(argv_opt(&a, "-object", "memory-backend-file,id=gpupass-shm,share=on,"
				 "mem-path=/run/gp,,x/pv/gpu-vm.shm,size=67108864"));
	assert_non_null(argv_opt(&a, "-device", "ivshmem-plain,memdev=gpupass-shm"));
	gp_strv_clear(&a);
	/* not a power of two (a BAR): refused */
	l.pv_shm_size = 3 * MiB;
	assert_int_equal(gp_vm_build_argv(&l, &a), -EINVAL);
	gp_strv_clear(&a);
	l.pv_shm_path = NULL;
	assert_int_equal(gp_vm_build_argv(&l, &a), 0);
	assert_null(argv_opt(&a, "-object", "memory-backend-file"));
	assert_null(argv_opt(&a, "-device", "ivshmem-plain"));
	gp_strv_clear(&a);

	/* Shares: one fsdev + virtio-9p-pci each, in order. */
	cfg.nshares = 2;
	strcpy(cfg.shares[0].dir, "/");
	strcpy(cfg.shares[0].tag, "hostroot");
	cfg.shares[0].readonly = true;
	strcpy(cfg.shares[1].dir, "/srv/data dir");
	strcpy(cfg.shares[1].tag, "data");
	assert_int_equal(gp_vm_build_argv(&l, &a), 0);
	assert_non_null(argv_opt(&a, "-fsdev", "local,id=gpshare0,path=/,security_model=none,"
				 "readonly=on,multidevs=remap"));
	assert_non_null(argv_opt(&a, "-device", "virtio-9p-pci,fsdev=gpshare0,mount_tag=hostroot"));
	assert_non_null(argv_opt(&a, "-fsdev", "local,id=gpshare1,path=/srv/data dir,"
				 "security_model=none,readonly=off,multidevs=remap"));
	assert_non_null(argv_opt(&a, "-device", "virtio-9p-pci,fsdev=gpshare1,mount_tag=data"));
	gp_strv_clear(&a);
	/* A comma (another QEMU property), a relative path, a bad tag: refused
	 * even when the checks before were skipped. */
	strcpy(cfg.shares[1].dir, "/srv/x,readonly=off");
	assert_int_equal(gp_vm_build_argv(&l, &a), -EINVAL);
	gp_strv_clear(&a);
	strcpy(cfg.shares[1].dir, "srv");
	assert_int_equal(gp_vm_build_argv(&l, &a), -EINVAL);
	gp_strv_clear(&a);
	strcpy(cfg.shares[1].dir, "/srv");
	strcpy(cfg.shares[1].tag, "a,b");
	assert_int_equal(gp_vm_build_argv(&l, &a), -EINVAL);
	gp_strv_clear(&a);
	cfg.nshares = 0;

	/* Bad launches. */
	l.accel = "hvf";
	assert_int_equal(gp_vm_build_argv(&l, &a), -EINVAL);
	gp_strv_clear(&a);
	l.accel = "tcg";
	cfg.memory = 1024;
	assert_int_equal(gp_vm_build_argv(&l, &a), -EINVAL);
	gp_strv_clear(&a);
}

static int parse(const char *text, struct json_object **ret, char *err, size_t errlen)
{
	return gp_qmp_parse_reply(text, strlen(text), ret, err, errlen);
}

static void test_qmp_parse(void **state)
{
	static const char *const garbage[] = {
		"", "{", "[]", "42", "\"return\"", "{\"foo\": 1}", "nul", "{\"return\": }",
		"{\"error\": 7}", "\xff\xfe", "{\"return\":{}}{",
	};
	struct json_object *ret = NULL;
	char err[128];

	(void)state;
	assert_int_equal(parse("{\"return\": {\"running\": true}, \"id\": 3}", &ret, err,
			       sizeof(err)), 0);
	assert_true(json_object_get_boolean(json_object_object_get(ret, "running")));
	json_object_put(ret);
	assert_int_equal(parse("{\"error\": {\"class\": \"GenericError\", "
			       "\"desc\": \"no savevm with vfio\"}}", NULL, err, sizeof(err)),
			 -EREMOTEIO);
	assert_string_equal(err, "GenericError: no savevm with vfio");
	assert_int_equal(parse("{\"error\": {\"class\": 5}}", NULL, err, sizeof(err)),
			 -EREMOTEIO);
	assert_string_equal(err, "Error: (no description)");
	assert_int_equal(parse("{\"event\": \"POWERDOWN\", \"timestamp\": {}}", NULL, err,
			       sizeof(err)), -EAGAIN);
	assert_int_equal(parse("{\"QMP\": {\"version\": {}}}", NULL, NULL, 0), -EAGAIN);
	for (size_t i = 0; i < sizeof(garbage) / sizeof(garbage[0]); i++) {
		ret = NULL;
		int r = gp_qmp_parse_reply(garbage[i], strlen(garbage[i]), &ret, err, sizeof(err));

		if (i == 10) /* a complete object followed by junk: the object counts */
			assert_true(r == 0 || r == -EPROTO);
		else if (i == 8)
			assert_int_equal(r, -EREMOTEIO);
		else
			assert_int_equal(r, -EPROTO);
		json_object_put(ret);
	}
}

static void test_qmp_parse_pci(void **state)
{
	const char *text =
		"[{\"bus\": 0, \"devices\": ["
		"{\"bus\": 0, \"slot\": 0, \"function\": 0, \"class_info\": {\"class\": 1536},"
		" \"id\": {\"vendor\": 32902, \"device\": 10688}, \"qdev_id\": \"\"},"
		"{\"bus\": 0, \"slot\": 16, \"function\": 0, \"class_info\": {\"class\": 1540},"
		" \"id\": {\"vendor\": 6966, \"device\": 12}, \"qdev_id\": \"gprp0\","
		" \"pci_bridge\": {\"bus\": {\"number\": 1, \"secondary\": 1, \"subordinate\": 1},"
		"  \"devices\": [{\"bus\": 1, \"slot\": 0, \"function\": 0,"
		"   \"class_info\": {\"class\": 768}, \"id\": {\"vendor\": 4660, \"device\": 4369},"
		"   \"qdev_id\": \"gpu0f0\"},"
		"   {\"bus\": 1, \"slot\": 0, \"function\": 9, \"id\": {}},"
		"   {\"slot\": \"x\"}, 17, null]}},"
		"{\"bus\": 0, \"slot\": 99, \"function\": 0}"
		"]}, 5, {\"devices\": 3}]";
	struct json_object *ret = json_tokener_parse(text);
	struct gp_qmp_pci_dev *devs = NULL;
	size_t n = 0;

	(void)state;
	assert_non_null(ret);
	assert_int_equal(gp_qmp_parse_pci(ret, &devs, &n), 0);
	assert_int_equal(n, 3); /* malformed entries skipped */
	assert_int_equal(devs[0].vendor_id, 0x8086);
	assert_int_equal(devs[0].device_id, 0x29c0);
	assert_string_equal(devs[1].qdev_id, "gprp0");
	assert_int_equal(devs[2].bus, 1);
	assert_int_equal(devs[2].slot, 0);
	assert_int_equal(devs[2].vendor_id, 0x1234);
	assert_int_equal(devs[2].device_id, 0x1111);
	assert_int_equal(devs[2].class_code, 0x0300);
	assert_string_equal(devs[2].qdev_id, "gpu0f0");
	free(devs);
	json_object_put(ret);
	ret = json_object_new_object();
	assert_int_equal(gp_qmp_parse_pci(ret, &devs, &n), -EPROTO);
	json_object_put(ret);
}

static void test_base64(void **state)
{
	char *out;
	size_t n;

	(void)state;
	assert_int_equal(gp_base64_decode("aGVsbG8=", &out, &n), 0);
	assert_int_equal(n, 5);
	assert_string_equal(out, "hello");
	free(out);
	assert_int_equal(gp_base64_decode("MDA6MDIuMCBWR0EgWzAzMDBdOiBbMTIzNDoxMTExXQo=", &out, &n), 0);
	assert_string_equal(out, "00:02.0 VGA [0300]: [1234:1111]\n");
	free(out);
	assert_int_equal(gp_base64_decode("", &out, &n), 0);
	assert_int_equal(n, 0);
	free(out);
	assert_int_equal(gp_base64_decode("aGV*bG8=", &out, &n), -EINVAL);
	assert_int_equal(gp_base64_decode("aG=Vs", &out, &n), -EINVAL);
	assert_int_equal(gp_base64_decode("a===", &out, &n), -EINVAL);
}

/* --- a guest agent, played by a thread --- */

struct agent {
	char path[108];
	int lfd;
	bool silent; /* accept but never answer: no agent in the guest */
	int polls;
	char last_exec[512];
};

static void *agent_main(void *arg)
{
	struct agent *ag = arg;
	char buf[4096];
	size_t len = 0;
	int fd = accept(ag->lfd, NULL, NULL);

	if (fd < 0)
		return NULL;
	for (;;) {
		ssize_t n = read(fd, buf + len, sizeof(buf) - 1 - len);
		char *nl;

		if (n <= 0)
			break;
		len += (size_t)n;
		buf[len] = '\0';
		while ((nl = strchr(buf, '\n'))) {
			const char *reply = NULL;
			char tmp[512];

			*nl = '\0';
			if (ag->silent) {
				/* swallow */
			} else if (strstr(buf, "\"guest-sync\"")) {
				snprintf(tmp, sizeof(tmp), "{\"return\": %d}\n", (int)getpid());
				reply = tmp;
			} else if (strstr(buf, "\"guest-exec\"")) {
				snprintf(ag->last_exec, sizeof(ag->last_exec), "%s", buf);
				reply = "\n{\"return\": {\"pid\": 42}}\n";
			} else if (strstr(buf, "\"guest-exec-status\"")) {
				reply = ag->polls++ == 0 ? "{\"return\": {\"exited\": false}}\n" :
					"{\"return\": {\"exited\": true, \"exitcode\": 0, \"out-data\": "
					"\"MDE6MDAuMCBWR0EgY29tcGF0aWJsZSBjb250cm9sbGVyIFswMzAwXTogRGV2aWNlIFsxMjM0"
					"OjExMTFdIChyZXYgMDIpCg==\"}}\n";
			} else {
				reply = "{\"error\": {\"class\": \"CommandNotFound\", \"desc\": \"?\"}}\n";
			}
			if (reply && write(fd, reply, strlen(reply)) < 0)
				break;
			len -= (size_t)(nl + 1 - buf);
			memmove(buf, nl + 1, len + 1);
		}
	}
	close(fd);
	return NULL;
}

static void agent_start(struct agent *ag, pthread_t *th, const char *dir, bool silent)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };

	memset(ag, 0, sizeof(*ag));
	ag->silent = silent;
	snprintf(ag->path, sizeof(ag->path), "%s/qga.sock", dir);
	strcpy(sa.sun_path, ag->path);
	ag->lfd = socket(AF_UNIX, SOCK_STREAM, 0);
	assert_true(ag->lfd >= 0);
	unlink(ag->path);
	assert_int_equal(bind(ag->lfd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	assert_int_equal(listen(ag->lfd, 1), 0);
	assert_int_equal(pthread_create(th, NULL, agent_main, ag), 0);
}

static void test_guest_agent(void **state)
{
	char dir[64] = "/tmp/gp-qga-XXXXXX", *out = NULL;
	struct agent ag;
	pthread_t th;

	(void)state;
	assert_non_null(mkdtemp(dir));
	agent_start(&ag, &th, dir, false);
	assert_int_equal(gp_qmp_agent_exec(ag.path, 2000, "lspci", "-nn", &out), 0);
	assert_string_equal(out, "01:00.0 VGA compatible controller [0300]: Device [1234:1111] "
				 "(rev 02)\n");
	assert_non_null(strstr(ag.last_exec, "\"path\":\"lspci\""));
	assert_non_null(strstr(ag.last_exec, "\"-nn\""));
	assert_non_null(strstr(ag.last_exec, "\"capture-output\":true"));
	assert_int_equal(ag.polls, 2);
	free(out);
	pthread_join(th, NULL);
	close(ag.lfd);

	/* A guest without an agent: the port is there, nobody answers. */
	agent_start(&ag, &th, dir, true);
	out = NULL;
	assert_int_equal(gp_qmp_agent_exec(ag.path, 300, "lspci", "-nn", &out), -ETIMEDOUT);
	assert_null(out);
	pthread_join(th, NULL);
	close(ag.lfd);
	/* Nobody listening at all. */
	unlink(ag.path);
	assert_true(gp_qmp_agent_exec(ag.path, 300, "lspci", NULL, &out) < 0);
	rmdir(dir);
}

/* --- a real QEMU --- */

struct qfx {
	char dir[64];
	struct gp_ctx *ctx;
};

static void test_real_qemu(void **state)
{
	char qemu[4096], cmd[128];
	struct gp_vm_config cfg;
	struct gp_vm_paths p;
	struct gp_vm_launch l = { 0 };
	struct gp_strv a = { 0 };
	struct gp_why why = { "" };
	struct gp_ctx *ctx;
	struct gp_qmp *q;
	struct json_object *ret = NULL;
	struct gp_qmp_pci_dev *devs = NULL;
	enum gp_vm_run_state rs;
	char dir[64] = "/tmp/gp-qemu-XXXXXX";
	size_t n = 0;
	bool forced = false, found_host = false, found_vser = false, found_9p = false;
	bool found_ivshmem = false;
	char shm[128];
	pid_t pid, pid2;

	(void)state;
	if (gp_vm_find_qemu(NULL, qemu, sizeof(qemu)) < 0)
		skip();
	assert_non_null(mkdtemp(dir));
	assert_int_equal(gp_ctx_new(NULL, dir, &ctx), 0);
	gp_vm_config_init(&cfg, "tq");
	cfg.memory = 64 * MiB;
	cfg.cpus = 1;
	strcpy(cfg.extra, "-S"); /* paused: no guest code runs, nothing to boot */
	/* A read-only share and a PV region: QEMU takes the argv as built. */
	cfg.nshares = 1;
	snprintf(cfg.shares[0].dir, sizeof(cfg.shares[0].dir), "%s", dir);
	strcpy(cfg.shares[0].tag, "hostdir");
	cfg.shares[0].readonly = true;
	snprintf(shm, sizeof(shm), "%s/tq.shm", dir);
	assert_int_equal(gp_pv_shm_create(shm, 1 * MiB), 0);
	assert_int_equal(gp_vm_paths_get(ctx, "tq", &p), 0);
	l.cfg = &cfg;
	l.qemu = qemu;
	l.accel = "tcg";
	l.paths = &p;
	l.pv_shm_path = shm;
	l.pv_shm_size = 1 * MiB;
	assert_int_equal(gp_vm_build_argv(&l, &a), 0);
	assert_int_equal(gp_vm_spawn(ctx, &p, &a, 0, 30000, &pid, &why), 0);
	assert_int_equal(gp_vm_pid(&p, &pid2), 0);
	assert_int_equal(pid, pid2);
	assert_int_equal(gp_vm_status(&p, &rs, &pid2, NULL), 0);
	assert_int_equal(rs, GP_VM_PAUSED);

	assert_int_equal(gp_qmp_connect(p.qmp, 5000, &q), 0);
	assert_int_equal(gp_qmp_execute(q, "query-pci", NULL, 5000, &ret, NULL, 0), 0);
	assert_int_equal(gp_qmp_parse_pci(ret, &devs, &n), 0);
	for (size_t i = 0; i < n; i++) {
		found_host |= devs[i].vendor_id == 0x8086 && devs[i].device_id == 0x29c0;
		found_vser |= strcmp(devs[i].qdev_id, "gpvser") == 0 && devs[i].vendor_id == 0x1af4;
		/* virtio 9p transitional 1af4:1009; ivshmem 1af4:1110 */
		found_9p |= devs[i].vendor_id == 0x1af4 && devs[i].device_id == 0x1009;
		found_ivshmem |= devs[i].vendor_id == 0x1af4 && devs[i].device_id == 0x1110;
	}
	assert_true(found_host);
	assert_true(found_vser);
	assert_true(found_9p);
	assert_true(found_ivshmem);
	free(devs);
	json_object_put(ret);
	/* An unknown command is an error reply, not a broken connection. */
	{
		char err[256];

		assert_int_equal(gp_qmp_execute(q, "no-such-command", NULL, 5000, NULL, err,
						sizeof(err)), -EREMOTEIO);
		assert_non_null(strstr(err, "CommandNotFound"));
	}
	gp_qmp_close(q);

	/* Paused, the guest cannot act on the power button: turned off. */
	assert_int_equal(gp_vm_stop(ctx, &p, 500, false, &forced, &why), 0);
	assert_true(forced);
	assert_int_equal(gp_vm_status(&p, &rs, &pid2, NULL), 0);
	assert_int_equal(rs, GP_VM_STOPPED);
	assert_int_equal(access(p.pid, F_OK), -1);

	/* QEMU killed behind gpupass's back: reported once, files cleaned. */
	{
		bool died = false;

		assert_int_equal(gp_vm_spawn(ctx, &p, &a, 0, 30000, &pid, &why), 0);
		assert_int_equal(kill(pid, SIGKILL), 0);
		assert_int_equal(waitpid(pid, NULL, 0), pid);
		assert_int_equal(gp_vm_status(&p, &rs, &pid2, &died), 0);
		assert_int_equal(rs, GP_VM_STOPPED);
		assert_true(died);
		assert_int_equal(access(p.pid, F_OK), -1);
		assert_int_equal(gp_vm_status(&p, &rs, &pid2, &died), 0);
		assert_false(died);
	}
	gp_strv_clear(&a);

	/* QEMU refusing its command line: its own message comes back. */
	strcpy(cfg.extra, "-no-such-option");
	assert_int_equal(gp_vm_build_argv(&l, &a), 0);
	assert_int_equal(gp_vm_spawn(ctx, &p, &a, 0, 30000, &pid, &why), -ECHILD);
	assert_non_null(strstr(why.msg, "no-such-option"));
	gp_strv_clear(&a);
	gp_ctx_free(ctx);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	assert_int_equal(system(cmd), 0);
}

/* --- deployment against fake trees --- */

struct dfx {
	struct gp_fake *fake;
	struct kmodel km;
	struct gp_kernel_ops kops;
	struct gp_deploy_opts o;
	char state_dir[64], db[128], kernel[128];
	struct gp_ctx *ctx;
	struct gp_state *st;
	char *tree0, *db0;
};

static struct dfx *dfx_new(const char *tree, bool vfio)
{
	struct dfx *d = calloc(1, sizeof(*d));
	FILE *f;

	assert_int_equal(gp_fake_build(tree, NULL, &d->fake), 0);
	assert_int_equal(kmodel_init(&d->km, d->fake, vfio), 0);
	d->kops.load_module = kmodel_load;
	d->kops.data = &d->km;
	d->o.kops = &d->kops;
	strcpy(d->state_dir, "/tmp/gp-deploy-XXXXXX");
	assert_non_null(mkdtemp(d->state_dir));
	snprintf(d->db, sizeof(d->db), "%s/%s", d->state_dir, GP_STATE_DB_NAME);
	snprintf(d->kernel, sizeof(d->kernel), "%s/vmlinuz", d->state_dir);
	f = fopen(d->kernel, "w");
	assert_non_null(f);
	fputs("not really a kernel", f);
	fclose(f);
	assert_int_equal(gp_ctx_new(gp_fake_root(d->fake), d->state_dir, &d->ctx), 0);
	gp_sysfs_set_write_hook(d->ctx->sys, kmodel_hook, &d->km);
	assert_int_equal(gp_state_open(d->ctx, &d->st), 0);
	return d;
}

static void dfx_snapshot(struct dfx *d)
{
	free(d->tree0);
	free(d->db0);
	d->tree0 = tree_snapshot(gp_fake_root(d->fake));
	d->db0 = db_snapshot(d->db);
}

static void dfx_unchanged(struct dfx *d)
{
	char *t = tree_snapshot(gp_fake_root(d->fake)), *b = db_snapshot(d->db);

	assert_string_equal(t, d->tree0);
	assert_string_equal(b, d->db0);
	free(t);
	free(b);
}

static void dfx_free(struct dfx *d)
{
	char cmd[128];

	gp_state_close(d->st);
	gp_ctx_free(d->ctx);
	kmodel_clear(&d->km);
	gp_fake_free(d->fake, true);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", d->state_dir);
	assert_int_equal(system(cmd), 0);
	free(d->tree0);
	free(d->db0);
	free(d);
}

static void vm_cfg(struct dfx *d, struct gp_vm_config *c, const char *name, enum gp_passthrough pt,
		   const char *gpu_name, int count)
{
	gp_vm_config_init(c, name);
	snprintf(c->kernel, sizeof(c->kernel), "%s", d->kernel);
	c->passthrough = pt;
	snprintf(c->gpu_name, sizeof(c->gpu_name), "%s", gpu_name ? gpu_name : "");
	c->gpu_count = count;
}

static void assert_why(const struct gp_why *w, const char *a, const char *b)
{
	if (a && !strstr(w->msg, a))
		fail_msg("'%s' not in: %s", a, w->msg);
	if (b && !strstr(w->msg, b))
		fail_msg("'%s' not in: %s", b, w->msg);
}

static void drv(struct dfx *d, const char *addr, const char *want)
{
	char got[64];

	kmodel_driver(&d->km, addr, got, sizeof(got));
	assert_string_equal(got, want);
}

/* Every bad input: a clear error naming device and VM, nothing changed. */
static void test_deploy_bad_input(void **state)
{
	struct dfx *d = dfx_new("two-nvidia", true);
	struct gp_vm_config c;
	struct gp_strv taken = { 0 };
	struct gp_why w = { "" };
	char addr[GP_ADDR_LEN];
	bool already;

	(void)state;
	/* vm-a takes the T4. */
	vm_cfg(d, &c, "vm-a", GP_PT_DDA, "T4", 1);
	assert_int_equal(gp_deploy_vm_create(d->ctx, d->st, &c, &d->o, &taken, &w), 0);
	assert_int_equal(taken.n, 1);
	assert_string_equal(taken.v[0], "0000:3b:00.0");
	drv(d, "0000:3b:00.0", "vfio-pci");
	gp_strv_clear(&taken);
	vm_cfg(d, &c, "vm-b", GP_PT_NONE, NULL, 0);
	assert_int_equal(gp_deploy_vm_create(d->ctx, d->st, &c, &d->o, NULL, &w), 0);
	dfx_snapshot(d);

	/* Unknown GPU, ambiguous name. */
	assert_int_equal(gp_deploy_assign(d->ctx, d->st, "0000:99:00.0", "vm-b", &d->o, addr, &w),
			 -ENOENT);
	assert_why(&w, "0000:99:00.0", "survey");
	assert_int_equal(gp_deploy_assign(d->ctx, d->st, "NVIDIA", "vm-b", &d->o, addr, &w),
			 -ENOTUNIQ);
	assert_why(&w, "NVIDIA", "2 GPUs");
	/* A GPU held by another VM. */
	assert_int_equal(gp_deploy_assign(d->ctx, d->st, "0000:3b:00.0", "vm-b", &d->o, addr, &w),
			 -EBUSY);
	assert_why(&w, "0000:3b:00.0", "vm-a");
	assert_int_equal(gp_deploy_assign(d->ctx, d->st, "T4", "vm-b", &d->o, addr, &w), -EBUSY);
	assert_why(&w, "0000:3b:00.0", "vm-a");
	/* A VM that does not exist. */
	assert_int_equal(gp_deploy_assign(d->ctx, d->st, "A100", "ghost", &d->o, addr, &w), -ENOENT);
	assert_why(&w, "ghost", "vm list");
	assert_int_equal(gp_deploy_vm_start(d->ctx, d->st, "ghost", &d->o, &already, &w), -ENOENT);
	assert_why(&w, "ghost", NULL);
	assert_int_equal(gp_deploy_vm_delete(d->ctx, d->st, "ghost", &d->o, &w), -ENOENT);
	/* --gpu-count larger than the ready GPUs: how many match, how many ready. */
	vm_cfg(d, &c, "vm-c", GP_PT_DDA, NULL, 3);
	assert_int_equal(gp_deploy_vm_create(d->ctx, d->st, &c, &d->o, NULL, &w), -ENOSPC);
	assert_why(&w, "vm-c", "2 match and 1 is ready");
	assert_why(&w, "0000:3b:00.0 is held by VM vm-a", NULL);
	vm_cfg(d, &c, "vm-c", GP_PT_DDA, "T4", 1);
	assert_int_equal(gp_deploy_vm_create(d->ctx, d->st, &c, &d->o, NULL, &w), -ENOSPC);
	assert_why(&w, "1 match and 0 are ready", "vm-a");
	/* Invalid memory, CPUs, missing kernel or disk, a name taken. */
	vm_cfg(d, &c, "vm-c", GP_PT_NONE, NULL, 0);
	c.memory = 1 * MiB;
	assert_int_equal(gp_deploy_vm_create(d->ctx, d->st, &c, &d->o, NULL, &w), -EINVAL);
	assert_why(&w, "vm-c", "memory");
	vm_cfg(d, &c, "vm-c", GP_PT_NONE, NULL, 0);
	c.cpus = 0;
	assert_int_equal(gp_deploy_vm_create(d->ctx, d->st, &c, &d->o, NULL, &w), -EINVAL);
	vm_cfg(d, &c, "vm-c", GP_PT_NONE, NULL, 0);
	strcpy(c.kernel, "/nonexistent/vmlinuz");
	assert_int_equal(gp_deploy_vm_create(d->ctx, d->st, &c, &d->o, NULL, &w), -ENOENT);
	assert_why(&w, "vm-c", "/nonexistent/vmlinuz");
	vm_cfg(d, &c, "vm-c", GP_PT_NONE, NULL, 0);
	c.kernel[0] = '\0';
	strcpy(c.disk, "/nonexistent/disk.qcow2");
	assert_int_equal(gp_deploy_vm_create(d->ctx, d->st, &c, &d->o, NULL, &w), -ENOENT);
	assert_why(&w, "vm-c", "/nonexistent/disk.qcow2");
	vm_cfg(d, &c, "vm-c", GP_PT_NONE, NULL, 0);
	c.kernel[0] = '\0';
	assert_int_equal(gp_deploy_vm_create(d->ctx, d->st, &c, &d->o, NULL, &w), -EINVAL);
	assert_why(&w, "vm-c", "nothing to boot");
	vm_cfg(d, &c, "vm-b", GP_PT_NONE, NULL, 0);
	assert_int_equal(gp_deploy_vm_create(d->ctx, d->st, &c, &d->o, NULL, &w), -EEXIST);
	assert_why(&w, "vm-b", "already exists");
	/* PV: bad partition settings, a gpu-count, then no PV-ready GPU (no
	 * OpenCL platform at all): refused with the survey's reason. */
	vm_cfg(d, &c, "vm-c", GP_PT_PV, NULL, 1);
	assert_int_equal(gp_deploy_vm_create(d->ctx, d->st, &c, &d->o, NULL, &w), -EINVAL);
	assert_why(&w, "vm-c", "--gpu-count");
	vm_cfg(d, &c, "vm-c", GP_PT_PV, NULL, 0);
	c.pv_weight = 0;
	assert_int_equal(gp_deploy_vm_create(d->ctx, d->st, &c, &d->o, NULL, &w), -EINVAL);
	assert_why(&w, "vm-c", "1 to 1000");
	c.pv_weight = 1001;
	assert_int_equal(gp_deploy_vm_create(d->ctx, d->st, &c, &d->o, NULL, &w), -EINVAL);
	assert_why(&w, "vm-c", "1 to 1000");
	c.pv_weight = 1;
	/* The region: a power of two (a BAR) from 1M to 16G, or 0. */
	c.pv_shm = 3 * MiB;
	assert_int_equal(gp_deploy_vm_create(d->ctx, d->st, &c, &d->o, NULL, &w), -EINVAL);
	assert_why(&w, "vm-c", "power of two");
	c.pv_shm = 512 * 1024;
	assert_int_equal(gp_deploy_vm_create(d->ctx, d->st, &c, &d->o, NULL, &w), -EINVAL);
	c.pv_shm = 32 * GiB;
	assert_int_equal(gp_deploy_vm_create(d->ctx, d->st, &c, &d->o, NULL, &w), -EINVAL);
	c.pv_shm = 64 * MiB;
	/* Shares: a relative or missing folder, a ',' (QEMU option), a bad
	 * tag, a tag twice; each refused naming the VM, nothing changed. */
	c.nshares = 1;
	strcpy(c.shares[0].dir, "tmp");
	strcpy(c.shares[0].tag, "t");
	assert_int_equal(gp_deploy_vm_create(d->ctx, d->st, &c, &d->o, NULL, &w), -EINVAL);
	assert_why(&w, "vm-c", "absolute");
	strcpy(c.shares[0].dir, "/nonexistent/share");
	assert_int_equal(gp_deploy_vm_create(d->ctx, d->st, &c, &d->o, NULL, &w), -ENOENT);
	assert_why(&w, "vm-c", "not an existing directory");
	strcpy(c.shares[0].dir, "/tmp,readonly=off");
	assert_int_equal(gp_deploy_vm_create(d->ctx, d->st, &c, &d->o, NULL, &w), -EINVAL);
	assert_why(&w, "vm-c", "','");
	strcpy(c.shares[0].dir, "/tmp");
	strcpy(c.shares[0].tag, "a=b");
	assert_int_equal(gp_deploy_vm_create(d->ctx, d->st, &c, &d->o, NULL, &w), -EINVAL);
	assert_why(&w, "vm-c", "tag");
	c.nshares = 2;
	strcpy(c.shares[0].tag, "t");
	strcpy(c.shares[1].dir, "/");
	strcpy(c.shares[1].tag, "t");
	assert_int_equal(gp_deploy_vm_create(d->ctx, d->st, &c, &d->o, NULL, &w), -EINVAL);
	assert_why(&w, "vm-c", "twice");
	c.nshares = 0;
	setenv("OCL_ICD_VENDORS", "/nonexistent/gp-vendors", 1);
	assert_int_equal(gp_deploy_vm_create(d->ctx, d->st, &c, &d->o, NULL, &w), -ENOSPC);
	assert_why(&w, "vm-c", "no-opencl-platform");
	unsetenv("OCL_ICD_VENDORS");
	/* QEMU missing (GPUPASS_QEMU pointing nowhere). */
	d->o.qemu = "/nonexistent/qemu-system-x86_64";
	assert_int_equal(gp_deploy_vm_start(d->ctx, d->st, "vm-a", &d->o, &already, &w), -ENOENT);
	assert_why(&w, "vm-a", "QEMU");
	assert_why(&w, "qemu-system-x86", NULL);
	d->o.qemu = NULL;
	/* Unassign of a GPU nobody holds. */
	assert_int_equal(gp_deploy_unassign(d->ctx, d->st, "A100", &d->o, NULL, NULL, &w), -ENOENT);
	assert_why(&w, "A100", "not assigned");
	dfx_unchanged(d);
	/* Mount refused while vm-a holds it. */
	assert_int_equal(gp_bind_mount(d->ctx, d->st, "0000:3b:00.0", NULL, NULL, NULL, &w), -EBUSY);
	dfx_unchanged(d);

	/* ...while deleting vm-a gives back the GPU its creation dismounted. */
	assert_int_equal(gp_deploy_vm_delete(d->ctx, d->st, "vm-a", &d->o, &w), 0);
	drv(d, "0000:3b:00.0", "nvidia");
	dfx_free(d);
}

static void test_deploy_vfio_missing(void **state)
{
	struct dfx *d = dfx_new("vfio-missing", false);
	struct gp_vm_config c;
	struct gp_why w = { "" };
	char addr[GP_ADDR_LEN];

	(void)state;
	vm_cfg(d, &c, "vm-v", GP_PT_NONE, NULL, 0);
	assert_int_equal(gp_deploy_vm_create(d->ctx, d->st, &c, &d->o, NULL, &w), 0);
	dfx_snapshot(d);
	vm_cfg(d, &c, "vm-w", GP_PT_DDA, NULL, 1);
	assert_int_equal(gp_deploy_vm_create(d->ctx, d->st, &c, &d->o, NULL, &w), -ENOSPC);
	assert_why(&w, "vm-w", "vfio-missing");
	assert_int_equal(gp_deploy_assign(d->ctx, d->st, "0000:3b:00.0", "vm-v", &d->o, addr, &w),
			 -ENODEV);
	assert_why(&w, "0000:3b:00.0", "vfio");
	dfx_unchanged(d);
	dfx_free(d);
}

/* The README's by-hand path on a VM created without a GPU: dismount,
 * assign, then the VM starts with that GPU (it was refused with
 * "--gpu-count must be at least 1 with dda": assign made it dda with
 * count 0); unassign makes it a none VM again. */
static void test_by_hand_path(void **state)
{
	struct dfx *d = dfx_new("server-t4", true);
	struct gp_vm_config c;
	struct gp_strv argv = { 0 };
	struct gp_why w = { "" };
	char addr[GP_ADDR_LEN], vm[GP_NAME_LEN];
	bool did = false;

	(void)state;
	vm_cfg(d, &c, "t1", GP_PT_NONE, NULL, 0);
	assert_int_equal(gp_deploy_vm_create(d->ctx, d->st, &c, &d->o, NULL, &w), 0);
	assert_int_equal(gp_bind_dismount(d->ctx, d->st, "0000:3b:00.0",
					  &(struct gp_bind_opts){ .kops = &d->kops }, NULL, &did, &w), 0);
	assert_int_equal(gp_deploy_assign(d->ctx, d->st, "0000:3b:00.0", "t1", &d->o, addr, &w), 0);
	assert_int_equal(gp_state_vm_get(d->st, "t1", &c), 0);
	assert_int_equal(c.passthrough, GP_PT_DDA);
	assert_int_equal(c.gpu_count, 1);
	assert_int_equal(c.hand_gpus, 1);
	assert_int_equal(gp_deploy_check_config(&c, &w), 0);
	assert_int_equal(gp_deploy_vm_argv(d->ctx, d->st, "t1", &d->o, &argv, &w), 0);
	{
		bool found = false;

		for (size_t i = 0; i < argv.n; i++)
			found |= strstr(argv.v[i], "vfio-pci,host=0000:3b:00.0") != NULL;
		assert_true(found);
	}
	gp_strv_clear(&argv);
	assert_int_equal(gp_deploy_unassign(d->ctx, d->st, "0000:3b:00.0", &d->o, addr, vm, &w), 0);
	assert_int_equal(gp_state_vm_get(d->st, "t1", &c), 0);
	assert_int_equal(c.passthrough, GP_PT_NONE);
	assert_int_equal(c.gpu_count, 0);
	assert_int_equal(c.hand_gpus, 0);
	assert_int_equal(gp_deploy_check_config(&c, &w), 0);
	assert_int_equal(gp_bind_mount(d->ctx, d->st, "0000:3b:00.0", NULL, NULL, NULL, &w), 0);
	dfx_free(d);
}

/* The full chain on the workstation: create with dda (--force for the boot
 * VGA) takes both functions; the command line keeps them in one slot; the
 * GPUs can change only by set; delete gives them back. */
static void test_deploy_chain(void **state)
{
	struct dfx *d = dfx_new("workstation", true);
	struct gp_vm_config c;
	struct gp_strv taken = { 0 }, argv = { 0 };
	struct gp_why w = { "" };
	char vm[GP_NAME_LEN], addr[GP_ADDR_LEN];

	(void)state;
	vm_cfg(d, &c, "ws", GP_PT_DDA, "GeForce", 1);
	/* Without --force: the boot-vga warning stops it, nothing changed. */
	dfx_snapshot(d);
	assert_int_equal(gp_deploy_vm_create(d->ctx, d->st, &c, &d->o, &taken, &w), -ENOSPC);
	assert_why(&w, "boot-vga", "--force");
	dfx_unchanged(d);
	d->o.force = true;
	assert_int_equal(gp_deploy_vm_create(d->ctx, d->st, &c, &d->o, &taken, &w), 0);
	assert_int_equal(taken.n, 1);
	drv(d, "0000:01:00.0", "vfio-pci");
	drv(d, "0000:01:00.1", "vfio-pci");
	assert_int_equal(gp_state_gpu_owner(d->st, "0000:01:00.1", vm, sizeof(vm)), 0);
	assert_string_equal(vm, "ws");

	assert_int_equal(gp_deploy_vm_argv(d->ctx, d->st, "ws", &d->o, &argv, &w), 0);
	{
		/* With the migration switch of the QEMU found, if it has one. */
		char qemu[4096], mig[64], f0[160], f1[160];

		assert_int_equal(gp_vm_find_qemu(NULL, qemu, sizeof(qemu)), 0);
		if (gp_vm_qemu_migration_prop(qemu, mig, sizeof(mig)) < 0)
			mig[0] = '\0';
		else
			assert_true(strcmp(mig, "enable-migration") == 0 ||
				    strcmp(mig, "x-enable-migration") == 0);
		snprintf(f0, sizeof(f0), "vfio-pci,host=0000:01:00.0,id=gpu0f0,bus=gprp0,"
			 "addr=0x0.0,multifunction=on%s%s%s", mig[0] ? "," : "", mig,
			 mig[0] ? "=off" : "");
		snprintf(f1, sizeof(f1), "vfio-pci,host=0000:01:00.1,id=gpu0f1,bus=gprp0,"
			 "addr=0x0.1%s%s%s", mig[0] ? "," : "", mig, mig[0] ? "=off" : "");
		assert_true(gp_strv_contains(&argv, f0));
		assert_true(gp_strv_contains(&argv, f1));
	}
	assert_true(gp_strv_contains(&argv, "q35-pcihost.pci-hole64-size=32G"));
	gp_strv_clear(&argv);

	/* Unassign keeps it dismounted; assign by hand takes it again. */
	assert_int_equal(gp_deploy_unassign(d->ctx, d->st, "0000:01:00.0", &d->o, addr, vm, &w), 0);
	assert_string_equal(vm, "ws");
	drv(d, "0000:01:00.0", "vfio-pci");
	assert_int_equal(gp_deploy_assign(d->ctx, d->st, "GeForce", "ws", &d->o, addr, &w), 0);
	assert_string_equal(addr, "0000:01:00.0");

	/* Mount while the VM is stopped: the GPU goes back, the VM keeps its
	 * claim and will not start until it is dismounted again. */
	{
		bool did = false;

		assert_int_equal(gp_deploy_mount(d->ctx, d->st, "0000:01:00.0", &d->o, addr, vm,
						 &did, &w), 0);
		assert_true(did);
		assert_string_equal(vm, "ws");
		drv(d, "0000:01:00.0", "nouveau");
		drv(d, "0000:01:00.1", "snd_hda_intel");
		assert_int_equal(gp_deploy_vm_argv(d->ctx, d->st, "ws", &d->o, &argv, &w), -EIO);
		assert_why(&w, "0000:01:00.0", "dismount");
		gp_strv_clear(&argv);
		assert_int_equal(gp_bind_dismount(d->ctx, d->st, "0000:01:00.0",
				 &(struct gp_bind_opts){ .force = true, .kops = &d->kops },
				 NULL, &did, &w), 0);
		assert_int_equal(gp_deploy_vm_argv(d->ctx, d->st, "ws", &d->o, &argv, &w), 0);
		gp_strv_clear(&argv);
	}
	/* Dismounted by hand, it stays dismounted when the VM goes... */
	assert_int_equal(gp_deploy_vm_delete(d->ctx, d->st, "ws", &d->o, &w), 0);
	drv(d, "0000:01:00.0", "vfio-pci");
	assert_int_equal(gp_bind_mount(d->ctx, d->st, "0000:01:00.0", NULL, NULL, NULL, &w), 0);
	drv(d, "0000:01:00.0", "nouveau");
	drv(d, "0000:01:00.1", "snd_hda_intel");
	{
		struct gp_state_gpu rec;

		assert_int_equal(gp_state_gpu_get(d->st, "0000:01:00.0", &rec), -ENOENT);
	}
	gp_strv_clear(&taken);
	dfx_free(d);
}

/* A process that looks like the QEMU of the VM at @p (its command line has
 * the VM's QMP chardev argument), but only sleeps: a running VM for the
 * checks, without booting anything. */
static pid_t fake_qemu(const struct gp_vm_paths *p, bool ours)
{
	char arg[GP_VM_PATH_LEN + 64];
	pid_t pid;

	snprintf(arg, sizeof(arg), "socket,id=gpqmp,path=%s,server=on,wait=off",
		 ours ? p->qmp : "/elsewhere/qmp.sock");
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		/* "; :" keeps sh from exec'ing sleep in its place. */
		execl("/bin/sh", "sh", "-c", "sleep 60; :", "sh", arg, (char *)NULL);
		_exit(127);
	}
	/* Until the exec has happened and /proc shows the new command line. */
	for (int i = 0; i < 200; i++) {
		char path[64], buf[4096] = "";
		FILE *f;
		size_t n;

		snprintf(path, sizeof(path), "/proc/%d/cmdline", (int)pid);
		f = fopen(path, "r");
		n = f ? fread(buf, 1, sizeof(buf) - 1, f) : 0;
		if (f)
			fclose(f);
		if (n > 3 && memmem(buf, n, "sleep 60", 8))
			break;
		usleep(10000);
	}
	return pid;
}

static void write_pidfile(const struct gp_vm_paths *p, const char *content, size_t len)
{
	FILE *f = fopen(p->pid, "w");

	assert_non_null(f);
	assert_int_equal(fwrite(content, 1, len, f), len);
	fclose(f);
}

static bool child_alive(pid_t pid)
{
	return waitpid(pid, NULL, WNOHANG) == 0;
}

/* A pidfile is outside data: garbage, a reused pid (ours, a stranger's)
 * is never taken for the VM's QEMU, never signalled, and is cleaned. */
static void test_pidfile_garbage(void **state)
{
	char dir[64] = "/tmp/gp-pidf-XXXXXX", cmd[128], num[32];
	struct gp_ctx *ctx;
	struct gp_vm_paths p;
	struct gp_why why = { "" };
	enum gp_vm_run_state rs;
	pid_t stranger, qemu, got;
	bool died, forced;

	(void)state;
	assert_non_null(mkdtemp(dir));
	assert_int_equal(gp_ctx_new(NULL, dir, &ctx), 0);
	assert_int_equal(gp_vm_paths_get(ctx, "pv1", &p), 0);
	snprintf(cmd, sizeof(cmd), "mkdir -p %s", p.dir);
	assert_int_equal(system(cmd), 0);
	stranger = fake_qemu(&p, false);
	{
		char self[32], other[32];
		const char *cases[] = { "", "abc\n", "-5\n", "0\n", "99999999999\n", "1\n",
					"12 34\n", "\xff\xfe\x01", self, other };

		snprintf(self, sizeof(self), "%d\n", (int)getpid());
		snprintf(other, sizeof(other), "%d\n", (int)stranger);
		for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
			write_pidfile(&p, cases[i], strlen(cases[i]));
			assert_true(gp_vm_pid(&p, &got) < 0);
			assert_int_equal(gp_vm_status(&p, &rs, &got, &died), 0);
			assert_int_equal(rs, GP_VM_STOPPED);
			assert_int_equal(got, 0);
			assert_int_equal(access(p.pid, F_OK), -1); /* cleaned */
			write_pidfile(&p, cases[i], strlen(cases[i]));
			assert_int_equal(gp_vm_stop(ctx, &p, 100, true, &forced, &why), 0);
			assert_false(forced);
			assert_true(child_alive(stranger));
		}
	}
	/* The VM's own QEMU (its QMP argument) is believed, and stopped. */
	qemu = fake_qemu(&p, true);
	snprintf(num, sizeof(num), "%d\n", (int)qemu);
	write_pidfile(&p, num, strlen(num));
	assert_int_equal(gp_vm_pid(&p, &got), 0);
	assert_int_equal(got, qemu);
	assert_int_equal(gp_vm_status(&p, &rs, &got, &died), 0);
	assert_int_equal(rs, GP_VM_STARTING); /* alive, QMP not answering */
	assert_int_equal(gp_vm_stop(ctx, &p, 100, true, &forced, &why), 0);
	assert_true(forced);
	assert_true(kill(qemu, 0) < 0);
	assert_true(child_alive(stranger));
	kill(stranger, SIGKILL);
	waitpid(stranger, NULL, 0);
	gp_ctx_free(ctx);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	assert_int_equal(system(cmd), 0);
}

/* A GPU held by a running VM: mount (by address or by name), unassign,
 * delete and a GPU change are refused, naming GPU and VM; dismount is a
 * no-op; nothing changes. A mount racing a vm start waits for its lock. */
static void test_deploy_running_holder(void **state)
{
	struct dfx *d = dfx_new("server-t4", true);
	struct gp_vm_config c;
	struct gp_vm_paths p;
	struct gp_state_gpu rec;
	struct gp_bind_lock *lock = NULL;
	struct gp_why w = { "" };
	char vm[GP_NAME_LEN], addr[GP_ADDR_LEN], cmd[GP_VM_PATH_LEN + 16];
	char num[32];
	bool did = true;
	pid_t qemu;

	(void)state;
	vm_cfg(d, &c, "run1", GP_PT_DDA, "T4", 1);
	assert_int_equal(gp_deploy_vm_create(d->ctx, d->st, &c, &d->o, NULL, &w), 0);
	drv(d, "0000:3b:00.0", "vfio-pci");
	assert_int_equal(gp_vm_paths_get(d->ctx, "run1", &p), 0);
	snprintf(cmd, sizeof(cmd), "mkdir -p %s", p.dir);
	assert_int_equal(system(cmd), 0);
	qemu = fake_qemu(&p, true);
	snprintf(num, sizeof(num), "%d\n", (int)qemu);
	write_pidfile(&p, num, strlen(num));
	dfx_snapshot(d);
	gp_strv_clear(&d->km.writes);

	assert_int_equal(gp_deploy_mount(d->ctx, d->st, "T4", &d->o, addr, vm, &did, &w), -EBUSY);
	assert_why(&w, "0000:3b:00.0", "run1");
	assert_false(did);
	assert_int_equal(gp_deploy_mount(d->ctx, d->st, "0000:3b:00.0", &d->o, addr, vm, &did,
					 &w), -EBUSY);
	assert_why(&w, "running VM run1", "vm stop run1");
	assert_int_equal(gp_deploy_unassign(d->ctx, d->st, "T4", &d->o, addr, vm, &w), -EBUSY);
	assert_why(&w, "0000:3b:00.0", "run1");
	assert_int_equal(gp_deploy_vm_delete(d->ctx, d->st, "run1", &d->o, &w), -EBUSY);
	assert_why(&w, "run1", "--force");
	c.gpu_count = 1;
	strcpy(c.gpu_name, "Tesla");
	assert_int_equal(gp_deploy_vm_set(d->ctx, d->st, &c, &d->o, &w), -EBUSY);
	assert_why(&w, "run1", "stopped");
	assert_int_equal(gp_bind_dismount(d->ctx, d->st, "T4",
					  &(struct gp_bind_opts){ .kops = &d->kops }, NULL, &did,
					  &w), 0);
	assert_false(did);
	assert_int_equal(d->km.writes.n, 0);
	dfx_unchanged(d);

	/* Stopped, but another gpupass holds the GPU's lock (a vm start in
	 * progress): mount is refused without touching anything. */
	kill(qemu, SIGKILL);
	waitpid(qemu, NULL, 0);
	assert_int_equal(gp_state_gpu_get(d->st, "0000:3b:00.0", &rec), 0);
	assert_int_equal(gp_bind_lock_gpu(d->ctx, &rec, false, &lock), 0);
	assert_int_equal(gp_deploy_mount(d->ctx, d->st, "T4", &d->o, addr, vm, &did, &w), -EBUSY);
	assert_why(&w, "0000:3b:00.0", "another gpupass");
	assert_int_equal(d->km.writes.n, 0);
	gp_bind_lock_release(lock);
	/* Free: mounted, and the stopped VM keeps its claim. */
	assert_int_equal(gp_deploy_mount(d->ctx, d->st, "T4", &d->o, addr, vm, &did, &w), 0);
	assert_true(did);
	assert_string_equal(vm, "run1");
	assert_string_equal(addr, "0000:3b:00.0");
	drv(d, "0000:3b:00.0", "nvidia");
	dfx_free(d);
}

/* vm start takes back a claimed GPU that was mounted to the host (mount,
 * or a reboot), by the dismount rules; a start that fails for any reason
 * leaves the host as it found it. */
static void test_deploy_start_retakes(void **state)
{
	struct dfx *d = dfx_new("workstation", true);
	struct gp_vm_config c;
	struct gp_state_gpu rec;
	struct gp_why w = { "" };
	char vm[GP_NAME_LEN], qemu[4096], wrapper[160], node[256];
	struct passwd *quser;
	struct stat sb;
	bool did, already;
	FILE *f;

	(void)state;
	vm_cfg(d, &c, "ws", GP_PT_DDA, "GeForce", 1);
	d->o.force = true;
	assert_int_equal(gp_deploy_vm_create(d->ctx, d->st, &c, &d->o, NULL, &w), 0);
	assert_int_equal(gp_deploy_mount(d->ctx, d->st, "0000:01:00.0", &d->o, NULL, vm, &did,
					 &w), 0);
	assert_string_equal(vm, "ws");
	drv(d, "0000:01:00.0", "nouveau");
	d->o.force = false;
	dfx_snapshot(d);

	/* QEMU missing: refused before any GPU is touched. */
	d->o.qemu = "/nonexistent/qemu-system-x86_64";
	assert_int_equal(gp_deploy_vm_start(d->ctx, d->st, "ws", &d->o, &already, &w), -ENOENT);
	assert_why(&w, "ws", "qemu-system-x86");
	dfx_unchanged(d);
	if (gp_vm_find_qemu(NULL, qemu, sizeof(qemu)) < 0) {
		dfx_free(d);
		skip();
	}
	d->o.qemu = qemu;
	/* The boot VGA warning needs --force, as for dismount. */
	assert_int_equal(gp_deploy_vm_start(d->ctx, d->st, "ws", &d->o, &already, &w), -EACCES);
	assert_why(&w, "VM ws", "boot-vga");
	assert_why(&w, "0000:01:00.0", "--force");
	dfx_unchanged(d);

	/* Taken again, but QEMU exits while starting: the GPU goes back,
	 * the VM keeps its claim. */
	d->o.force = true;
	d->o.start_timeout_ms = 30000;
	gp_strv_clear(&d->km.writes);
	assert_int_equal(gp_deploy_vm_start(d->ctx, d->st, "ws", &d->o, &already, &w), -ECHILD);
	/* (It exits on the fake kernel, its own last word in the message.) */
	assert_why(&w, "VM ws", "QEMU exited");
	assert_why(&w, "kernel", NULL);
	assert_true(d->km.vfio_binds > 0);
	drv(d, "0000:01:00.0", "nouveau");
	drv(d, "0000:01:00.1", "snd_hda_intel");
	assert_int_equal(gp_state_gpu_get(d->st, "0000:01:00.0", &rec), -ENOENT);
	assert_int_equal(gp_state_gpu_owner(d->st, "0000:01:00.0", vm, sizeof(vm)), 0);
	assert_string_equal(vm, "ws");

	/* A QEMU that starts (a wrapper keeping only the QMP socket, paused,
	 * no machine): the GPU is taken again for ws and stays taken. */
	snprintf(wrapper, sizeof(wrapper), "%s/qemu-wrap", d->state_dir);
	f = fopen(wrapper, "w");
	assert_non_null(f);
	fprintf(f, "#!/bin/sh\nprev=\nfor a in \"$@\"; do\n"
		   "  case \"$prev\" in -chardev) case \"$a\" in socket,id=gpqmp,*) q=\"$a\";; "
		   "esac;; esac\n  prev=\"$a\"\ndone\n"
		   "exec %s -S -nodefaults -display none -machine none -chardev \"$q\" "
		   "-mon chardev=gpqmp,mode=control\n", qemu);
	fclose(f);
	assert_int_equal(chmod(wrapper, 0755), 0);
	d->o.qemu = wrapper;
	assert_int_equal(gp_deploy_vm_start(d->ctx, d->st, "ws", &d->o, &already, &w), 0);
	assert_false(already);
	drv(d, "0000:01:00.0", "vfio-pci");
	drv(d, "0000:01:00.1", "vfio-pci");
	assert_int_equal(gp_state_gpu_get(d->st, "0000:01:00.0", &rec), 0);
	assert_int_equal(rec.state, GP_GPU_DISMOUNTED);
	assert_string_equal(rec.auto_for_vm, "ws");
	/* Run as root (CI): QEMU's user holds the group's node while the VM
	 * runs, root again once it stops or dies (the next command repairs). */
	snprintf(node, sizeof(node), "%s/dev/vfio/%d", gp_fake_root(d->fake), rec.iommu_group);
	quser = geteuid() == 0 && !getenv("GPUPASS_QEMU_USER") ? getpwnam(GP_QEMU_USER) : NULL;
	if (quser) {
		assert_int_equal(stat(node, &sb), 0);
		assert_int_equal(sb.st_uid, quser->pw_uid);
		assert_int_equal(sb.st_gid, quser->pw_gid);
	}
	assert_int_equal(gp_deploy_vm_stop(d->ctx, d->st, "ws", 0, true, &did, &w), 0);
	assert_int_equal(stat(node, &sb), 0);
	assert_int_equal(sb.st_uid, 0);
	assert_int_equal(sb.st_gid, 0);
	if (quser) {
		struct gp_strv report = { 0 };

		assert_int_equal(chown(node, quser->pw_uid, quser->pw_gid), 0);
		(void)gp_deploy_reconcile(d->ctx, d->st, &d->o, &report);
		assert_int_equal(stat(node, &sb), 0);
		assert_int_equal(sb.st_uid, 0);
		assert_true(report.n >= 1);
		assert_non_null(strstr(report.v[report.n - 1], "given back to root"));
		gp_strv_clear(&report);
	}
	/* Taken for ws: deleting ws gives it back. */
	assert_int_equal(gp_deploy_vm_delete(d->ctx, d->st, "ws", &d->o, &w), 0);
	drv(d, "0000:01:00.0", "nouveau");
	drv(d, "0000:01:00.1", "snd_hda_intel");
	dfx_free(d);
}

/* vm set re-picks GPUs (only while stopped) and gives back what it took. */
static void test_deploy_set(void **state)
{
	struct dfx *d = dfx_new("two-nvidia", true);
	struct gp_vm_config c;
	struct gp_why w = { "" };
	char vm[GP_NAME_LEN];

	(void)state;
	vm_cfg(d, &c, "s1", GP_PT_NONE, NULL, 0);
	assert_int_equal(gp_deploy_vm_create(d->ctx, d->st, &c, &d->o, NULL, &w), 0);
	vm_cfg(d, &c, "s1", GP_PT_DDA, "A100", 1);
	assert_int_equal(gp_deploy_vm_set(d->ctx, d->st, &c, &d->o, &w), 0);
	drv(d, "0000:5e:00.0", "vfio-pci");
	drv(d, "0000:3b:00.0", "nvidia");
	assert_int_equal(gp_state_gpu_owner(d->st, "0000:5e:00.0", vm, sizeof(vm)), 0);
	assert_string_equal(vm, "s1");
	/* Asking for more than there is: refused, the old GPU kept. */
	dfx_snapshot(d);
	vm_cfg(d, &c, "s1", GP_PT_DDA, "A100", 2);
	assert_int_equal(gp_deploy_vm_set(d->ctx, d->st, &c, &d->o, &w), -ENOSPC);
	assert_why(&w, "s1", "1 is ready");
	dfx_unchanged(d);
	/* Another GPU instead: the A100 goes back to the host. */
	vm_cfg(d, &c, "s1", GP_PT_DDA, "T4", 1);
	assert_int_equal(gp_deploy_vm_set(d->ctx, d->st, &c, &d->o, &w), 0);
	drv(d, "0000:3b:00.0", "vfio-pci");
	drv(d, "0000:5e:00.0", "nvidia");
	/* No GPU any more. */
	vm_cfg(d, &c, "s1", GP_PT_NONE, NULL, 0);
	assert_int_equal(gp_deploy_vm_set(d->ctx, d->st, &c, &d->o, &w), 0);
	drv(d, "0000:3b:00.0", "nvidia");
	assert_int_equal(gp_state_gpu_owner(d->st, "0000:3b:00.0", vm, sizeof(vm)), -ENOENT);
	/* A VM that does not exist. */
	vm_cfg(d, &c, "ghost", GP_PT_NONE, NULL, 0);
	assert_int_equal(gp_deploy_vm_set(d->ctx, d->st, &c, &d->o, &w), -ENOENT);
	assert_why(&w, "ghost", NULL);
	dfx_free(d);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_hole64),
		cmocka_unit_test(test_argv),
		cmocka_unit_test(test_disk_format_fixed),
		cmocka_unit_test(test_disk_inspect),
		cmocka_unit_test(test_by_hand_path),
		cmocka_unit_test(test_qmp_parse),
		cmocka_unit_test(test_qmp_parse_pci),
		cmocka_unit_test(test_base64),
		cmocka_unit_test(test_guest_agent),
		cmocka_unit_test(test_real_qemu),
		cmocka_unit_test(test_deploy_bad_input),
		cmocka_unit_test(test_deploy_vfio_missing),
		cmocka_unit_test(test_deploy_chain),
		cmocka_unit_test(test_deploy_set),
		cmocka_unit_test(test_pidfile_garbage),
		cmocka_unit_test(test_deploy_running_holder),
		cmocka_unit_test(test_deploy_start_retakes),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
