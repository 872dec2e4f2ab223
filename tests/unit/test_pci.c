/* SPDX-License-Identifier: Apache-2.0 */
/* The PCI model: parsers on good and garbage input, then scans of fake trees. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "fakesys.h"
#include "host/context.h"
#include "host/pci.h"

/* ---------- parsers ---------- */

static void test_addr(void **state)
{
	struct gp_pci_addr a;
	char buf[GP_PCI_ADDR_LEN];

	(void)state;
	assert_int_equal(gp_pci_addr_parse("0000:3b:00.0", &a), 0);
	assert_int_equal(a.domain, 0);
	assert_int_equal(a.bus, 0x3b);
	assert_int_equal(a.dev, 0);
	assert_int_equal(a.func, 0);
	assert_int_equal(gp_pci_addr_parse("3B:1f.7", &a), 0);
	assert_int_equal(a.bus, 0x3b);
	assert_int_equal(a.dev, 0x1f);
	assert_int_equal(a.func, 7);
	assert_string_equal(gp_pci_addr_format(&a, buf, sizeof(buf)), "0000:3b:1f.7");
	assert_int_equal(gp_pci_addr_parse("10000:e0:06.0", &a), 0); /* Intel VMD */
	assert_int_equal(a.domain, 0x10000);
	assert_string_equal(gp_pci_addr_format(&a, buf, sizeof(buf)), "10000:e0:06.0");
	assert_int_equal(gp_pci_addr_parse("100000000:3b:00.0", &a), -EINVAL);
	assert_int_equal(gp_pci_addr_parse("000:3b:00.0", &a), -EINVAL);
	assert_int_equal(gp_pci_addr_parse("0000:3b:20.0", &a), -EINVAL); /* dev > 31 */
	assert_int_equal(gp_pci_addr_parse("0000:3b:00.8", &a), -EINVAL); /* fn > 7 */
	assert_int_equal(gp_pci_addr_parse("0000:3b:00-0", &a), -EINVAL);
	assert_int_equal(gp_pci_addr_parse("zz:00.0", &a), -EINVAL);
	assert_int_equal(gp_pci_addr_parse("", &a), -EINVAL);
	assert_int_equal(gp_pci_addr_parse(NULL, &a), -EINVAL);
	assert_int_equal(gp_pci_addr_parse("0000:3b:00.0 ", &a), -EINVAL);
}

static void put16(uint8_t *c, unsigned off, uint16_t v)
{
	c[off] = (uint8_t)v;
	c[off + 1] = (uint8_t)(v >> 8);
}

static void put32(uint8_t *c, unsigned off, uint32_t v)
{
	put16(c, off, (uint16_t)v);
	put16(c, off + 2, (uint16_t)(v >> 16));
}

/* A PCIe endpoint: PM at 0x40 -> MSI at 0x50 -> PCIe at 0x70 (FLR) -> MSI-X
 * at 0xb0; extended ACS at 0x100 -> SR-IOV at 0x148 (TotalVFs 16). */
static void make_cfg(uint8_t *c)
{
	memset(c, 0, 4096);
	put16(c, 0, 0x10de);
	put16(c, 2, 0x1eb8);
	put16(c, 6, 0x0010);
	c[0x09] = 0x00;
	c[0x0a] = 0x02;
	c[0x0b] = 0x03;
	c[0x0e] = 0x80;
	put16(c, 0x2c, 0x10de);
	put16(c, 0x2e, 0x12a2);
	c[0x34] = 0x40;
	c[0x40] = 0x01;
	c[0x41] = 0x50;
	c[0x50] = 0x05;
	c[0x51] = 0x70;
	c[0x70] = 0x10;
	c[0x71] = 0xb0;
	put16(c, 0x72, 0x0002 | 0x6 << 4);
	put32(c, 0x74, 1u << 28);
	c[0xb0] = 0x11;
	c[0xb1] = 0x00;
	put32(c, 0x100, 0x000d | 1u << 16 | 0x148u << 20);
	put16(c, 0x104, 0x001f);
	put16(c, 0x106, 0x001d);
	put32(c, 0x148, 0x0010 | 1u << 16);
	put16(c, 0x148 + 0x0e, 16);
}

static void test_config_parse(void **state)
{
	uint8_t c[4096];
	struct gp_pci_config_info ci;

	(void)state;
	make_cfg(c);
	assert_int_equal(gp_pci_config_parse(c, sizeof(c), &ci), 0);
	assert_int_equal(ci.vendor_id, 0x10de);
	assert_int_equal(ci.device_id, 0x1eb8);
	assert_int_equal(ci.subsys_vendor_id, 0x10de);
	assert_int_equal(ci.subsys_device_id, 0x12a2);
	assert_int_equal(ci.class_code, 0x030200);
	assert_int_equal(ci.header_type, 0);
	assert_true(ci.multifunction);
	assert_int_equal(ci.caps, GP_PCI_CAP_PM | GP_PCI_CAP_MSI | GP_PCI_CAP_PCIE |
				  GP_PCI_CAP_MSIX | GP_PCI_CAP_FLR | GP_PCI_CAP_ACS |
				  GP_PCI_CAP_SRIOV);
	assert_int_equal(ci.pcie_type, GP_PCIE_DOWNSTREAM_PORT);
	assert_int_equal(ci.acs_cap, 0x001f);
	assert_int_equal(ci.acs_ctrl, 0x001d);
	assert_int_equal(ci.sriov_total_vfs, 16);
	assert_true(ci.caps_known);
	assert_true(ci.ext_caps_known);

	/* 256 bytes (conventional view): standard caps only. */
	assert_int_equal(gp_pci_config_parse(c, 256, &ci), 0);
	assert_true(ci.caps_known);
	assert_false(ci.ext_caps_known);
	assert_false(ci.caps & GP_PCI_CAP_ACS);
	assert_true(ci.caps & GP_PCI_CAP_MSIX);

	/* 64 bytes (what a non-root reader gets): header only, caps unknown. */
	assert_int_equal(gp_pci_config_parse(c, 64, &ci), 0);
	assert_false(ci.caps_known);
	assert_int_equal(ci.caps, 0);
	assert_int_equal(ci.vendor_id, 0x10de);

	/* Shorter than the header, or no device: refused. */
	assert_int_equal(gp_pci_config_parse(c, 63, &ci), -EINVAL);
	assert_int_equal(gp_pci_config_parse(NULL, 4096, &ci), -EINVAL);
	put16(c, 0, 0xffff);
	assert_int_equal(gp_pci_config_parse(c, sizeof(c), &ci), -EINVAL);
}

static void test_config_loops(void **state)
{
	uint8_t c[4096];
	struct gp_pci_config_info ci;

	(void)state;
	make_cfg(c);
	/* MSI-X points back to PM, and SR-IOV back to ACS: both walks must end. */
	c[0xb1] = 0x40;
	put32(c, 0x148, 0x0010 | 1u << 16 | 0x100u << 20);
	assert_int_equal(gp_pci_config_parse(c, sizeof(c), &ci), 0);
	assert_true(ci.caps & GP_PCI_CAP_MSIX);
	assert_true(ci.caps & GP_PCI_CAP_SRIOV);
	/* A pointer into the header, and one off the end, are ignored. */
	make_cfg(c);
	c[0x34] = 0x10;
	assert_int_equal(gp_pci_config_parse(c, sizeof(c), &ci), 0);
	assert_false(ci.caps & (GP_PCI_CAP_PM | GP_PCI_CAP_MSI));
	make_cfg(c);
	c[0x34] = 0xfe; /* 0xfc after masking: the id fits, the next does too */
	c[0xfc] = 0x05;
	c[0xfd] = 0xff;
	assert_int_equal(gp_pci_config_parse(c, 256, &ci), 0);
	assert_int_equal(ci.caps & ~(unsigned)GP_PCI_CAP_MSI, 0);
	/* A capability list bit without capabilities. */
	make_cfg(c);
	c[0x34] = 0;
	assert_int_equal(gp_pci_config_parse(c, sizeof(c), &ci), 0);
	assert_int_equal(ci.caps, 0);
	assert_int_equal(ci.pcie_type, GP_PCIE_NONE);
}

static void test_resource_parse(void **state)
{
	struct gp_pci_bar b[GP_PCI_NUM_RESOURCES];
	int bad = 0;
	static const char ok[] =
		"0x00000000c0000000 0x00000000c0ffffff 0x0000000000040200\n"
		"0x0000038000000000 0x0000039fffffffff 0x000000000014220c\n"
		"0x0000000000000000 0x0000000000000000 0x0000000000000000\n"
		"0x0000000000000000 0x0000000000000000 0x0000000000000000\n"
		"0x0000000000000000 0x0000000000000000 0x0000000000000000\n"
		"0x000000000000e000 0x000000000000e07f 0x0000000000040101\n"
		"0x00000000c1000000 0x00000000c107ffff 0x0000000000046200\n"
		"0x0000000000000000 0x0000000000000000 0x0000000000000000\n";

	(void)state;
	assert_int_equal(gp_pci_resource_parse(ok, b, &bad), 7);
	assert_int_equal(b[0].size, 16u << 20);
	assert_true(b[0].is_mem);
	assert_false(b[0].is_64bit);
	assert_int_equal(b[1].size, 128ull << 30);
	assert_true(b[1].is_64bit);
	assert_true(b[1].prefetchable);
	assert_int_equal(b[2].size, 0);
	assert_true(b[5].is_io);
	assert_int_equal(b[5].size, 128);
	assert_int_equal(b[6].index, GP_PCI_ROM_INDEX);
	assert_int_equal(b[6].size, 512 * 1024);

	assert_int_equal(gp_pci_resource_parse("", b, &bad), -EINVAL);
	assert_int_equal(bad, 1);
	assert_int_equal(gp_pci_resource_parse("0x0 0x10\n", b, &bad), -EINVAL);
	assert_int_equal(gp_pci_resource_parse("0x0 0x0 0x0\n0x1 0x2 zz\n", b, &bad), -EINVAL);
	assert_int_equal(bad, 2);
	assert_int_equal(gp_pci_resource_parse("0x10 0x1 0x200\n", b, &bad), -EINVAL);
	assert_int_equal(gp_pci_resource_parse("0x0 0x0 0x0 extra\n", b, &bad), -EINVAL);
	assert_int_equal(gp_pci_resource_parse("0x11111111111111111 0x0 0x0\n", b, &bad), -EINVAL);
	assert_int_equal(gp_pci_resource_parse("10 20 30\n", b, &bad), -EINVAL);
	assert_int_equal(gp_pci_resource_parse(NULL, b, NULL), -EINVAL);
}

static void test_location(void **state)
{
	char *s = NULL;

	(void)state;
	assert_int_equal(gp_pci_location_from_path("/sys/devices/pci0000:00/0000:00:01.0/0000:01:00.0",
						   &s), 0);
	assert_string_equal(s, "PCIROOT(0)#PCI(0100)#PCI(0000)");
	free(s);
	assert_int_equal(gp_pci_location_from_path("/sys/devices/pci0000:3a/0000:3a:00.0/0000:3b:00.1",
						   &s), 0);
	assert_string_equal(s, "PCIROOT(3A)#PCI(0000)#PCI(0001)");
	free(s);
	assert_int_equal(gp_pci_location_from_path("/sys/devices/pci0001:00/0001:00:1f.3", &s), 0);
	assert_string_equal(s, "PCIROOT(100)#PCI(1F03)");
	free(s);
	assert_int_equal(gp_pci_location_from_path("/sys/devices/platform/foo", &s), -EINVAL);
	assert_int_equal(gp_pci_location_from_path("/sys/devices/pci0000:00", &s), -EINVAL);
	assert_int_equal(gp_pci_location_from_path(NULL, &s), -EINVAL);
}

/* ---------- scans of fake trees ---------- */

struct fx {
	struct gp_fake *fake;
	struct gp_ctx *ctx;
	struct gp_pci_scan *scan;
};

static struct fx *load(const char *name)
{
	struct fx *fx = calloc(1, sizeof(*fx));

	assert_non_null(fx);
	assert_int_equal(gp_fake_build(name, NULL, &fx->fake), 0);
	assert_int_equal(gp_ctx_new(gp_fake_root(fx->fake), NULL, &fx->ctx), 0);
	gp_ctx_set_log(fx->ctx, NULL, NULL, GP_LOG_ERR);
	assert_int_equal(gp_pci_scan_new(fx->ctx, &fx->scan), 0);
	return fx;
}

static void unload(struct fx *fx)
{
	gp_pci_scan_free(fx->scan);
	gp_ctx_free(fx->ctx);
	gp_fake_free(fx->fake, true);
	free(fx);
}

static void test_scan_server(void **state)
{
	struct fx *fx = load("server-t4");
	const struct gp_pci_dev *d, *rp, *up[4];
	uint64_t lo, hi;

	(void)state;
	assert_int_equal(gp_pci_scan_count(fx->scan), 4);
	/* Sorted by address. */
	assert_string_equal(gp_pci_scan_get(fx->scan, 0)->address, "0000:00:00.0");
	assert_null(gp_pci_scan_get(fx->scan, 4));
	d = gp_pci_scan_find(fx->scan, "3b:00.0");
	assert_non_null(d);
	assert_string_equal(d->address, "0000:3b:00.0");
	assert_int_equal(d->n_errors, 0);
	assert_int_equal(d->vendor_id, 0x10de);
	assert_int_equal(d->device_id, 0x1eb8);
	assert_int_equal(d->subsys_vendor_id, 0x10de);
	assert_int_equal(d->subsys_device_id, 0x12a2);
	assert_int_equal(d->class_code, 0x030200);
	assert_true(gp_pci_dev_is_gpu(d));
	assert_string_equal(d->vendor_name, "NVIDIA Corporation");
	assert_non_null(strstr(d->device_name, "Tesla T4"));
	assert_string_equal(d->driver, "nvidia");
	assert_int_equal(d->numa_node, 0);
	assert_false(d->boot_vga);
	assert_int_equal(d->iommu_group, 30);
	assert_int_equal(d->group_members.n, 1);
	assert_string_equal(d->group_members.v[0], "0000:3b:00.0");
	assert_int_equal(d->reset_methods.n, 2);
	assert_string_equal(d->reset_methods.v[0], "flr");
	assert_string_equal(d->reset_methods.v[1], "bus");
	assert_string_equal(d->sysfs_path, "/sys/devices/pci0000:3a/0000:3a:00.0/0000:3b:00.0");
	assert_string_equal(d->location_path, "PCIROOT(3A)#PCI(0000)#PCI(0000)");
	assert_string_equal(d->parent, "0000:3a:00.0");
	assert_true(d->config_ok);
	assert_true(d->cfg.caps & GP_PCI_CAP_MSI);
	assert_true(d->cfg.caps & GP_PCI_CAP_MSIX);
	assert_true(d->cfg.caps & GP_PCI_CAP_FLR);
	assert_false(d->is_bridge);
	assert_true(d->is_endpoint);
	assert_int_equal(d->nbars, 7);
	assert_int_equal(d->bars[0].size, 16u << 20);
	assert_int_equal(d->bars[1].size, 256u << 20);
	assert_true(d->bars[1].is_64bit);
	assert_int_equal(d->bars[2].size, 0); /* upper half of BAR1 */
	gp_pci_dev_mmio(d, &lo, &hi);
	assert_int_equal(lo, 16u << 20);
	assert_int_equal(hi, 288u << 20);
	assert_int_equal(d->sriov_total_vfs, -1);

	rp = gp_pci_scan_find(fx->scan, "0000:3a:00.0");
	assert_non_null(rp);
	assert_true(rp->is_bridge);
	assert_false(rp->is_endpoint);
	assert_false(gp_pci_dev_is_gpu(rp));
	assert_int_equal(rp->cfg.pcie_type, GP_PCIE_ROOT_PORT);
	assert_true(rp->cfg.caps & GP_PCI_CAP_ACS);
	assert_int_equal(rp->cfg.acs_ctrl & GP_PCI_ACS_REQUIRED, GP_PCI_ACS_REQUIRED);
	assert_null(rp->parent);
	assert_int_equal(gp_pci_scan_upstream(fx->scan, d, up, 4), 1);
	assert_ptr_equal(up[0], rp);
	assert_int_equal(gp_pci_scan_upstream(fx->scan, rp, up, 4), 0);
	unload(fx);
}

static void test_scan_workstation(void **state)
{
	struct fx *fx = load("workstation");
	const struct gp_pci_dev *g = gp_pci_scan_find(fx->scan, "0000:01:00.0");
	const struct gp_pci_dev *a = gp_pci_scan_find(fx->scan, "0000:01:00.1");

	(void)state;
	assert_non_null(g);
	assert_non_null(a);
	assert_true(g->boot_vga);
	assert_false(gp_pci_dev_is_gpu(a));
	assert_true(gp_pci_same_slot(g, a));
	assert_int_equal(g->group_members.n, 2);
	assert_string_equal(g->group_members.v[1], "0000:01:00.1");
	assert_int_equal(g->drm_nodes.n, 2);
	assert_string_equal(g->drm_nodes.v[0], "card0");
	assert_string_equal(g->bars[6].is_mem ? "rom" : "?", "rom");
	assert_true(g->bars[5].is_io);
	assert_string_equal(a->driver, "snd_hda_intel");
	unload(fx);
}

static void test_scan_sriov(void **state)
{
	struct fx *fx = load("sriov-igpu");
	const struct gp_pci_dev *g = gp_pci_scan_find(fx->scan, "0000:00:02.0");

	(void)state;
	assert_non_null(g);
	assert_int_equal(g->sriov_total_vfs, 7);
	assert_int_equal(g->sriov_num_vfs, 0);
	assert_true(g->cfg.caps & GP_PCI_CAP_SRIOV);
	assert_int_equal(g->cfg.sriov_total_vfs, 7);
	assert_int_equal(g->cfg.pcie_type, GP_PCIE_RC_INTEGRATED_ENDPOINT);
	assert_int_equal(g->n_mdev_types, 2);
	assert_string_equal(g->mdev_types[0].id, "i915-GVTg_V5_4");
	assert_string_equal(g->mdev_types[0].name, "GVTg_V5_4");
	assert_int_equal(g->mdev_types[0].available, 2);
	assert_int_equal(g->mdev_types[1].available, 1);
	assert_string_equal(g->location_path, "PCIROOT(0)#PCI(0200)");
	unload(fx);
}

static void test_scan_iommu_off(void **state)
{
	struct fx *fx = load("iommu-off");
	const struct gp_pci_dev *g = gp_pci_scan_find(fx->scan, "0000:01:00.0");

	(void)state;
	assert_int_equal(g->iommu_group, -1);
	assert_int_equal(g->group_members.n, 0);
	assert_int_equal(g->n_errors, 0); /* no link is no error */
	unload(fx);
}

static void test_scan_big_bar(void **state)
{
	struct fx *fx = load("big-bar");
	const struct gp_pci_dev *g = gp_pci_scan_find(fx->scan, "0000:3b:00.0");
	uint64_t lo, hi;

	(void)state;
	gp_pci_dev_mmio(g, &lo, &hi);
	assert_int_equal(lo, 16u << 20);
	assert_int_equal(hi, (128ull << 30) + (32u << 20));
	unload(fx);
}

static const struct gp_pci_error *err_on(const struct gp_pci_dev *d, const char *file)
{
	for (size_t i = 0; i < d->n_errors; i++)
		if (strstr(d->errors[i].file, file))
			return &d->errors[i];
	return NULL;
}

static void test_scan_broken(void **state)
{
	static const struct {
		const char *fixture, *file;
		int err;
	} cases[] = {
		{ "broken-config", "/config", -EINVAL },
		{ "broken-config-missing", "/config", -ENOENT },
		{ "broken-class", "/class", -EINVAL },
		{ "broken-iommu-link", "/iommu_group", -ENOENT },
		{ "broken-resource", "/resource", -EINVAL },
	};

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct fx *fx = load(cases[i].fixture);
		const struct gp_pci_dev *t4 = gp_pci_scan_find(fx->scan, "0000:3b:00.0");
		const struct gp_pci_dev *vga = gp_pci_scan_find(fx->scan, "0000:00:02.0");
		const struct gp_pci_error *e;

		assert_non_null(t4);
		assert_non_null(vga);
		assert_int_equal(t4->n_errors, 1);
		e = err_on(t4, cases[i].file);
		if (!e) {
			fail_msg("no error on %s in %s", cases[i].file, cases[i].fixture);
			return; /* fail_msg does not return */
		}
		assert_int_equal(e->err, cases[i].err);
		assert_non_null(strstr(e->file, "/sys/bus/pci/devices/0000:3b:00.0/"));
		/* The broken device is still a GPU (class from the other source). */
		assert_true(gp_pci_dev_is_gpu(t4));
		/* And the healthy neighbour is intact. */
		assert_int_equal(vga->n_errors, 0);
		assert_int_equal(vga->vendor_id, 0x1234);
		unload(fx);
	}
}

static void test_find_gpu(void **state)
{
	struct fx *fx = load("two-nvidia");
	const struct gp_pci_dev *d = NULL;
	struct gp_strv cand = { 0 };

	(void)state;
	assert_int_equal(gp_pci_scan_find_gpu(fx->scan, "0000:3b:00.0", &d, &cand), 0);
	assert_string_equal(d->address, "0000:3b:00.0");
	assert_int_equal(gp_pci_scan_find_gpu(fx->scan, "5e:00.0", &d, NULL), 0);
	assert_string_equal(d->address, "0000:5e:00.0");
	assert_int_equal(gp_pci_scan_find_gpu(fx->scan, "tesla T4", &d, &cand), 0);
	assert_string_equal(d->address, "0000:3b:00.0");
	assert_int_equal(cand.n, 0);
	assert_int_equal(gp_pci_scan_find_gpu(fx->scan, "pciroot(5d)#pci(0000)#pci(0000)", &d,
					      NULL), 0);
	assert_string_equal(d->address, "0000:5e:00.0");
	assert_int_equal(gp_pci_scan_find_gpu(fx->scan, "nvidia", &d, &cand), -ENOTUNIQ);
	assert_int_equal(cand.n, 2);
	assert_string_equal(cand.v[0], "0000:3b:00.0");
	assert_string_equal(cand.v[1], "0000:5e:00.0");
	gp_strv_clear(&cand);
	assert_int_equal(gp_pci_scan_find_gpu(fx->scan, "Radeon", &d, &cand), -ENOENT);
	/* A device that is not a GPU, and one that does not exist. */
	assert_int_equal(gp_pci_scan_find_gpu(fx->scan, "0000:3a:00.0", &d, NULL), -ENOENT);
	assert_int_equal(gp_pci_scan_find_gpu(fx->scan, "0000:99:00.0", &d, NULL), -ENOENT);
	assert_int_equal(gp_pci_scan_find_gpu(fx->scan, "", &d, NULL), -EINVAL);
	unload(fx);
}

/* Without GP_PCI_SCAN_ALL: GPUs, their bridges and group mates in full,
 * the rest placed and classified only. */
static void test_scan_focus(void **state)
{
	struct gp_fake *fake;
	struct gp_ctx *ctx;
	struct gp_pci_scan *scan;
	const struct gp_pci_dev *d;

	(void)state;
	assert_int_equal(gp_fake_build("workstation", NULL, &fake), 0);
	assert_int_equal(gp_ctx_new(gp_fake_root(fake), NULL, &ctx), 0);
	assert_int_equal(gp_pci_scan_new_flags(ctx, 0, &scan), 0);
	assert_true(gp_pci_scan_find(scan, "0000:01:00.0")->detailed);
	assert_true(gp_pci_scan_find(scan, "0000:01:00.1")->detailed); /* group mate */
	assert_true(gp_pci_scan_find(scan, "0000:00:01.0")->detailed); /* bridge above */
	d = gp_pci_scan_find(scan, "0000:00:17.0");
	assert_false(d->detailed);
	assert_int_equal(d->class_code, 0x010601);
	assert_null(d->driver);
	assert_string_equal(d->location_path, "PCIROOT(0)#PCI(1700)");
	gp_pci_scan_free(scan);
	assert_int_equal(gp_pci_scan_new(ctx, &scan), 0);
	d = gp_pci_scan_find(scan, "0000:00:17.0");
	assert_true(d->detailed);
	assert_string_equal(d->driver, "ahci");
	gp_pci_scan_free(scan);
	gp_ctx_free(ctx);
	gp_fake_free(fake, true);
}

static void test_scan_no_sys(void **state)
{
	char dir[] = "/tmp/gp-empty-XXXXXX";
	struct gp_pci_scan *scan = NULL;
	struct gp_ctx *ctx;

	(void)state;
	assert_non_null(mkdtemp(dir));
	assert_int_equal(gp_ctx_new(dir, NULL, &ctx), 0);
	gp_ctx_set_log(ctx, NULL, NULL, GP_LOG_ERR);
	assert_int_equal(gp_pci_scan_new(ctx, &scan), -ENOENT);
	assert_null(scan);
	gp_ctx_free(ctx);
	rmdir(dir);
	gp_pci_scan_free(NULL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_addr),
		cmocka_unit_test(test_config_parse),
		cmocka_unit_test(test_config_loops),
		cmocka_unit_test(test_resource_parse),
		cmocka_unit_test(test_location),
		cmocka_unit_test(test_scan_server),
		cmocka_unit_test(test_scan_workstation),
		cmocka_unit_test(test_scan_sriov),
		cmocka_unit_test(test_scan_iommu_off),
		cmocka_unit_test(test_scan_big_bar),
		cmocka_unit_test(test_scan_broken),
		cmocka_unit_test(test_find_gpu),
		cmocka_unit_test(test_scan_focus),
		cmocka_unit_test(test_scan_no_sys),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
