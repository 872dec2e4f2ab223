/* SPDX-License-Identifier: Apache-2.0 */
#include "state.h"

#include <errno.h>
#include <limits.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "context.h"
#include "pci.h"

struct gp_state {
	sqlite3 *db;
	const struct gp_log *log;
	int depth; /* gp_state_begin() nesting */
};

/* Version 1. A foreign key makes an assignment impossible without its VM;
 * the primary key on assignment.gpu makes a second VM for one GPU
 * impossible. The GPU is not a foreign key: an assignment is the VM's claim
 * and outlives a mount of the GPU while the VM is stopped (vm start then
 * asks for a dismount). */
static const char schema_v1[] =
	"CREATE TABLE gpu ("
	"  address TEXT PRIMARY KEY NOT NULL,"
	"  iommu_group INTEGER NOT NULL,"
	"  state INTEGER NOT NULL CHECK (state IN (0, 1, 2)),"
	"  auto_for_vm TEXT NOT NULL DEFAULT '',"
	"  changed INTEGER NOT NULL DEFAULT (strftime('%s','now')));"
	"CREATE TABLE function ("
	"  address TEXT PRIMARY KEY NOT NULL,"
	"  gpu TEXT NOT NULL REFERENCES gpu(address) ON DELETE CASCADE,"
	"  original_driver TEXT NOT NULL DEFAULT '',"
	"  vendor_id INTEGER NOT NULL DEFAULT 0,"
	"  device_id INTEGER NOT NULL DEFAULT 0,"
	"  on_vfio INTEGER NOT NULL DEFAULT 0);"
	"CREATE INDEX function_gpu ON function(gpu);"
	"CREATE TABLE vm ("
	"  name TEXT PRIMARY KEY NOT NULL,"
	"  memory INTEGER NOT NULL CHECK (memory > 0),"
	"  cpus INTEGER NOT NULL CHECK (cpus > 0),"
	"  disk TEXT NOT NULL DEFAULT '',"
	"  kernel TEXT NOT NULL DEFAULT '',"
	"  initrd TEXT NOT NULL DEFAULT '',"
	"  append TEXT NOT NULL DEFAULT '',"
	"  passthrough TEXT NOT NULL CHECK (passthrough IN ('none', 'dda', 'pv')),"
	"  gpu_name TEXT NOT NULL DEFAULT '',"
	"  gpu_count INTEGER NOT NULL DEFAULT 0 CHECK (gpu_count >= 0),"
	"  accel TEXT NOT NULL DEFAULT 'auto',"
	"  extra TEXT NOT NULL DEFAULT '');"
	"CREATE TABLE assignment ("
	"  gpu TEXT PRIMARY KEY NOT NULL,"
	"  vm TEXT NOT NULL REFERENCES vm(name));"
	"CREATE INDEX assignment_vm ON assignment(vm);";

void gp_why_set(struct gp_why *why, const char *fmt, ...)
{
	va_list ap;

	if (!why)
		return;
	va_start(ap, fmt);
	vsnprintf(why->msg, sizeof(why->msg), fmt, ap);
	va_end(ap);
}

const char *gp_passthrough_name(enum gp_passthrough pt)
{
	switch (pt) {
	case GP_PT_DDA:
		return "dda";
	case GP_PT_PV:
		return "pv";
	case GP_PT_NONE:
	default:
		return "none";
	}
}

int gp_passthrough_parse(const char *s, enum gp_passthrough *out)
{
	if (!s)
		return -EINVAL;
	if (strcasecmp(s, "dda") == 0 || strcasecmp(s, "DirectDeviceAssignment") == 0)
		*out = GP_PT_DDA;
	else if (strcasecmp(s, "pv") == 0 || strcasecmp(s, "ParaVirtualization") == 0)
		*out = GP_PT_PV;
	else if (strcasecmp(s, "none") == 0)
		*out = GP_PT_NONE;
	else
		return -EINVAL;
	return 0;
}

void gp_vm_config_init(struct gp_vm_config *cfg, const char *name)
{
	memset(cfg, 0, sizeof(*cfg));
	if (name)
		snprintf(cfg->name, sizeof(cfg->name), "%s", name);
	cfg->memory = 1ull << 30;
	cfg->cpus = 2;
	cfg->passthrough = GP_PT_NONE;
	strcpy(cfg->accel, "auto");
	cfg->pv_weight = 1;
	cfg->pv_shm = GP_VM_PV_SHM_DEFAULT;
}

bool gp_vm_share_tag_valid(const char *tag)
{
	size_t n = tag ? strlen(tag) : 0;

	if (n == 0 || n > GP_SHARE_TAG_MAX)
		return false;
	for (size_t i = 0; i < n; i++) {
		char c = tag[i];

		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		      (c >= '0' && c <= '9') || c == '_' || c == '.' || c == '-'))
			return false;
	}
	return true;
}

int gp_vm_share_parse(const char *spec, struct gp_vm_share *out)
{
	struct gp_vm_share sh;
	const char *c1, *c2;
	size_t dlen, tlen;

	memset(&sh, 0, sizeof(sh));
	if (!spec)
		return -EINVAL;
	c2 = strrchr(spec, ':');
	if (!c2)
		return -EINVAL;
	/* HOSTDIR:TAG:ro / HOSTDIR:TAG:rw, else HOSTDIR:TAG. */
	if (strcmp(c2 + 1, "ro") == 0 || strcmp(c2 + 1, "rw") == 0) {
		sh.readonly = c2[1] == 'r' && c2[2] == 'o';
		for (c1 = c2; c1 > spec && c1[-1] != ':'; c1--)
			;
		if (c1 == spec)
			return -EINVAL;
		c1--; /* the colon before TAG */
	} else {
		c1 = c2;
		c2 = spec + strlen(spec);
	}
	dlen = (size_t)(c1 - spec);
	tlen = (size_t)(c2 - c1 - 1);
	if (dlen == 0 || dlen >= sizeof(sh.dir) || tlen == 0 || tlen >= sizeof(sh.tag))
		return -EINVAL;
	memcpy(sh.dir, spec, dlen);
	memcpy(sh.tag, c1 + 1, tlen);
	*out = sh;
	return 0;
}

bool gp_vm_name_valid(const char *name)
{
	size_t n;

	if (!name || !*name || name[0] == '.' || name[0] == '-')
		return false;
	n = strlen(name);
	if (n >= GP_NAME_LEN)
		return false;
	for (size_t i = 0; i < n; i++) {
		char c = name[i];

		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		      (c >= '0' && c <= '9') || c == '_' || c == '.' || c == '-'))
			return false;
	}
	return true;
}

/* SQLite result codes to errno, so callers see one convention. */
static int sql_errno(struct gp_state *st, int rc, const char *what)
{
	int ext = sqlite3_extended_errcode(st->db);

	if (rc == SQLITE_OK || rc == SQLITE_DONE || rc == SQLITE_ROW)
		return 0;
	gp_dbg(st->log, "state: %s: %s", what, sqlite3_errmsg(st->db));
	switch (rc & 0xff) {
	case SQLITE_BUSY:
	case SQLITE_LOCKED:
		return -EAGAIN;
	case SQLITE_CONSTRAINT:
		if (ext == SQLITE_CONSTRAINT_PRIMARYKEY || ext == SQLITE_CONSTRAINT_UNIQUE)
			return -EEXIST;
		if (ext == SQLITE_CONSTRAINT_FOREIGNKEY)
			return -ENOENT;
		return -EINVAL;
	case SQLITE_NOMEM:
		return -ENOMEM;
	case SQLITE_READONLY:
	case SQLITE_PERM:
	case SQLITE_AUTH:
		return -EACCES;
	case SQLITE_CANTOPEN:
		return -ENOENT;
	case SQLITE_FULL:
		return -ENOSPC;
	case SQLITE_CORRUPT:
	case SQLITE_NOTADB:
		return -EBADMSG;
	default:
		return -EIO;
	}
}

static int exec(struct gp_state *st, const char *sql)
{
	char *msg = NULL;
	int rc = sqlite3_exec(st->db, sql, NULL, NULL, &msg);

	if (rc != SQLITE_OK) {
		gp_dbg(st->log, "state: %s: %s", sql, msg ? msg : "?");
		sqlite3_free(msg);
		return sql_errno(st, rc, sql);
	}
	return 0;
}

static int prepare(struct gp_state *st, const char *sql, sqlite3_stmt **out)
{
	int rc = sqlite3_prepare_v2(st->db, sql, -1, out, NULL);

	return rc == SQLITE_OK ? 0 : sql_errno(st, rc, sql);
}

int gp_state_begin(struct gp_state *st)
{
	int r;

	if (st->depth > 0) {
		st->depth++;
		return 0;
	}
	r = exec(st, "BEGIN IMMEDIATE");
	if (r == 0)
		st->depth = 1;
	return r;
}

int gp_state_commit(struct gp_state *st)
{
	int r;

	if (st->depth <= 0)
		return -EINVAL;
	if (st->depth > 1) {
		st->depth--;
		return 0;
	}
	r = exec(st, "COMMIT");
	if (r == 0)
		st->depth = 0;
	return r;
}

void gp_state_rollback(struct gp_state *st)
{
	if (st->depth <= 0)
		return;
	/* A nested failure aborts the whole transaction: partial intent must
	 * never be stored. */
	st->depth = 0;
	(void)exec(st, "ROLLBACK");
}

static int user_version(struct gp_state *st, int *out)
{
	sqlite3_stmt *s;
	int r = prepare(st, "PRAGMA user_version", &s);

	if (r < 0)
		return r;
	if (sqlite3_step(s) != SQLITE_ROW)
		r = sql_errno(st, sqlite3_errcode(st->db), "user_version");
	else
		*out = sqlite3_column_int(s, 0);
	sqlite3_finalize(s);
	return r ? r : 0;
}

static int migrate(struct gp_state *st)
{
	int version, r;

	/* The common case (up to date) takes no write lock, so opening the
	 * database never waits for another gpupass's transaction. */
	r = user_version(st, &version);
	if (r < 0)
		return r;
	if (version == GP_STATE_SCHEMA_VERSION)
		return 0;
	r = gp_state_begin(st);
	if (r < 0)
		return r;
	r = user_version(st, &version); /* again, under the lock */
	if (r < 0)
		goto err_rollback;
	if (version > GP_STATE_SCHEMA_VERSION) {
		gp_info(st->log, "state database has schema %d, newer than this gpupass (%d)",
		       version, GP_STATE_SCHEMA_VERSION);
		r = -EPROTO;
		goto err_rollback;
	}
	if (version < 1) {
		r = exec(st, schema_v1);
		if (r < 0)
			goto err_rollback;
	}
	if (version < 2) {
		/* Version 2: the PV partition of a VM. */
		r = exec(st, "ALTER TABLE vm ADD COLUMN pv_memory_max INTEGER NOT NULL DEFAULT 0 "
			     "CHECK (pv_memory_max >= 0);"
			     "ALTER TABLE vm ADD COLUMN pv_weight INTEGER NOT NULL DEFAULT 1 "
			     "CHECK (pv_weight > 0);");
		if (r < 0)
			goto err_rollback;
	}
	if (version < 3) {
		/* Version 3: the PV shared-memory region, and the host folders
		 * a VM exports (in the order given: pos). The foreign key
		 * drops them with their VM. */
		r = exec(st, "ALTER TABLE vm ADD COLUMN pv_shm INTEGER NOT NULL DEFAULT 0 "
			     "CHECK (pv_shm >= 0);"
			     "CREATE TABLE share ("
			     "  vm TEXT NOT NULL REFERENCES vm(name) ON DELETE CASCADE,"
			     "  pos INTEGER NOT NULL,"
			     "  dir TEXT NOT NULL,"
			     "  tag TEXT NOT NULL,"
			     "  readonly INTEGER NOT NULL DEFAULT 0 CHECK (readonly IN (0, 1)),"
			     "  PRIMARY KEY (vm, tag));");
		if (r < 0)
			goto err_rollback;
	}
	if (version < 4) {
		/* Version 4: the disk format and backing chain fixed at create
		 * (older VMs keep '' and must be given a format). */
		r = exec(st, "ALTER TABLE vm ADD COLUMN disk_format TEXT NOT NULL DEFAULT '' "
			     "CHECK (disk_format IN ('', 'raw', 'qcow2'));"
			     "ALTER TABLE vm ADD COLUMN disk_backing TEXT NOT NULL DEFAULT '';"
			     "ALTER TABLE vm ADD COLUMN disk_backing_format TEXT NOT NULL DEFAULT '' "
			     "CHECK (disk_backing_format IN ('', 'raw', 'qcow2'));"
			     "ALTER TABLE vm ADD COLUMN hand_gpus INTEGER NOT NULL DEFAULT 0 "
			     "CHECK (hand_gpus >= 0);");
		if (r < 0)
			goto err_rollback;
	}
	if (version != GP_STATE_SCHEMA_VERSION) {
		char sql[64];

		snprintf(sql, sizeof(sql), "PRAGMA user_version = %d", GP_STATE_SCHEMA_VERSION);
		r = exec(st, sql);
		if (r < 0)
			goto err_rollback;
	}
	return gp_state_commit(st);

err_rollback:
	gp_state_rollback(st);
	return r;
}

/* What SQLite would take silently: a directory (it says "unable to open"),
 * and an empty file, which it treats as a new database (every VM and
 * every dismount forgotten without a word). An empty file is damage unless
 * its write-ahead log holds the content (a database that never got a
 * checkpoint). */
static int check_file(const char *path)
{
	struct stat sb, wal;
	char *w = gp_strdup_printf("%s-wal", path);
	int r = -EBADMSG;

	if (!w)
		return -ENOMEM;
	/* Another gpupass may have created it a moment ago and not yet
	 * written its first page: an empty file must stay empty for a
	 * second to count as damage. */
	for (int tries = 0; tries < 20; tries++) {
		if (stat(path, &sb) < 0) {
			r = errno == ENOENT ? 0 : -errno;
			break;
		}
		if (S_ISDIR(sb.st_mode) || !S_ISREG(sb.st_mode)) {
			r = S_ISDIR(sb.st_mode) ? -EISDIR : -EBADMSG;
			break;
		}
		if (sb.st_size > 0 || (stat(w, &wal) == 0 && wal.st_size > 0)) {
			r = 0;
			break;
		}
		usleep(50000);
	}
	free(w);
	return r;
}

int gp_state_open_path(const char *path, const struct gp_log *log, struct gp_state **out)
{
	static const struct gp_log quiet;
	struct gp_state *st = calloc(1, sizeof(*st));
	int rc, r;

	if (!st)
		return -ENOMEM;
	st->log = log ? log : &quiet;
	r = check_file(path);
	if (r < 0) {
		free(st);
		return r;
	}
	rc = sqlite3_open_v2(path, &st->db,
			     SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE |
			     SQLITE_OPEN_FULLMUTEX, NULL);
	if (rc != SQLITE_OK) {
		r = st->db ? sql_errno(st, rc, path) : -ENOMEM;
		goto err_close;
	}
	/* Two gpupass processes wait for each other rather than fail. */
	sqlite3_busy_timeout(st->db, 15000);
	r = exec(st, "PRAGMA journal_mode = WAL");
	if (r < 0)
		goto err_close;
	r = exec(st, "PRAGMA foreign_keys = ON; PRAGMA synchronous = FULL");
	if (r < 0)
		goto err_close;
	r = migrate(st);
	if (r < 0)
		goto err_close;
	*out = st;
	return 0;

err_close:
	sqlite3_close(st->db);
	free(st);
	return r;
}

int gp_state_open(struct gp_ctx *ctx, struct gp_state **out)
{
	char *path;
	int r;

	if (mkdir(ctx->db_dir, 0700) < 0 && errno != EEXIST) {
		r = -errno;
		/* Info only: the caller tells people (one line), this is detail. */
		gp_info(&ctx->log, "cannot create the database directory %s: %s",
		       ctx->db_dir, strerror(-r));
		return r;
	}
	path = gp_strdup_printf("%s/%s", ctx->db_dir, GP_STATE_DB_NAME);
	if (!path)
		return -ENOMEM;
	r = gp_state_open_path(path, &ctx->log, out);
	if (r < 0)
		gp_info(&ctx->log, "cannot open the state database %s: %s", path, strerror(-r));
	free(path);
	return r;
}

void gp_state_close(struct gp_state *st)
{
	if (!st)
		return;
	if (st->depth > 0)
		gp_state_rollback(st);
	sqlite3_close(st->db);
	free(st);
}

/* Runs one statement with text/int parameters given as a format string:
 * 's' text, 'i' int64. Returns 0, or -errno; *changes gets the rows touched. */
static int run(struct gp_state *st, const char *sql, int *changes, const char *types, ...)
{
	sqlite3_stmt *s;
	va_list ap;
	int rc, r = prepare(st, sql, &s);

	if (r < 0)
		return r;
	va_start(ap, types);
	for (int i = 0; types[i]; i++) {
		if (types[i] == 's')
			sqlite3_bind_text(s, i + 1, va_arg(ap, const char *), -1, SQLITE_TRANSIENT);
		else
			sqlite3_bind_int64(s, i + 1, va_arg(ap, int64_t));
	}
	va_end(ap);
	rc = sqlite3_step(s);
	r = sql_errno(st, rc, sql);
	sqlite3_finalize(s);
	if (r == 0 && changes)
		*changes = sqlite3_changes(st->db);
	return r;
}

/* Wraps a body in a transaction when the caller has none open. */
#define TX_BEGIN(st)                              \
	do {                                      \
		int tx_r_ = gp_state_begin(st);   \
		if (tx_r_ < 0)                    \
			return tx_r_;             \
	} while (0)

static int tx_end(struct gp_state *st, int r)
{
	if (r < 0) {
		gp_state_rollback(st);
		return r;
	}
	return gp_state_commit(st);
}

static void copy_col(sqlite3_stmt *s, int col, char *buf, size_t len)
{
	const unsigned char *t = sqlite3_column_text(s, col);

	snprintf(buf, len, "%s", t ? (const char *)t : "");
}

/* The GPU's primary address for any of its functions. */
static int gpu_key(struct gp_state *st, const char *addr, char *key, size_t len)
{
	sqlite3_stmt *s;
	int rc, r = prepare(st,
		"SELECT address FROM gpu WHERE address = ?1 "
		"UNION SELECT gpu FROM function WHERE address = ?1 LIMIT 1", &s);

	if (r < 0)
		return r;
	sqlite3_bind_text(s, 1, addr, -1, SQLITE_TRANSIENT);
	rc = sqlite3_step(s);
	if (rc == SQLITE_ROW)
		copy_col(s, 0, key, len);
	else if (rc == SQLITE_DONE)
		snprintf(key, len, "%s", addr); /* not dismounted: its own key */
	else
		r = sql_errno(st, rc, "gpu_key");
	sqlite3_finalize(s);
	return r;
}

static bool gpu_recorded(struct gp_state *st, const char *key)
{
	sqlite3_stmt *s;
	bool found;

	if (prepare(st, "SELECT 1 FROM gpu WHERE address = ?1", &s) < 0)
		return false;
	sqlite3_bind_text(s, 1, key, -1, SQLITE_TRANSIENT);
	found = sqlite3_step(s) == SQLITE_ROW;
	sqlite3_finalize(s);
	return found;
}

/* A record read back is outside data (the file may have been edited or
 * damaged): its addresses and driver names become sysfs and lock-file
 * paths, so anything that is not a PCI address or a plain driver name is
 * refused rather than followed ("../", "/"). */
static bool driver_name_ok(const char *d)
{
	return strcmp(d, GP_DRIVER_UNKNOWN) == 0 ||
	       (!strchr(d, '/') && strcmp(d, ".") != 0 && strcmp(d, "..") != 0);
}

static bool record_ok(const struct gp_state_gpu *g)
{
	struct gp_pci_addr a;

	if (gp_pci_addr_parse(g->address, &a) < 0 || g->state < GP_GPU_DISMOUNTING ||
	    g->state > GP_GPU_MOUNTING)
		return false;
	for (size_t i = 0; i < g->nfn; i++) {
		if (gp_pci_addr_parse(g->fn[i].address, &a) < 0 ||
		    !driver_name_ok(g->fn[i].original_driver))
			return false;
	}
	return true;
}

int gp_state_gpu_put(struct gp_state *st, const struct gp_state_gpu *gpu)
{
	int r;

	if (gpu->nfn > GP_STATE_MAX_FN)
		return -E2BIG;
	if (!record_ok(gpu))
		return -EINVAL;
	TX_BEGIN(st);
	r = run(st, "INSERT INTO gpu(address, iommu_group, state, auto_for_vm) "
		    "VALUES (?1, ?2, ?3, ?4) ON CONFLICT(address) DO UPDATE SET "
		    "iommu_group = ?2, state = ?3, auto_for_vm = ?4, "
		    "changed = strftime('%s','now')",
		NULL, "siis", gpu->address, (int64_t)gpu->iommu_group,
		(int64_t)gpu->state, gpu->auto_for_vm);
	if (r == 0)
		r = run(st, "DELETE FROM function WHERE gpu = ?1", NULL, "s", gpu->address);
	for (size_t i = 0; r == 0 && i < gpu->nfn; i++) {
		const struct gp_state_fn *f = &gpu->fn[i];

		r = run(st, "INSERT INTO function(address, gpu, original_driver, "
			    "vendor_id, device_id, on_vfio) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
			NULL, "sssiii", f->address, gpu->address, f->original_driver,
			(int64_t)f->vendor_id, (int64_t)f->device_id, (int64_t)f->on_vfio);
	}
	return tx_end(st, r);
}

int gp_state_gpu_get(struct gp_state *st, const char *addr, struct gp_state_gpu *out)
{
	struct gp_state_gpu g;
	sqlite3_stmt *s;
	int rc, r;

	memset(&g, 0, sizeof(g));
	r = gpu_key(st, addr, g.address, sizeof(g.address));
	if (r < 0)
		return r;
	if (!gpu_recorded(st, g.address))
		return -ENOENT;
	r = prepare(st, "SELECT iommu_group, state, auto_for_vm FROM gpu WHERE address = ?1", &s);
	if (r < 0)
		return r;
	sqlite3_bind_text(s, 1, g.address, -1, SQLITE_TRANSIENT);
	rc = sqlite3_step(s);
	if (rc != SQLITE_ROW) {
		sqlite3_finalize(s);
		return rc == SQLITE_DONE ? -ENOENT : sql_errno(st, rc, "gpu_get");
	}
	g.iommu_group = sqlite3_column_int(s, 0);
	g.state = (enum gp_gpu_state)sqlite3_column_int(s, 1);
	copy_col(s, 2, g.auto_for_vm, sizeof(g.auto_for_vm));
	sqlite3_finalize(s);

	r = prepare(st, "SELECT address, original_driver, vendor_id, device_id, on_vfio "
			"FROM function WHERE gpu = ?1 ORDER BY address", &s);
	if (r < 0)
		return r;
	sqlite3_bind_text(s, 1, g.address, -1, SQLITE_TRANSIENT);
	while ((rc = sqlite3_step(s)) == SQLITE_ROW && g.nfn < GP_STATE_MAX_FN) {
		struct gp_state_fn *f = &g.fn[g.nfn++];

		copy_col(s, 0, f->address, sizeof(f->address));
		copy_col(s, 1, f->original_driver, sizeof(f->original_driver));
		f->vendor_id = (uint16_t)sqlite3_column_int(s, 2);
		f->device_id = (uint16_t)sqlite3_column_int(s, 3);
		f->on_vfio = sqlite3_column_int(s, 4) != 0;
	}
	r = (rc == SQLITE_ROW || rc == SQLITE_DONE) ? 0 : sql_errno(st, rc, "fn_get");
	sqlite3_finalize(s);
	if (r == 0 && !record_ok(&g)) {
		gp_warn(st->log, "state: the record of GPU %s is damaged (not a PCI address or "
		       "driver name); it is ignored", g.address);
		r = -EBADMSG;
	}
	if (r == 0)
		*out = g;
	return r;
}

int gp_state_gpu_set_state(struct gp_state *st, const char *addr, enum gp_gpu_state state)
{
	char key[GP_ADDR_LEN];
	int n = 0, r = gpu_key(st, addr, key, sizeof(key));

	if (r < 0)
		return r;
	r = run(st, "UPDATE gpu SET state = ?2, changed = strftime('%s','now') "
		    "WHERE address = ?1", &n, "si", key, (int64_t)state);
	return r < 0 ? r : n ? 0 : -ENOENT;
}

int gp_state_fn_set_vfio(struct gp_state *st, const char *fn_addr, bool on_vfio)
{
	int n = 0, r = run(st, "UPDATE function SET on_vfio = ?2 WHERE address = ?1",
			   &n, "si", fn_addr, (int64_t)on_vfio);

	return r < 0 ? r : n ? 0 : -ENOENT;
}

int gp_state_gpu_delete(struct gp_state *st, const char *addr)
{
	char key[GP_ADDR_LEN];
	int n = 0, r;

	TX_BEGIN(st);
	r = gpu_key(st, addr, key, sizeof(key));
	if (r == 0)
		r = run(st, "DELETE FROM gpu WHERE address = ?1", &n, "s", key);
	if (r == 0 && n == 0)
		r = -ENOENT;
	return tx_end(st, r);
}

static int list_col(struct gp_state *st, const char *sql, const char *param,
		    struct gp_strv *out)
{
	sqlite3_stmt *s;
	int rc, r = prepare(st, sql, &s);

	if (r < 0)
		return r;
	if (param)
		sqlite3_bind_text(s, 1, param, -1, SQLITE_TRANSIENT);
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		const unsigned char *t = sqlite3_column_text(s, 0);

		r = gp_strv_push(out, t ? (const char *)t : "");
		if (r < 0)
			break;
	}
	if (r == 0 && rc != SQLITE_DONE)
		r = sql_errno(st, rc, sql);
	sqlite3_finalize(s);
	return r;
}

int gp_state_gpu_list(struct gp_state *st, struct gp_strv *addrs)
{
	return list_col(st, "SELECT address FROM gpu ORDER BY address", NULL, addrs);
}

static int vm_write(struct gp_state *st, const struct gp_vm_config *c, bool add)
{
	static const char ins[] =
		"INSERT INTO vm(name, memory, cpus, disk, kernel, initrd, append, "
		"passthrough, gpu_name, gpu_count, accel, extra, pv_memory_max, pv_weight, pv_shm, "
		"disk_format, disk_backing, disk_backing_format, hand_gpus) "
		"VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, "
		"?19)";
	static const char upd[] =
		"UPDATE vm SET memory = ?2, cpus = ?3, disk = ?4, kernel = ?5, "
		"initrd = ?6, append = ?7, passthrough = ?8, gpu_name = ?9, "
		"gpu_count = ?10, accel = ?11, extra = ?12, pv_memory_max = ?13, "
		"pv_weight = ?14, pv_shm = ?15, disk_format = ?16, disk_backing = ?17, "
		"disk_backing_format = ?18, hand_gpus = ?19 WHERE name = ?1";
	int n = 0, r;

	if (!gp_vm_name_valid(c->name) || c->memory == 0 || c->memory > INT64_MAX ||
	    c->cpus <= 0 || c->gpu_count < 0 || c->pv_memory_max > INT64_MAX || c->pv_weight <= 0 ||
	    c->pv_shm > INT64_MAX || c->nshares > GP_VM_MAX_SHARES || c->hand_gpus < 0)
		return -EINVAL;
	for (size_t i = 0; i < c->nshares; i++)
		if (c->shares[i].dir[0] != '/' || !gp_vm_share_tag_valid(c->shares[i].tag))
			return -EINVAL;
	TX_BEGIN(st);
	r = run(st, add ? ins : upd, &n, "siissssssissiiisssi", c->name, (int64_t)c->memory,
		(int64_t)c->cpus, c->disk, c->kernel, c->initrd, c->append,
		gp_passthrough_name(c->passthrough), c->gpu_name, (int64_t)c->gpu_count,
		c->accel, c->extra, (int64_t)c->pv_memory_max, (int64_t)c->pv_weight,
		(int64_t)c->pv_shm, c->disk_format, c->disk_backing, c->disk_backing_format,
		(int64_t)c->hand_gpus);
	if (r == 0 && n == 0)
		r = -ENOENT;
	if (r == 0)
		r = run(st, "DELETE FROM share WHERE vm = ?1", NULL, "s", c->name);
	/* A duplicate tag breaks the primary key: -EEXIST, nothing kept. */
	for (size_t i = 0; r == 0 && i < c->nshares; i++)
		r = run(st, "INSERT INTO share(vm, pos, dir, tag, readonly) VALUES (?1, ?2, ?3, ?4, ?5)",
			NULL, "sissi", c->name, (int64_t)i, c->shares[i].dir, c->shares[i].tag,
			(int64_t)c->shares[i].readonly);
	return tx_end(st, r);
}

static int shares_get(struct gp_state *st, struct gp_vm_config *c)
{
	sqlite3_stmt *s;
	int rc, r = prepare(st, "SELECT dir, tag, readonly FROM share WHERE vm = ?1 ORDER BY pos",
			    &s);

	if (r < 0)
		return r;
	sqlite3_bind_text(s, 1, c->name, -1, SQLITE_TRANSIENT);
	c->nshares = 0;
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		struct gp_vm_share *sh;
		const unsigned char *dir = sqlite3_column_text(s, 0);
		const unsigned char *tag = sqlite3_column_text(s, 1);

		/* Outside data: a row that does not fit is refused, not cut. */
		if (c->nshares >= GP_VM_MAX_SHARES || !dir || !tag ||
		    strlen((const char *)dir) >= sizeof(sh->dir) ||
		    !gp_vm_share_tag_valid((const char *)tag)) {
			gp_warn(st->log, "state: a share of VM %s is damaged; it is ignored", c->name);
			continue;
		}
		sh = &c->shares[c->nshares++];
		snprintf(sh->dir, sizeof(sh->dir), "%s", (const char *)dir);
		snprintf(sh->tag, sizeof(sh->tag), "%s", (const char *)tag);
		sh->readonly = sqlite3_column_int(s, 2) != 0;
	}
	r = rc == SQLITE_DONE ? 0 : sql_errno(st, rc, "shares_get");
	sqlite3_finalize(s);
	return r;
}

int gp_state_vm_add(struct gp_state *st, const struct gp_vm_config *cfg)
{
	return vm_write(st, cfg, true);
}

int gp_state_vm_update(struct gp_state *st, const struct gp_vm_config *cfg)
{
	return vm_write(st, cfg, false);
}

int gp_state_vm_get(struct gp_state *st, const char *name, struct gp_vm_config *out)
{
	struct gp_vm_config c;
	sqlite3_stmt *s;
	int rc, r = prepare(st,
		"SELECT name, memory, cpus, disk, kernel, initrd, append, passthrough, "
		"gpu_name, gpu_count, accel, extra, pv_memory_max, pv_weight, pv_shm, "
		"disk_format, disk_backing, disk_backing_format, hand_gpus FROM vm WHERE name = ?1",
		&s);

	if (r < 0)
		return r;
	sqlite3_bind_text(s, 1, name, -1, SQLITE_TRANSIENT);
	rc = sqlite3_step(s);
	if (rc != SQLITE_ROW) {
		sqlite3_finalize(s);
		return rc == SQLITE_DONE ? -ENOENT : sql_errno(st, rc, "vm_get");
	}
	gp_vm_config_init(&c, NULL);
	copy_col(s, 0, c.name, sizeof(c.name));
	c.memory = (uint64_t)sqlite3_column_int64(s, 1);
	c.cpus = sqlite3_column_int(s, 2);
	copy_col(s, 3, c.disk, sizeof(c.disk));
	copy_col(s, 4, c.kernel, sizeof(c.kernel));
	copy_col(s, 5, c.initrd, sizeof(c.initrd));
	copy_col(s, 6, c.append, sizeof(c.append));
	if (gp_passthrough_parse((const char *)sqlite3_column_text(s, 7), &c.passthrough) < 0)
		c.passthrough = GP_PT_NONE;
	copy_col(s, 8, c.gpu_name, sizeof(c.gpu_name));
	c.gpu_count = sqlite3_column_int(s, 9);
	copy_col(s, 10, c.accel, sizeof(c.accel));
	copy_col(s, 11, c.extra, sizeof(c.extra));
	c.pv_memory_max = (uint64_t)sqlite3_column_int64(s, 12);
	c.pv_weight = sqlite3_column_int(s, 13);
	c.pv_shm = (uint64_t)sqlite3_column_int64(s, 14);
	copy_col(s, 15, c.disk_format, sizeof(c.disk_format));
	copy_col(s, 16, c.disk_backing, sizeof(c.disk_backing));
	copy_col(s, 17, c.disk_backing_format, sizeof(c.disk_backing_format));
	c.hand_gpus = sqlite3_column_int(s, 18);
	sqlite3_finalize(s);
	r = shares_get(st, &c);
	if (r < 0)
		return r;
	*out = c;
	return 0;
}

int gp_state_vm_delete(struct gp_state *st, const char *name)
{
	int n = 0, r;

	TX_BEGIN(st);
	r = run(st, "DELETE FROM assignment WHERE vm = ?1", NULL, "s", name);
	if (r == 0)
		r = run(st, "DELETE FROM vm WHERE name = ?1", &n, "s", name);
	if (r == 0 && n == 0)
		r = -ENOENT;
	return tx_end(st, r);
}

int gp_state_vm_list(struct gp_state *st, struct gp_strv *names)
{
	return list_col(st, "SELECT name FROM vm ORDER BY name", NULL, names);
}

int gp_state_gpu_owner(struct gp_state *st, const char *gpu, char *vm, size_t len)
{
	char key[GP_ADDR_LEN];
	sqlite3_stmt *s;
	int rc, r = gpu_key(st, gpu, key, sizeof(key));

	if (r < 0)
		return r;
	r = prepare(st, "SELECT vm FROM assignment WHERE gpu = ?1", &s);
	if (r < 0)
		return r;
	sqlite3_bind_text(s, 1, key, -1, SQLITE_TRANSIENT);
	rc = sqlite3_step(s);
	if (rc == SQLITE_ROW)
		copy_col(s, 0, vm, len);
	else
		r = rc == SQLITE_DONE ? -ENOENT : sql_errno(st, rc, "owner");
	sqlite3_finalize(s);
	return r;
}

int gp_state_assign(struct gp_state *st, const char *gpu, const char *vm)
{
	char key[GP_ADDR_LEN], owner[GP_NAME_LEN];
	int r;

	TX_BEGIN(st);
	r = gpu_key(st, gpu, key, sizeof(key));
	/* Only a dismounted GPU can be given to a VM. */
	if (r == 0 && !gpu_recorded(st, key))
		r = -ENOENT;
	if (r == 0 && gp_state_gpu_owner(st, key, owner, sizeof(owner)) == 0 &&
	    strcmp(owner, vm) == 0)
		return tx_end(st, 0);
	if (r == 0)
		r = run(st, "INSERT INTO assignment(gpu, vm) VALUES (?1, ?2)", NULL,
			"ss", key, vm);
	/* Primary key: another VM holds it. Foreign key: no such VM. */
	if (r == -EEXIST)
		r = -EBUSY;
	return tx_end(st, r);
}

int gp_state_unassign(struct gp_state *st, const char *gpu)
{
	char key[GP_ADDR_LEN];
	int n = 0, r = gpu_key(st, gpu, key, sizeof(key));

	if (r < 0)
		return r;
	r = run(st, "DELETE FROM assignment WHERE gpu = ?1", &n, "s", key);
	return r < 0 ? r : n ? 0 : -ENOENT;
}

int gp_state_vm_gpus(struct gp_state *st, const char *vm, struct gp_strv *gpus)
{
	return list_col(st, "SELECT gpu FROM assignment WHERE vm = ?1 ORDER BY gpu", vm, gpus);
}
