/* SPDX-License-Identifier: Apache-2.0 */
/* The state database: real SQLite in a temporary directory. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>
#include <sqlite3.h>

#include "host/state.h"

struct fx {
	char dir[64];
	char db[128];
	struct gp_state *st;
};

static int setup(void **state)
{
	struct fx *fx = calloc(1, sizeof(*fx));

	strcpy(fx->dir, "/tmp/gp-state-XXXXXX");
	if (!mkdtemp(fx->dir))
		return -1;
	snprintf(fx->db, sizeof(fx->db), "%s/test.db", fx->dir);
	if (gp_state_open_path(fx->db, NULL, &fx->st) < 0)
		return -1;
	*state = fx;
	return 0;
}

static int teardown(void **state)
{
	struct fx *fx = *state;
	char cmd[128];

	gp_state_close(fx->st);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", fx->dir);
	if (system(cmd) != 0)
		return -1;
	free(fx);
	return 0;
}

static void sql_scalar(const char *db, const char *sql, char *out, size_t len)
{
	sqlite3 *h;
	sqlite3_stmt *s;

	assert_int_equal(sqlite3_open(db, &h), SQLITE_OK);
	assert_int_equal(sqlite3_prepare_v2(h, sql, -1, &s, NULL), SQLITE_OK);
	assert_int_equal(sqlite3_step(s), SQLITE_ROW);
	snprintf(out, len, "%s", (const char *)sqlite3_column_text(s, 0));
	sqlite3_finalize(s);
	sqlite3_close(h);
}

static int sql_exec(const char *db, const char *sql)
{
	sqlite3 *h;
	int rc;

	assert_int_equal(sqlite3_open(db, &h), SQLITE_OK);
	sqlite3_exec(h, "PRAGMA foreign_keys = ON", NULL, NULL, NULL);
	rc = sqlite3_exec(h, sql, NULL, NULL, NULL);
	sqlite3_close(h);
	return rc;
}

static void add_gpu(struct gp_state *st, const char *addr, const char *audio)
{
	struct gp_state_gpu g = { .iommu_group = 7, .state = GP_GPU_DISMOUNTED };

	snprintf(g.address, sizeof(g.address), "%s", addr);
	snprintf(g.fn[0].address, sizeof(g.fn[0].address), "%s", addr);
	strcpy(g.fn[0].original_driver, "nvidia");
	g.fn[0].vendor_id = 0x10de;
	g.fn[0].device_id = 0x1eb8;
	g.nfn = 1;
	if (audio) {
		snprintf(g.fn[1].address, sizeof(g.fn[1].address), "%s", audio);
		strcpy(g.fn[1].original_driver, "snd_hda_intel");
		g.nfn = 2;
	}
	assert_int_equal(gp_state_gpu_put(st, &g), 0);
}

static void add_vm(struct gp_state *st, const char *name)
{
	struct gp_vm_config c;

	gp_vm_config_init(&c, name);
	strcpy(c.kernel, "/boot/vmlinuz");
	assert_int_equal(gp_state_vm_add(st, &c), 0);
}

static void test_schema(void **state)
{
	struct fx *fx = *state;
	char v[64];

	sql_scalar(fx->db, "PRAGMA user_version", v, sizeof(v));
	assert_int_equal(atoi(v), GP_STATE_SCHEMA_VERSION);
	sql_scalar(fx->db, "PRAGMA journal_mode", v, sizeof(v));
	assert_string_equal(v, "wal");
	/* Reopening an existing database keeps it. */
	add_vm(fx->st, "keep");
	gp_state_close(fx->st);
	assert_int_equal(gp_state_open_path(fx->db, NULL, &fx->st), 0);
	{
		struct gp_vm_config c;

		assert_int_equal(gp_state_vm_get(fx->st, "keep", &c), 0);
	}
}

/* Back to schema 3: the columns of version 4 dropped. */
static void drop_v4(const char *db)
{
	static const char *const cols[] = { "hand_gpus", "disk_backing_format", "disk_backing",
					     "disk_format" };
	char sql[96];

	for (size_t i = 0; i < sizeof(cols) / sizeof(cols[0]); i++) {
		snprintf(sql, sizeof(sql), "ALTER TABLE vm DROP COLUMN %s", cols[i]);
		assert_int_equal(sql_exec(db, sql), SQLITE_OK);
	}
}

/* A version 3 database (before the recorded disk format) is migrated: a
 * VM keeps its disk with no format recorded (vm start then asks for one:
 * the format is never guessed), and no GPUs by hand. */
static void test_migrate_v3(void **state)
{
	struct fx *fx = *state;
	struct gp_vm_config c;
	char v[64];

	add_vm(fx->st, "old");
	assert_int_equal(gp_state_vm_get(fx->st, "old", &c), 0);
	strcpy(c.disk, "/var/lib/images/old.img");
	strcpy(c.disk_format, "raw");
	assert_int_equal(gp_state_vm_update(fx->st, &c), 0);
	gp_state_close(fx->st);
	fx->st = NULL;
	drop_v4(fx->db);
	assert_int_equal(sql_exec(fx->db, "PRAGMA user_version = 3"), SQLITE_OK);
	assert_int_equal(gp_state_open_path(fx->db, NULL, &fx->st), 0);
	sql_scalar(fx->db, "PRAGMA user_version", v, sizeof(v));
	assert_int_equal(atoi(v), GP_STATE_SCHEMA_VERSION);
	assert_int_equal(gp_state_vm_get(fx->st, "old", &c), 0);
	assert_string_equal(c.disk, "/var/lib/images/old.img");
	assert_string_equal(c.disk_format, "");
	assert_int_equal(c.hand_gpus, 0);
	strcpy(c.disk_format, "qcow2");
	strcpy(c.disk_backing, "/var/lib/images/base.raw");
	strcpy(c.disk_backing_format, "raw");
	c.hand_gpus = 2;
	assert_int_equal(gp_state_vm_update(fx->st, &c), 0);
	memset(&c, 0, sizeof(c));
	assert_int_equal(gp_state_vm_get(fx->st, "old", &c), 0);
	assert_string_equal(c.disk_format, "qcow2");
	assert_string_equal(c.disk_backing, "/var/lib/images/base.raw");
	assert_string_equal(c.disk_backing_format, "raw");
	assert_int_equal(c.hand_gpus, 2);
	/* The database itself refuses a format it does not know. */
	assert_int_not_equal(sql_exec(fx->db, "UPDATE vm SET disk_format = 'vmdk'"), SQLITE_OK);
}

/* A version 1 database (before the PV columns) is migrated: its VMs keep
 * their settings and get the PV defaults; PV settings then round-trip. */
static void test_migrate_v1(void **state)
{
	struct fx *fx = *state;
	struct gp_vm_config c;
	char v[64];

	add_vm(fx->st, "old");
	gp_state_close(fx->st);
	fx->st = NULL;
	drop_v4(fx->db);
	assert_int_equal(sql_exec(fx->db, "DROP TABLE share"), SQLITE_OK);
	assert_int_equal(sql_exec(fx->db, "ALTER TABLE vm DROP COLUMN pv_shm"), SQLITE_OK);
	assert_int_equal(sql_exec(fx->db, "ALTER TABLE vm DROP COLUMN pv_weight"), SQLITE_OK);
	assert_int_equal(sql_exec(fx->db, "ALTER TABLE vm DROP COLUMN pv_memory_max"), SQLITE_OK);
	assert_int_equal(sql_exec(fx->db, "PRAGMA user_version = 1"), SQLITE_OK);
	assert_int_equal(gp_state_open_path(fx->db, NULL, &fx->st), 0);
	sql_scalar(fx->db, "PRAGMA user_version", v, sizeof(v));
	assert_int_equal(atoi(v), GP_STATE_SCHEMA_VERSION);
	assert_int_equal(gp_state_vm_get(fx->st, "old", &c), 0);
	assert_string_equal(c.kernel, "/boot/vmlinuz");
	assert_int_equal(c.pv_weight, 1);
	assert_int_equal(c.pv_memory_max, 0);
	c.passthrough = GP_PT_PV;
	c.pv_weight = 1000;
	c.pv_memory_max = 2ull << 30;
	assert_int_equal(gp_state_vm_update(fx->st, &c), 0);
	memset(&c, 0, sizeof(c));
	assert_int_equal(gp_state_vm_get(fx->st, "old", &c), 0);
	assert_int_equal(c.passthrough, GP_PT_PV);
	assert_int_equal(c.pv_weight, 1000);
	assert_int_equal(c.pv_memory_max, 2ull << 30);
	/* A weight of 0 never reaches the database. */
	c.pv_weight = 0;
	assert_int_equal(gp_state_vm_update(fx->st, &c), -EINVAL);
}

/* A version 2 database (before shares and the PV region) is migrated: its
 * VMs keep their settings, get no region (they were made without one) and
 * no shares; shares then round-trip in order, are replaced as a whole,
 * refuse a tag twice (nothing kept), and go with their VM. */
static void test_migrate_v2(void **state)
{
	struct fx *fx = *state;
	struct gp_vm_config c, c2;
	char v[64];

	add_vm(fx->st, "old");
	assert_int_equal(gp_state_vm_get(fx->st, "old", &c), 0);
	c.passthrough = GP_PT_PV;
	c.pv_weight = 5;
	assert_int_equal(gp_state_vm_update(fx->st, &c), 0);
	gp_state_close(fx->st);
	fx->st = NULL;
	drop_v4(fx->db);
	assert_int_equal(sql_exec(fx->db, "DROP TABLE share"), SQLITE_OK);
	assert_int_equal(sql_exec(fx->db, "ALTER TABLE vm DROP COLUMN pv_shm"), SQLITE_OK);
	assert_int_equal(sql_exec(fx->db, "PRAGMA user_version = 2"), SQLITE_OK);
	assert_int_equal(gp_state_open_path(fx->db, NULL, &fx->st), 0);
	sql_scalar(fx->db, "PRAGMA user_version", v, sizeof(v));
	assert_int_equal(atoi(v), GP_STATE_SCHEMA_VERSION);
	assert_int_equal(gp_state_vm_get(fx->st, "old", &c), 0);
	assert_string_equal(c.kernel, "/boot/vmlinuz");
	assert_int_equal(c.passthrough, GP_PT_PV);
	assert_int_equal(c.pv_weight, 5);
	assert_int_equal(c.pv_shm, 0);
	assert_int_equal(c.nshares, 0);

	c.pv_shm = 128ull << 20;
	c.nshares = 2;
	strcpy(c.shares[0].dir, "/srv/b");
	strcpy(c.shares[0].tag, "zeta");
	c.shares[0].readonly = true;
	strcpy(c.shares[1].dir, "/srv/a");
	strcpy(c.shares[1].tag, "alpha");
	assert_int_equal(gp_state_vm_update(fx->st, &c), 0);
	assert_int_equal(gp_state_vm_get(fx->st, "old", &c2), 0);
	assert_int_equal(c2.pv_shm, 128ull << 20);
	assert_int_equal(c2.nshares, 2);
	assert_string_equal(c2.shares[0].tag, "zeta"); /* the order given */
	assert_string_equal(c2.shares[0].dir, "/srv/b");
	assert_true(c2.shares[0].readonly);
	assert_string_equal(c2.shares[1].tag, "alpha");
	assert_false(c2.shares[1].readonly);

	/* A tag twice: refused, the stored VM unchanged. */
	strcpy(c.shares[1].tag, "zeta");
	c.pv_weight = 9;
	assert_int_equal(gp_state_vm_update(fx->st, &c), -EEXIST);
	assert_int_equal(gp_state_vm_get(fx->st, "old", &c2), 0);
	assert_int_equal(c2.pv_weight, 5);
	assert_int_equal(c2.nshares, 2);
	assert_string_equal(c2.shares[1].tag, "alpha");
	/* Bad values never reach the database. */
	strcpy(c.shares[1].tag, "a b");
	assert_int_equal(gp_state_vm_update(fx->st, &c), -EINVAL);
	strcpy(c.shares[1].tag, "ok");
	strcpy(c.shares[1].dir, "relative");
	assert_int_equal(gp_state_vm_update(fx->st, &c), -EINVAL);
	c.nshares = GP_VM_MAX_SHARES + 1;
	assert_int_equal(gp_state_vm_update(fx->st, &c), -EINVAL);

	/* Replaced as a whole; then gone with the VM. */
	c.nshares = 1;
	strcpy(c.shares[0].tag, "only");
	assert_int_equal(gp_state_vm_update(fx->st, &c), 0);
	assert_int_equal(gp_state_vm_get(fx->st, "old", &c2), 0);
	assert_int_equal(c2.nshares, 1);
	assert_string_equal(c2.shares[0].tag, "only");
	assert_int_equal(gp_state_vm_delete(fx->st, "old"), 0);
	sql_scalar(fx->db, "SELECT count(*) FROM share", v, sizeof(v));
	assert_string_equal(v, "0");
	/* A damaged row (a tag QEMU would not take) is ignored on read. */
	add_vm(fx->st, "dmg");
	assert_int_equal(sql_exec(fx->db, "INSERT INTO share(vm, pos, dir, tag) VALUES "
				  "('dmg', 0, '/x', 'bad,tag=1')"), SQLITE_OK);
	assert_int_equal(gp_state_vm_get(fx->st, "dmg", &c2), 0);
	assert_int_equal(c2.nshares, 0);
}

static void test_share_parse(void **state)
{
	static const char *const bad[] = {
		"", "/x", "/x:", ":tag", "/x::ro", "tag:ro", "/x:ro", ":", "::", "/x:tag:",
	};
	struct gp_vm_share sh;

	(void)state;
	assert_int_equal(gp_vm_share_parse("/:hostroot:ro", &sh), 0);
	assert_string_equal(sh.dir, "/");
	assert_string_equal(sh.tag, "hostroot");
	assert_true(sh.readonly);
	assert_int_equal(gp_vm_share_parse("/srv/a:b:data", &sh), 0); /* ':' in the dir */
	assert_string_equal(sh.dir, "/srv/a:b");
	assert_string_equal(sh.tag, "data");
	assert_false(sh.readonly);
	assert_int_equal(gp_vm_share_parse("/srv:data:rw", &sh), 0);
	assert_string_equal(sh.tag, "data");
	assert_false(sh.readonly);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_int_equal(gp_vm_share_parse(bad[i], &sh), -EINVAL);
	assert_int_equal(gp_vm_share_parse(NULL, &sh), -EINVAL);
	/* tags: QEMU's 31 bytes, a plain charset */
	assert_true(gp_vm_share_tag_valid("a"));
	assert_true(gp_vm_share_tag_valid("0123456789012345678901234567890"));
	assert_false(gp_vm_share_tag_valid("01234567890123456789012345678901"));
	assert_false(gp_vm_share_tag_valid(""));
	assert_false(gp_vm_share_tag_valid("a,b"));
	assert_false(gp_vm_share_tag_valid("a b"));
	assert_false(gp_vm_share_tag_valid("a/b"));
	assert_int_equal(gp_vm_share_parse("/x:01234567890123456789012345678901", &sh), -EINVAL);
}

static void test_newer_schema_refused(void **state)
{
	struct fx *fx = *state;
	struct gp_state *st2 = NULL;

	assert_int_equal(sql_exec(fx->db, "PRAGMA user_version = 99"), SQLITE_OK);
	assert_int_equal(gp_state_open_path(fx->db, NULL, &st2), -EPROTO);
	assert_null(st2);
}

static void test_garbage_file(void **state)
{
	struct fx *fx = *state;
	struct gp_state *st2 = NULL;
	char path[160];
	FILE *f;

	snprintf(path, sizeof(path), "%s/garbage.db", fx->dir);
	f = fopen(path, "w");
	assert_non_null(f);
	for (int i = 0; i < 512; i++)
		fputs("this is not a database ", f);
	fclose(f);
	assert_int_equal(gp_state_open_path(path, NULL, &st2), -EBADMSG);
	assert_null(st2);
	/* Empty: damaged, not a new database; with a WAL that holds the
	 * content, fine (never checkpointed). */
	f = fopen(path, "w");
	assert_non_null(f);
	fclose(f);
	assert_int_equal(gp_state_open_path(path, NULL, &st2), -EBADMSG);
	assert_null(st2);
	unlink(path);
	/* A directory. */
	assert_int_equal(mkdir(path, 0700), 0);
	assert_int_equal(gp_state_open_path(path, NULL, &st2), -EISDIR);
	rmdir(path);
}

static void test_vm_crud(void **state)
{
	struct fx *fx = *state;
	struct gp_vm_config c, got;
	struct gp_strv names = { 0 };

	gp_vm_config_init(&c, "web-1");
	c.memory = 4ull << 30;
	c.cpus = 4;
	strcpy(c.disk, "/var/lib/vm/web,1.qcow2");
	c.passthrough = GP_PT_DDA;
	strcpy(c.gpu_name, "Tesla T4");
	c.gpu_count = 2;
	assert_int_equal(gp_state_vm_add(fx->st, &c), 0);
	assert_int_equal(gp_state_vm_add(fx->st, &c), -EEXIST);
	assert_int_equal(gp_state_vm_get(fx->st, "web-1", &got), 0);
	assert_int_equal(got.memory, 4ull << 30);
	assert_int_equal(got.cpus, 4);
	assert_string_equal(got.disk, "/var/lib/vm/web,1.qcow2");
	assert_int_equal(got.passthrough, GP_PT_DDA);
	assert_string_equal(got.gpu_name, "Tesla T4");
	assert_int_equal(got.gpu_count, 2);
	assert_string_equal(got.accel, "auto");

	got.cpus = 8;
	assert_int_equal(gp_state_vm_update(fx->st, &got), 0);
	assert_int_equal(gp_state_vm_get(fx->st, "web-1", &c), 0);
	assert_int_equal(c.cpus, 8);

	assert_int_equal(gp_state_vm_get(fx->st, "nope", &got), -ENOENT);
	gp_vm_config_init(&c, "nope");
	assert_int_equal(gp_state_vm_update(fx->st, &c), -ENOENT);
	assert_int_equal(gp_state_vm_delete(fx->st, "nope"), -ENOENT);

	/* Invalid rows never reach the database. */
	gp_vm_config_init(&c, "../etc");
	assert_int_equal(gp_state_vm_add(fx->st, &c), -EINVAL);
	gp_vm_config_init(&c, "zero");
	c.memory = 0;
	assert_int_equal(gp_state_vm_add(fx->st, &c), -EINVAL);

	add_vm(fx->st, "a-vm");
	assert_int_equal(gp_state_vm_list(fx->st, &names), 0);
	assert_int_equal(names.n, 2);
	assert_string_equal(names.v[0], "a-vm");
	assert_string_equal(names.v[1], "web-1");
	gp_strv_clear(&names);
	assert_int_equal(gp_state_vm_delete(fx->st, "a-vm"), 0);
	assert_int_equal(gp_state_vm_list(fx->st, &names), 0);
	assert_int_equal(names.n, 1);
	gp_strv_clear(&names);
}

static void test_gpu_records(void **state)
{
	struct fx *fx = *state;
	struct gp_state_gpu g;
	struct gp_strv addrs = { 0 };

	add_gpu(fx->st, "0000:01:00.0", "0000:01:00.1");
	/* Found by any of its functions. */
	assert_int_equal(gp_state_gpu_get(fx->st, "0000:01:00.1", &g), 0);
	assert_string_equal(g.address, "0000:01:00.0");
	assert_int_equal(g.nfn, 2);
	assert_string_equal(g.fn[0].original_driver, "nvidia");
	assert_int_equal(g.fn[0].vendor_id, 0x10de);
	assert_string_equal(g.fn[1].original_driver, "snd_hda_intel");
	assert_int_equal(g.iommu_group, 7);
	assert_int_equal(g.state, GP_GPU_DISMOUNTED);

	assert_int_equal(gp_state_gpu_set_state(fx->st, "0000:01:00.1", GP_GPU_MOUNTING), 0);
	assert_int_equal(gp_state_fn_set_vfio(fx->st, "0000:01:00.1", true), 0);
	assert_int_equal(gp_state_gpu_get(fx->st, "0000:01:00.0", &g), 0);
	assert_int_equal(g.state, GP_GPU_MOUNTING);
	assert_true(g.fn[1].on_vfio);
	assert_int_equal(gp_state_fn_set_vfio(fx->st, "0000:09:00.0", true), -ENOENT);

	/* put again replaces the functions. */
	add_gpu(fx->st, "0000:01:00.0", NULL);
	assert_int_equal(gp_state_gpu_get(fx->st, "0000:01:00.0", &g), 0);
	assert_int_equal(g.nfn, 1);
	assert_int_equal(gp_state_gpu_get(fx->st, "0000:01:00.1", &g), -ENOENT);

	assert_int_equal(gp_state_gpu_list(fx->st, &addrs), 0);
	assert_int_equal(addrs.n, 1);
	gp_strv_clear(&addrs);
	assert_int_equal(gp_state_gpu_delete(fx->st, "0000:01:00.0"), 0);
	assert_int_equal(gp_state_gpu_delete(fx->st, "0000:01:00.0"), -ENOENT);
	/* The schema cascades to the functions. */
	{
		char n[16];

		sql_scalar(fx->db, "SELECT count(*) FROM function", n, sizeof(n));
		assert_string_equal(n, "0");
	}
}

/* Records are refused, on the way in and on the way out, when an address
 * is not a PCI address or a driver name could lead a path elsewhere. */
static void test_bad_records(void **state)
{
	static const struct {
		const char *gpu, *fn, *drv;
	} bad[] = {
		{ "../../etc", "0000:01:00.0", "nvidia" },
		{ "0000:01:00.0", "0000:01:00.0/../..", "nvidia" },
		{ "0000:01:00.0", "0000:01:00.0", "../../module" },
		{ "0000:01:00.0", "0000:01:00.0", "a/b" },
		{ "0000:01:00.0", "0000:01:00.0", ".." },
		{ "", "0000:01:00.0", "nvidia" },
		{ "0000:01:20.0", "0000:01:20.0", "nvidia" }, /* device 0x20 > 31 */
		{ "0000:01:00.8", "0000:01:00.8", "nvidia" }, /* function 8 > 7 */
	};
	struct fx *fx = *state;
	char n[16];

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct gp_state_gpu g = { .iommu_group = 7, .state = GP_GPU_DISMOUNTING, .nfn = 1 };

		snprintf(g.address, sizeof(g.address), "%s", bad[i].gpu);
		snprintf(g.fn[0].address, sizeof(g.fn[0].address), "%s", bad[i].fn);
		snprintf(g.fn[0].original_driver, sizeof(g.fn[0].original_driver), "%s",
			 bad[i].drv);
		assert_int_equal(gp_state_gpu_put(fx->st, &g), -EINVAL);
	}
	sql_scalar(fx->db, "SELECT count(*) FROM gpu", n, sizeof(n));
	assert_string_equal(n, "0");
	/* "" (no driver) and "?" (unknown) are fine. */
	add_gpu(fx->st, "0000:01:00.0", "0000:01:00.1");
	assert_int_equal(sql_exec(fx->db, "UPDATE function SET original_driver = '' "
					  "WHERE address = '0000:01:00.0'; UPDATE function SET "
					  "original_driver = '?' WHERE address = '0000:01:00.1'"), 0);
	{
		struct gp_state_gpu g;

		assert_int_equal(gp_state_gpu_get(fx->st, "0000:01:00.0", &g), 0);
		/* Damaged behind our back: refused when read. */
		assert_int_equal(sql_exec(fx->db, "UPDATE function SET original_driver = "
						  "'x/../../y' WHERE address = '0000:01:00.1'"), 0);
		assert_int_equal(gp_state_gpu_get(fx->st, "0000:01:00.0", &g), -EBADMSG);
	}
}

/* One GPU is held by at most one VM: enforced by the schema. */
static void test_one_vm_per_gpu(void **state)
{
	struct fx *fx = *state;
	struct gp_strv gpus = { 0 };
	char owner[GP_NAME_LEN];

	add_gpu(fx->st, "0000:3b:00.0", NULL);
	add_gpu(fx->st, "0000:5e:00.0", NULL);
	add_vm(fx->st, "vm-a");
	add_vm(fx->st, "vm-b");
	assert_int_equal(gp_state_gpu_owner(fx->st, "0000:3b:00.0", owner, sizeof(owner)), -ENOENT);
	assert_int_equal(gp_state_assign(fx->st, "0000:3b:00.0", "vm-a"), 0);
	assert_int_equal(gp_state_assign(fx->st, "0000:3b:00.0", "vm-a"), 0); /* idempotent */
	assert_int_equal(gp_state_assign(fx->st, "0000:3b:00.0", "vm-b"), -EBUSY);
	assert_int_equal(gp_state_gpu_owner(fx->st, "0000:3b:00.0", owner, sizeof(owner)), 0);
	assert_string_equal(owner, "vm-a");
	/* Not even raw SQL can give it to a second VM. */
	assert_int_not_equal(sql_exec(fx->db, "INSERT INTO assignment(gpu, vm) "
					      "VALUES ('0000:3b:00.0', 'vm-b')"), SQLITE_OK);
	/* Nor assign a GPU that is not dismounted, or to a VM that does not exist. */
	assert_int_equal(gp_state_assign(fx->st, "0000:77:00.0", "vm-a"), -ENOENT);
	assert_int_equal(gp_state_assign(fx->st, "0000:5e:00.0", "ghost"), -ENOENT);
	assert_int_not_equal(sql_exec(fx->db, "INSERT INTO assignment(gpu, vm) "
					      "VALUES ('0000:5e:00.0', 'ghost')"), SQLITE_OK);

	assert_int_equal(gp_state_assign(fx->st, "0000:5e:00.0", "vm-a"), 0);
	assert_int_equal(gp_state_vm_gpus(fx->st, "vm-a", &gpus), 0);
	assert_int_equal(gpus.n, 2);
	gp_strv_clear(&gpus);
	/* Mounting a held GPU (its VM stopped) keeps the VM's claim. */
	assert_int_equal(gp_state_gpu_delete(fx->st, "0000:5e:00.0"), 0);
	assert_int_equal(gp_state_gpu_owner(fx->st, "0000:5e:00.0", owner, sizeof(owner)), 0);
	assert_string_equal(owner, "vm-a");
	assert_int_equal(gp_state_unassign(fx->st, "0000:5e:00.0"), 0);
	add_gpu(fx->st, "0000:5e:00.0", NULL);
	assert_int_equal(gp_state_assign(fx->st, "0000:5e:00.0", "vm-a"), 0);
	assert_int_equal(gp_state_unassign(fx->st, "0000:3b:00.0"), 0);
	assert_int_equal(gp_state_unassign(fx->st, "0000:3b:00.0"), -ENOENT);
	assert_int_equal(gp_state_assign(fx->st, "0000:3b:00.0", "vm-b"), 0);
	/* Deleting a VM frees its GPUs. */
	assert_int_equal(gp_state_vm_delete(fx->st, "vm-a"), 0);
	assert_int_equal(gp_state_gpu_owner(fx->st, "0000:5e:00.0", owner, sizeof(owner)), -ENOENT);
	assert_int_equal(gp_state_gpu_owner(fx->st, "0000:3b:00.0", owner, sizeof(owner)), 0);
	assert_string_equal(owner, "vm-b");
}

static void test_transactions(void **state)
{
	struct fx *fx = *state;
	struct gp_vm_config c;
	struct gp_state *other;

	assert_int_equal(gp_state_begin(fx->st), 0);
	add_vm(fx->st, "tx-1");
	assert_int_equal(gp_state_begin(fx->st), 0); /* nested */
	add_vm(fx->st, "tx-2");
	assert_int_equal(gp_state_commit(fx->st), 0);
	/* Another connection does not see uncommitted rows. */
	assert_int_equal(gp_state_open_path(fx->db, NULL, &other), 0);
	assert_int_equal(gp_state_vm_get(other, "tx-1", &c), -ENOENT);
	gp_state_rollback(fx->st);
	assert_int_equal(gp_state_vm_get(fx->st, "tx-1", &c), -ENOENT);
	assert_int_equal(gp_state_vm_get(fx->st, "tx-2", &c), -ENOENT);
	assert_int_equal(gp_state_commit(fx->st), -EINVAL);

	assert_int_equal(gp_state_begin(fx->st), 0);
	add_vm(fx->st, "tx-3");
	assert_int_equal(gp_state_commit(fx->st), 0);
	assert_int_equal(gp_state_vm_get(other, "tx-3", &c), 0);
	gp_state_close(other);
}

static void test_names_and_parsing(void **state)
{
	enum gp_passthrough pt;

	(void)state;
	assert_true(gp_vm_name_valid("vm_1.test-x"));
	assert_false(gp_vm_name_valid(""));
	assert_false(gp_vm_name_valid("-x"));
	assert_false(gp_vm_name_valid(".hidden"));
	assert_false(gp_vm_name_valid("a/b"));
	assert_false(gp_vm_name_valid("a b"));
	assert_false(gp_vm_name_valid("0123456789012345678901234567890123456789012345678901234567890123"));
	assert_int_equal(gp_passthrough_parse("DDA", &pt), 0);
	assert_int_equal(pt, GP_PT_DDA);
	assert_int_equal(gp_passthrough_parse("DirectDeviceAssignment", &pt), 0);
	assert_int_equal(pt, GP_PT_DDA);
	assert_int_equal(gp_passthrough_parse("ParaVirtualization", &pt), 0);
	assert_int_equal(pt, GP_PT_PV);
	assert_int_equal(gp_passthrough_parse("none", &pt), 0);
	assert_int_equal(pt, GP_PT_NONE);
	assert_int_equal(gp_passthrough_parse("gpu", &pt), -EINVAL);
	assert_int_equal(gp_passthrough_parse(NULL, &pt), -EINVAL);
	assert_string_equal(gp_passthrough_name(GP_PT_PV), "pv");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_schema, setup, teardown),
		cmocka_unit_test_setup_teardown(test_migrate_v1, setup, teardown),
		cmocka_unit_test_setup_teardown(test_migrate_v2, setup, teardown),
		cmocka_unit_test_setup_teardown(test_migrate_v3, setup, teardown),
		cmocka_unit_test(test_share_parse),
		cmocka_unit_test_setup_teardown(test_newer_schema_refused, setup, teardown),
		cmocka_unit_test_setup_teardown(test_garbage_file, setup, teardown),
		cmocka_unit_test_setup_teardown(test_vm_crud, setup, teardown),
		cmocka_unit_test_setup_teardown(test_gpu_records, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bad_records, setup, teardown),
		cmocka_unit_test_setup_teardown(test_one_vm_per_gpu, setup, teardown),
		cmocka_unit_test_setup_teardown(test_transactions, setup, teardown),
		cmocka_unit_test(test_names_and_parsing),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
