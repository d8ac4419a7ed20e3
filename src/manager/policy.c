/*
 * policy.c: which host configurations may unseal state keys.
 *
 * A state key is sealed once, under PolicyAuthorize(approval key). An
 * approval is the approval key's signature over the PolicyPCR digest of
 * one set of host PCR values; STATE/approvals.json keeps every approval
 * with the values it covers, so a refusal can name the PCRs that differ.
 * The private approval key is STATE/approval.pem, unless the configuration
 * names only a public key (approval-public-key): then approvals are signed
 * by the administrator (`vtpmctl policy approve --key FILE`).
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "manager.h"

#define POLICY_FILE_MAX (1u << 20)

static void
policy_path(const struct manager *m, char *buf, size_t len)
{
	snprintf(buf, len, "%s/approvals.json", m->cfg.state_dir);
}

static json_t *
policy_entry_json(const struct policy_entry *e, size_t id)
{
	char pol[65], r[65], s[65];

	hex_encode(e->ap.policy, TPM_DIGEST_LEN, pol);
	hex_encode(e->ap.sig_r, 32, r);
	hex_encode(e->ap.sig_s, 32, s);
	return json_pack("{s:I, s:s, s:o, s:s, s:{s:s, s:s}}", "id", (json_int_t)id, "policy", pol,
	    "values", pcrpolicy_values_json(e->mask, e->values), "approved_at", e->approved_at,
	    "signature", "r", r, "s", s);
}

static int
policy_save(const struct manager *m)
{
	char path[PATH_MAX];
	json_t *arr, *o;
	char *text;
	int ret;

	arr = json_array();
	for (size_t i = 0; arr != NULL && i < m->policy.n; i++)
		json_array_append_new(arr, policy_entry_json(&m->policy.entries[i], i + 1));
	o = json_pack("{s:o}", "approvals", arr);
	if (o == NULL)
		return -1;
	text = json_dumps(o, JSON_INDENT(2));
	json_decref(o);
	if (text == NULL)
		return -1;
	policy_path(m, path, sizeof(path));
	ret = fileio_write_atomic(path, text, strlen(text), 0600);
	free(text);
	return ret;
}

/* Reads one stored approval; it must verify under the current key. */
static int
policy_entry_parse(const struct policy *p, json_t *o, struct policy_entry *e)
{
	const char *pol, *r, *s, *at = "";
	json_t *values;

	memset(e, 0, sizeof(*e));
	if (json_unpack(o, "{s:s, s:o, s?s, s:{s:s, s:s}}", "policy", &pol, "values", &values,
		"approved_at", &at, "signature", "r", &r, "s", &s) != 0 ||
	    hex_decode(pol, e->ap.policy, TPM_DIGEST_LEN) == -1 ||
	    hex_decode(r, e->ap.sig_r, 32) == -1 || hex_decode(s, e->ap.sig_s, 32) == -1 ||
	    pcrpolicy_values_parse(values, &e->mask, e->values) == -1)
		return -1;
	snprintf(e->approved_at, sizeof(e->approved_at), "%s", at);
	e->ap.pub = p->pub;
	return approval_verify(&e->ap);
}

static int
policy_read_file(struct manager *m, struct err *err)
{
	char path[PATH_MAX];
	json_error_t jerr;
	json_t *o, *arr, *item;
	uint8_t *buf;
	size_t len, i;

	policy_path(m, path, sizeof(path));
	if (fileio_read(path, POLICY_FILE_MAX, &buf, &len) == -1) {
		if (errno == ENOENT)
			return 0;
		err_set(err, ERR_FAILED, "%s: %s", path, strerror(errno));
		return -1;
	}
	o = json_loadb((const char *)buf, len, 0, &jerr);
	free(buf);
	arr = json_object_get(o, "approvals");
	if (!json_is_array(arr)) {
		err_set(err, ERR_FAILED, "%s: not an approvals file (%s)", path,
		    o == NULL ? jerr.text : "no \"approvals\" array");
		json_decref(o);
		return -1;
	}
	m->policy.entries = calloc(json_array_size(arr) + 1, sizeof(*m->policy.entries));
	if (m->policy.entries == NULL) {
		json_decref(o);
		return -1;
	}
	json_array_foreach(arr, i, item) {
		if (policy_entry_parse(&m->policy, item, &m->policy.entries[m->policy.n]) == 0)
			m->policy.n++;
		else
			log_warnx("%s: approval %zu is malformed or not signed by the current "
				  "approval key; ignored", path, i + 1);
	}
	json_decref(o);
	return 0;
}

/* Loads the approval key (creating the private one on first start unless
 * only a public key is configured) and the stored approvals. */
int
policy_load(struct manager *m, struct err *err)
{
	struct policy *p = &m->policy;

	if (m->cfg.approval_public[0] != '\0') {
		snprintf(p->key_path, sizeof(p->key_path), "%s", m->cfg.approval_public);
		p->private_held = false;
	} else {
		snprintf(p->key_path, sizeof(p->key_path), "%s/approval.pem", m->cfg.state_dir);
		p->private_held = true;
		if (access(p->key_path, F_OK) == -1 && errno == ENOENT) {
			if (approval_key_create(p->key_path) == -1) {
				err_set(err, ERR_FAILED, "%s: cannot create the approval key: %s",
				    p->key_path, strerror(errno));
				return -1;
			}
			log_info("created approval key %s", p->key_path);
		}
		log_warnx("vtpmd holds the private approval key %s: anyone who can read %s can "
		    "approve any host configuration, this host booted into another one included; "
		    "in production keep only its public half here (approval-public-key) and sign "
		    "approvals elsewhere with 'vtpmctl policy approve --current --key FILE' "
		    "(docs/config.md)", p->key_path, m->cfg.state_dir);
	}
	if (approval_key_public(p->key_path, &p->pub) == -1) {
		err_set(err, ERR_FAILED, "%s: not a readable ECC P-256 key (PEM)", p->key_path);
		return -1;
	}
	return policy_read_file(m, err);
}

/* The authPolicy every state key is sealed with. */
int
policy_auth_digest(const struct policy *p, uint8_t digest[TPM_DIGEST_LEN])
{
	return pcrpolicy_authorize(&p->pub, digest);
}

/* Reads the configured host PCRs and computes their PolicyPCR digest;
 * the result is also kept for policy_current_cached. Returns 0, or -1
 * with err. */
int
policy_current(struct manager *m, uint8_t values[TPM_PCRS][TPM_DIGEST_LEN],
    uint8_t digest[TPM_DIGEST_LEN], struct err *err)
{
	struct policy *p = &m->policy;

	p->cached = false;
	if (hwtpm_pcr_read(m->hw, &m->cfg.pcrs, values, err) == -1 &&
	    (!hwtpm_recover(m->hw) || hwtpm_pcr_read(m->hw, &m->cfg.pcrs, values, err) == -1))
		return -1;
	if (pcrpolicy_digest(&m->cfg.pcrs, values, digest) == -1)
		return err_set(err, ERR_FAILED, "compute the PolicyPCR digest of the host PCRs");
	memcpy(p->cached_values, values, sizeof(p->cached_values));
	memcpy(p->cached_digest, digest, TPM_DIGEST_LEN);
	p->cached = true;
	return 0;
}

/* As policy_current, but without a host-TPM round trip when the PCRs were
 * read before. Stale values are harmless: the TPM's own PolicyPCR decides,
 * and a refusal makes the caller read afresh (policy_current). */
int
policy_current_cached(struct manager *m, uint8_t values[TPM_PCRS][TPM_DIGEST_LEN],
    uint8_t digest[TPM_DIGEST_LEN], struct err *err)
{
	struct policy *p = &m->policy;

	if (!p->cached)
		return policy_current(m, values, digest, err);
	memcpy(values, p->cached_values, sizeof(p->cached_values));
	memcpy(digest, p->cached_digest, TPM_DIGEST_LEN);
	return 0;
}

const struct policy_entry *
policy_find(const struct policy *p, const uint8_t digest[TPM_DIGEST_LEN])
{
	for (size_t i = p->n; i > 0; i--)
		if (memcmp(p->entries[i - 1].ap.policy, digest, TPM_DIGEST_LEN) == 0)
			return &p->entries[i - 1];
	return NULL;
}

/* Whether PCR i is one of mask's and its value differs from e's. */
static bool
policy_pcr_differs(const struct policy_entry *e, uint32_t mask,
    const uint8_t values[TPM_PCRS][TPM_DIGEST_LEN], int i)
{
	return (mask & (1u << i)) && memcmp(values[i], e->values[i], TPM_DIGEST_LEN) != 0;
}

/* Explains why values are not approved, in one clause without final
 * punctuation: which PCRs differ from the most recent approval over the
 * same PCRs. The PCRs that do not fit in len are left out, marked "…"
 * (when even the mark does not fit, it is left out too, never cut). */
void
policy_explain(const struct policy *p, uint32_t mask,
    const uint8_t values[TPM_PCRS][TPM_DIGEST_LEN], char *buf, size_t len)
{
	const struct policy_entry *last = NULL;
	char now[9], was[9], item[64];
	const char *sep = " ";
	bool more;
	size_t off;
	int n;

	for (size_t i = p->n; i > 0 && last == NULL; i--)
		if (p->entries[i - 1].mask == mask)
			last = &p->entries[i - 1];
	if (last == NULL) {
		snprintf(buf, len, "no host configuration over these PCRs has been approved");
		return;
	}
	n = snprintf(buf, len, "host PCRs differ from the last approval:");
	off = n > 0 && (size_t)n < len ? (size_t)n : len;
	for (int i = 0; i < TPM_PCRS && off < len; i++) {
		if (!policy_pcr_differs(last, mask, values, i))
			continue;
		more = false;
		for (int j = i + 1; j < TPM_PCRS && !more; j++)
			more = policy_pcr_differs(last, mask, values, j);
		hex_encode(values[i], 4, now);
		hex_encode(last->values[i], 4, was);
		n = snprintf(item, sizeof(item), "%sPCR %d is %s…, approved %s…", sep, i, now, was);
		/* Room for this one and, if others follow, for "; …". */
		if (off + (size_t)n + (more ? strlen("; …") : 0) >= len) {
			if (off + strlen(sep) + strlen("…") < len)
				snprintf(buf + off, len - off, "%s…", sep);
			break;
		}
		memcpy(buf + off, item, (size_t)n + 1);
		off += (size_t)n;
		sep = "; ";
	}
}

/* The command that approves the host's present configuration: vtpmd
 * signs it with the key it holds, or the administrator signs it with the
 * private key when vtpmd holds only the public one. */
const char *
policy_approve_advice(const struct manager *m)
{
	return m->policy.private_held ? "vtpmctl policy approve --current"
	                              : "vtpmctl policy approve --current --key FILE (the "
	                                "administrator's private key)";
}

/*
 * Turns err, which holds why the host TPM's CK or BK refused to work (an
 * ERR_POLICY of hwtpm_*: its policy found the host PCRs unapproved), into
 * the refusal of what (e.g. "certifying the vEK"): ERR_POLICY, the cause,
 * and how to approve the configuration.
 */
void
policy_refused(const struct manager *m, const char *what, struct err *err)
{
	char cause[ERR_MSG_MAX / 2];

	snprintf(cause, sizeof(cause), "%s", err->msg);
	err_set(err, ERR_POLICY,
	    "refusing %s: the host's CK and BK work only in an approved host "
	    "configuration, and %s. If this host change is expected, approve it: %s.",
	    what, cause, policy_approve_advice(m));
}

/*
 * The approval of the host's present configuration, which every use of
 * the host TPM's CK and BK needs (hwtpm_attest.c: their authPolicy is the
 * state keys'): the configured PCRs are read afresh and their approval
 * looked up. Returns it, or NULL with err: ERR_POLICY refusing what (see
 * policy_refused), naming the PCRs that differ from the last approval;
 * another kind when the PCRs could not be read.
 */
const struct policy_entry *
policy_approved_now(struct manager *m, const char *what, struct err *err)
{
	uint8_t values[TPM_PCRS][TPM_DIGEST_LEN], digest[TPM_DIGEST_LEN];
	const struct policy_entry *e;
	char explain[ERR_MSG_MAX / 2];

	if (policy_current(m, values, digest, err) == -1) {
		err_wrap(err, "host TPM");
		return NULL;
	}
	if ((e = policy_find(&m->policy, digest)) != NULL)
		return e;
	policy_explain(&m->policy, m->cfg.pcrs.mask, values, explain, sizeof(explain));
	err_set(err, ERR_POLICY, "%s", explain);
	policy_refused(m, what, err);
	return NULL;
}

/* Stores an approval after checking its signature, its key and that its
 * policy is the PolicyPCR digest of the values it claims. */
int
policy_add(struct manager *m, const struct approval *ap, uint32_t mask,
    const uint8_t values[TPM_PCRS][TPM_DIGEST_LEN], struct err *err)
{
	struct pcr_selection sel = {.mask = mask};
	struct policy_entry *grown, *e;
	uint8_t digest[TPM_DIGEST_LEN];
	time_t now = time(NULL);
	struct tm tm;

	if (memcmp(&ap->pub, &m->policy.pub, sizeof(ap->pub)) != 0) {
		err_set(err, ERR_FAILED, "signed with a key other than vtpmd's approval key");
		return -1;
	}
	if (approval_verify(ap) == -1) {
		err_set(err, ERR_FAILED, "the signature does not verify");
		return -1;
	}
	if (pcrpolicy_digest(&sel, values, digest) == -1 ||
	    memcmp(digest, ap->policy, TPM_DIGEST_LEN) != 0) {
		err_set(err, ERR_FAILED, "the policy digest does not match the PCR values given");
		return -1;
	}
	if (policy_find(&m->policy, digest) != NULL)
		return 0;
	grown = realloc(m->policy.entries, (m->policy.n + 1) * sizeof(*grown));
	if (grown == NULL) {
		err_set(err, ERR_FAILED, "out of memory");
		return -1;
	}
	m->policy.entries = grown;
	e = &grown[m->policy.n];
	memset(e, 0, sizeof(*e));
	e->ap = *ap;
	e->mask = mask;
	memcpy(e->values, values, sizeof(e->values));
	gmtime_r(&now, &tm);
	strftime(e->approved_at, sizeof(e->approved_at), "%Y-%m-%dT%H:%M:%SZ", &tm);
	m->policy.n++;
	if (policy_save(m) == -1) {
		m->policy.n--;
		err_set(err, ERR_FAILED, "cannot write approvals: %s", strerror(errno));
		return -1;
	}
	log_info("approved host configuration %zu", m->policy.n);
	return 0;
}

/* Approves the host's present PCR values with the approval key vtpmd holds. */
int
policy_approve_current(struct manager *m, struct err *err)
{
	uint8_t values[TPM_PCRS][TPM_DIGEST_LEN], digest[TPM_DIGEST_LEN];
	struct approval ap;

	if (!m->policy.private_held) {
		err_set(err, ERR_FAILED, "vtpmd holds only the public approval key: sign with "
				       "'vtpmctl policy approve --current --key FILE'");
		return -1;
	}
	if (policy_current(m, values, digest, err) == -1)
		return err_wrap(err, "host TPM");
	if (approval_sign(m->policy.key_path, digest, &ap) == -1) {
		err_set(err, ERR_FAILED, "%s: cannot sign with the approval key", m->policy.key_path);
		return -1;
	}
	return policy_add(m, &ap, m->cfg.pcrs.mask, values, err);
}
