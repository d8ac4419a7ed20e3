/*
 * test_policy.c: approved host configurations (src/manager/policy.c), each
 * test with a fresh mkdtemp state directory and a real approval key made
 * there by policy_load (approval_key_create):
 *
 * - the key created once and kept; a public-only key (approval-public-key)
 *   that cannot approve by itself;
 * - approvals added (signature, key and PCR values checked), found by their
 *   digest, stored in approvals.json and loaded back; refused approvals
 *   leave nothing behind; stored ones that no longer verify, or are
 *   malformed, are skipped; a file that is not an approvals file refuses
 *   the load;
 * - policy_explain naming the PCRs that differ from the last approval over
 *   the same PCRs, and its truncation ("…") at every buffer size;
 * - the host PCRs read through the host TPM module, faked at link time
 *   (WRAP_test_policy: hwtpm_pcr_read, hwtpm_recover): the cache, one
 *   recovery and retry, a failure that stays, approving the current values;
 *   the approval the CK and BK need, and the refusal without one.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <errno.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "manager/manager.h"

/* ---- link-time fakes of the host TPM ---- */

int __wrap_hwtpm_pcr_read(struct hwtpm *hw, const struct pcr_selection *sel,
    uint8_t values[TPM_PCRS][TPM_DIGEST_LEN], struct err *err);
bool __wrap_hwtpm_recover(struct hwtpm *hw);

static struct {
	uint8_t values[TPM_PCRS][TPM_DIGEST_LEN]; /* what the host PCRs hold */
	int reads, recovers;
	int failures;    /* the next reads that fail */
	bool recover_ok; /* what hwtpm_recover answers */
	uint32_t mask;   /* the selection last read */
} host;

int
__wrap_hwtpm_pcr_read(struct hwtpm *hw, const struct pcr_selection *sel,
    uint8_t values[TPM_PCRS][TPM_DIGEST_LEN], struct err *err)
{
	host.reads++;
	host.mask = sel->mask;
	if (host.failures > 0) {
		host.failures--;
		return err_set(err, ERR_HOST_TPM, "PCR_Read: the TPM went away");
	}
	for (int i = 0; i < TPM_PCRS; i++)
		if (sel->mask & (1u << i))
			memcpy(values[i], host.values[i], TPM_DIGEST_LEN);
	return 0;
}

bool
__wrap_hwtpm_recover(struct hwtpm *hw)
{
	host.recovers++;
	return host.recover_ok;
}

/* ---- fixture ---- */

struct fixture {
	char root[64];
	struct manager m;
	char path[512];
};

/* Host PCR values: PCR i holds bytes seed+i, seed+i+1, ... */
static void
fill(uint8_t values[TPM_PCRS][TPM_DIGEST_LEN], uint8_t seed)
{
	for (int i = 0; i < TPM_PCRS; i++)
		for (int j = 0; j < TPM_DIGEST_LEN; j++)
			values[i][j] = (uint8_t)(seed + i * 16 + j);
}

static int
setup_nokey(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));

	if (f == NULL)
		return -1;
	snprintf(f->root, sizeof(f->root), "/tmp/vtpmd-policy.XXXXXX");
	if (mkdtemp(f->root) == NULL) {
		free(f);
		return -1;
	}
	config_defaults(&f->m.cfg);
	snprintf(f->m.cfg.state_dir, sizeof(f->m.cfg.state_dir), "%s", f->root);
	memset(&host, 0, sizeof(host));
	fill(host.values, 0x10);
	*state = f;
	return 0;
}

/* With vtpmd's own approval key, created by the load. */
static int
setup(void **state)
{
	struct fixture *f;
	struct err err;

	if (setup_nokey(state) == -1)
		return -1;
	f = *state;
	if (policy_load(&f->m, &err) == -1) {
		fprintf(stderr, "policy_load: %s\n", err.msg);
		return -1;
	}
	return 0;
}

static int
rm_entry(const char *path, const struct stat *sb, int type, struct FTW *ftw)
{
	return remove(path);
}

static int
teardown(void **state)
{
	struct fixture *f = *state;
	int ret;

	free(f->m.policy.entries);
	ret = nftw(f->root, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
	free(f);
	return ret;
}

static const char *
file(struct fixture *f, const char *name)
{
	snprintf(f->path, sizeof(f->path), "%s/%s", f->root, name);
	return f->path;
}

static char *
slurp(const char *path)
{
	uint8_t *buf;
	size_t len;

	assert_int_equal(fileio_read(path, 1 << 20, &buf, &len), 0);
	buf = realloc(buf, len + 1);
	assert_non_null(buf);
	buf[len] = '\0';
	return (char *)buf;
}

static void
spew(const char *path, const char *text)
{
	assert_int_equal(fileio_write_atomic(path, text, strlen(text), 0600), 0);
}

/* A manager loading the same state directory afresh. */
static struct manager *
reload(struct fixture *f, int expect)
{
	struct manager *m = calloc(1, sizeof(*m));
	struct err err = {0};

	assert_non_null(m);
	m->cfg = f->m.cfg;
	if (policy_load(m, &err) != expect)
		fail_msg("policy_load: %d, %s", expect, err.msg);
	return m;
}

static void
release(struct manager *m)
{
	free(m->policy.entries);
	free(m);
}

/* The approval of values over mask, signed with the key at key_path. */
static struct approval
sign(const char *key_path, uint32_t mask, const uint8_t values[TPM_PCRS][TPM_DIGEST_LEN])
{
	struct pcr_selection sel = {.mask = mask};
	uint8_t digest[TPM_DIGEST_LEN];
	struct approval ap;

	assert_int_equal(pcrpolicy_digest(&sel, values, digest), 0);
	assert_int_equal(approval_sign(key_path, digest, &ap), 0);
	return ap;
}

static void
approve(struct fixture *f, uint32_t mask, const uint8_t values[TPM_PCRS][TPM_DIGEST_LEN])
{
	struct approval ap = sign(f->m.policy.key_path, mask, values);
	struct err err = {0};

	if (policy_add(&f->m, &ap, mask, values, &err) != 0)
		fail_msg("policy_add: %s", err.msg);
}

static const struct policy_entry *
find_values(const struct policy *p, uint32_t mask, const uint8_t values[TPM_PCRS][TPM_DIGEST_LEN])
{
	struct pcr_selection sel = {.mask = mask};
	uint8_t digest[TPM_DIGEST_LEN];

	assert_int_equal(pcrpolicy_digest(&sel, values, digest), 0);
	return policy_find(p, digest);
}

/* ---- the key ---- */

static void
test_key_created_once(void **state)
{
	struct fixture *f = *state;
	struct approval_pub pub;
	struct manager *again;
	struct stat sb;

	assert_true(f->m.policy.private_held);
	assert_string_equal(f->m.policy.key_path, file(f, "approval.pem"));
	assert_int_equal(stat(f->m.policy.key_path, &sb), 0);
	assert_int_equal(sb.st_mode & 0777, 0600);
	assert_int_equal(approval_key_public(f->m.policy.key_path, &pub), 0);
	assert_memory_equal(&pub, &f->m.policy.pub, sizeof(pub));
	assert_int_equal(f->m.policy.n, 0);
	/* The next start keeps it. */
	again = reload(f, 0);
	assert_memory_equal(&again->policy.pub, &f->m.policy.pub, sizeof(pub));
	release(again);
}

static void
test_key_unreadable(void **state)
{
	struct fixture *f = *state;
	struct err err = {0};

	spew(file(f, "approval.pem"), "-----BEGIN EC PRIVATE KEY-----\nAAAA\n"
	                              "-----END EC PRIVATE KEY-----\n");
	assert_int_equal(policy_load(&f->m, &err), -1);
	assert_non_null(strstr(err.msg, "approval.pem"));
	assert_non_null(strstr(err.msg, "not a readable ECC P-256 key"));
}

/* The PEM of a P-256 public key (SubjectPublicKeyInfo). */
static void
write_public(const char *path, const struct approval_pub *pub)
{
	static const uint8_t spki[] = {0x30, 0x59, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce,
	    0x3d, 0x02, 0x01, 0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07, 0x03,
	    0x42, 0x00, 0x04};
	uint8_t der[sizeof(spki) + 64];
	char pem[256], *b64;

	memcpy(der, spki, sizeof(spki));
	memcpy(der + sizeof(spki), pub->x, 32);
	memcpy(der + sizeof(spki) + 32, pub->y, 32);
	b64 = base64_encode(der, sizeof(der));
	assert_non_null(b64);
	snprintf(pem, sizeof(pem),
	    "-----BEGIN PUBLIC KEY-----\n%.64s\n%s\n-----END PUBLIC KEY-----\n", b64, b64 + 64);
	free(b64);
	spew(path, pem);
}

/* With only the public key, approvals signed elsewhere are taken, but
 * vtpmd cannot approve by itself. */
static void
test_public_key_only(void **state)
{
	struct fixture *f = *state;
	struct manager *m;
	struct approval ap;
	struct err err = {0};
	char admin[512];

	snprintf(admin, sizeof(admin), "%s", file(f, "admin.pem"));
	assert_int_equal(approval_key_create(admin), 0);
	ap = sign(admin, f->m.cfg.pcrs.mask, host.values);
	write_public(file(f, "admin.pub"), &ap.pub);
	snprintf(
	    f->m.cfg.approval_public, sizeof(f->m.cfg.approval_public), "%s", file(f, "admin.pub"));

	m = reload(f, 0);
	assert_false(m->policy.private_held);
	assert_memory_equal(&m->policy.pub, &ap.pub, sizeof(ap.pub));
	assert_int_equal(policy_add(m, &ap, f->m.cfg.pcrs.mask, host.values, &err), 0);
	assert_int_equal(m->policy.n, 1);
	assert_int_equal(policy_approve_current(m, &err), -1);
	assert_non_null(strstr(err.msg, "only the public approval key"));
	assert_int_equal(host.reads, 0);
	release(m);
}

/* ---- approvals ---- */

static void
test_add_find_reload(void **state)
{
	struct fixture *f = *state;
	uint8_t other[TPM_PCRS][TPM_DIGEST_LEN];
	const uint32_t mask = f->m.cfg.pcrs.mask;
	const struct policy_entry *e;
	struct manager *m;
	int y, mo, d, h, mi, s;
	char *text;

	fill(other, 0x80);
	assert_null(find_values(&f->m.policy, mask, host.values));
	approve(f, mask, host.values);
	assert_int_equal(f->m.policy.n, 1);
	e = find_values(&f->m.policy, mask, host.values);
	assert_non_null(e);
	assert_int_equal(e->mask, mask);
	assert_memory_equal(e->values[7], host.values[7], TPM_DIGEST_LEN);
	assert_int_equal(
	    sscanf(e->approved_at, "%4d-%2d-%2dT%2d:%2d:%2dZ", &y, &mo, &d, &h, &mi, &s), 6);
	assert_null(find_values(&f->m.policy, mask, other));
	/* The same approval again is not a second entry. */
	approve(f, mask, host.values);
	assert_int_equal(f->m.policy.n, 1);
	approve(f, mask, other);
	assert_int_equal(f->m.policy.n, 2);

	text = slurp(file(f, "approvals.json"));
	assert_non_null(strstr(text, "\"approvals\""));
	assert_non_null(strstr(text, "\"id\": 2"));
	free(text);

	m = reload(f, 0);
	assert_int_equal(m->policy.n, 2);
	e = find_values(&m->policy, mask, other);
	assert_non_null(e);
	assert_int_equal(e->mask, mask);
	for (int i = 0; i < TPM_PCRS; i++)
		if (mask & (1u << i))
			assert_memory_equal(e->values[i], other[i], TPM_DIGEST_LEN);
	assert_memory_equal(&e->ap, &f->m.policy.entries[1].ap, sizeof(e->ap));
	assert_string_equal(e->approved_at, f->m.policy.entries[1].approved_at);
	assert_non_null(find_values(&m->policy, mask, host.values));
	release(m);
}

/* Each refusal says why, adds nothing and writes nothing. */
static void
test_add_refused(void **state)
{
	struct fixture *f = *state;
	const uint32_t mask = f->m.cfg.pcrs.mask;
	uint8_t other[TPM_PCRS][TPM_DIGEST_LEN];
	struct approval ap;
	struct err err = {0};
	char stranger[512];

	fill(other, 0x80);
	snprintf(stranger, sizeof(stranger), "%s", file(f, "stranger.pem"));
	assert_int_equal(approval_key_create(stranger), 0);

	ap = sign(stranger, mask, host.values);
	assert_int_equal(policy_add(&f->m, &ap, mask, host.values, &err), -1);
	assert_non_null(strstr(err.msg, "key other than vtpmd's approval key"));

	ap = sign(f->m.policy.key_path, mask, host.values);
	ap.sig_s[31] ^= 1;
	err_clear(&err);
	assert_int_equal(policy_add(&f->m, &ap, mask, host.values, &err), -1);
	assert_non_null(strstr(err.msg, "does not verify"));

	/* Signed, but over other values than those it claims. */
	ap = sign(f->m.policy.key_path, mask, host.values);
	err_clear(&err);
	assert_int_equal(policy_add(&f->m, &ap, mask, other, &err), -1);
	assert_non_null(strstr(err.msg, "does not match the PCR values"));
	err_clear(&err);
	assert_int_equal(policy_add(&f->m, &ap, mask | 1u << 8, host.values, &err), -1);
	assert_non_null(strstr(err.msg, "does not match the PCR values"));

	assert_int_equal(f->m.policy.n, 0);
	assert_int_equal(access(file(f, "approvals.json"), F_OK), -1);
}

/* A write that fails is not an approval. */
static void
test_add_unwritable(void **state)
{
	struct fixture *f = *state;
	struct approval ap = sign(f->m.policy.key_path, f->m.cfg.pcrs.mask, host.values);
	struct err err = {0};

	assert_int_equal(mkdir(file(f, "approvals.json"), 0700), 0);
	assert_int_equal(policy_add(&f->m, &ap, f->m.cfg.pcrs.mask, host.values, &err), -1);
	assert_non_null(strstr(err.msg, "cannot write approvals"));
	assert_int_equal(f->m.policy.n, 0);
	assert_null(find_values(&f->m.policy, f->m.cfg.pcrs.mask, host.values));
}

/* Stored approvals that do not verify under the current key (it was
 * replaced) or are malformed are skipped; the others are kept. */
static void
test_load_skips_bad_entries(void **state)
{
	struct fixture *f = *state;
	const uint32_t mask = f->m.cfg.pcrs.mask;
	uint8_t other[TPM_PCRS][TPM_DIGEST_LEN];
	struct manager *m;
	char *text, *p;

	fill(other, 0x80);
	approve(f, mask, host.values);
	approve(f, mask, other);
	text = slurp(file(f, "approvals.json"));
	/* The first entry's policy digest altered: its signature fails. */
	p = strstr(text, "\"policy\": \"");
	assert_non_null(p);
	p += strlen("\"policy\": \"");
	*p = *p == '0' ? '1' : '0';
	spew(file(f, "approvals.json"), text);
	m = reload(f, 0);
	assert_int_equal(m->policy.n, 1);
	assert_null(find_values(&m->policy, mask, host.values));
	assert_non_null(find_values(&m->policy, mask, other));
	release(m);

	/* Malformed entries. */
	spew(file(f, "approvals.json"),
	    "{\"approvals\": [{\"policy\": \"zz\"}, 7, {\"values\": {}}, \"x\"]}");
	m = reload(f, 0);
	assert_int_equal(m->policy.n, 0);
	release(m);
	free(text);

	/* A new key: every old approval is void. */
	fill(other, 0xc0);
	approve(f, mask, other); /* writes the file anew, three entries */
	m = reload(f, 0);
	assert_int_equal(m->policy.n, 3);
	release(m);
	assert_int_equal(unlink(f->m.policy.key_path), 0);
	m = reload(f, 0);
	assert_int_equal(m->policy.n, 0);
	assert_memory_not_equal(&m->policy.pub, &f->m.policy.pub, sizeof(m->policy.pub));
	release(m);
}

/* A file that is not an approvals file refuses the load. */
static void
test_load_refuses_bad_file(void **state)
{
	static const char *const bad[] = {
	    "", "not json", "[]", "{\"approvals\": {}}", "{\"other\": []}"};
	struct fixture *f = *state;
	struct manager *m;
	struct err err = {0};

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		spew(file(f, "approvals.json"), bad[i]);
		m = calloc(1, sizeof(*m));
		assert_non_null(m);
		m->cfg = f->m.cfg;
		err_clear(&err);
		assert_int_equal(policy_load(m, &err), -1);
		assert_non_null(strstr(err.msg, "not an approvals file"));
		release(m);
	}
}

/* ---- policy_explain ---- */

/* "; PCR i is NOW…, approved WAS…" for the values given. */
static void
item(char *out, size_t len, const char *sep, int i, const uint8_t *now, const uint8_t *was)
{
	char a[9], b[9];

	hex_encode(now, 4, a);
	hex_encode(was, 4, b);
	snprintf(out, len, "%sPCR %d is %s…, approved %s…", sep, i, a, b);
}

static void
test_explain(void **state)
{
	struct fixture *f = *state;
	const uint32_t mask = 1u << 0 | 1u << 2 | 1u << 4 | 1u << 7;
	uint8_t now[TPM_PCRS][TPM_DIGEST_LEN], older[TPM_PCRS][TPM_DIGEST_LEN];
	char buf[2048], want[2048], it[128];

	policy_explain(&f->m.policy, mask, host.values, buf, sizeof(buf));
	assert_string_equal(buf, "no host configuration over these PCRs has been approved");

	fill(older, 0x40);
	approve(f, mask, older);
	approve(f, mask, host.values);
	/* PCRs 2 and 7 differ from the last approval (not from the older). */
	memcpy(now, host.values, sizeof(now));
	now[2][0] ^= 0xff;
	now[7][3] ^= 0x01;
	now[5][0] ^= 0xff; /* not selected */
	policy_explain(&f->m.policy, mask, now, buf, sizeof(buf));
	snprintf(want, sizeof(want), "host PCRs differ from the last approval:");
	item(it, sizeof(it), " ", 2, now[2], host.values[2]);
	strcat(want, it);
	item(it, sizeof(it), "; ", 7, now[7], host.values[7]);
	strcat(want, it);
	assert_string_equal(buf, want);

	/* Approvals over other PCRs are not compared. */
	policy_explain(&f->m.policy, mask | 1u << 1, now, buf, sizeof(buf));
	assert_string_equal(buf, "no host configuration over these PCRs has been approved");
}

/* Whether s is well-formed UTF-8. */
static bool
utf8_ok(const char *s)
{
	const unsigned char *p = (const unsigned char *)s;
	int follow;

	while (*p != '\0') {
		if (*p < 0x80)
			follow = 0;
		else if ((*p & 0xe0) == 0xc0)
			follow = 1;
		else if ((*p & 0xf0) == 0xe0)
			follow = 2;
		else if ((*p & 0xf8) == 0xf0)
			follow = 3;
		else
			return false;
		p++;
		for (int i = 0; i < follow; i++, p++)
			if ((*p & 0xc0) != 0x80)
				return false;
	}
	return true;
}

/* All 24 PCRs differ. With every buffer size, the text fits, is whole
 * UTF-8, lists whole items only (a prefix of the full text), and marks the
 * ones left out with "…" once there is room for the mark; with room for
 * the whole text, it is all there. */
static void
test_explain_truncation(void **state)
{
	struct fixture *f = *state;
	const uint32_t all = (1u << TPM_PCRS) - 1;
	uint8_t now[TPM_PCRS][TPM_DIGEST_LEN];
	static char full[4096], buf[4096];
	const char *header = "host PCRs differ from the last approval:";
	size_t full_len, got, kept, items;

	approve(f, all, host.values);
	fill(now, 0x99);
	policy_explain(&f->m.policy, all, now, full, sizeof(full));
	full_len = strlen(full);
	assert_true(strncmp(full, header, strlen(header)) == 0);
	items = 0;
	for (const char *p = full; (p = strstr(p, "PCR ")) != NULL; p++)
		items++;
	assert_int_equal(items, TPM_PCRS);
	assert_non_null(strstr(full, "; PCR 23 is "));

	for (size_t len = 1; len <= full_len + 8; len++) {
		memset(buf, 0x7f, sizeof(buf));
		policy_explain(&f->m.policy, all, now, buf, len);
		got = strlen(buf);
		if (got >= len)
			fail_msg("len %zu: %zu bytes written", len, got);
		if (!utf8_ok(buf))
			fail_msg("len %zu: not UTF-8: \"%s\"", len, buf);
		if (len > full_len) {
			if (strcmp(buf, full) != 0)
				fail_msg("len %zu: \"%s\", not the whole text", len, buf);
			continue;
		}
		if (len <= strlen(header) + strlen(" …")) {
			/* The header, cut or whole: no room for the mark. */
			if (strncmp(buf, header, got) != 0)
				fail_msg("len %zu: \"%s\"", len, buf);
			continue;
		}
		/* The items kept, then " …" (none kept) or "; …". */
		if (got >= strlen(" …") && strcmp(buf + got - strlen(" …"), " …") == 0) {
			kept = got - strlen(" …");
			if (buf[kept - 1] == ';')
				kept--;
		} else {
			fail_msg("len %zu: no \"…\" for the PCRs left out: \"%s\"", len, buf);
		}
		if (strncmp(buf, full, kept) != 0 ||
		    (full[kept] != ';' && strncmp(full + kept, " PCR 0 ", 7) != 0))
			fail_msg("len %zu: \"%s\" is not whole items of the full text", len, buf);
	}
}

/* ---- the host's PCRs ---- */

static void
test_current_and_cache(void **state)
{
	struct fixture *f = *state;
	uint8_t values[TPM_PCRS][TPM_DIGEST_LEN], digest[TPM_DIGEST_LEN], want[TPM_DIGEST_LEN];
	struct err err = {0};

	assert_int_equal(pcrpolicy_digest(&f->m.cfg.pcrs, host.values, want), 0);
	assert_int_equal(policy_current_cached(&f->m, values, digest, &err), 0);
	assert_int_equal(host.reads, 1);
	assert_int_equal(host.mask, f->m.cfg.pcrs.mask);
	assert_memory_equal(digest, want, TPM_DIGEST_LEN);
	assert_memory_equal(values[7], host.values[7], TPM_DIGEST_LEN);
	/* Cached: no second read. */
	memset(digest, 0, sizeof(digest));
	assert_int_equal(policy_current_cached(&f->m, values, digest, &err), 0);
	assert_int_equal(host.reads, 1);
	assert_memory_equal(digest, want, TPM_DIGEST_LEN);
	/* policy_current reads afresh and refreshes the cache. */
	host.values[0][0] ^= 1;
	assert_int_equal(pcrpolicy_digest(&f->m.cfg.pcrs, host.values, want), 0);
	assert_int_equal(policy_current(&f->m, values, digest, &err), 0);
	assert_int_equal(host.reads, 2);
	assert_memory_equal(digest, want, TPM_DIGEST_LEN);
	assert_int_equal(policy_current_cached(&f->m, values, digest, &err), 0);
	assert_int_equal(host.reads, 2);
	assert_memory_equal(digest, want, TPM_DIGEST_LEN);
	assert_int_equal(host.recovers, 0);
}

/* A failed read is retried once after the host TPM recovers; a failure
 * that stays keeps its kind and leaves no stale cache. */
static void
test_current_recovery(void **state)
{
	struct fixture *f = *state;
	uint8_t values[TPM_PCRS][TPM_DIGEST_LEN], digest[TPM_DIGEST_LEN];
	struct err err = {0};

	host.failures = 1;
	host.recover_ok = true;
	assert_int_equal(policy_current(&f->m, values, digest, &err), 0);
	assert_int_equal(host.reads, 2);
	assert_int_equal(host.recovers, 1);

	host.failures = 1;
	host.recover_ok = false;
	assert_int_equal(policy_current(&f->m, values, digest, &err), -1);
	assert_int_equal(err.kind, ERR_HOST_TPM);
	assert_int_equal(host.reads, 3);
	assert_int_equal(host.recovers, 2);
	/* The cache is gone with it: the next cached call reads. */
	assert_int_equal(policy_current_cached(&f->m, values, digest, &err), 0);
	assert_int_equal(host.reads, 4);

	host.failures = 2;
	host.recover_ok = true;
	err_clear(&err);
	assert_int_equal(policy_current(&f->m, values, digest, &err), -1);
	assert_int_equal(err.kind, ERR_HOST_TPM);
	assert_int_equal(host.reads, 6);
}

static void
test_approve_current(void **state)
{
	struct fixture *f = *state;
	uint8_t auth[TPM_DIGEST_LEN], want[TPM_DIGEST_LEN];
	const struct policy_entry *e;
	struct manager *m;
	struct err err = {0};

	assert_int_equal(policy_approve_current(&f->m, &err), 0);
	e = find_values(&f->m.policy, f->m.cfg.pcrs.mask, host.values);
	assert_non_null(e);
	assert_memory_equal(e->values[4], host.values[4], TPM_DIGEST_LEN);
	m = reload(f, 0);
	assert_int_equal(m->policy.n, 1);
	release(m);
	/* The authPolicy state keys are sealed with depends on the key only. */
	assert_int_equal(policy_auth_digest(&f->m.policy, auth), 0);
	assert_int_equal(pcrpolicy_authorize(&f->m.policy.pub, want), 0);
	assert_memory_equal(auth, want, TPM_DIGEST_LEN);

	host.failures = 1;
	err_clear(&err);
	assert_int_equal(policy_approve_current(&f->m, &err), -1);
	assert_int_equal(err.kind, ERR_HOST_TPM);
	assert_true(strncmp(err.msg, "host TPM: ", 10) == 0);
	assert_int_equal(f->m.policy.n, 1);
}

/* What the CK and BK need (policy_approved_now): the approval of the PCRs
 * as read afresh; without one, ERR_POLICY refusing the use, naming the
 * PCRs that differ and how to approve; policy_refused words a refusal of
 * the host TPM's alike. */
static void
test_approved_now(void **state)
{
	struct fixture *f = *state;
	const struct policy_entry *e;
	struct err err = {0};

	assert_null(policy_approved_now(&f->m, "to certify", &err));
	assert_int_equal(err.kind, ERR_POLICY);
	assert_non_null(strstr(err.msg, "refusing to certify: the host's CK and BK work only in an "
	                                "approved host configuration, and no host configuration"));
	assert_non_null(strstr(err.msg, "approve it: vtpmctl policy approve --current."));
	approve(f, f->m.cfg.pcrs.mask, host.values);
	e = policy_approved_now(&f->m, "to certify", &err);
	assert_non_null(e);
	assert_ptr_equal(e, find_values(&f->m.policy, f->m.cfg.pcrs.mask, host.values));
	/* A reboot into another configuration: read afresh, not from the cache. */
	host.values[7][0] ^= 1;
	err_clear(&err);
	assert_null(policy_approved_now(&f->m, "to quote", &err));
	assert_int_equal(err.kind, ERR_POLICY);
	assert_non_null(strstr(err.msg, "refusing to quote: "));
	assert_non_null(strstr(err.msg, "host PCRs differ from the last approval: PCR 7 is "));
	/* Without the private key, the advice names the administrator's. */
	f->m.policy.private_held = false;
	err_set(&err, ERR_POLICY, "the host TPM refused PolicyAuthorize");
	policy_refused(&f->m, "to enrol the host", &err);
	assert_int_equal(err.kind, ERR_POLICY);
	assert_non_null(strstr(err.msg, "refusing to enrol the host: the host's CK and BK work "
	                                "only in an approved host configuration, and the host TPM "
	                                "refused PolicyAuthorize. If this host change is expected, "
	                                "approve it: vtpmctl policy approve --current --key FILE"));
	/* A PCR read that fails is the host TPM's failure, not a refusal. */
	host.failures = 1;
	err_clear(&err);
	assert_null(policy_approved_now(&f->m, "to quote", &err));
	assert_int_equal(err.kind, ERR_HOST_TPM);
}

#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    T(test_key_created_once),
	    cmocka_unit_test_setup_teardown(test_key_unreadable, setup_nokey, teardown),
	    cmocka_unit_test_setup_teardown(test_public_key_only, setup_nokey, teardown),
	    T(test_add_find_reload),
	    T(test_add_refused),
	    T(test_add_unwritable),
	    T(test_load_skips_bad_entries),
	    T(test_load_refuses_bad_file),
	    T(test_explain),
	    T(test_explain_truncation),
	    T(test_current_and_cache),
	    T(test_current_recovery),
	    T(test_approve_current),
	    T(test_approved_now),
	};

	setvbuf(stdout, NULL, _IONBF, 0);
	log_init("test_policy", LOG_LEVEL_ERROR);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
