/* SPDX-License-Identifier: Apache-2.0 */
/* gpupass pv status: what gpupass-pvd serves, per guest. */
#include <errno.h>
#include <getopt.h>
#include <glob.h>
#include <limits.h>
#include <sys/stat.h>
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli.h"
#include "common/util.h"
#include "proto/proto.h"
#include "transport/transport.h"

#define DEFAULT_SOCKET "/run/gpupass/pv.sock"
#define DEFAULT_SERVER "unix:" DEFAULT_SOCKET

struct guest_row {
	char *name;
	uint32_t sessions, objects, weight;
	int64_t since;
	uint64_t mem_used, mem_max, device_ns, calls;
};

static void pv_usage(FILE *f)
{
	fprintf(f,
		"Usage: gpupass pv status [--server unix:PATH] [--json]\n"
		"\n"
		"Lists the guests of gpupass-pvd: connected since, objects, device memory\n"
		"used / quota, device time and calls.\n"
		"\n"
		"  --server ADDR   the server's socket (env GPUPASS_SERVER; default\n"
		"                  " DEFAULT_SERVER ", else the socket of a PV VM\n"
		"                  gpupass deployed, <state-dir>/pv/NAME.sock)\n"
		"  --json          machine-readable output\n");
}

static int fetch(struct cli *cli, const char *addr, struct guest_row **rows, uint32_t *n)
{
	struct gp_proto_hdr h = { .opcode = GP_OP_STATUS, .flags = GP_PROTO_F_SYNC, .req_id = 1 };
	struct gp_transport *t = NULL;
	uint8_t *buf = malloc(GP_PROTO_MAX_PAYLOAD);
	struct gp_dec d;
	int fd, r;
	int32_t err;

	if (!buf)
		return -ENOMEM;
	if (strncmp(addr, "unix:", 5) != 0) {
		cli_error(cli, "--server %s: only unix:PATH is supported", addr);
		free(buf);
		return -EINVAL;
	}
	r = gp_unix_connect(addr + 5, &fd);
	if (r < 0) {
		cli_error(cli, "cannot reach gpupass-pvd at %s: %s (is it running? see 'make run')",
			  addr, strerror(-r));
		free(buf);
		return r;
	}
	r = gp_transport_unix_new(fd, &t);
	if (r == 0)
		r = gp_transport_send(t, &h, NULL, 0, -1);
	if (r == 0)
		r = gp_transport_recv(t, &h, buf, GP_PROTO_MAX_PAYLOAD, NULL, 5000);
	if (r < 0) {
		cli_error(cli, "gpupass-pvd at %s did not answer: %s", addr, strerror(-r));
		goto out;
	}
	gp_dec_init(&d, buf, h.len);
	err = gp_dec_i32(&d);
	if (!d.err && err != 0) {
		cli_error(cli, "gpupass-pvd refused the status request: only root or the server's user may see it");
		r = -EACCES;
		goto out;
	}
	*n = gp_dec_count(&d, 4, 1u << 16);
	*rows = calloc(*n ? *n : 1, sizeof(**rows));
	for (uint32_t i = 0; *rows && i < *n && !d.err; i++) {
		struct guest_row *g = &(*rows)[i];

		g->name = gp_dec_strdup(&d, 256);
		g->sessions = gp_dec_u32(&d);
		g->since = gp_dec_i64(&d);
		g->objects = gp_dec_u32(&d);
		g->mem_used = gp_dec_u64(&d);
		g->mem_max = gp_dec_u64(&d);
		g->weight = gp_dec_u32(&d);
		g->device_ns = gp_dec_u64(&d);
		g->calls = gp_dec_u64(&d);
	}
	if (!*rows || gp_dec_finish(&d) < 0) {
		cli_error(cli, "gpupass-pvd at %s sent a malformed status", addr);
		r = -EBADMSG;
	}
out:
	gp_transport_free(t);
	free(buf);
	return r;
}

/* No --server: the shared socket if there is one, else the socket of a
 * PV VM that gpupass deployed (<state-dir>/pv/NAME.sock): a server that
 * gpupass started for its VMs listens on those only, and answers status on
 * any of them. */
static const char *pick_default(const struct cli *cli, char *buf, size_t cap)
{
	const char *dir = cli->state_dir ? cli->state_dir : "/run/gpupass";
	struct stat st;
	glob_t g;
	char *pat;

	if (stat(DEFAULT_SOCKET, &st) == 0 && S_ISSOCK(st.st_mode))
		return DEFAULT_SERVER;
	pat = gp_strdup_printf("%s/pv/*.sock", dir);
	if (!pat)
		return DEFAULT_SERVER;
	if (glob(pat, 0, NULL, &g) == 0) {
		for (size_t i = 0; i < g.gl_pathc; i++) {
			if (stat(g.gl_pathv[i], &st) == 0 && S_ISSOCK(st.st_mode) &&
			    (size_t)snprintf(buf, cap, "unix:%s", g.gl_pathv[i]) < cap) {
				globfree(&g);
				free(pat);
				return buf;
			}
		}
		globfree(&g);
	}
	free(pat);
	return DEFAULT_SERVER;
}

static int pv_status(struct cli *cli, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "server", required_argument, NULL, 's' },
		{ "json", no_argument, NULL, 'j' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *addr = getenv("GPUPASS_SERVER");
	char pick[PATH_MAX + 8];
	struct guest_row *rows = NULL;
	bool json = false;
	uint32_t n = 0;
	int c, r;

	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case 's':
			addr = optarg;
			break;
		case 'j':
			json = true;
			break;
		case 'h':
			pv_usage(stdout);
			return GP_EXIT_OK;
		default:
			pv_usage(stderr);
			return GP_EXIT_USAGE;
		}
	}
	if (optind < argc) {
		pv_usage(stderr);
		return GP_EXIT_USAGE;
	}
	if (!addr || !*addr)
		addr = pick_default(cli, pick, sizeof(pick));
	r = fetch(cli, addr, &rows, &n);
	if (r < 0) {
		free(rows);
		return GP_EXIT_FAIL;
	}
	if (json) {
		struct json_object *root = json_object_new_object(), *arr = json_object_new_array();

		json_object_object_add(root, "server", json_object_new_string(addr));
		for (uint32_t i = 0; i < n; i++) {
			struct json_object *o = json_object_new_object();

			json_object_object_add(o, "name", json_object_new_string(rows[i].name ? rows[i].name : ""));
			json_object_object_add(o, "sessions", json_object_new_int64(rows[i].sessions));
			json_object_object_add(o, "connected_since", rows[i].since ? json_object_new_int64(rows[i].since) : NULL);
			json_object_object_add(o, "objects", json_object_new_int64(rows[i].objects));
			json_object_object_add(o, "memory_used", json_object_new_int64((int64_t)rows[i].mem_used));
			json_object_object_add(o, "memory_max", json_object_new_int64((int64_t)rows[i].mem_max));
			json_object_object_add(o, "weight", json_object_new_int64(rows[i].weight));
			json_object_object_add(o, "device_time_ns", json_object_new_int64((int64_t)rows[i].device_ns));
			json_object_object_add(o, "calls", json_object_new_int64((int64_t)rows[i].calls));
			json_object_array_add(arr, o);
		}
		json_object_object_add(root, "guests", arr);
		cli_json_print(root, JSON_C_TO_STRING_PRETTY);
		json_object_put(root);
	} else {
		printf("%-16s %-20s %8s %21s %6s %12s %10s\n", "GUEST", "CONNECTED SINCE", "OBJECTS",
		       "MEMORY USED / QUOTA", "WEIGHT", "DEVICE TIME", "CALLS");
		for (uint32_t i = 0; i < n; i++) {
			char since[32] = "-", used[32], max[32] = "unlimited", mem[80];
			time_t t = (time_t)rows[i].since;
			struct tm tm;

			if (rows[i].sessions && localtime_r(&t, &tm))
				strftime(since, sizeof(since), "%Y-%m-%d %H:%M:%S", &tm);
			gp_format_size(rows[i].mem_used, used, sizeof(used));
			if (rows[i].mem_max)
				gp_format_size(rows[i].mem_max, max, sizeof(max));
			snprintf(mem, sizeof(mem), "%s / %s", used, max);
			printf("%-16s %-20s %8u %21s %6u %10.3f s %10llu\n", rows[i].name, since,
			       rows[i].objects, mem, rows[i].weight, (double)rows[i].device_ns / 1e9,
			       (unsigned long long)rows[i].calls);
		}
	}
	for (uint32_t i = 0; i < n; i++)
		free(rows[i].name);
	free(rows);
	return GP_EXIT_OK;
}

int cmd_pv(struct cli *cli, int argc, char **argv)
{
	if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
		pv_usage(argc < 2 ? stderr : stdout);
		return argc < 2 ? GP_EXIT_USAGE : GP_EXIT_OK;
	}
	if (strcmp(argv[1], "status") == 0)
		return pv_status(cli, argc - 1, argv + 1);
	cli_error(cli, "unknown pv command '%s'; run 'gpupass pv --help'", argv[1]);
	return GP_EXIT_USAGE;
}
