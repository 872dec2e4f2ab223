/* SPDX-License-Identifier: Apache-2.0 */
#include "kmodel.h"

#include <dirent.h>
#include <errno.h>
#include <ftw.h>
#include <limits.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static const char *natural_of(struct kmodel *km, const char *addr)
{
	size_t n = strlen(addr);

	for (size_t i = 0; i < km->natural.n; i++) {
		if (strncmp(km->natural.v[i], addr, n) == 0 && km->natural.v[i][n] == '=')
			return km->natural.v[i] + n + 1;
	}
	return "";
}

void kmodel_driver(struct kmodel *km, const char *addr, char *buf, size_t len)
{
	char rel[PATH_MAX], p[PATH_MAX], t[PATH_MAX];
	const char *dir = gp_fake_dev_dir(km->fake, addr);
	ssize_t n;

	buf[0] = '\0';
	if (!dir)
		return;
	snprintf(rel, sizeof(rel), "%s/driver", dir);
	snprintf(p, sizeof(p), "%s/%s", gp_fake_root(km->fake), rel);
	n = readlink(p, t, sizeof(t) - 1);
	if (n <= 0)
		return;
	t[n] = '\0';
	snprintf(buf, len, "%s", strrchr(t, '/') ? strrchr(t, '/') + 1 : t);
}

static int group_of(struct kmodel *km, const char *addr)
{
	char p[PATH_MAX], t[PATH_MAX];
	const char *dir = gp_fake_dev_dir(km->fake, addr);
	ssize_t n;

	if (!dir)
		return -1;
	snprintf(p, sizeof(p), "%s/%s/iommu_group", gp_fake_root(km->fake), dir);
	n = readlink(p, t, sizeof(t) - 1);
	if (n <= 0)
		return -1;
	t[n] = '\0';
	return atoi(strrchr(t, '/') ? strrchr(t, '/') + 1 : t);
}

static bool driver_loaded(struct kmodel *km, const char *drv)
{
	char p[PATH_MAX];
	struct stat sb;

	snprintf(p, sizeof(p), "%s/sys/bus/pci/drivers/%s", gp_fake_root(km->fake), drv);
	return stat(p, &sb) == 0 && S_ISDIR(sb.st_mode);
}

static void override_of(struct kmodel *km, const char *addr, char *buf, size_t len)
{
	char p[PATH_MAX];
	FILE *f;

	buf[0] = '\0';
	snprintf(p, sizeof(p), "%s/%s/driver_override", gp_fake_root(km->fake),
		 gp_fake_dev_dir(km->fake, addr));
	f = fopen(p, "r");
	if (!f)
		return;
	if (fgets(buf, (int)len, f))
		buf[strcspn(buf, "\n")] = '\0';
	fclose(f);
	if (strcmp(buf, "(null)") == 0)
		buf[0] = '\0';
}

/* Does the group still have a device on vfio-pci? */
static bool group_on_vfio(struct kmodel *km, int group)
{
	char p[PATH_MAX];
	struct dirent *de;
	bool any = false;
	DIR *d;

	snprintf(p, sizeof(p), "%s/sys/kernel/iommu_groups/%d/devices", gp_fake_root(km->fake), group);
	d = opendir(p);
	if (!d)
		return false;
	while ((de = readdir(d))) {
		char drv[64];

		if (de->d_name[0] == '.')
			continue;
		kmodel_driver(km, de->d_name, drv, sizeof(drv));
		any |= strcmp(drv, "vfio-pci") == 0;
	}
	closedir(d);
	return any;
}

int kmodel_bind(struct kmodel *km, const char *addr, const char *drv)
{
	const char *dir = gp_fake_dev_dir(km->fake, addr);
	char rel[PATH_MAX], target[PATH_MAX];
	int r;

	if (!dir)
		return -ENODEV;
	if (!driver_loaded(km, drv) || strcmp(drv, km->fail_driver) == 0)
		return -ENODEV;
	snprintf(rel, sizeof(rel), "%s/driver", dir);
	snprintf(target, sizeof(target), "/sys/bus/pci/drivers/%s", drv);
	r = gp_fake_symlink(km->fake, target, rel);
	if (r < 0)
		return r;
	snprintf(rel, sizeof(rel), "sys/bus/pci/drivers/%s/%s", drv, addr);
	snprintf(target, sizeof(target), "/%s", dir);
	r = gp_fake_symlink(km->fake, target, rel);
	if (r < 0)
		return r;
	km->binds++;
	if (km->crash_at_bind && km->binds == km->crash_at_bind)
		_exit(9); /* kill -9 in the middle of a mount */
	if (strcmp(drv, "vfio-pci") == 0) {
		int g = group_of(km, addr);

		snprintf(rel, sizeof(rel), "dev/vfio/%d", g);
		r = gp_fake_write(km->fake, rel, "", 0);
		km->vfio_binds++;
		if (km->crash_at_vfio_bind && km->vfio_binds == km->crash_at_vfio_bind)
			_exit(9); /* kill -9 between two binds */
	}
	return r;
}

static int unbind(struct kmodel *km, const char *addr, const char *drv)
{
	const char *dir = gp_fake_dev_dir(km->fake, addr);
	char cur[64], rel[PATH_MAX];

	if (!dir)
		return -ENODEV;
	kmodel_driver(km, addr, cur, sizeof(cur));
	if (strcmp(cur, drv) != 0)
		return -ENODEV;
	snprintf(rel, sizeof(rel), "%s/driver", dir);
	gp_fake_unlink(km->fake, rel);
	snprintf(rel, sizeof(rel), "sys/bus/pci/drivers/%s/%s", drv, addr);
	gp_fake_unlink(km->fake, rel);
	if (strcmp(drv, "vfio-pci") == 0 && !group_on_vfio(km, group_of(km, addr))) {
		snprintf(rel, sizeof(rel), "dev/vfio/%d", group_of(km, addr));
		gp_fake_unlink(km->fake, rel);
	}
	return 0;
}

/* The PCI core's driver matching, as drivers_probe runs it. */
static int probe(struct kmodel *km, const char *addr)
{
	char cur[64], ovr[64];
	const char *drv;

	if (!gp_fake_dev_dir(km->fake, addr))
		return -ENODEV;
	kmodel_driver(km, addr, cur, sizeof(cur));
	if (cur[0])
		return 0;
	override_of(km, addr, ovr, sizeof(ovr));
	/* With an override, only that driver may bind (pci_match_device). */
	drv = ovr[0] ? ovr : natural_of(km, addr);
	if (!drv[0] || !driver_loaded(km, drv))
		return -EINVAL;
	if (strcmp(drv, "vfio-pci") == 0 && strcmp(addr, km->fail_vfio) == 0)
		return -EINVAL;
	return kmodel_bind(km, addr, drv);
}

int kmodel_hook(void *data, struct gp_sysfs *sys, const char *path, const char *val)
{
	struct kmodel *km = data;
	char addr[64], drv[64], attr[64];

	(void)sys;
	(void)gp_strv_push_printf(&km->writes, "%s <- %s", path, strcmp(val, "\n") ? val : "\\n");
	if (km->sleep_first_ms && !km->slept) {
		struct timespec ts = { km->sleep_first_ms / 1000,
				       (long)(km->sleep_first_ms % 1000) * 1000000L };

		km->slept = true;
		nanosleep(&ts, NULL);
	}
	snprintf(addr, sizeof(addr), "%s", val);
	addr[strcspn(addr, "\n")] = '\0';
	if (sscanf(path, "/sys/bus/pci/devices/%63[^/]/%63s", drv, attr) == 2 &&
	    strcmp(attr, "driver_override") == 0) {
		const char *dir = gp_fake_dev_dir(km->fake, drv);
		char rel[PATH_MAX];

		if (!dir)
			return -ENOENT;
		snprintf(rel, sizeof(rel), "%s/driver_override", dir);
		return gp_fake_printf(km->fake, rel, "%s\n", strcmp(val, "\n") ? val : "(null)");
	}
	if (strcmp(path, "/sys/bus/pci/drivers_probe") == 0)
		return probe(km, addr);
	if (sscanf(path, "/sys/bus/pci/drivers/%63[^/]/%63s", drv, attr) == 2) {
		if (!driver_loaded(km, drv))
			return -ENOENT;
		if (strcmp(attr, "unbind") == 0)
			return unbind(km, addr, drv);
		if (strcmp(attr, "bind") == 0) {
			char cur[64], ovr[64];

			kmodel_driver(km, addr, cur, sizeof(cur));
			override_of(km, addr, ovr, sizeof(ovr));
			if (cur[0] || (ovr[0] && strcmp(ovr, drv) != 0))
				return -EBUSY;
			return kmodel_bind(km, addr, drv);
		}
	}
	return -EACCES; /* anything else: not a file the model knows */
}

int kmodel_load(void *data, struct gp_ctx *ctx, const char *name)
{
	struct kmodel *km = data;

	(void)ctx;
	km->loads++;
	if (!km->load_ok || strcmp(name, "vfio-pci") != 0)
		return -ENOENT;
	gp_fake_printf(km->fake, "sys/module/vfio_pci/refcnt", "0\n");
	return gp_fake_mkdir(km->fake, "sys/bus/pci/drivers/vfio-pci");
}

int kmodel_init(struct kmodel *km, struct gp_fake *fake, bool vfio_loaded)
{
	char p[PATH_MAX];
	struct dirent *de;
	DIR *d;

	memset(km, 0, sizeof(*km));
	km->fake = fake;
	snprintf(p, sizeof(p), "%s/sys/bus/pci/devices", gp_fake_root(fake));
	d = opendir(p);
	if (!d)
		return -errno;
	while ((de = readdir(d))) {
		char drv[64];

		if (de->d_name[0] == '.')
			continue;
		kmodel_driver(km, de->d_name, drv, sizeof(drv));
		if (drv[0] && strcmp(drv, "vfio-pci") != 0)
			gp_strv_push_printf(&km->natural, "%s=%s", de->d_name, drv);
	}
	closedir(d);
	if (vfio_loaded)
		return gp_fake_mkdir(fake, "sys/bus/pci/drivers/vfio-pci");
	return 0;
}

void kmodel_clear(struct kmodel *km)
{
	gp_strv_clear(&km->natural);
	gp_strv_clear(&km->writes);
}

/* --- snapshots --- */

static struct {
	char *buf;
	size_t len, cap;
	size_t rootlen;
} snap; /* nftw has no user pointer; tests are single-threaded here */

static void snap_add(const char *s)
{
	size_t n = strlen(s);

	if (snap.len + n + 1 > snap.cap) {
		snap.cap = (snap.len + n + 1) * 2;
		snap.buf = realloc(snap.buf, snap.cap);
	}
	memcpy(snap.buf + snap.len, s, n + 1);
	snap.len += n;
}

static int snap_one(const char *path, const struct stat *sb, int type, struct FTW *ftw)
{
	char line[PATH_MAX * 2];

	(void)ftw;
	snprintf(line, sizeof(line), "%s ", path + snap.rootlen);
	snap_add(line);
	if (type == FTW_SL) {
		char t[PATH_MAX];
		ssize_t n = readlink(path, t, sizeof(t) - 1);

		t[n > 0 ? n : 0] = '\0';
		snprintf(line, sizeof(line), "-> %s\n", t);
		snap_add(line);
	} else if (type == FTW_F && sb->st_size < 65536) {
		FILE *f = fopen(path, "rb");
		char data[65536 + 1];
		size_t n = f ? fread(data, 1, sizeof(data) - 1, f) : 0;

		if (f)
			fclose(f);
		for (size_t i = 0; i < n; i++)
			if (data[i] == '\0')
				data[i] = '.';
		data[n] = '\0';
		snap_add("= ");
		snap_add(data);
		snap_add("\n");
	} else {
		snap_add("\n");
	}
	return 0;
}

char *tree_snapshot(const char *root)
{
	memset(&snap, 0, sizeof(snap));
	snap.rootlen = strlen(root);
	snap_add("");
	nftw(root, snap_one, 16, FTW_PHYS);
	return snap.buf;
}

char *db_snapshot(const char *dbpath)
{
	static const char *const tables[] = { "gpu", "function", "vm", "assignment" };
	struct gp_strv out = { 0 };
	sqlite3 *db;
	char *res;
	size_t len = 1;

	if (sqlite3_open_v2(dbpath, &db, SQLITE_OPEN_READONLY, NULL) != SQLITE_OK) {
		sqlite3_close(db);
		return strdup("(no database)");
	}
	for (size_t t = 0; t < GP_ARRAY_SIZE(tables); t++) {
		char sql[128];
		sqlite3_stmt *s;

		snprintf(sql, sizeof(sql), "SELECT * FROM %s ORDER BY 1", tables[t]);
		if (sqlite3_prepare_v2(db, sql, -1, &s, NULL) != SQLITE_OK) {
			gp_strv_push_printf(&out, "%s: (none)\n", tables[t]);
			continue;
		}
		while (sqlite3_step(s) == SQLITE_ROW) {
			gp_strv_push_printf(&out, "%s:", tables[t]);
			for (int c = 0; c < sqlite3_column_count(s); c++) {
				/* `changed` is a timestamp: not content */
				if (strcmp(sqlite3_column_name(s, c), "changed") == 0)
					continue;
				gp_strv_push_printf(&out, " %s", sqlite3_column_text(s, c) ?
						    (const char *)sqlite3_column_text(s, c) : "NULL");
			}
			gp_strv_push(&out, "\n");
		}
		sqlite3_finalize(s);
	}
	sqlite3_close(db);
	for (size_t i = 0; i < out.n; i++)
		len += strlen(out.v[i]);
	res = calloc(1, len);
	for (size_t i = 0; i < out.n; i++)
		strcat(res, out.v[i]);
	gp_strv_clear(&out);
	return res;
}
