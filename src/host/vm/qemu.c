/* SPDX-License-Identifier: Apache-2.0 */
#include "qemu.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/kvm.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "qmp.h"

/* --- paths --- */

int gp_vm_paths_get(struct gp_ctx *ctx, const char *name, struct gp_vm_paths *p)
{
	int n;

	if (!gp_vm_name_valid(name))
		return -EINVAL;
	memset(p, 0, sizeof(*p));
	n = snprintf(p->dir, sizeof(p->dir), "%s/vms/%s", ctx->state_dir, name);
	if (n < 0 || (size_t)n >= sizeof(p->dir) - 16)
		return -ENAMETOOLONG;
	strcat(strcpy(p->qmp, p->dir), "/qmp.sock");
	strcat(strcpy(p->qga, p->dir), "/qga.sock");
	strcat(strcpy(p->pid, p->dir), "/qemu.pid");
	strcat(strcpy(p->log, p->dir), "/console.log");
	/* sockaddr_un.sun_path is 108 bytes including the NUL. */
	if (strlen(p->qmp) > 107 || strlen(p->qga) > 107)
		return -ENAMETOOLONG;
	return 0;
}

/* --- MMIO sizing --- */

/* BAR sizes are powers of two; a garbled one is rounded up. */
static uint64_t pow2_up(uint64_t v)
{
	uint64_t a = 1;

	while (a < v && a < (1ull << 62))
		a <<= 1;
	return a;
}

/* One item to place in the window: its size and its alignment. */
struct span {
	uint64_t size, align;
};

static int cmp_align_desc(const void *a, const void *b)
{
	const struct span *x = a, *y = b;

	return x->align < y->align ? 1 : x->align > y->align ? -1 : 0;
}

/* Packs items, largest alignment first, each at its alignment; saturates
 * far beyond any real machine. */
static uint64_t pack(struct span *v, size_t n)
{
	uint64_t end = 0;

	qsort(v, n, sizeof(v[0]), cmp_align_desc);
	for (size_t i = 0; i < n; i++) {
		end = (end + v[i].align - 1) & ~(v[i].align - 1);
		if (end > UINT64_MAX / 4 || v[i].size > UINT64_MAX / 4)
			return UINT64_MAX / 4;
		end += v[i].size;
	}
	return end;
}

uint64_t gp_vm_hole64_size(const struct gp_vm_card *cards, size_t ncards)
{
	const uint64_t gib = 1ull << 30;
	struct span windows[32];
	uint64_t size, largest = 0;
	size_t nw = 0;

	for (size_t c = 0; c < ncards && nw < GP_ARRAY_SIZE(windows); c++) {
		struct span bars[GP_STATE_MAX_FN * 6];
		uint64_t w, a;
		size_t ns = 0;

		for (size_t i = 0; i < cards[c].nfn && i < GP_STATE_MAX_FN; i++) {
			const struct gp_vm_hostdev *d = &cards[c].fn[i];

			for (int b = 0; b < 6; b++) {
				if (d->bar_mem[b] && d->bar_64[b] && d->bar_size[b]) {
					bars[ns].size = bars[ns].align = pow2_up(d->bar_size[b]);
					ns++;
				}
			}
		}
		if (ns == 0)
			continue;
		w = pack(bars, ns);
		a = bars[0].align; /* the largest, after pack() sorted them */
		if (w > UINT64_MAX / 8)
			return UINT64_MAX / 4 & ~(gib - 1);
		windows[nw].size = (w + a - 1) / a * a;
		windows[nw].align = a;
		nw++;
		if (a > largest)
			largest = a;
	}
	if (nw == 0)
		return GP_VM_HOLE64_DEFAULT;
	size = pack(windows, nw);
	if (size > UINT64_MAX / 8)
		return UINT64_MAX / 4 & ~(gib - 1);
	size += largest; /* margin: an unaligned hole start */
	size = (size + gib - 1) & ~(gib - 1);
	return size < GP_VM_HOLE64_DEFAULT ? GP_VM_HOLE64_DEFAULT : size;
}

/* --- argv --- */

void gp_vm_dev_id(size_t card, size_t fn, char *buf, size_t len)
{
	snprintf(buf, len, "gpu%zuf%zu", card, fn);
}

/* QEMU option values separate properties with ','; a literal comma is
 * written twice (docs/system/invocation: "To specify a comma, use ,,"). */
static char *qemu_escape(const char *s)
{
	size_t n = strlen(s), extra = 0;
	char *out, *o;

	for (size_t i = 0; i < n; i++)
		extra += s[i] == ',';
	out = malloc(n + extra + 1);
	if (!out)
		return NULL;
	o = out;
	for (size_t i = 0; i < n; i++) {
		*o++ = s[i];
		if (s[i] == ',')
			*o++ = ',';
	}
	*o = '\0';
	return out;
}

/* The QMP chardev argument gp_vm_build_argv() gives this VM's QEMU. */
static char *qmp_chardev_arg(const struct gp_vm_paths *p)
{
	char *e = qemu_escape(p->qmp), *arg;

	if (!e)
		return NULL;
	arg = gp_strdup_printf("socket,id=gpqmp,path=%s,server=on,wait=off", e);
	free(e);
	return arg;
}

static int push_kv(struct gp_strv *a, const char *opt, const char *pre, const char *path,
		   const char *post)
{
	char *e = qemu_escape(path);
	int r;

	if (!e)
		return -ENOMEM;
	r = gp_strv_push(a, opt);
	if (r == 0)
		r = gp_strv_push_printf(a, "%s%s%s", pre, e, post);
	free(e);
	return r;
}

static int host_func(const char *addr)
{
	const char *dot = strrchr(addr, '.');

	return dot && dot[1] >= '0' && dot[1] <= '7' && !dot[2] ? dot[1] - '0' : -1;
}


int gp_vm_build_argv(const struct gp_vm_launch *l, struct gp_strv *a)
{
	const struct gp_vm_config *c = l->cfg;
	const struct gp_vm_paths *p = l->paths;
	bool kvm = strcmp(l->accel, "kvm") == 0;
	size_t ndevs = 0;
	int r = 0;

	if (!c || !p || !l->qemu || (!kvm && strcmp(l->accel, "tcg") != 0) ||
	    c->memory < (1ull << 20) || c->cpus <= 0 || l->ncards > 32)
		return -EINVAL;
	r |= gp_strv_push(a, l->qemu);
	r |= gp_strv_push(a, "-name");
	r |= gp_strv_push_printf(a, "%s,debug-threads=on", c->name);
	r |= gp_strv_push(a, "-machine");
	r |= gp_strv_push_printf(a, "q35,accel=%s", l->accel);
	r |= gp_strv_push(a, "-cpu");
	r |= gp_strv_push(a, kvm ? "host" : "max");
	r |= gp_strv_push(a, "-m");
	r |= gp_strv_push_printf(a, "%llum", (unsigned long long)(c->memory >> 20));
	r |= gp_strv_push(a, "-smp");
	r |= gp_strv_push_printf(a, "%d", c->cpus);
	/* Nothing the user did not ask for: no default VGA (it would be a
	 * second 1234:1111 in the guest), NIC, or monitor on stdio. */
	r |= gp_strv_push(a, "-nodefaults");
	r |= gp_strv_push(a, "-no-user-config");
	/* QEMU's seccomp filter (as libvirt starts it): no obsolete calls,
	 * no fork/exec, no changes of scheduling or resources. With -runas,
	 * QEMU installs the filter before it changes its uid, so the set*id
	 * calls stay allowed (QEMU 7.2 kills itself otherwise, measured);
	 * after the change it holds no capability to use them. */
	r |= gp_strv_push(a, "-sandbox");
	r |= gp_strv_push_printf(a, "on,obsolete=deny,elevateprivileges=%s,spawn=deny,"
				 "resourcecontrol=deny", l->run_as ? "allow" : "deny");
	if (l->run_as) {
		r |= gp_strv_push(a, "-runas");
		r |= gp_strv_push(a, l->run_as);
	}
	r |= gp_strv_push(a, "-display");
	r |= gp_strv_push(a, "none");
	r |= gp_strv_push(a, "-msg");
	r |= gp_strv_push(a, "timestamp=on");
	if (r)
		return -ENOMEM;

	/* Assigned cards first, so their slots are taken before anything is
	 * placed automatically. One root port per card, all functions of the
	 * card in its slot 0 with their host function numbers. */
	for (size_t ci = 0; ci < l->ncards; ci++) {
		const struct gp_vm_card *card = &l->cards[ci];
		bool has_f0 = false;

		if (card->nfn == 0 || card->nfn > 8)
			return -EINVAL;
		for (size_t f = 0; f < card->nfn; f++)
			has_f0 |= host_func(card->fn[f].address) == 0;
		r = gp_strv_push(a, "-device");
		r |= gp_strv_push_printf(a, "pcie-root-port,id=gprp%zu,bus=pcie.0,addr=0x%zx,"
					 "chassis=%zu,slot=%zu", ci, 0x10 + ci, ci + 1, ci + 1);
		if (r)
			return -ENOMEM;
		for (size_t f = 0; f < card->nfn; f++) {
			char id[32];
			int hf = host_func(card->fn[f].address);
			/* Keep the host's function numbers (drivers expect the
			 * HDMI audio at .1); renumber only without a function 0,
			 * which the guest needs to see the slot at all. */
			int gf = has_f0 && hf >= 0 ? hf : (int)f;

			gp_vm_dev_id(ci, f, id, sizeof(id));
			r = gp_strv_push(a, "-device");
			r |= gp_strv_push_printf(a, "vfio-pci,host=%s,id=%s,bus=gprp%zu,addr=0x0.%d%s%s%s",
						 card->fn[f].address, id, ci, gf,
						 gf == 0 && card->nfn > 1 ? ",multifunction=on" : "",
						 l->vfio_migration_prop ? "," : "",
						 l->vfio_migration_prop ? l->vfio_migration_prop : "");
			if (r)
				return -ENOMEM;
			ndevs++;
		}
	}
	if (ndevs) {
		r = gp_strv_push(a, "-global");
		r |= gp_strv_push_printf(a, "q35-pcihost.pci-hole64-size=%lluG",
					 (unsigned long long)(gp_vm_hole64_size(l->cards,
										l->ncards) >> 30));
		if (r)
			return -ENOMEM;
	}

	/* QMP, the guest agent channel, the serial console into the log. */
	{
		/* The same string pid_is_vm_qemu() looks for. */
		char *qarg = qmp_chardev_arg(p);

		if (!qarg)
			return -ENOMEM;
		r = gp_strv_push(a, "-chardev");
		r |= gp_strv_push(a, qarg);
		free(qarg);
	}
	r |= gp_strv_push(a, "-mon");
	r |= gp_strv_push(a, "chardev=gpqmp,mode=control");
	r |= push_kv(a, "-chardev", "socket,id=gpqga,path=", p->qga, ",server=on,wait=off");
	r |= gp_strv_push(a, "-device");
	r |= gp_strv_push(a, "virtio-serial-pci,id=gpvser");
	r |= gp_strv_push(a, "-device");
	r |= gp_strv_push(a, "virtserialport,bus=gpvser.0,chardev=gpqga,name=org.qemu.guest_agent.0");
	if (l->pv_socket) {
		r |= push_kv(a, "-chardev", "socket,id=gppv,path=", l->pv_socket, ",reconnect=1");
		r |= gp_strv_push(a, "-device");
		r |= gp_strv_push(a, "virtserialport,bus=gpvser.0,chardev=gppv,name=" GP_PV_PORT_NAME);
	}
	if (l->pv_shm_path) {
		char post[64];

		if (l->pv_shm_size == 0 || (l->pv_shm_size & (l->pv_shm_size - 1)))
			return -EINVAL;
		snprintf(post, sizeof(post), ",size=%llu", (unsigned long long)l->pv_shm_size);
		r |= push_kv(a, "-object", "memory-backend-file,id=" GP_PV_SHM_ID ",share=on,mem-path=",
			     l->pv_shm_path, post);
		r |= gp_strv_push(a, "-device");
		r |= gp_strv_push(a, "ivshmem-plain,memdev=" GP_PV_SHM_ID);
	}
	if (c->nshares > GP_VM_MAX_SHARES)
		return -EINVAL;
	for (size_t i = 0; i < c->nshares; i++) {
		const struct gp_vm_share *sh = &c->shares[i];
		char pre[64], post[64];

		/* Checked before (gp_deploy_check_share); again here, as a comma
		 * in the path would start another QEMU property. */
		if (!gp_vm_share_tag_valid(sh->tag) || sh->dir[0] != '/' || strchr(sh->dir, ','))
			return -EINVAL;
		snprintf(pre, sizeof(pre), "local,id=gpshare%zu,path=", i);
		/* multidevs=remap: a folder spanning file systems (/) keeps
		 * inode numbers unique in the guest. */
		snprintf(post, sizeof(post), ",security_model=none,readonly=%s,multidevs=remap",
			 sh->readonly ? "on" : "off");
		r |= push_kv(a, "-fsdev", pre, sh->dir, post);
		r |= gp_strv_push(a, "-device");
		r |= gp_strv_push_printf(a, "virtio-9p-pci,fsdev=gpshare%zu,mount_tag=%s", i, sh->tag);
	}
	r |= push_kv(a, "-chardev", "file,id=gpcon,path=", p->log, ",append=on");
	r |= gp_strv_push(a, "-serial");
	r |= gp_strv_push(a, "chardev:gpcon");
	if (r)
		return -ENOMEM;

	if (c->kernel[0]) {
		r = gp_strv_push(a, "-kernel");
		r |= gp_strv_push(a, c->kernel);
		if (c->initrd[0]) {
			r |= gp_strv_push(a, "-initrd");
			r |= gp_strv_push(a, c->initrd);
		}
		if (c->append[0]) {
			r |= gp_strv_push(a, "-append");
			r |= gp_strv_push(a, c->append);
		}
	}
	if (c->disk[0]) {
		char opts[GP_VM_PATH_LEN + 96];

		/* The format recorded at create, never guessed from the
		 * contents (the guest's); a qcow2's backing file and its format
		 * as recorded then, not as its header may say later. */
		if (strcmp(c->disk_format, "raw") != 0 && strcmp(c->disk_format, "qcow2") != 0)
			return -EINVAL;
		if (c->disk_backing[0] && strcmp(c->disk_format, "qcow2") == 0)
			snprintf(opts, sizeof(opts), ",if=virtio,format=qcow2,backing.driver=%s,"
				 "backing.file.filename=%s", c->disk_backing_format, c->disk_backing);
		else
			snprintf(opts, sizeof(opts), ",if=virtio,format=%s", c->disk_format);
		r |= push_kv(a, "-drive", "file=", c->disk, opts);
	}
	if (r)
		return -ENOMEM;
	if (c->extra[0]) {
		char *copy = strdup(c->extra), *save = NULL;

		if (!copy)
			return -ENOMEM;
		for (char *t = strtok_r(copy, " \t", &save); t; t = strtok_r(NULL, " \t", &save))
			r |= gp_strv_push(a, t);
		free(copy);
	}
	return r ? -ENOMEM : 0;
}

/* --- accelerator --- */

/* MSR_IA32_ARCH_CAPABILITIES (Intel SDM vol. 4, table 2-2). */
#define MSR_ARCH_CAPABILITIES 0x10a

bool gp_vm_kvm_usable(struct gp_ctx *ctx)
{
	/* struct kvm_msrs ends in a flexible array: room for one entry. */
	union {
		struct kvm_msrs hdr;
		char space[sizeof(struct kvm_msrs) + sizeof(struct kvm_msr_entry)];
	} msrs;
	struct kvm_msr_entry *e = msrs.hdr.entries;
	int kvm, vm = -1, vcpu = -1;
	bool ok = false;

	kvm = gp_sysfs_open_fd(ctx->sys, "/dev/kvm", O_RDWR);
	if (kvm < 0)
		return false;
	if (ioctl(kvm, KVM_GET_API_VERSION, 0) != KVM_API_VERSION)
		goto out;
	vm = ioctl(kvm, KVM_CREATE_VM, 0);
	if (vm < 0)
		goto out;
	vcpu = ioctl(vm, KVM_CREATE_VCPU, 0);
	if (vcpu < 0)
		goto out;
	ok = true;
	/* Feature MSRs are read from /dev/kvm itself (KVM_CAP_GET_MSR_FEATURES). */
	memset(&msrs, 0, sizeof(msrs));
	msrs.hdr.nmsrs = 1;
	e->index = MSR_ARCH_CAPABILITIES;
	if (ioctl(kvm, KVM_CHECK_EXTENSION, KVM_CAP_GET_MSR_FEATURES) > 0 &&
	    ioctl(kvm, KVM_GET_MSRS, &msrs) == 1) {
		/* QEMU -cpu host writes this value; it must be accepted. */
		ok = ioctl(vcpu, KVM_SET_MSRS, &msrs) == 1;
		gp_dbg(&ctx->log, "kvm: MSR 0x%x = 0x%llx %s", MSR_ARCH_CAPABILITIES,
		       (unsigned long long)e->data, ok ? "accepted" : "refused");
	}
out:
	if (vcpu >= 0)
		close(vcpu);
	if (vm >= 0)
		close(vm);
	close(kvm);
	return ok;
}

const char *gp_vm_accel_resolve(struct gp_ctx *ctx, const char *want)
{
	if (want && strcmp(want, "kvm") == 0)
		return "kvm";
	if (want && strcmp(want, "tcg") == 0)
		return "tcg";
	return gp_vm_kvm_usable(ctx) ? "kvm" : "tcg";
}

int gp_vm_qemu_migration_prop(const char *qemu, char *buf, size_t len)
{
	static const char *const props[] = { "enable-migration", "x-enable-migration" };
	char out[16384];
	size_t n = 0;
	int pipefd[2], status, r = -ENOENT;
	pid_t pid;

	if (pipe2(pipefd, O_CLOEXEC) < 0)
		return -errno;
	pid = fork();
	if (pid < 0) {
		r = -errno;
		close(pipefd[0]);
		close(pipefd[1]);
		return r;
	}
	if (pid == 0) {
		int null = open("/dev/null", O_RDWR | O_CLOEXEC);

		dup2(pipefd[1], STDOUT_FILENO);
		if (null >= 0) {
			dup2(null, STDIN_FILENO);
			dup2(null, STDERR_FILENO);
		}
		execl(qemu, qemu, "-nodefaults", "-machine", "none", "-device", "vfio-pci,help",
		      (char *)NULL);
		_exit(127);
	}
	close(pipefd[1]);
	for (;;) {
		ssize_t got = read(pipefd[0], out + n, sizeof(out) - 1 - n);

		if (got < 0 && errno == EINTR)
			continue;
		if (got <= 0)
			break;
		n += (size_t)got;
		if (n == sizeof(out) - 1)
			break;
	}
	out[n] = '\0';
	close(pipefd[0]);
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	/* Lines read "  name=<type> ...": match the name at a line start. */
	for (size_t i = 0; i < GP_ARRAY_SIZE(props) && r == -ENOENT; i++) {
		for (const char *l = out; l && *l; l = strchr(l, '\n') ? strchr(l, '\n') + 1 : NULL) {
			while (*l == ' ')
				l++;
			if (strncmp(l, props[i], strlen(props[i])) == 0 &&
			    l[strlen(props[i])] == '=') {
				snprintf(buf, len, "%s", props[i]);
				r = 0;
				break;
			}
		}
	}
	return r;
}

int gp_vm_find_qemu(const char *qemu, char *buf, size_t len)
{
	const char *path;
	char *copy, *save = NULL;
	int r = -ENOENT;

	if (!qemu || !*qemu)
		qemu = GP_QEMU_DEFAULT;
	if (strchr(qemu, '/')) {
		if (access(qemu, X_OK) < 0)
			return -ENOENT;
		snprintf(buf, len, "%s", qemu);
		return 0;
	}
	path = getenv("PATH");
	copy = strdup(path && *path ? path : "/usr/local/bin:/usr/bin:/bin");
	if (!copy)
		return -ENOMEM;
	for (char *d = strtok_r(copy, ":", &save); d; d = strtok_r(NULL, ":", &save)) {
		char full[PATH_MAX];

		snprintf(full, sizeof(full), "%s/%s", d, qemu);
		if (access(full, X_OK) == 0) {
			snprintf(buf, len, "%s", full);
			r = 0;
			break;
		}
	}
	free(copy);
	return r;
}

/* --- process --- */

const char *gp_vm_run_state_name(enum gp_vm_run_state s)
{
	switch (s) {
	case GP_VM_RUNNING:
		return "running";
	case GP_VM_PAUSED:
		return "paused";
	case GP_VM_STARTING:
		return "starting";
	case GP_VM_STOPPED:
	default:
		return "stopped";
	}
}

/* The QEMU process is a real process of this host even when --root points
 * sysfs at a fake tree, so its /proc entry is read directly. */
static bool pid_alive(pid_t pid)
{
	char path[64], buf[512];
	ssize_t n;
	int fd;
	char *rp;

	if (pid <= 0)
		return false;
	/* Reap it if it is our own child (vm start then stop in one process). */
	(void)waitpid(pid, NULL, WNOHANG);
	if (kill(pid, 0) < 0 && errno == ESRCH)
		return false;
	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return errno != ENOENT;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return false;
	buf[n] = '\0';
	/* "pid (comm) S ...": the state follows the last ')'. */
	rp = strrchr(buf, ')');
	return !(rp && rp[1] == ' ' && (rp[2] == 'Z' || rp[2] == 'X'));
}

/* Is @pid the QEMU of this VM? A pidfile is outside data: after a reboot
 * or a crash its number may belong to any process (pid 1, a shell), and
 * vm stop must never signal that. Only a process whose command line has
 * this VM's own QMP socket argument is taken for its QEMU. */
static bool pid_is_vm_qemu(pid_t pid, const struct gp_vm_paths *p)
{
	char path[64], *want = qmp_chardev_arg(p), *buf = NULL;
	size_t cap = 0, n = 0;
	bool ours = false;
	FILE *f;

	if (!want)
		return false;
	snprintf(path, sizeof(path), "/proc/%d/cmdline", (int)pid);
	f = fopen(path, "re");
	if (f) {
		/* Read it all (QEMU command lines run to a few KiB; 1 MiB
		 * bounds a garbled one). */
		for (;;) {
			size_t got;

			if (n + 4096 > cap) {
				char *nb = cap < (1u << 20) ? realloc(buf, cap + 8192) : NULL;

				if (!nb)
					break;
				buf = nb;
				cap += 8192;
			}
			got = fread(buf + n, 1, 4096, f);
			n += got;
			if (got == 0)
				break;
		}
		fclose(f);
	}
	for (size_t i = 0; buf && i < n; i += strnlen(buf + i, n - i) + 1) {
		if (strnlen(buf + i, n - i) == strlen(want) && memcmp(buf + i, want, strlen(want)) == 0) {
			ours = true;
			break;
		}
	}
	free(buf);
	free(want);
	return ours;
}

int gp_vm_pid(const struct gp_vm_paths *p, pid_t *out)
{
	char buf[32] = "";
	FILE *f = fopen(p->pid, "re");
	int pid;

	if (!f)
		return -errno;
	if (!fgets(buf, sizeof(buf), f)) {
		fclose(f);
		return -EINVAL;
	}
	fclose(f);
	if (gp_parse_int(buf, &pid) < 0 || pid <= 0)
		return -EINVAL;
	if (!pid_alive(pid) || !pid_is_vm_qemu(pid, p))
		return -ESRCH;
	*out = pid;
	return 0;
}

int gp_vm_status(const struct gp_vm_paths *p, enum gp_vm_run_state *st, pid_t *pid,
		 bool *died)
{
	struct json_object *ret = NULL, *running;
	struct gp_qmp *q;
	pid_t pp = 0;
	int r;

	if (died)
		*died = false;
	r = gp_vm_pid(p, &pp);
	if (r == -ENOENT) {
		*st = GP_VM_STOPPED;
		*pid = 0;
		return 0;
	}
	if (r < 0) {
		/* QEMU is gone but its runtime files are not: it died (or the
		 * host crashed) without gpupass stopping it. */
		unlink(p->pid);
		unlink(p->qmp);
		unlink(p->qga);
		if (died)
			*died = true;
		*st = GP_VM_STOPPED;
		*pid = 0;
		return 0;
	}
	*pid = pp;
	*st = GP_VM_STARTING;
	if (gp_qmp_connect(p->qmp, 2000, &q) < 0)
		return 0;
	if (gp_qmp_execute(q, "query-status", NULL, 2000, &ret, NULL, 0) == 0 &&
	    json_object_object_get_ex(ret, "running", &running))
		*st = json_object_get_boolean(running) ? GP_VM_RUNNING : GP_VM_PAUSED;
	json_object_put(ret);
	gp_qmp_close(q);
	return 0;
}

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void sleep_ms(int ms)
{
	struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000L };

	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

int gp_vm_log_tail(const struct gp_vm_paths *p, size_t max, char **out)
{
	FILE *f = fopen(p->log, "re");
	long size;
	size_t n;
	char *buf;

	if (!f)
		return -errno;
	fseek(f, 0, SEEK_END);
	size = ftell(f);
	if (size < 0)
		size = 0;
	if ((size_t)size > max)
		fseek(f, size - (long)max, SEEK_SET);
	else
		fseek(f, 0, SEEK_SET);
	buf = malloc(max + 1);
	if (!buf) {
		fclose(f);
		return -ENOMEM;
	}
	n = fread(buf, 1, max, f);
	buf[n] = '\0';
	fclose(f);
	*out = buf;
	return 0;
}

/* The last non-empty line of the log, for an error message. */
static void last_line(const struct gp_vm_paths *p, char *buf, size_t len)
{
	char *tail = NULL, *end, *start;

	buf[0] = '\0';
	if (gp_vm_log_tail(p, 4096, &tail) < 0)
		return;
	end = tail + strlen(tail);
	while (end > tail && (end[-1] == '\n' || end[-1] == '\r' || end[-1] == ' '))
		*--end = '\0';
	start = strrchr(tail, '\n');
	snprintf(buf, len, "%s", start ? start + 1 : tail);
	free(tail);
}

int gp_vm_spawn(struct gp_ctx *ctx, const struct gp_vm_paths *p, const struct gp_strv *argv,
		uint64_t memlock, int timeout_ms, pid_t *pid_out, struct gp_why *why)
{
	int64_t deadline = now_ms() + timeout_ms;
	char vmdir[GP_VM_PATH_LEN + 8];
	FILE *pf;
	pid_t pid;
	int logfd, r;

	snprintf(vmdir, sizeof(vmdir), "%s/vms", ctx->state_dir);
	if ((mkdir(ctx->state_dir, 0700) < 0 && errno != EEXIST) ||
	    (mkdir(vmdir, 0700) < 0 && errno != EEXIST) ||
	    (mkdir(p->dir, 0700) < 0 && errno != EEXIST)) {
		r = -errno;
		gp_why_set(why, "cannot create %s: %s", p->dir, strerror(-r));
		return r;
	}
	unlink(p->qmp);
	unlink(p->qga);
	logfd = open(p->log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
	if (logfd < 0) {
		r = -errno;
		gp_why_set(why, "cannot open the VM log %s: %s", p->log, strerror(-r));
		return r;
	}
	{
		int child = 0;

		r = gp_spawn_detached_confined(argv->v, logfd, memlock, &child);
		pid = child;
	}
	if (r < 0) {
		close(logfd);
		return r;
	}
	close(logfd);
	/* Without its pidfile the VM would be invisible to every later
	 * gpupass (status, stop, mount checks): no pidfile, no VM. */
	pf = fopen(p->pid, "we");
	if (!pf || fprintf(pf, "%d\n", (int)pid) < 0 || fclose(pf) != 0) {
		r = -errno;
		if (r == 0)
			r = -EIO;
		kill(pid, SIGKILL);
		waitpid(pid, NULL, 0);
		unlink(p->pid);
		gp_why_set(why, "cannot write the pidfile %s: %s; QEMU was stopped", p->pid,
			   strerror(-r));
		return r;
	}
	for (;;) {
		struct gp_qmp *q;
		int status;

		if (waitpid(pid, &status, WNOHANG) == pid) {
			char line[512];

			last_line(p, line, sizeof(line));
			unlink(p->pid);
			gp_why_set(why, "QEMU exited while starting (%s %d): %s", WIFEXITED(status) ?
				   "status" : "signal", WIFEXITED(status) ? WEXITSTATUS(status) :
				   WTERMSIG(status), line[0] ? line : "see the VM log");
			return -ECHILD;
		}
		if (gp_qmp_connect(p->qmp, 2000, &q) == 0) {
			gp_qmp_close(q);
			break;
		}
		if (now_ms() > deadline) {
			kill(pid, SIGKILL);
			waitpid(pid, NULL, 0);
			unlink(p->pid);
			gp_why_set(why, "QEMU did not answer on %s within %d s; it was stopped; "
				   "see gpupass vm log", p->qmp, timeout_ms / 1000);
			return -ETIMEDOUT;
		}
		sleep_ms(50);
	}
	*pid_out = pid;
	return 0;
}

static int wait_gone(pid_t pid, int64_t deadline)
{
	while (pid_alive(pid)) {
		if (now_ms() > deadline)
			return -ETIMEDOUT;
		sleep_ms(50);
	}
	return 0;
}

int gp_vm_request_powerdown(const struct gp_vm_paths *p)
{
	struct gp_qmp *q;
	int r = gp_qmp_connect(p->qmp, 3000, &q);

	if (r < 0)
		return r;
	r = gp_qmp_execute(q, "system_powerdown", NULL, 3000, NULL, NULL, 0);
	gp_qmp_close(q);
	return r;
}

int gp_vm_stop(struct gp_ctx *ctx, const struct gp_vm_paths *p, int timeout_ms, bool force,
	       bool *forced, struct gp_why *why)
{
	struct gp_qmp *q = NULL;
	pid_t pid;
	int r;

	if (forced)
		*forced = false;
	r = gp_vm_pid(p, &pid);
	if (r < 0) {
		unlink(p->pid);
		return 0;
	}
	(void)gp_qmp_connect(p->qmp, 3000, &q);
	if (!force && q) {
		/* ACPI power button: the guest shuts down cleanly if it can. */
		r = gp_qmp_execute(q, "system_powerdown", NULL, 3000, NULL, NULL, 0);
		if (r == 0 && wait_gone(pid, now_ms() + timeout_ms) == 0)
			goto done;
		gp_info(&ctx->log, "VM did not power down within %d s; turning it off",
			timeout_ms / 1000);
	}
	if (forced)
		*forced = true;
	if (q) {
		(void)gp_qmp_execute(q, "quit", NULL, 3000, NULL, NULL, 0);
		if (wait_gone(pid, now_ms() + 10000) == 0)
			goto done;
	}
	kill(pid, SIGTERM);
	if (wait_gone(pid, now_ms() + 5000) < 0) {
		kill(pid, SIGKILL);
		if (wait_gone(pid, now_ms() + 5000) < 0) {
			gp_qmp_close(q);
			gp_why_set(why, "QEMU (pid %d) does not exit even after SIGKILL", (int)pid);
			return -ETIMEDOUT;
		}
	}
done:
	gp_qmp_close(q);
	unlink(p->pid);
	unlink(p->qmp);
	unlink(p->qga);
	return 0;
}
