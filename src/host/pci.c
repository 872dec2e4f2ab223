/* SPDX-License-Identifier: Apache-2.0 */
#include "pci.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <pci/pci.h>

#include "common/log.h"

/* ---------- addresses ---------- */

static int hexval(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	c = tolower(c);
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

/* Parses exactly @n hex digits at *p, advancing it. */
static int hexn(const char **p, int n, uint32_t *out)
{
	uint32_t v = 0;

	for (int i = 0; i < n; i++) {
		int h = hexval((unsigned char)(*p)[i]);

		if (h < 0)
			return -EINVAL;
		v = v << 4 | (uint32_t)h;
	}
	*p += n;
	*out = v;
	return 0;
}

int gp_pci_addr_parse(const char *s, struct gp_pci_addr *out)
{
	struct gp_pci_addr a = { 0 };
	uint32_t v;
	const char *p = s;

	if (!s)
		return -EINVAL;
	/* Long form has a domain: 4 to 8 hex digits and a colon first. */
	if (strlen(s) >= 12 && strlen(s) <= 15) {
		if (hexn(&p, (int)strlen(s) - 8, &v) < 0 || *p++ != ':')
			return -EINVAL;
		a.domain = v;
	} else if (strlen(s) != 7) {
		return -EINVAL;
	}
	if (hexn(&p, 2, &v) < 0 || *p++ != ':')
		return -EINVAL;
	a.bus = (uint8_t)v;
	if (hexn(&p, 2, &v) < 0 || v > 31 || *p++ != '.')
		return -EINVAL;
	a.dev = (uint8_t)v;
	if (hexval((unsigned char)*p) < 0 || hexval((unsigned char)*p) > 7 || p[1])
		return -EINVAL;
	a.func = (uint8_t)hexval((unsigned char)*p);
	*out = a;
	return 0;
}

const char *gp_pci_addr_format(const struct gp_pci_addr *a, char *buf, size_t len)
{
	snprintf(buf, len, "%04" PRIx32 ":%02x:%02x.%x", a->domain, a->bus, a->dev, a->func);
	return buf;
}

static bool is_pci_addr(const char *s)
{
	struct gp_pci_addr a;

	return strlen(s) >= 12 && gp_pci_addr_parse(s, &a) == 0;
}

/* ---------- config space ---------- */

/* Offsets in the standard header (PCI Local Bus 3.0 §6.1). */
#define CFG_VENDOR 0x00
#define CFG_DEVICE 0x02
#define CFG_CLASS_PROG 0x09
#define CFG_HEADER_TYPE 0x0e
#define CFG_SUBSYS_VENDOR 0x2c
#define CFG_SUBSYS_ID 0x2e
/* Capability ids (PCI Code and ID Assignment 1.11 §2). */
#define CAP_ID_PM 0x01
#define CAP_ID_MSI 0x05
#define CAP_ID_PCIE 0x10
#define CAP_ID_MSIX 0x11
/* Extended capability ids (same document, §3). */
#define ECAP_ID_ACS 0x000d
#define ECAP_ID_SRIOV 0x0010
/* PCIe capability: DevCap at +4, FLR capable is bit 28 (PCIe 4.0 §7.5.3.3). */
#define PCIE_DEVCAP 4
#define PCIE_DEVCAP_FLR (1u << 28)
/* ACS: Capability at +4, Control at +6 (PCIe 4.0 §7.7.7). */
#define ACS_CAP 4
#define ACS_CTRL 6
/* SR-IOV: TotalVFs at +0x0e (PCIe 4.0 §9.3.3). */
#define SRIOV_TOTAL_VFS 0x0e

static uint16_t le16(const uint8_t *p)
{
	return (uint16_t)(p[0] | p[1] << 8);
}

static uint32_t le32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
	       (uint32_t)p[3] << 24;
}

/*
 * libpci reports trouble by calling its `error` hook, which must not return
 * (pciutils' default calls exit()). We jump back out of the libpci call
 * instead. The hook gets no user pointer, so the jump target lives in a
 * thread-local: the only way to reach it, and per thread, so two scans in
 * two threads do not interfere.
 */
static _Thread_local jmp_buf *libpci_jmp;

static void libpci_error(char *msg, ...) __attribute__((noreturn));
static void libpci_error(char *msg, ...)
{
	(void)msg;
	if (libpci_jmp)
		longjmp(*libpci_jmp, 1);
	abort(); /* unreachable: libpci only runs with libpci_jmp set */
}

static void libpci_quiet(char *msg, ...)
{
	(void)msg;
}

/* The fields of the capabilities libpci found, each read only when it lies
 * within the @len bytes really read (beyond them the cache holds 0xff). */
static void caps_from_libpci(const struct pci_dev *d, const uint8_t *cfg, size_t len,
			     struct gp_pci_config_info *ci)
{
	for (const struct pci_cap *c = d->first_cap; c; c = c->next) {
		unsigned a = (unsigned)c->addr;

		if (c->type == PCI_CAP_NORMAL) {
			switch (c->id) {
			case CAP_ID_PM:
				ci->caps |= GP_PCI_CAP_PM;
				break;
			case CAP_ID_MSI:
				ci->caps |= GP_PCI_CAP_MSI;
				break;
			case CAP_ID_MSIX:
				ci->caps |= GP_PCI_CAP_MSIX;
				break;
			case CAP_ID_PCIE:
				ci->caps |= GP_PCI_CAP_PCIE;
				if (a + 4 <= len)
					ci->pcie_type = (uint8_t)((le16(cfg + a + 2) >> 4) & 0xf);
				if (a + PCIE_DEVCAP + 4 <= len &&
				    (le32(cfg + a + PCIE_DEVCAP) & PCIE_DEVCAP_FLR))
					ci->caps |= GP_PCI_CAP_FLR;
				break;
			default:
				break;
			}
		} else if (c->type == PCI_CAP_EXTENDED) {
			if (c->id == ECAP_ID_ACS && a + ACS_CTRL + 2 <= len) {
				ci->caps |= GP_PCI_CAP_ACS;
				ci->acs_cap = le16(cfg + a + ACS_CAP);
				ci->acs_ctrl = le16(cfg + a + ACS_CTRL);
			} else if (c->id == ECAP_ID_SRIOV && a + SRIOV_TOTAL_VFS + 2 <= len) {
				ci->caps |= GP_PCI_CAP_SRIOV;
				ci->sriov_total_vfs = le16(cfg + a + SRIOV_TOTAL_VFS);
			}
		}
	}
}

/*
 * The capability lists are walked by libpci (pciutils), loop guards and all.
 * The bytes we read through the sysfs door are handed to it as the device's
 * config cache (pci_setup_cache) on an access whose only backend is an empty
 * dump, so libpci never opens /sys itself and never reads past the cache.
 * Bytes beyond what was read are 0xff, which ends either list the way an
 * absent device's all-ones answer would.
 */
static struct pci_access *caps_access_new(void)
{
	struct pci_access *pacc = pci_alloc();
	jmp_buf jb;

	if (!pacc)
		return NULL;
	pacc->error = libpci_error;
	pacc->warning = libpci_quiet;
	pacc->debug = libpci_quiet;
	pacc->method = PCI_ACCESS_DUMP;
	libpci_jmp = &jb;
	if (setjmp(jb) != 0) {
		/* pci_init failed half-way: nothing of it is worth keeping. */
		libpci_jmp = NULL;
		return NULL;
	}
	pci_set_param(pacc, "dump.name", "/dev/null");
	pci_init(pacc);
	libpci_jmp = NULL;
	return pacc;
}

static int walk_caps(struct pci_access *pacc, const uint8_t *cfg, size_t len,
		     struct gp_pci_config_info *ci)
{
	/* volatile: both are set after setjmp() and read after a longjmp(). */
	struct pci_dev *volatile d = NULL;
	volatile int r = 0;
	uint8_t *cache;
	jmp_buf jb;
	size_t n = len < GP_PCI_CFG_EXT ? len : GP_PCI_CFG_EXT;

	cache = malloc(GP_PCI_CFG_EXT);
	if (!cache)
		return -ENOMEM;
	memcpy(cache, cfg, n);
	memset(cache + n, 0xff, GP_PCI_CFG_EXT - n);
	libpci_jmp = &jb;
	if (setjmp(jb) != 0) {
		r = -EIO;
		goto out;
	}
	d = pci_get_dev(pacc, 0, 0, 0, 0);
	if (!d) {
		r = -ENOMEM;
		goto out;
	}
	pci_setup_cache(d, cache, GP_PCI_CFG_EXT);
	pci_fill_info(d, PCI_FILL_CAPS | PCI_FILL_EXT_CAPS);
	caps_from_libpci(d, cfg, n, ci);
out:
	libpci_jmp = NULL;
	if (d)
		pci_free_dev(d);
	free(cache);
	return r;
}

/* gp_pci_config_parse() with a libpci access made once per scan. */
static int config_parse(struct pci_access *pacc, const uint8_t *cfg, size_t len,
			struct gp_pci_config_info *out);

int gp_pci_config_parse(const uint8_t *cfg, size_t len, struct gp_pci_config_info *out)
{
	struct pci_access *pacc;
	int r;

	if (!cfg || len < GP_PCI_CFG_MIN)
		return -EINVAL;
	pacc = caps_access_new();
	if (!pacc)
		return -ENOMEM;
	r = config_parse(pacc, cfg, len, out);
	pci_cleanup(pacc);
	return r;
}

static int config_parse(struct pci_access *pacc, const uint8_t *cfg, size_t len,
			struct gp_pci_config_info *out)
{
	struct gp_pci_config_info ci = { .pcie_type = GP_PCIE_NONE };
	int r;

	if (!cfg || len < GP_PCI_CFG_MIN)
		return -EINVAL;
	ci.vendor_id = le16(cfg + CFG_VENDOR);
	if (ci.vendor_id == 0xffff || ci.vendor_id == 0)
		return -EINVAL;
	ci.device_id = le16(cfg + CFG_DEVICE);
	ci.class_code = (uint32_t)cfg[CFG_CLASS_PROG] | (uint32_t)cfg[CFG_CLASS_PROG + 1] << 8 |
			(uint32_t)cfg[CFG_CLASS_PROG + 2] << 16;
	ci.header_type = cfg[CFG_HEADER_TYPE] & 0x7f;
	ci.multifunction = cfg[CFG_HEADER_TYPE] & 0x80;
	if (ci.header_type == 0) {
		ci.subsys_vendor_id = le16(cfg + CFG_SUBSYS_VENDOR);
		ci.subsys_device_id = le16(cfg + CFG_SUBSYS_ID);
	}
	ci.caps_known = len >= GP_PCI_CFG_LEGACY;
	r = walk_caps(pacc, cfg, len, &ci);
	if (r < 0)
		return r;
	ci.ext_caps_known = len >= GP_PCI_CFG_EXT && (ci.caps & GP_PCI_CAP_PCIE);
	*out = ci;
	return 0;
}

/* ---------- resource ---------- */

static int parse_hex_field(const char **p, uint64_t *out)
{
	const char *s = *p;
	uint64_t v = 0;
	int digits = 0;

	while (*s == ' ' || *s == '\t')
		s++;
	if (s[0] != '0' || (s[1] != 'x' && s[1] != 'X'))
		return -EINVAL;
	s += 2;
	for (; hexval((unsigned char)*s) >= 0; s++, digits++) {
		if (digits >= 16)
			return -EINVAL;
		v = v << 4 | (uint64_t)hexval((unsigned char)*s);
	}
	if (!digits)
		return -EINVAL;
	*p = s;
	*out = v;
	return 0;
}

int gp_pci_resource_parse(const char *text, struct gp_pci_bar bars[GP_PCI_NUM_RESOURCES],
			  int *bad_line)
{
	const char *p = text;
	int line = 0, kept = 0;

	if (!text)
		return -EINVAL;
	while (*p) {
		uint64_t start, end, flags;
		const char *s = p;

		line++;
		if (parse_hex_field(&s, &start) < 0 || parse_hex_field(&s, &end) < 0 ||
		    parse_hex_field(&s, &flags) < 0)
			goto bad;
		while (*s == ' ' || *s == '\t' || *s == '\r')
			s++;
		if (*s != '\n' && *s != '\0')
			goto bad;
		if (end < start)
			goto bad;
		if (kept < GP_PCI_NUM_RESOURCES) {
			struct gp_pci_bar *b = &bars[kept];

			memset(b, 0, sizeof(*b));
			b->index = kept;
			b->start = start;
			b->end = end;
			b->flags = flags;
			/* The kernel prints an unused region as all zeros. */
			b->size = (start || end) ? end - start + 1 : 0;
			b->is_io = flags & GP_PCI_RES_IO;
			b->is_mem = flags & GP_PCI_RES_MEM;
			b->is_64bit = flags & GP_PCI_RES_MEM_64;
			b->prefetchable = flags & GP_PCI_RES_PREFETCH;
			kept++;
		}
		p = *s ? s + 1 : s;
	}
	if (line == 0) {
		line = 1;
		goto bad;
	}
	return kept;
bad:
	if (bad_line)
		*bad_line = line;
	return -EINVAL;
}

/* ---------- classes, slots, BAR sums ---------- */

bool gp_pci_class_is_gpu(uint32_t class_code)
{
	uint32_t cls = class_code >> 8;

	return cls == 0x0300 || cls == 0x0302 || cls == 0x0380 || cls == 0x1200;
}

bool gp_pci_dev_is_gpu(const struct gp_pci_dev *dev)
{
	return dev->class_ok && gp_pci_class_is_gpu(dev->class_code);
}

bool gp_pci_same_slot(const struct gp_pci_dev *a, const struct gp_pci_dev *b)
{
	return a->addr.domain == b->addr.domain && a->addr.bus == b->addr.bus &&
	       a->addr.dev == b->addr.dev;
}

void gp_pci_dev_mmio(const struct gp_pci_dev *dev, uint64_t *low, uint64_t *high)
{
	uint64_t lo = 0, hi = 0;

	for (int i = 0; i < dev->nbars && i < GP_PCI_NUM_BARS; i++) {
		const struct gp_pci_bar *b = &dev->bars[i];

		if (!b->is_mem || !b->size)
			continue;
		if (b->is_64bit)
			hi += b->size;
		else
			lo += b->size;
	}
	*low = lo;
	*high = hi;
}

/* ---------- location path ---------- */

int gp_pci_location_from_path(const char *sysfs_path, char **out)
{
	char buf[1024];
	size_t n = 0;
	bool root_seen = false;
	const char *p = sysfs_path;

	if (!sysfs_path)
		return -EINVAL;
	while (*p) {
		const char *slash = strchr(p, '/');
		size_t clen = slash ? (size_t)(slash - p) : strlen(p);
		char comp[64];
		int w = 0;

		if (clen && clen < sizeof(comp)) {
			memcpy(comp, p, clen);
			comp[clen] = '\0';
			if (!root_seen) {
				unsigned dom, bus;
				char tail;

				/* "pci0000:00": the root bus of a host bridge. */
				if (sscanf(comp, "pci%8x:%2x%c", &dom, &bus, &tail) == 2) {
					unsigned uid = dom ? (dom << 8 | bus) : bus;

					w = snprintf(buf, sizeof(buf), "PCIROOT(%X)", uid);
					root_seen = true;
				}
			} else if (is_pci_addr(comp)) {
				struct gp_pci_addr a;

				gp_pci_addr_parse(comp, &a);
				w = snprintf(buf + n, sizeof(buf) - n, "#PCI(%02X%02X)", a.dev, a.func);
			}
			if (w < 0 || (size_t)w >= sizeof(buf) - n)
				return -ENAMETOOLONG;
			n += (size_t)w;
		}
		p += clen;
		if (*p == '/')
			p++;
	}
	if (!root_seen || !strchr(buf, '#'))
		return -EINVAL;
	*out = strdup(buf);
	return *out ? 0 : -ENOMEM;
}

/* ---------- the scan ---------- */

struct group_info {
	int number;
	bool exists;
	struct gp_strv members;
};

struct gp_pci_scan {
	struct gp_pci_dev **devs;
	size_t n, cap;
	struct group_info *groups;
	size_t ngroups, capgroups;
	struct pci_access *caps_pacc; /* libpci, for capability lists; made on first use */
};

/* pci.ids lookups share the libpci hooks of the capability walk. */
struct names {
	struct pci_access *pacc;
	bool failed;
};

static void names_lookup(struct names *nm, struct gp_pci_dev *dev)
{
	char vbuf[256], dbuf[256];
	const char *v = NULL, *d = NULL;
	jmp_buf jb;

	if (nm->failed)
		return;
	if (!nm->pacc) {
		nm->pacc = pci_alloc();
		if (!nm->pacc) {
			nm->failed = true;
			return;
		}
		nm->pacc->error = libpci_error;
		nm->pacc->warning = libpci_quiet;
		nm->pacc->debug = libpci_quiet;
	}
	libpci_jmp = &jb;
	if (setjmp(jb) != 0) {
		libpci_jmp = NULL;
		nm->failed = true;
		return;
	}
	v = pci_lookup_name(nm->pacc, vbuf, sizeof(vbuf),
			    PCI_LOOKUP_VENDOR | PCI_LOOKUP_NO_NUMBERS | PCI_LOOKUP_NO_HWDB,
			    dev->vendor_id);
	d = pci_lookup_name(nm->pacc, dbuf, sizeof(dbuf),
			    PCI_LOOKUP_DEVICE | PCI_LOOKUP_NO_NUMBERS | PCI_LOOKUP_NO_HWDB,
			    dev->vendor_id,
			    dev->device_id);
	libpci_jmp = NULL;
	if (v)
		dev->vendor_name = strdup(v);
	if (d)
		dev->device_name = strdup(d);
}

static void names_free(struct names *nm)
{
	if (nm->pacc)
		pci_cleanup(nm->pacc);
}

static void dev_free(struct gp_pci_dev *dev)
{
	if (!dev)
		return;
	free(dev->sysfs_path);
	free(dev->location_path);
	free(dev->parent);
	free(dev->vendor_name);
	free(dev->device_name);
	free(dev->driver);
	gp_strv_clear(&dev->group_members);
	gp_strv_clear(&dev->reset_methods);
	gp_strv_clear(&dev->drm_nodes);
	for (size_t i = 0; i < dev->n_mdev_types; i++) {
		free(dev->mdev_types[i].id);
		free(dev->mdev_types[i].name);
	}
	free(dev->mdev_types);
	for (size_t i = 0; i < dev->n_errors; i++) {
		free(dev->errors[i].file);
		free(dev->errors[i].what);
	}
	free(dev->errors);
	free(dev);
}

/* Records that @file (relative to the device directory, or absolute when it
 * starts with "/") could not be used. Out of memory here only loses the
 * record; the scan goes on. */
static void dev_error(struct gp_pci_dev *dev, const char *file, int err,
		      const char *fmt, ...) __attribute__((format(printf, 4, 5)));
static void dev_error(struct gp_pci_dev *dev, const char *file, int err,
		      const char *fmt, ...)
{
	struct gp_pci_error *e;
	va_list ap;
	char *what = NULL;

	e = realloc(dev->errors, (dev->n_errors + 1) * sizeof(*e));
	if (!e)
		return;
	dev->errors = e;
	e = &dev->errors[dev->n_errors];
	va_start(ap, fmt);
	if (vasprintf(&what, fmt, ap) < 0)
		what = NULL;
	va_end(ap);
	e->file = file[0] == '/' ? strdup(file) :
		  gp_strdup_printf("/sys/bus/pci/devices/%s/%s", dev->address, file);
	e->what = what;
	e->err = err;
	if (!e->file || !e->what) {
		free(e->file);
		free(e->what);
		return;
	}
	dev->n_errors++;
}

static const char *err_text(int err)
{
	return err == -ENOENT ? "is missing" : err == -EINVAL ? "does not parse" : strerror(-err);
}

static struct group_info *scan_group(struct gp_pci_scan *scan, struct gp_sysfs *sys, int number)
{
	char path[128];
	struct group_info *g;

	for (size_t i = 0; i < scan->ngroups; i++)
		if (scan->groups[i].number == number)
			return &scan->groups[i];
	if (scan->ngroups == scan->capgroups) {
		size_t cap = scan->capgroups ? scan->capgroups * 2 : 16;
		struct group_info *ng = realloc(scan->groups, cap * sizeof(*ng));

		if (!ng)
			return NULL;
		scan->groups = ng;
		scan->capgroups = cap;
	}
	g = &scan->groups[scan->ngroups++];
	memset(g, 0, sizeof(*g));
	g->number = number;
	gp_sysfs_path(path, sizeof(path), "/sys/kernel/iommu_groups/%d/devices", number);
	g->exists = gp_sysfs_list(sys, path, &g->members) == 0;
	return g;
}

static void read_ids(struct gp_sysfs *sys, const char *base, struct gp_pci_dev *dev)
{
	static const struct {
		const char *file;
		size_t off;
	} ids[] = {
		{ "vendor", offsetof(struct gp_pci_dev, vendor_id) },
		{ "device", offsetof(struct gp_pci_dev, device_id) },
		{ "subsystem_vendor", offsetof(struct gp_pci_dev, subsys_vendor_id) },
		{ "subsystem_device", offsetof(struct gp_pci_dev, subsys_device_id) },
	};
	char path[PATH_MAX];

	/* The config space has them all; the files are the fallback when it
	 * could not be read (a non-root reader still gets the header). */
	if (dev->config_ok) {
		dev->vendor_id = dev->cfg.vendor_id;
		dev->device_id = dev->cfg.device_id;
		dev->subsys_vendor_id = dev->cfg.subsys_vendor_id;
		dev->subsys_device_id = dev->cfg.subsys_device_id;
		return;
	}
	for (size_t i = 0; i < GP_ARRAY_SIZE(ids); i++) {
		uint64_t v;
		int r = gp_sysfs_read_u64(sys, gp_sysfs_path(path, sizeof(path), "%s/%s", base,
							     ids[i].file), 16, &v);

		if (r == 0 && v > 0xffff)
			r = -EINVAL;
		if (r < 0) {
			if (i < 2)
				dev_error(dev, ids[i].file, r, "%s", err_text(r));
			continue;
		}
		*(uint16_t *)((char *)dev + ids[i].off) = (uint16_t)v;
	}
}

static int read_words(struct gp_sysfs *sys, const char *path, struct gp_strv *out)
{
	char *text, *save = NULL;
	int r = gp_sysfs_read(sys, path, &text, NULL);

	if (r < 0)
		return r;
	for (char *w = strtok_r(text, " \t\n", &save); w; w = strtok_r(NULL, " \t\n", &save)) {
		r = gp_strv_push(out, w);
		if (r < 0)
			break;
	}
	free(text);
	return r;
}

static void read_mdev(struct gp_sysfs *sys, const char *base, struct gp_pci_dev *dev)
{
	struct gp_strv types = { 0 };
	char path[PATH_MAX];

	if (gp_sysfs_list(sys, gp_sysfs_path(path, sizeof(path), "%s/mdev_supported_types", base),
			  &types) < 0 || !types.n) {
		gp_strv_clear(&types);
		return;
	}
	dev->mdev_types = calloc(types.n, sizeof(*dev->mdev_types));
	if (!dev->mdev_types) {
		gp_strv_clear(&types);
		return;
	}
	for (size_t i = 0; i < types.n; i++) {
		struct gp_pci_mdev_type *t = &dev->mdev_types[dev->n_mdev_types];
		char name[256];
		int avail;

		t->id = strdup(types.v[i]);
		if (gp_sysfs_read_str(sys, gp_sysfs_path(path, sizeof(path),
							  "%s/mdev_supported_types/%s/name", base,
							  types.v[i]), name, sizeof(name)) == 0 && *name)
			t->name = strdup(name);
		else
			t->name = strdup(types.v[i]);
		if (gp_sysfs_read_int(sys, gp_sysfs_path(path, sizeof(path),
							  "%s/mdev_supported_types/%s/available_instances",
							  base, types.v[i]), &avail) < 0 || avail < 0)
			avail = -1;
		t->available = avail;
		if (!t->id || !t->name) {
			free(t->id);
			free(t->name);
			continue;
		}
		dev->n_mdev_types++;
	}
	gp_strv_clear(&types);
}

/* Joins a link @target to the directory holding the link, collapsing "."
 * and "..", as the kernel resolves it (sysfs device links are relative and
 * contain no further links in their path). */
static int join_link(const char *linkdir, const char *target, char *out, size_t len)
{
	char tmp[PATH_MAX];
	size_t n = 0;
	const char *p;
	int w = snprintf(tmp, sizeof(tmp), "%s/%s", target[0] == '/' ? "" : linkdir, target);

	if (w < 0 || (size_t)w >= sizeof(tmp) || len < 2)
		return -ENAMETOOLONG;
	out[0] = '\0';
	for (p = tmp; *p;) {
		size_t cl = strcspn(p, "/");

		if (cl == 0 || (cl == 1 && p[0] == '.')) {
			/* empty or "." */
		} else if (cl == 2 && p[0] == '.' && p[1] == '.') {
			while (n > 0 && out[n - 1] != '/')
				n--;
			if (n > 0)
				n--;
			out[n] = '\0';
		} else {
			if (n + 1 + cl + 1 > len)
				return -ENAMETOOLONG;
			out[n++] = '/';
			memcpy(out + n, p, cl);
			n += cl;
			out[n] = '\0';
		}
		p += cl;
		if (*p == '/')
			p++;
	}
	if (n == 0)
		strcpy(out, "/");
	return 0;
}

static bool class_is_bridge(uint32_t cls)
{
	return cls >> 8 == 0x0604 || cls >> 8 == 0x0609;
}

/* What every device needs for the survey to place it: where it sits and
 * what class it is. Failures of single files land in dev->errors; only
 * -ENOMEM fails. */
static int dev_read_basic(struct gp_sysfs *sys, const char *address, struct gp_pci_dev **out)
{
	struct gp_pci_dev *dev = calloc(1, sizeof(*dev));
	char base[128], path[PATH_MAX], buf[PATH_MAX];
	uint64_t v;
	int r;

	if (!dev)
		return -ENOMEM;
	snprintf(dev->address, sizeof(dev->address), "%s", address);
	gp_pci_addr_parse(address, &dev->addr);
	gp_sysfs_path(base, sizeof(base), "/sys/bus/pci/devices/%s", address);
	dev->iommu_group = -1;
	dev->numa_node = -1;
	dev->sriov_total_vfs = -1;
	dev->sriov_num_vfs = -1;

	/* Where it sits: the link's target gives the bridge chain. */
	r = gp_sysfs_readlink(sys, base, buf, sizeof(buf));
	if (r == 0)
		r = join_link("/sys/bus/pci/devices", buf, path, sizeof(path));
	if (r == 0) {
		char *slash;

		dev->sysfs_path = strdup(path);
		if (!dev->sysfs_path)
			goto err_nomem;
		slash = strrchr(path, '/');
		if (slash && slash != path) {
			char *prev;

			*slash = '\0';
			prev = strrchr(path, '/');
			if (prev && is_pci_addr(prev + 1) && !(dev->parent = strdup(prev + 1)))
				goto err_nomem;
		}
		if (gp_pci_location_from_path(dev->sysfs_path, &dev->location_path) == -ENOMEM)
			goto err_nomem;
	} else {
		dev_error(dev, base, r, "is not a readable link: %s", strerror(-r));
	}

	r = gp_sysfs_read_u64(sys, gp_sysfs_path(path, sizeof(path), "%s/class", base), 16, &v);
	if (r == 0 && v > 0xffffff)
		r = -EINVAL;
	if (r == 0) {
		dev->class_code = (uint32_t)v;
		dev->class_ok = true;
	} else {
		char raw[64] = "";

		gp_sysfs_read_str(sys, path, raw, sizeof(raw));
		if (r == -EINVAL)
			dev_error(dev, "class", r, "holds \"%s\", not a hex class code", raw);
		else
			dev_error(dev, "class", r, "%s", err_text(r));
	}
	dev->is_bridge = class_is_bridge(dev->class_code);
	dev->is_endpoint = !dev->is_bridge;
	*out = dev;
	return 0;

err_nomem:
	dev_free(dev);
	return -ENOMEM;
}

/* Everything else. Only -ENOMEM fails. */
static int dev_read_detail(struct gp_pci_scan *scan, struct gp_sysfs *sys, struct gp_pci_dev *dev)
{
	char base[128], path[PATH_MAX], buf[PATH_MAX];
	uint8_t cfg[GP_PCI_CFG_EXT];
	size_t got = 0;
	uint64_t v;
	int r;

	if (dev->detailed)
		return 0;
	dev->detailed = true;
	gp_sysfs_path(base, sizeof(base), "/sys/bus/pci/devices/%s", dev->address);

	/* Config space: a non-root reader gets the first 64 bytes only. */
	r = gp_sysfs_read_bin(sys, gp_sysfs_path(path, sizeof(path), "%s/config", base), cfg,
			      sizeof(cfg), &got);
	if (r < 0) {
		dev_error(dev, "config", r, "%s", err_text(r));
	} else if (got < GP_PCI_CFG_MIN) {
		dev_error(dev, "config", -EINVAL,
			  "is %zu bytes, shorter than the %d-byte standard header", got,
			  GP_PCI_CFG_MIN);
	} else if (!scan->caps_pacc && !(scan->caps_pacc = caps_access_new())) {
		return -ENOMEM;
	} else if (config_parse(scan->caps_pacc, cfg, got, &dev->cfg) < 0) {
		dev_error(dev, "config", -EINVAL, "holds no valid vendor id");
	} else {
		dev->config_ok = true;
	}
	read_ids(sys, base, dev);

	if (!dev->class_ok && dev->config_ok) {
		dev->class_code = dev->cfg.class_code;
		dev->class_ok = true;
	}
	dev->is_bridge = dev->config_ok ? (dev->cfg.header_type == 1 || dev->cfg.header_type == 2) :
		class_is_bridge(dev->class_code);
	dev->is_endpoint = !dev->is_bridge;

	r = gp_sysfs_link_name(sys, gp_sysfs_path(path, sizeof(path), "%s/driver", base), buf,
			       sizeof(buf));
	if (r == 0) {
		dev->driver = strdup(buf);
		if (!dev->driver)
			return -ENOMEM;
	}

	r = gp_sysfs_link_name(sys, gp_sysfs_path(path, sizeof(path), "%s/iommu_group", base),
			       buf, sizeof(buf));
	if (r == 0) {
		int g;
		struct group_info *gi;

		if (gp_parse_int(buf, &g) < 0 || g < 0) {
			dev_error(dev, "iommu_group", -EINVAL, "points to \"%s\", not a group number",
				  buf);
		} else if (!(gi = scan_group(scan, sys, g))) {
			return -ENOMEM;
		} else if (!gi->exists) {
			dev_error(dev, "iommu_group", -ENOENT,
				  "points to group %d, but /sys/kernel/iommu_groups/%d/devices is missing",
				  g, g);
		} else {
			dev->iommu_group = g;
			for (size_t i = 0; i < gi->members.n; i++)
				if (gp_strv_push(&dev->group_members, gi->members.v[i]) < 0)
					return -ENOMEM;
		}
	} else if (r != -ENOENT) {
		dev_error(dev, "iommu_group", r, "is not a readable link: %s", strerror(-r));
	}

	r = gp_sysfs_read_int(sys, gp_sysfs_path(path, sizeof(path), "%s/numa_node", base),
			      &dev->numa_node);
	if (r < 0)
		dev->numa_node = -1;

	/* boot_vga exists on VGA-class devices only. */
	if (dev->class_code >> 16 == 0x03 &&
	    gp_sysfs_read_u64(sys, gp_sysfs_path(path, sizeof(path), "%s/boot_vga", base), 10,
			      &v) == 0)
		dev->boot_vga = v == 1;

	r = read_words(sys, gp_sysfs_path(path, sizeof(path), "%s/reset_method", base),
		       &dev->reset_methods);
	if (r == -ENOMEM)
		return -ENOMEM;
	dev->has_reset_method_file = r == 0;
	if (!dev->has_reset_method_file)
		dev->has_reset_file = gp_sysfs_exists(sys, gp_sysfs_path(path, sizeof(path),
									 "%s/reset", base));
	else
		dev->has_reset_file = dev->reset_methods.n > 0;

	{
		char *text;

		r = gp_sysfs_read(sys, gp_sysfs_path(path, sizeof(path), "%s/resource", base), &text,
				  NULL);
		if (r < 0) {
			dev_error(dev, "resource", r, "%s", err_text(r));
		} else {
			int bad = 0;
			int n = gp_pci_resource_parse(text, dev->bars, &bad);

			if (n < 0)
				dev_error(dev, "resource", n, "line %d does not parse as \"0xSTART 0xEND 0xFLAGS\"",
					  bad);
			else
				dev->nbars = n;
			free(text);
		}
	}

	/* SR-IOV attributes exist when the capability does; without a full
	 * config space (not root) we cannot know, so look. */
	if (!dev->config_ok || !dev->cfg.ext_caps_known || (dev->cfg.caps & GP_PCI_CAP_SRIOV)) {
		int t;

		if (gp_sysfs_read_int(sys, gp_sysfs_path(path, sizeof(path), "%s/sriov_totalvfs",
							  base), &t) == 0 && t >= 0) {
			int nv = 0;

			dev->sriov_total_vfs = t;
			if (gp_sysfs_read_int(sys, gp_sysfs_path(path, sizeof(path),
								  "%s/sriov_numvfs", base), &nv) < 0 ||
			    nv < 0)
				nv = 0;
			dev->sriov_num_vfs = nv;
		}
	}

	if (gp_pci_class_is_gpu(dev->class_code)) {
		read_mdev(sys, base, dev);
		if (gp_sysfs_list(sys, gp_sysfs_path(path, sizeof(path), "%s/drm", base),
				  &dev->drm_nodes) == -ENOMEM)
			return -ENOMEM;
	}
	return 0;
}

static struct gp_pci_dev *find_mut(const struct gp_pci_scan *scan, const char *address);

static int cmp_dev(const void *a, const void *b)
{
	const struct gp_pci_dev *x = *(const struct gp_pci_dev *const *)a;
	const struct gp_pci_dev *y = *(const struct gp_pci_dev *const *)b;

	return strcmp(x->address, y->address);
}

/* Reads the full detail of @dev, of the bridges above it, and of the
 * members of its IOMMU group. */
static int detail_around(struct gp_pci_scan *scan, struct gp_sysfs *sys, struct gp_pci_dev *dev)
{
	struct gp_pci_dev *up = dev;
	/* A bus tree is at most 256 levels deep; more means a loop. */
	int ttl = 256, r;

	if ((r = dev_read_detail(scan, sys, dev)) < 0)
		return r;
	while (up->parent && ttl-- > 0 && (up = find_mut(scan, up->parent)))
		if ((r = dev_read_detail(scan, sys, up)) < 0)
			return r;
	for (size_t m = 0; m < dev->group_members.n; m++) {
		struct gp_pci_dev *o = find_mut(scan, dev->group_members.v[m]);

		if (o && (r = dev_read_detail(scan, sys, o)) < 0)
			return r;
	}
	return 0;
}

int gp_pci_scan_new_flags(struct gp_ctx *ctx, unsigned flags, struct gp_pci_scan **out)
{
	struct gp_strv names = { 0 };
	struct names nm = { 0 };
	struct gp_pci_scan *scan;
	int r;

	r = gp_sysfs_list(ctx->sys, "/sys/bus/pci/devices", &names);
	if (r < 0) {
		gp_err(&ctx->log, "cannot list /sys/bus/pci/devices under %s: %s",
		       gp_sysfs_root(ctx->sys), strerror(-r));
		gp_strv_clear(&names);
		return r;
	}
	scan = calloc(1, sizeof(*scan));
	if (!scan) {
		r = -ENOMEM;
		goto err_names;
	}
	scan->devs = calloc(names.n ? names.n : 1, sizeof(*scan->devs));
	if (!scan->devs) {
		r = -ENOMEM;
		goto err_scan;
	}
	for (size_t i = 0; i < names.n; i++) {
		struct gp_pci_dev *dev;

		if (!is_pci_addr(names.v[i])) {
			gp_warn(&ctx->log, "/sys/bus/pci/devices/%s: not a PCI address, ignored",
				names.v[i]);
			continue;
		}
		r = dev_read_basic(ctx->sys, names.v[i], &dev);
		if (r < 0)
			goto err_scan;
		scan->devs[scan->n++] = dev;
	}
	qsort(scan->devs, scan->n, sizeof(*scan->devs), cmp_dev);
	/* Detail where it matters: every device when asked, else GPUs (and
	 * devices whose class only the config space can tell) with their
	 * bridges and group mates. */
	for (size_t i = 0; i < scan->n; i++) {
		struct gp_pci_dev *dev = scan->devs[i];

		if ((flags & GP_PCI_SCAN_ALL) || !dev->class_ok)
			r = dev_read_detail(scan, ctx->sys, dev);
		if (r < 0)
			goto err_scan;
	}
	for (size_t i = 0; i < scan->n; i++) {
		struct gp_pci_dev *dev = scan->devs[i];

		if (gp_pci_dev_is_gpu(dev) && (r = detail_around(scan, ctx->sys, dev)) < 0)
			goto err_scan;
	}
	for (size_t i = 0; i < scan->n; i++) {
		struct gp_pci_dev *dev = scan->devs[i];

		for (size_t e = 0; e < dev->n_errors; e++)
			gp_warn(&ctx->log, "%s: %s %s", dev->address, dev->errors[e].file,
				dev->errors[e].what);
	}
	/* Names for the devices people look at: GPUs and their group mates. */
	for (size_t i = 0; i < scan->n; i++) {
		struct gp_pci_dev *dev = scan->devs[i];

		if (!gp_pci_dev_is_gpu(dev))
			continue;
		names_lookup(&nm, dev);
		for (size_t m = 0; m < dev->group_members.n; m++) {
			struct gp_pci_dev *o = find_mut(scan, dev->group_members.v[m]);

			if (o && o != dev && !o->vendor_name && !o->device_name)
				names_lookup(&nm, o);
		}
	}
	if (nm.failed)
		gp_warn(&ctx->log, "device names unavailable: cannot read pci.ids");
	names_free(&nm);
	gp_strv_clear(&names);
	*out = scan;
	return 0;

err_scan:
	gp_pci_scan_free(scan);
err_names:
	names_free(&nm);
	gp_strv_clear(&names);
	return r;
}

int gp_pci_scan_new(struct gp_ctx *ctx, struct gp_pci_scan **out)
{
	return gp_pci_scan_new_flags(ctx, GP_PCI_SCAN_ALL, out);
}

void gp_pci_scan_free(struct gp_pci_scan *scan)
{
	if (!scan)
		return;
	for (size_t i = 0; i < scan->n; i++)
		dev_free(scan->devs[i]);
	free(scan->devs);
	for (size_t i = 0; i < scan->ngroups; i++)
		gp_strv_clear(&scan->groups[i].members);
	free(scan->groups);
	if (scan->caps_pacc)
		pci_cleanup(scan->caps_pacc);
	free(scan);
}

size_t gp_pci_scan_count(const struct gp_pci_scan *scan)
{
	return scan->n;
}

const struct gp_pci_dev *gp_pci_scan_get(const struct gp_pci_scan *scan, size_t i)
{
	return i < scan->n ? scan->devs[i] : NULL;
}

static struct gp_pci_dev *find_mut(const struct gp_pci_scan *scan, const char *address)
{
	struct gp_pci_addr a;
	char canon[GP_PCI_ADDR_LEN];
	size_t lo = 0, hi = scan->n;

	if (gp_pci_addr_parse(address, &a) < 0)
		return NULL;
	gp_pci_addr_format(&a, canon, sizeof(canon));
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int c = strcmp(scan->devs[mid]->address, canon);

		if (c == 0)
			return scan->devs[mid];
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return NULL;
}

const struct gp_pci_dev *gp_pci_scan_find(const struct gp_pci_scan *scan, const char *address)
{
	return find_mut(scan, address);
}

size_t gp_pci_scan_upstream(const struct gp_pci_scan *scan, const struct gp_pci_dev *dev,
			    const struct gp_pci_dev **out, size_t max)
{
	size_t n = 0;
	/* A bus tree is at most 256 levels deep; more means a loop. */
	int ttl = 256;

	while (dev && dev->parent && ttl-- > 0) {
		const struct gp_pci_dev *up = gp_pci_scan_find(scan, dev->parent);

		if (!up)
			break;
		if (n < max)
			out[n] = up;
		n++;
		dev = up;
	}
	return n;
}

const char *gp_pci_dev_display_name(const struct gp_pci_dev *dev, char *buf, size_t len)
{
	if (dev->vendor_name && dev->device_name)
		snprintf(buf, len, "%s %s", dev->vendor_name, dev->device_name);
	else if (dev->vendor_name)
		snprintf(buf, len, "%s device %04x", dev->vendor_name, dev->device_id);
	else
		snprintf(buf, len, "vendor %04x device %04x", dev->vendor_id, dev->device_id);
	return buf;
}

int gp_pci_scan_find_gpu(const struct gp_pci_scan *scan, const char *query,
			 const struct gp_pci_dev **out, struct gp_strv *candidates)
{
	const struct gp_pci_dev *found = NULL;
	struct gp_pci_addr a;
	size_t matches = 0, n0 = candidates ? candidates->n : 0;

	if (!query || !*query)
		return -EINVAL;
	if (gp_pci_addr_parse(query, &a) == 0) {
		const struct gp_pci_dev *d = gp_pci_scan_find(scan, query);

		if (!d || !gp_pci_dev_is_gpu(d))
			return -ENOENT;
		*out = d;
		return 0;
	}
	for (size_t i = 0; i < scan->n; i++) {
		const struct gp_pci_dev *d = scan->devs[i];

		if (gp_pci_dev_is_gpu(d) && d->location_path &&
		    strcasecmp(d->location_path, query) == 0) {
			*out = d;
			return 0;
		}
	}
	for (size_t i = 0; i < scan->n; i++) {
		const struct gp_pci_dev *d = scan->devs[i];
		char name[600];

		if (!gp_pci_dev_is_gpu(d))
			continue;
		gp_pci_dev_display_name(d, name, sizeof(name));
		if (!gp_str_icontains(name, query))
			continue;
		matches++;
		found = d;
		if (candidates && gp_strv_push(candidates, d->address) < 0)
			return -ENOMEM;
	}
	if (matches == 0)
		return -ENOENT;
	if (matches > 1)
		return -ENOTUNIQ;
	/* One match: leave @candidates as it came. */
	while (candidates && candidates->n > n0) {
		free(candidates->v[--candidates->n]);
		candidates->v[candidates->n] = NULL;
	}
	*out = found;
	return 0;
}
