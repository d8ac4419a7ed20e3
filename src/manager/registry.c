/*
 * registry.c: the instances the manager knows.
 *
 * Each instance is a directory STATE/instances/NAME holding instance.json
 * (name, uuid, TPM version, desired state, sandbox slot, creation time,
 * the sealed object's Name),
 * sealed.key (its state key sealed to the host TPM) and state/ (the
 * worker's encrypted state). Names are checked before any path is built.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>
#include <time.h>

#include <jansson.h>
#include <openssl/rand.h>

#include "manager.h"

#define REGISTRY_RECORD_MAX (16u << 10)

/* A name is 1..64 of [A-Za-z0-9._-], not starting with '.' or '-': it is
 * safe as a path component and in a socket path. */
bool
registry_valid_name(const char *name)
{
	size_t n = strlen(name);

	if (n == 0 || n > VTPM_NAME_MAX || name[0] == '.' || name[0] == '-')
		return false;
	for (size_t i = 0; i < n; i++) {
		char c = name[i];
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
			c == '.' || c == '_' || c == '-'))
			return false;
	}
	return true;
}

const char *
registry_state_name(enum vtpm_state st)
{
	switch (st) {
	case VTPM_STOPPED:
		return "stopped";
	case VTPM_STARTING:
		return "starting";
	case VTPM_RUNNING:
		return "running";
	case VTPM_FAILED:
		return "failed";
	case VTPM_REFUSED:
		return "refused";
	}
	return "unknown";
}

/* STATE/instances/NAME[/leaf]. Returns 0, or -1 when it does not fit. */
int
registry_path(const struct config *cfg, const char *name, const char *leaf, char *buf, size_t len)
{
	int n;

	if (leaf != NULL)
		n = snprintf(buf, len, "%s/instances/%s/%s", cfg->state_dir, name, leaf);
	else
		n = snprintf(buf, len, "%s/instances/%s", cfg->state_dir, name);
	return n < 0 || (size_t)n >= len ? -1 : 0;
}

/* A fresh record (not yet on disk): random v4 UUID, creation time now. */
struct vtpm *
registry_new(const char *name, unsigned int tpm_version, unsigned int slot)
{
	struct vtpm *v;
	uint8_t u[16];
	time_t now = time(NULL);
	struct tm tm;

	v = calloc(1, sizeof(*v));
	if (v == NULL || RAND_bytes(u, sizeof(u)) != 1) {
		free(v);
		return NULL;
	}
	u[6] = (uint8_t)((u[6] & 0x0f) | 0x40);
	u[8] = (uint8_t)((u[8] & 0x3f) | 0x80);
	snprintf(v->uuid, sizeof(v->uuid),
	    "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", u[0], u[1],
	    u[2], u[3], u[4], u[5], u[6], u[7], u[8], u[9], u[10], u[11], u[12], u[13], u[14], u[15]);
	snprintf(v->name, sizeof(v->name), "%s", name);
	gmtime_r(&now, &tm);
	strftime(v->created, sizeof(v->created), "%Y-%m-%dT%H:%M:%SZ", &tm);
	v->tpm_version = tpm_version;
	v->slot = slot;
	v->owner_uid = v->owner_gid = -1;
	v->pidfd = -1;
	v->readyfd = -1;
	v->commit_fd = -1;
	return v;
}

static int
registry_parse_id(const char *s, const char *end, long *id)
{
	unsigned long long v = 0;

	if (s == end || end - s > 10)
		return -1;
	for (const char *p = s; p < end; p++) {
		if (*p < '0' || *p > '9')
			return -1;
		v = v * 10 + (unsigned long long)(*p - '0');
	}
	/* uid_t and gid_t are 32 bits; (id_t)-1 means "unchanged" to chown. */
	if (v >= 0xffffffffULL)
		return -1;
	*id = (long)v;
	return 0;
}

int
registry_parse_owner(const char *s, long *uid, long *gid)
{
	const char *colon = strchr(s, ':');

	*uid = *gid = -1;
	if (colon == NULL)
		return registry_parse_id(s, s + strlen(s), uid);
	if (registry_parse_id(s, colon, uid) == -1 ||
	    registry_parse_id(colon + 1, colon + 1 + strlen(colon + 1), gid) == -1) {
		*uid = *gid = -1;
		return -1;
	}
	return 0;
}

/* Writes v's persistent fields to its instance.json, crash-safe. */
int
registry_save(const struct config *cfg, const struct vtpm *v)
{
	char path[PATH_MAX];
	json_t *o;
	char *text;
	int ret;

	if (registry_path(cfg, v->name, "instance.json", path, sizeof(path)) == -1)
		return -1;
	o = json_pack("{s:s, s:s, s:s, s:s, s:s, s:i}", "name", v->name, "uuid", v->uuid, "tpm",
	    v->tpm_version == 2 ? "2.0" : "1.2", "desired", v->desired_running ? "running" : "stopped",
	    "created", v->created, "slot", (int)v->slot);
	if (o == NULL ||
	    (v->sealed_name[0] != '\0' &&
	        json_object_set_new(o, "sealed_name", json_string(v->sealed_name)) == -1) ||
	    (v->owner_uid != -1 &&
	        json_object_set_new(o, "owner_uid", json_integer(v->owner_uid)) == -1) ||
	    (v->owner_gid != -1 &&
	        json_object_set_new(o, "owner_gid", json_integer(v->owner_gid)) == -1)) {
		json_decref(o);
		return -1;
	}
	text = json_dumps(o, JSON_INDENT(2) | JSON_SORT_KEYS);
	json_decref(o);
	if (text == NULL)
		return -1;
	ret = fileio_write_atomic(path, text, strlen(text), 0600);
	free(text);
	return ret;
}

/* Whether s is a Name in lowercase hex (as lifecycle_create records it). */
static bool
registry_valid_hex_name(const char *s)
{
	size_t n = strlen(s);

	if (n != 2 * HWTPM_NAME_LEN)
		return false;
	for (size_t i = 0; i < n; i++)
		if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
			return false;
	return true;
}

/* When name's directory was made: its birth time where the file system
 * keeps one, else its last change; 0 when unknown. */
static int64_t
registry_born_ns(const struct config *cfg, const char *name)
{
	char dir[PATH_MAX];
	struct statx st;

	if (registry_path(cfg, name, NULL, dir, sizeof(dir)) == -1 ||
	    statx(AT_FDCWD, dir, AT_SYMLINK_NOFOLLOW, STATX_BTIME | STATX_CTIME, &st) == -1)
		return 0;
	if (st.stx_mask & STATX_BTIME)
		return (int64_t)st.stx_btime.tv_sec * 1000000000 + st.stx_btime.tv_nsec;
	return (int64_t)st.stx_ctime.tv_sec * 1000000000 + st.stx_ctime.tv_nsec;
}

static struct vtpm *
registry_read(const struct config *cfg, const char *name)
{
	const char *rname = NULL, *uuid = NULL, *tpm = NULL, *desired = NULL, *created = "";
	const char *sealed_name = "";
	char path[PATH_MAX];
	json_error_t jerr;
	struct vtpm *v = NULL;
	uint8_t *buf = NULL;
	json_t *o = NULL;
	size_t len;
	int slot = -1;
	json_int_t owner_uid = -1, owner_gid = -1;

	if (registry_path(cfg, name, "instance.json", path, sizeof(path)) == -1 ||
	    fileio_read(path, REGISTRY_RECORD_MAX, &buf, &len) == -1) {
		log_warn("%s: cannot read", path);
		return NULL;
	}
	o = json_loadb((const char *)buf, len, 0, &jerr);
	if (o == NULL ||
	    json_unpack(o, "{s:s, s:s, s:s, s:s, s?s, s:i, s?s, s?I, s?I}", "name", &rname, "uuid",
		&uuid, "tpm", &tpm, "desired", &desired, "created", &created, "slot", &slot,
		"sealed_name", &sealed_name, "owner_uid", &owner_uid, "owner_gid", &owner_gid) != 0) {
		log_warnx("%s: not a valid instance record (%s); skipped", path,
		    o == NULL ? jerr.text : "missing fields");
		goto out;
	}
	if (strcmp(rname, name) != 0 || strlen(uuid) != 36 || slot < 0 ||
	    (strcmp(tpm, "2.0") != 0 && strcmp(tpm, "1.2") != 0) ||
	    (sealed_name[0] != '\0' && !registry_valid_hex_name(sealed_name)) ||
	    owner_uid < -1 || owner_uid >= 0xffffffffLL || owner_gid < -1 ||
	    owner_gid >= 0xffffffffLL || (owner_gid != -1 && owner_uid == -1)) {
		log_warnx("%s: inconsistent instance record; skipped", path);
		goto out;
	}
	v = registry_new(name, strcmp(tpm, "2.0") == 0 ? 2 : 1, (unsigned int)slot);
	if (v == NULL)
		goto out;
	snprintf(v->uuid, sizeof(v->uuid), "%s", uuid);
	snprintf(v->created, sizeof(v->created), "%s", created);
	snprintf(v->sealed_name, sizeof(v->sealed_name), "%s", sealed_name);
	v->desired_running = strcmp(desired, "running") == 0;
	v->born_ns = registry_born_ns(cfg, name);
	v->owner_uid = (long)owner_uid;
	v->owner_gid = (long)owner_gid;
out:
	json_decref(o);
	free(buf);
	return v;
}

/* Whether name's worker was running at the last look: its pid file (as
 * worker.c writes it) is in the run directory, which a reboot empties. */
static bool
registry_had_worker(const struct config *cfg, const char *name)
{
	char path[PATH_MAX];

	return snprintf(path, sizeof(path), "%s/%s.pid", cfg->run_dir, name) < (int)sizeof(path) &&
	    access(path, F_OK) == 0;
}

/* The order in which duplicate slots are settled (qsort_r, ctx: the
 * configuration): instances whose worker may still run (keeping its uid)
 * first, then by name. */
static int
registry_order(const void *a, const void *b, void *ctx)
{
	const struct vtpm *va = *(struct vtpm *const *)a, *vb = *(struct vtpm *const *)b;
	bool wa = registry_had_worker(ctx, va->name), wb = registry_had_worker(ctx, vb->name);

	if (wa != wb)
		return wa ? -1 : 1;
	return strcmp(va->name, vb->name);
}

/* The lowest slot no record of arr[0..n) holds. */
static unsigned int
registry_free_slot(struct vtpm *const *arr, size_t n)
{
	unsigned int slot = 0;
	bool used;

	do {
		used = false;
		for (size_t i = 0; i < n && !used; i++)
			used = !arr[i]->creating && arr[i]->slot == slot;
		if (used)
			slot++;
	} while (used);
	return slot;
}

/*
 * Gives every record its own slot, hence its own worker uid: an instance
 * directory copied or restored under another name holds the slot of the
 * original. Of the records sharing a slot, the first in registry_order
 * keeps it; the others move to free slots, saved in their instance.json.
 */
static void
registry_unique_slots(const struct config *cfg, struct vtpm **arr, size_t n)
{
	if (n < 2)
		return;
	/* NOLINTNEXTLINE(bugprone-sizeof-expression): an array of pointers */
	qsort_r(arr, n, sizeof(*arr), registry_order, (void *)cfg);
	for (size_t i = 0; i < n; i++) {
		const struct vtpm *holder = NULL;
		unsigned int old = arr[i]->slot;

		for (size_t j = 0; j < i && holder == NULL && !arr[i]->creating; j++)
			if (!arr[j]->creating && arr[j]->slot == old)
				holder = arr[j];
		if (holder == NULL)
			continue;
		arr[i]->slot = registry_free_slot(arr, n);
		log_warnx("%s: its slot %u (worker uid %u) is also %s's (a copied or restored "
		    "instance?); it gets slot %u (uid %u)", arr[i]->name, old,
		    (unsigned int)(cfg->worker_uid_base + old), holder->name, arr[i]->slot,
		    (unsigned int)(cfg->worker_uid_base + arr[i]->slot));
		if (registry_save(cfg, arr[i]) == -1)
			log_warn("%s: cannot record its new slot in instance.json; it is given one "
			    "again at the next start", arr[i]->name);
	}
}

/* Whether a is the original rather than b (registry_mark_copies). */
static bool
registry_original_first(const struct vtpm *a, const struct vtpm *b)
{
	int c;

	if ((a->pid > 0) != (b->pid > 0))
		return a->pid > 0;
	/* A copy carries the original's record, its creation time included,
	 * but its directory is made later. */
	if (a->born_ns != b->born_ns)
		return a->born_ns < b->born_ns;
	if ((c = strcmp(a->created, b->created)) != 0)
		return c < 0;
	return strcmp(a->name, b->name) < 0;
}

static bool
registry_same_vtpm(const struct vtpm *a, const struct vtpm *b)
{
	return strcasecmp(a->uuid, b->uuid) == 0 ||
	       (a->sealed_name[0] != '\0' && strcmp(a->sealed_name, b->sealed_name) == 0);
}

size_t
registry_mark_copies(struct vtpm *const *arr, size_t n)
{
	size_t copies = 0;

	for (size_t i = 0; i < n; i++)
		arr[i]->copy_of[0] = '\0';
	for (size_t i = 0; i < n; i++) {
		const struct vtpm *orig = arr[i];

		if (arr[i]->creating)
			continue;
		/* The original of i's group: the first of them all. */
		for (size_t j = 0; j < n; j++)
			if (j != i && !arr[j]->creating && registry_same_vtpm(arr[j], arr[i]) &&
			    registry_original_first(arr[j], orig))
				orig = arr[j];
		if (orig == arr[i])
			continue;
		snprintf(arr[i]->copy_of, sizeof(arr[i]->copy_of), "%s", orig->name);
		copies++;
	}
	return copies;
}

int
registry_copy_refusal(const struct vtpm *v, struct err *err)
{
	return err_set(err, ERR_EXISTS,
	    "%s is a copy of %s (the same vTPM: UUID %s%s): it does not start, so that one vTPM "
	    "never runs twice. Delete one of them (vtpmctl delete NAME --force), or make %s a new "
	    "vTPM of its own, with a new UUID, state key, seeds and EK certificates, its state "
	    "discarded (vtpmctl renew %s)",
	    v->name, v->copy_of, v->uuid, v->sealed_name[0] != '\0' ? ", sealed object" : "",
	    v->name, v->name);
}

/* Loads every instance under STATE/instances, each with a slot of its own
 * (registry_unique_slots). Returns 0 with a malloc'd array of malloc'd
 * records, or -1. */
int
registry_load(const struct config *cfg, struct vtpm ***list, size_t *n)
{
	char dir[PATH_MAX];
	struct vtpm **arr = NULL, **grown, *v;
	struct dirent *de;
	size_t count = 0;
	DIR *d;

	snprintf(dir, sizeof(dir), "%s/instances", cfg->state_dir);
	d = opendir(dir);
	if (d == NULL) {
		if (errno != ENOENT)
			return -1;
		*list = NULL;
		*n = 0;
		return 0;
	}
	while ((de = readdir(d)) != NULL) {
		char path[PATH_MAX];

		if (strncmp(de->d_name, REGISTRY_DELETING, strlen(REGISTRY_DELETING)) == 0 ||
		    strncmp(de->d_name, REGISTRY_NEW, strlen(REGISTRY_NEW)) == 0) {
			/* A delete or a create that was interrupted: finish or
			 * undo it. */
			snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
			if (fileio_remove_tree(path) == 0)
				log_info("%s: removed what an interrupted %s left", path,
				    de->d_name[1] == 'd' ? "delete" : "create");
			else
				log_warn("%s: cannot remove what an interrupted operation left", path);
			continue;
		}
		if (!registry_valid_name(de->d_name))
			continue;
		if (registry_path(cfg, de->d_name, REGISTRY_CREATING, path, sizeof(path)) == 0 &&
		    access(path, F_OK) == 0) {
			/* A create that never finished: the manager removes it. */
			v = calloc(1, sizeof(*v));
			if (v != NULL) {
				snprintf(v->name, sizeof(v->name), "%s", de->d_name);
				v->creating = true;
				v->pidfd = -1;
				v->readyfd = -1;
				v->commit_fd = -1;
			}
		} else {
			v = registry_read(cfg, de->d_name);
			if (v == NULL) {
				log_warnx("%s/%s: unreadable instance record (instance.json), left "
				    "alone: repair it or remove the directory", dir, de->d_name);
				continue;
			}
		}
		if (v == NULL)
			continue;
		/* NOLINTNEXTLINE(bugprone-sizeof-expression): an array of pointers */
		grown = realloc(arr, (count + 1) * sizeof(*arr));
		if (grown == NULL) {
			free(v);
			break;
		}
		arr = grown;
		arr[count++] = v;
	}
	closedir(d);
	registry_unique_slots(cfg, arr, count);
	*list = arr;
	*n = count;
	return 0;
}
