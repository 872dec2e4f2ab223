/* SPDX-License-Identifier: Apache-2.0 */
/* gpupass survey [--json] [ADDRESS|NAME]: which GPUs can go to VMs, and how. */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "cli.h"
#include "common/util.h"
#include "host/clprobe.h"
#include "host/survey.h"

static void survey_usage(FILE *f, const char *prog)
{
	fprintf(f,
		"Usage: %s [--root DIR] survey [--json] [ADDRESS | NAME]\n"
		"\n"
		"Tells, for each GPU of this host, whether it can be given to a VM by DDA\n"
		"(the whole GPU through vfio-pci) and by PV (shared through gpupass-pvd),\n"
		"and what to fix when it cannot. Reads sysfs only; changes nothing.\n"
		"\n"
		"With ADDRESS (0000:3b:00.0 or 3b:00.0), a location path\n"
		"(PCIROOT(0)#PCI(0100)#PCI(0000)) or a NAME substring (\"Tesla T4\",\n"
		"case-insensitive, must match one GPU): every check, every BAR, and the\n"
		"fix for each problem of that GPU.\n"
		"\n"
		"PV needs a host OpenCL platform that drives the GPU: for each GPU bound to a\n"
		"host driver, the host's OpenCL devices (through the ICD loader, which reads\n"
		"/etc/OpenCL/vendors or OCL_ICD_VENDORS) are matched by PCI address.\n"
		"\n"
		"Options:\n"
		"  --json      machine-readable output (schema gpupass.survey/1)\n"
		"  -h, --help  this help\n"
		"\n"
		"Exit status: 0 the survey ran (whatever it found); 1 it failed;\n"
		"2 bad usage, or no GPU matches ADDRESS/NAME, or several do.\n",
		prog);
}

static const char *yes_no(bool b)
{
	return b ? "yes" : "no";
}

/* Copies @s into @buf cut to @width columns, with "..." when cut. */
static const char *cut(const char *s, char *buf, size_t width)
{
	size_t len = strlen(s);

	if (len <= width) {
		snprintf(buf, width + 1, "%s", s);
	} else {
		snprintf(buf, width + 1, "%.*s...", (int)(width - 3), s);
	}
	return buf;
}

/* The bracketed part of a pci.ids name ("TU104GL [Tesla T4]" -> "Tesla T4"),
 * else the whole name, into buf. */
static const char *bracketed(const char *name, char *buf, size_t len)
{
	const char *open = strrchr(name, '[');
	const char *close = open ? strchr(open, ']') : NULL;

	if (open && close && close > open + 1)
		snprintf(buf, len, "%.*s", (int)(close - open - 1), open + 1);
	else
		snprintf(buf, len, "%s", name);
	return buf;
}

/* A short name for the table: "NVIDIA Tesla T4", "AMD/ATI Radeon RX 6800". */
static const char *short_name(const struct gp_pci_dev *d, char *buf, size_t len)
{
	char vendor[128], device[160];

	if (!d->vendor_name || !d->device_name)
		return gp_pci_dev_display_name(d, buf, len);
	if (strchr(d->vendor_name, '['))
		bracketed(d->vendor_name, vendor, sizeof(vendor));
	else
		snprintf(vendor, sizeof(vendor), "%.*s", (int)strcspn(d->vendor_name, " ,"),
			 d->vendor_name);
	snprintf(buf, len, "%s %s", vendor, bracketed(d->device_name, device, sizeof(device)));
	return buf;
}

static void print_host(const struct gp_survey_host *h)
{
	printf("Host: IOMMU %s", h->iommu_enabled ? "on" : "OFF");
	if (h->iommu_enabled)
		printf(" (%d groups)", h->iommu_groups);
	printf(", vfio-pci %s, kernel %s, %zu PCI devices\n", gp_vfio_state_name(h->vfio_pci),
	       h->kernel, h->pci_devices);
}

/* The host's OpenCL platforms, when the probe looked (a GPU on a host driver). */
static void print_opencl(const struct gp_clprobe *probe)
{
	size_t n = gp_clprobe_platform_count(probe);

	if (!gp_clprobe_has_run(probe))
		return;
	printf("Host OpenCL: ");
	if (!n)
		printf("no platform");
	for (size_t i = 0; i < n; i++) {
		const struct gp_cl_platform *p = gp_clprobe_platform(probe, i);

		printf("%s%s (%zu device%s)", i ? ", " : "", p->name, p->n_devices,
		       p->n_devices == 1 ? "" : "s");
	}
	if (gp_clprobe_skipped(probe)->n)
		printf("; skipped gpupass's own: %s", gp_clprobe_skipped(probe)->v[0]);
	printf("\n");
}

/* OpenCL devices that are not the survey's GPUs: PV by explicit choice. */
static void print_pv_only(const struct gp_survey *s, const struct gp_clprobe *probe)
{
	bool any = false;

	for (size_t i = 0; i < gp_clprobe_device_count(probe); i++) {
		const struct gp_cl_device *d = gp_clprobe_device(probe, i);

		if (gp_clprobe_is_survey_gpu(d, s))
			continue;
		if (!any)
			printf("\nPV only, not a GPU (host OpenCL devices that are not PCI GPUs; "
			       "vm create --gpu-passthrough pv --gpu-name NAME --force):\n");
		any = true;
		printf("  %s (%s, %s): %s\n", d->name, gp_clprobe_platform(probe, d->platform)->name,
		       gp_cl_device_type_name(d->type), gp_cl_device_pv_only_note(d));
	}
}

static void print_table(const struct gp_survey *s, const struct gp_clprobe *probe)
{
	const struct gp_survey_host *h = gp_survey_host(s);
	size_t n = gp_survey_gpu_count(s);

	print_host(h);
	print_opencl(probe);
	if (n == 0) {
		printf("no GPU found (looked at %zu PCI device%s)\n", h->pci_devices,
		       h->pci_devices == 1 ? "" : "s");
		print_pv_only(s, probe);
		return;
	}
	printf("\n%-12s  %-36s  %-10s  %5s  %-3s  %-3s  %s\n", "ADDRESS", "NAME", "DRIVER",
	       "GROUP", "DDA", "PV", "TOP PROBLEM");
	for (size_t i = 0; i < n; i++) {
		const struct gp_survey_gpu *g = gp_survey_gpu(s, i);
		const struct gp_problem *top = gp_survey_gpu_top_problem(g);
		char name[300], namec[40], drv[16], grp[12];

		short_name(g->dev, name, sizeof(name));
		if (g->dev->iommu_group >= 0)
			snprintf(grp, sizeof(grp), "%d", g->dev->iommu_group);
		else
			snprintf(grp, sizeof(grp), "-");
		printf("%-12s  %-36s  %-10s  %5s  %-3s  %-3s  %s%s%s\n", g->dev->address,
		       cut(name, namec, 36), cut(g->dev->driver ? g->dev->driver : "-", drv, 10),
		       grp, yes_no(g->methods[GP_METHOD_DDA].ready),
		       yes_no(g->methods[GP_METHOD_PV].ready),
		       top ? gp_problem_code_name(top->code) : "-",
		       top ? " " : "", top ? gp_severity_name(top->severity) : "");
	}
	print_pv_only(s, probe);
	printf("\nDetails and fixes: gpupass survey ADDRESS\n");
}

static void print_problems(const struct gp_method_result *res, const char *method)
{
	printf("\n%s: %s\n", method, res->ready ? "ready" : "NOT ready");
	for (size_t i = 0; i < res->n_problems; i++) {
		const struct gp_problem *p = &res->problems[i];

		printf("  [%s] %s: %s\n", gp_severity_name(p->severity),
		       gp_problem_code_name(p->code), p->message);
		printf("      fix: %s\n", p->fix);
	}
}

static void print_detail(const struct gp_survey *s, const struct gp_clprobe *probe,
			 const struct gp_survey_gpu *g)
{
	const struct gp_pci_dev *d = g->dev;
	char name[300], sz[32];

	print_host(gp_survey_host(s));
	print_opencl(probe);
	printf("\n%s  %s\n", d->address, gp_pci_dev_display_name(d, name, sizeof(name)));
	printf("  location path   %s\n", d->location_path ? d->location_path : "unknown");
	printf("  ids             %04x:%04x  subsystem %04x:%04x  class %06x\n", d->vendor_id,
	       d->device_id, d->subsys_vendor_id, d->subsys_device_id, d->class_code);
	printf("  driver          %s\n", d->driver ? d->driver : "none");
	printf("  NUMA node       %d\n", d->numa_node);
	printf("  boot VGA        %s\n", yes_no(d->boot_vga));
	if (d->iommu_group >= 0) {
		printf("  IOMMU group     %d:", d->iommu_group);
		for (size_t i = 0; i < d->group_members.n; i++)
			printf(" %s", d->group_members.v[i]);
		printf("\n");
	} else {
		printf("  IOMMU group     none\n");
	}
	printf("  reset methods   ");
	for (size_t i = 0; i < d->reset_methods.n; i++)
		printf("%s%s", i ? ", " : "", d->reset_methods.v[i]);
	printf("%s\n", d->reset_methods.n ? "" : "none");
	if (d->sriov_total_vfs >= 0)
		printf("  SR-IOV          %d of %d VFs enabled\n", d->sriov_num_vfs,
		       d->sriov_total_vfs);
	for (size_t i = 0; i < d->n_mdev_types; i++)
		printf("  mdev type       %s \"%s\", %d available\n", d->mdev_types[i].id,
		       d->mdev_types[i].name, d->mdev_types[i].available);

	printf("\nBARs:\n");
	if (!d->nbars)
		printf("  unknown (resource unreadable)\n");
	for (int i = 0; i < d->nbars; i++) {
		const struct gp_pci_bar *b = &d->bars[i];
		char label[8];

		if (!b->size)
			continue;
		if (i == GP_PCI_ROM_INDEX)
			snprintf(label, sizeof(label), "ROM");
		else
			snprintf(label, sizeof(label), "BAR%d", i);
		printf("  %-4s %10s  %s%s%s  0x%llx-0x%llx\n", label,
		       gp_format_size(b->size, sz, sizeof(sz)),
		       b->is_io ? "I/O" : b->is_64bit ? "64-bit" : "32-bit",
		       b->prefetchable ? " prefetchable" : "", b->is_io ? "" : " memory",
		       (unsigned long long)b->start, (unsigned long long)b->end);
	}
	printf("  MMIO: 32-bit %s", gp_format_size(g->mmio_low, sz, sizeof(sz)));
	printf(", 64-bit %s\n", gp_format_size(g->mmio_high, sz, sizeof(sz)));

	printf("\nChecks:\n");
	for (size_t i = 0; i < g->n_checks; i++)
		printf("  %-4s  %-16s %s\n", gp_check_status_name(g->checks[i].status),
		       g->checks[i].name, g->checks[i].detail);

	print_problems(&g->methods[GP_METHOD_DDA], "DDA (whole GPU to one VM)");
	print_problems(&g->methods[GP_METHOD_PV], "PV (shared through gpupass-pvd)");
}

static int print_json(struct cli *cli, const struct gp_survey *s, const struct gp_survey_gpu *one)
{
	struct json_object *j;
	int r = one ? gp_survey_gpu_to_json(one, &j) : gp_survey_to_json(s, &j);

	if (r < 0) {
		cli_error(cli, "cannot build the JSON output: %s", strerror(-r));
		return GP_EXIT_FAIL;
	}
	cli_json_print(j, JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_NOSLASHESCAPE);
	json_object_put(j);
	return GP_EXIT_OK;
}

int cmd_survey(struct cli *cli, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "json", no_argument, NULL, 'j' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const struct gp_survey_gpu *one = NULL;
	struct gp_survey *s = NULL;
	struct gp_clprobe *probe = NULL;
	struct gp_ctx *ctx;
	const char *query = NULL;
	bool json = false;
	int c, r;

	while ((c = getopt_long(argc, argv, "+h", opts, NULL)) != -1) {
		switch (c) {
		case 'j':
			json = true;
			break;
		case 'h':
			survey_usage(stdout, cli->prog);
			return GP_EXIT_OK;
		default:
			fprintf(stderr, "Try '%s survey --help'.\n", cli->prog);
			return GP_EXIT_USAGE;
		}
	}
	if (optind < argc)
		query = argv[optind++];
	if (optind < argc) {
		cli_error(cli, "survey takes one ADDRESS or NAME, got also '%s'", argv[optind]);
		return GP_EXIT_USAGE;
	}
	r = cli_ctx(cli, &ctx);
	if (r)
		return r;
	/* If gpupass's own guest ICD is installed on this host, the loader
	 * loads it with the others: tell it not to connect to gpupass-pvd (the
	 * probe skips its platform anyway). Set here, in main's process, never
	 * by the library. */
	setenv("GPUPASS_PVD_SELF", "1", 0);
	r = gp_clprobe_new(ctx, &probe);
	if (r == 0)
		r = gp_clprobe_survey(ctx, probe, &s);
	if (r < 0) {
		gp_clprobe_free(probe);
		cli_error(cli, "cannot survey the PCI devices under %s: %s (is %s/sys mounted?)",
			  gp_sysfs_root(ctx->sys), strerror(-r),
			  strcmp(gp_sysfs_root(ctx->sys), "/") ? gp_sysfs_root(ctx->sys) : "");
		return GP_EXIT_FAIL;
	}
	if (query) {
		struct gp_strv cand = { 0 };

		r = gp_survey_find(s, query, &one, &cand);
		if (r == -ENOTUNIQ) {
			cli_error(cli, "'%s' matches %zu GPUs; give one address:", query, cand.n);
			for (size_t i = 0; i < cand.n; i++) {
				const struct gp_pci_dev *d = gp_pci_scan_find(gp_survey_scan(s),
									      cand.v[i]);
				char name[300];

				fprintf(stderr, "  %s  %s\n", cand.v[i],
					d ? gp_pci_dev_display_name(d, name, sizeof(name)) : "");
			}
		} else if (r < 0) {
			cli_error(cli, "no GPU matches '%s' (looked at %zu GPUs among %zu PCI "
				  "devices); run '%s survey' for the list", query,
				  gp_survey_gpu_count(s), gp_survey_host(s)->pci_devices, cli->prog);
		}
		gp_strv_clear(&cand);
		if (r < 0) {
			gp_survey_free(s);
			gp_clprobe_free(probe);
			return GP_EXIT_USAGE;
		}
	}
	r = GP_EXIT_OK;
	if (json)
		r = print_json(cli, s, one);
	else if (one)
		print_detail(s, probe, one);
	else
		print_table(s, probe);
	gp_survey_free(s);
	gp_clprobe_free(probe);
	return r;
}
