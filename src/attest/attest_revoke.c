/*
 * attest_revoke.c: the challenger's revocation check of an AK
 * certificate's whole chain: the AK certificate, and the vEK certificate
 * and the host CK's certificate its VtpmdLineage extension names (issuer
 * key identifier and serial, as AuthorityKeyIdentifier names an issuer's
 * certificate). Each link is looked up, the highest first, so that a
 * refusal names the link that was revoked (a CK revoked: the host; a vEK
 * certificate: the vTPM), either by asking vtpm-ca (GET /v1/status) or in
 * CRLs read and checked once (certs_crls: a sorted lookup per link, no
 * parsing per verification).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "attest.h"

static const char *const ar_names[ATTEST_CHAIN_MAX] = {"AK", "vEK", "CK"};

int
attest_chain_of(const struct certs_der *ak, struct attest_chain *c, struct err *err)
{
	struct certs_lineage l;
	struct err inner;
	bool is_virtual;

	memset(c, 0, sizeof(*c));
	if (certs_cert_lineage(ak->der, ak->len, &c->link[0], &l, &is_virtual, &inner) == -1)
		return err_set(err, ERR_INVALID, "AK certificate: %s", inner.msg);
	c->n = 1;
	if (l.present && l.has_vek) {
		c->link[1] = l.vek;
		c->link[2] = l.ck;
		c->n = 3;
		return 0;
	}
	if (is_virtual)
		return err_set(err, ERR_INVALID,
		    "AK certificate: it names no vEK or CK certificate (VtpmdLineage), so "
		    "revocation of its host or vTPM cannot be checked: enrol the AK again");
	return 0; /* not a vTPM's AK: its certificate is the whole chain */
}

const char *
attest_chain_name(size_t i)
{
	return i < ATTEST_CHAIN_MAX ? ar_names[i] : "?";
}

int
attest_revoked_crls(const struct certs_crls *crls, const struct attest_chain *c, struct err *err)
{
	char when[32] = "";
	struct err inner;
	int64_t at = 0;
	struct tm tm;
	time_t t;

	for (size_t i = c->n; i-- > 0;) {
		switch (certs_crls_lookup(crls, &c->link[i], &at, &inner)) {
		case 0: continue;
		case 1:
			t = (time_t)at;
			if (gmtime_r(&t, &tm) != NULL)
				strftime(when, sizeof(when), " on %Y-%m-%dT%H:%M:%SZ", &tm);
			return err_set(err, ERR_REFUSED, "%s certificate %s is revoked%s (CRL)",
			    ar_names[i], c->link[i].serial, when);
		default:
			return err_set(err, ERR_REFUSED,
			    "%s certificate %s: revocation unknown: %s (give its issuer's CRL "
			    "with --crl)",
			    ar_names[i], c->link[i].serial, inner.msg);
		}
	}
	return 0;
}

int
attest_revoked_ca(const char *base_url, const struct attest_chain *c, struct err *err)
{
	struct err inner;

	for (size_t i = c->n; i-- > 0;)
		if (attest_http_status(base_url, c->link[i].serial, &inner) != 0)
			return err_set(err, ERR_REFUSED, "%s certificate %s: %s", ar_names[i],
			    c->link[i].serial, inner.msg);
	return 0;
}

int
attest_crls_load(const char *const *paths, size_t n, const struct certs_der *issuers,
    size_t n_issuers, const struct certs_der *roots, size_t n_roots, int64_t now,
    struct certs_crls **out, struct err *err)
{
	struct certs_crls *s = certs_crls_new();
	uint8_t *buf = NULL;
	size_t len = 0;
	struct err inner;

	*out = NULL;
	if (s == NULL)
		return err_set(err, ERR_FAILED, "out of memory");
	for (size_t i = 0; i < n; i++) {
		if (fileio_read(paths[i], ATTEST_CRL_FILE_MAX, &buf, &len) == -1) {
			err_errno(err, "%s", paths[i]);
			goto fail;
		}
		if (certs_crls_add(s, buf, len, issuers, n_issuers, roots, n_roots, now, &inner) ==
		    -1) {
			err_set(err, ERR_INVALID, "%s: CRL refused: %s", paths[i], inner.msg);
			goto fail;
		}
		free(buf);
		buf = NULL;
	}
	*out = s;
	return 0;
fail:
	free(buf);
	certs_crls_free(s);
	return -1;
}
