/*
 * attest_bundle.c: vtpm-attest's evidence bundle (JSON), tpm2-tools' PCR
 * file and PCR specifications on the command line (see attest.h). Every
 * input is untrusted; every reader bounds what it writes by the fixed
 * fields of struct attest_evidence and struct evidence_pcr_values.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "attest.h"



/* ---- banks ---- */

static const struct {
	const char *name;
	uint16_t alg;
	size_t size;
} ab_banks[] = {
    {"sha1", EVIDENCE_ALG_SHA1, 20},
    {"sha256", EVIDENCE_ALG_SHA256, 32},
    {"sha384", EVIDENCE_ALG_SHA384, 48},
    {"sha512", EVIDENCE_ALG_SHA512, 64},
};

/* The TPM_ALG_ID of a bank name, or 0. */
uint16_t
attest_bank_alg(const char *name)
{
	for (size_t i = 0; i < sizeof(ab_banks) / sizeof(ab_banks[0]); i++)
		if (strcmp(ab_banks[i].name, name) == 0)
			return ab_banks[i].alg;
	return 0;
}

const char *
attest_bank_name(uint16_t alg)
{
	for (size_t i = 0; i < sizeof(ab_banks) / sizeof(ab_banks[0]); i++)
		if (ab_banks[i].alg == alg)
			return ab_banks[i].name;
	return NULL;
}

/* The digest size of a bank, or 0 when it is not one of ab_banks. */
size_t
attest_bank_size(uint16_t alg)
{
	for (size_t i = 0; i < sizeof(ab_banks) / sizeof(ab_banks[0]); i++)
		if (ab_banks[i].alg == alg)
			return ab_banks[i].size;
	return 0;
}

/* The entry of vals for alg, appended (zeroed) when absent; NULL when
 * there is no room. */
static struct evidence_pcr_values *
ab_bank_slot(struct evidence_pcr_values *vals, size_t *n, uint16_t alg)
{
	for (size_t i = 0; i < *n; i++)
		if (vals[i].hash_alg == alg)
			return &vals[i];
	if (*n >= ATTEST_BANKS)
		return NULL;
	memset(&vals[*n], 0, sizeof(vals[*n]));
	vals[*n].hash_alg = alg;
	return &vals[(*n)++];
}

/* ---- the bundle ---- */

/* Decodes obj[key], a base64 string, into out (at most max bytes). */
static int
ab_json_b64(const json_t *obj, const char *key, bool optional, uint8_t *out, size_t max,
    size_t *len, struct err *err)
{
	const json_t *v = json_object_get(obj, key);

	*len = 0;
	if (v == NULL && optional)
		return 0;
	if (!json_is_string(v)) {
		err_set(err, ERR_INVALID, "bundle: \"%s\" is %s", key,
		    v == NULL ? "missing" : "not a string");
		return -1;
	}
	if (base64_decode(json_string_value(v), out, max, len) == -1 || *len == 0) {
		err_set(err, ERR_INVALID, "bundle: \"%s\" is not base64 of 1 to %zu bytes", key, max);
		return -1;
	}
	return 0;
}

/* A PCR index in decimal, 0 to EVIDENCE_MAX_PCRS - 1; -1 otherwise. */
static int
ab_pcr_index(const char *s)
{
	int v = 0;

	if (s[0] == '\0' || strlen(s) > 2 || (s[0] == '0' && s[1] != '\0'))
		return -1;
	for (const char *p = s; *p != '\0'; p++) {
		if (*p < '0' || *p > '9')
			return -1;
		v = v * 10 + (*p - '0');
	}
	return v < EVIDENCE_MAX_PCRS ? v : -1;
}

/* Reads one bank {"16": HEX, ...} into vals. */
static int
ab_json_bank(const char *name, const json_t *bank, struct evidence_pcr_values *vals, size_t *n,
    struct err *err)
{
	uint16_t alg = attest_bank_alg(name);
	size_t size = attest_bank_size(alg);
	struct evidence_pcr_values *v;
	const char *key;
	json_t *val;
	int pcr;

	if (alg == 0) {
		err_set(err, ERR_INVALID, "bundle: unknown PCR bank \"%.16s\" (sha1, sha256, sha384, "
		    "sha512)",
		    name);
		return -1;
	}
	if (!json_is_object(bank)) {
		err_set(err, ERR_INVALID, "bundle: pcrs.%s is not an object", name);
		return -1;
	}
	if ((v = ab_bank_slot(vals, n, alg)) == NULL) {
		err_set(err, ERR_INVALID, "bundle: too many PCR banks");
		return -1;
	}
	json_object_foreach((json_t *)bank, key, val)
	{
		pcr = ab_pcr_index(key);
		if (pcr < 0) {
			err_set(err, ERR_INVALID, "bundle: pcrs.%s: \"%.8s\" is not a PCR index 0-31",
			    name, key);
			return -1;
		}
		if (!json_is_string(val) ||
		    hex_decode(json_string_value(val), v->value[pcr], size)) {
			err_set(err, ERR_INVALID, "bundle: pcrs.%s.%d is not %zu bytes in hex", name,
			    pcr, size);
			return -1;
		}
		v->mask |= 1u << pcr;
	}
	return 0;
}

int
attest_bundle_parse(
    const uint8_t *buf, size_t len, struct attest_evidence *ev, struct err *err)
{
	json_error_t jerr;
	const json_t *pcrs;
	const char *key;
	json_t *root, *val;
	int ret = -1;

	memset(ev, 0, sizeof(*ev));
	if (len > ATTEST_BUNDLE_MAX) {
		err_set(err, ERR_INVALID, "bundle: larger than %u bytes", ATTEST_BUNDLE_MAX);
		return -1;
	}
	root = json_loadb((const char *)buf, len, JSON_REJECT_DUPLICATES, &jerr);
	if (root == NULL) {
		err_set(err, ERR_INVALID, "bundle: not JSON: %s (line %d)", jerr.text, jerr.line);
		return -1;
	}
	if (!json_is_object(root)) {
		err_set(err, ERR_INVALID, "bundle: not a JSON object");
		goto out;
	}
	if (ab_json_b64(root, "attest", false, ev->attest, sizeof(ev->attest), &ev->attest_len,
	        err) == -1 ||
	    ab_json_b64(root, "signature", false, ev->signature, sizeof(ev->signature),
	        &ev->signature_len, err) == -1 ||
	    ab_json_b64(root, "ak_public", true, ev->ak_public, sizeof(ev->ak_public),
	        &ev->ak_public_len, err) == -1)
		goto out;
	pcrs = json_object_get(root, "pcrs");
	if (!json_is_object(pcrs)) {
		err_set(err, ERR_INVALID, "bundle: \"pcrs\" is %s",
		    pcrs == NULL ? "missing" : "not an object");
		goto out;
	}
	json_object_foreach((json_t *)pcrs, key, val)
	{
		if (ab_json_bank(key, val, ev->pcrs, &ev->n_pcrs, err) == -1)
			goto out;
	}
	ret = 0;
out:
	json_decref(root);
	if (ret == -1)
		memset(ev, 0, sizeof(*ev));
	return ret;
}

/* Adds key: base64 of buf to obj. */
static int
ab_set_b64(json_t *obj, const char *key, const uint8_t *buf, size_t len)
{
	char *s = base64_encode(buf, len);
	int ret = s != NULL ? json_object_set_new(obj, key, json_string(s)) : -1;

	free(s);
	return ret;
}

static json_t *
ab_pcrs_json(const struct evidence_pcr_values *vals, size_t n)
{
	char hex[2 * EVIDENCE_DIGEST_MAX + 1], idx[4];
	json_t *pcrs = json_object(), *bank;

	for (size_t i = 0; pcrs != NULL && i < n; i++) {
		const char *name = attest_bank_name(vals[i].hash_alg);
		size_t size = attest_bank_size(vals[i].hash_alg);

		if (name == NULL || (bank = json_object()) == NULL ||
		    json_object_set_new(pcrs, name, bank) == -1) {
			json_decref(pcrs);
			return NULL;
		}
		for (int p = 0; p < EVIDENCE_MAX_PCRS; p++) {
			if ((vals[i].mask & 1u << p) == 0)
				continue;
			hex_encode(vals[i].value[p], size, hex);
			snprintf(idx, sizeof(idx), "%d", p);
			json_object_set_new(bank, idx, json_string(hex));
		}
	}
	return pcrs;
}

char *
attest_bundle_encode(const struct attest_evidence *ev)
{
	json_t *root = json_object(), *pcrs = ab_pcrs_json(ev->pcrs, ev->n_pcrs);
	char *out = NULL;

	if (root == NULL || pcrs == NULL ||
	    ab_set_b64(root, "attest", ev->attest, ev->attest_len) == -1 ||
	    ab_set_b64(root, "signature", ev->signature, ev->signature_len) == -1 ||
	    json_object_set(root, "pcrs", pcrs) == -1 ||
	    (ev->ak_public_len > 0 &&
	        ab_set_b64(root, "ak_public", ev->ak_public, ev->ak_public_len) == -1))
		goto out;
	out = json_dumps(root, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
out:
	json_decref(pcrs);
	json_decref(root);
	return out;
}

/* ---- tpm2-tools' PCR file ---- */

static uint32_t
ab_le32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint16_t
ab_le16(const uint8_t *p)
{
	return (uint16_t)(p[0] | p[1] << 8);
}

/* Reads the selection at the head of a PCR file into sel. */
static int
ab_pcrfile_selection(const uint8_t *buf, struct evidence_pcr_select *sel, struct err *err)
{
	uint32_t count = ab_le32(buf);

	memset(sel, 0, sizeof(*sel));
	if (count > EVIDENCE_MAX_BANKS) {
		err_set(err, ERR_INVALID, "PCR file: %u banks selected (at most %d)", count,
		    EVIDENCE_MAX_BANKS);
		return -1;
	}
	for (uint32_t i = 0; i < count; i++) {
		const uint8_t *b = buf + 4 + i * AB_PCRFILE_BANK;
		uint8_t size = b[2];

		if (size > EVIDENCE_MAX_PCRS / 8) {
			err_set(err, ERR_INVALID, "PCR file: a selection of %u bytes (at most %d)",
			    size, EVIDENCE_MAX_PCRS / 8);
			return -1;
		}
		sel->bank[i].hash_alg = ab_le16(b);
		for (uint8_t j = 0; j < size; j++)
			sel->bank[i].mask |= (uint32_t)b[3 + j] << (8 * j);
		for (uint32_t k = 0; k < i; k++)
			if (sel->bank[k].hash_alg == sel->bank[i].hash_alg) {
				err_set(err, ERR_INVALID, "PCR file: bank 0x%04x selected twice",
				    sel->bank[i].hash_alg);
				return -1;
			}
		if (sel->bank[i].mask != 0 && attest_bank_size(sel->bank[i].hash_alg) == 0) {
			err_set(err, ERR_INVALID, "PCR file: bank 0x%04x is not sha1, sha256, sha384 "
			    "or sha512",
			    sel->bank[i].hash_alg);
			return -1;
		}
	}
	sel->count = count;
	return 0;
}

int
attest_pcrfile_parse(const uint8_t *buf, size_t len, struct evidence_pcr_values *vals, size_t *n,
    struct err *err)
{
	struct evidence_pcr_select sel;
	uint32_t lists, list = 0, in_list = 0, list_count = 0;
	const uint8_t *lp = NULL;

	*n = 0;
	if (buf == NULL || len < ATTEST_PCRFILE_SIZE + 4) {
		err_set(err, ERR_INVALID, "PCR file: %zu bytes, too short for tpm2-tools' format",
		    buf == NULL ? 0 : len);
		return -1;
	}
	if (ab_pcrfile_selection(buf, &sel, err) == -1)
		return -1;
	lists = ab_le32(buf + ATTEST_PCRFILE_SIZE);
	if (lists > (len - ATTEST_PCRFILE_SIZE - 4) / AB_PCRFILE_LIST ||
	    len != ATTEST_PCRFILE_SIZE + 4 + (size_t)lists * AB_PCRFILE_LIST) {
		err_set(err, ERR_INVALID, "PCR file: %zu bytes for %u digest lists", len, lists);
		return -1;
	}
	for (size_t b = 0; b < sel.count; b++) {
		size_t size = attest_bank_size(sel.bank[b].hash_alg);
		struct evidence_pcr_values *v;

		if (sel.bank[b].mask == 0)
			continue;
		if ((v = ab_bank_slot(vals, n, sel.bank[b].hash_alg)) == NULL) {
			err_set(err, ERR_INVALID, "PCR file: more than %d banks", ATTEST_BANKS);
			goto fail;
		}
		for (int p = 0; p < EVIDENCE_MAX_PCRS; p++) {
			const uint8_t *d;

			if ((sel.bank[b].mask & 1u << p) == 0)
				continue;
			while (lp == NULL || in_list == list_count) {
				if (list == lists) {
					err_set(err, ERR_INVALID, "PCR file: fewer values than PCRs "
					    "selected");
					goto fail;
				}
				lp = buf + ATTEST_PCRFILE_SIZE + 4 +
				     (size_t)list++ * AB_PCRFILE_LIST;
				list_count = ab_le32(lp);
				in_list = 0;
				if (list_count > AB_PCRFILE_DIGESTS) {
					err_set(err, ERR_INVALID, "PCR file: a list of %u digests (at "
					    "most %d)",
					    list_count, AB_PCRFILE_DIGESTS);
					goto fail;
				}
			}
			d = lp + 4 + (size_t)in_list++ * AB_PCRFILE_DIGEST;
			if (ab_le16(d) != size) {
				err_set(err, ERR_INVALID, "PCR file: %s PCR %d: a value of %u bytes",
				    attest_bank_name(sel.bank[b].hash_alg), p, ab_le16(d));
				goto fail;
			}
			memcpy(v->value[p], d + 2, size);
			v->mask |= 1u << p;
		}
	}
	if (in_list != list_count || list != lists) {
		err_set(err, ERR_INVALID, "PCR file: more values than PCRs selected");
		goto fail;
	}
	return 0;
fail:
	memset(vals, 0, *n * sizeof(*vals));
	*n = 0;
	return -1;
}

/* ---- PCR specifications ---- */

/* Parses one "BANK:PCR[=HEX],..." of a specification. */
static int
ab_spec_bank(char *part, struct evidence_pcr_select *sel, struct evidence_pcr_values *vals,
    size_t *n_vals, struct err *err)
{
	char *colon = strchr(part, ':'), *item, *save = NULL, *eq;
	struct evidence_pcr_values *v = NULL;
	uint16_t alg;
	size_t size;
	int pcr;

	if (colon == NULL) {
		err_set(err, ERR_INVALID, "PCR spec: \"%.32s\" is not BANK:PCR,...", part);
		return -1;
	}
	*colon = '\0';
	alg = attest_bank_alg(part);
	size = attest_bank_size(alg);
	if (alg == 0) {
		err_set(err, ERR_INVALID, "PCR spec: unknown bank \"%.16s\" (sha1, sha256, sha384, "
		    "sha512)",
		    part);
		return -1;
	}
	for (size_t i = 0; i < sel->count; i++)
		if (sel->bank[i].hash_alg == alg) {
			err_set(err, ERR_INVALID, "PCR spec: bank %s given twice", part);
			return -1;
		}
	if (sel->count >= ATTEST_BANKS || (v = ab_bank_slot(vals, n_vals, alg)) == NULL) {
		err_set(err, ERR_INVALID, "PCR spec: too many banks");
		return -1;
	}
	sel->bank[sel->count].hash_alg = alg;
	for (item = strtok_r(colon + 1, ",", &save); item != NULL;
	     item = strtok_r(NULL, ",", &save)) {
		if ((eq = strchr(item, '=')) != NULL)
			*eq = '\0';
		if ((pcr = ab_pcr_index(item)) < 0) {
			err_set(err, ERR_INVALID, "PCR spec: \"%.8s\" is not a PCR index 0-31", item);
			return -1;
		}
		sel->bank[sel->count].mask |= 1u << pcr;
		if (eq == NULL)
			continue;
		if (hex_decode(eq + 1, v->value[pcr], size) == -1) {
			err_set(err, ERR_INVALID, "PCR spec: %s PCR %d: not %zu bytes in hex", part,
			    pcr, size);
			return -1;
		}
		v->mask |= 1u << pcr;
	}
	if (sel->bank[sel->count].mask == 0) {
		err_set(err, ERR_INVALID, "PCR spec: bank %s without PCRs", part);
		return -1;
	}
	sel->count++;
	return 0;
}

int
attest_pcr_spec_parse(const char *spec, struct evidence_pcr_select *sel,
    struct evidence_pcr_values *vals, size_t *n_vals, struct err *err)
{
	char *copy = strdup(spec), *part, *save = NULL;
	int ret = -1;

	memset(sel, 0, sizeof(*sel));
	*n_vals = 0;
	if (copy == NULL) {
		err_set(err, ERR_INVALID, "out of memory");
		return -1;
	}
	for (part = strtok_r(copy, "+", &save); part != NULL; part = strtok_r(NULL, "+", &save))
		if (ab_spec_bank(part, sel, vals, n_vals, err) == -1)
			goto out;
	if (sel->count == 0) {
		err_set(err, ERR_INVALID, "PCR spec: empty (e.g. sha256:0,1,16)");
		goto out;
	}
	ret = 0;
out:
	if (ret == -1) {
		memset(sel, 0, sizeof(*sel));
		*n_vals = 0;
	}
	free(copy);
	return ret;
}
