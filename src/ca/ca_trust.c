/*
 * ca_trust.c: certificates judged against vtpm-ca's trust store, in the
 * network child (the parsing of certificates is the child's; the store is
 * the parent's, which sends it for each question, ca_ask.c).
 *
 * An entry of the store is one PEM file as `trust add` read it: the
 * certificate of the trusted CA first, then (optionally) the certificates
 * above it. Self-signed certificates of the entries of one kind are the
 * trust anchors of that kind; the others serve as intermediates. The store
 * is read again for every request, so `trust add` and `revoke` take effect
 * on a running server at once.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ca.h"

#define CT_MAX_CERTS 64

struct ct_set {
	struct certs_der anchors[CT_MAX_CERTS], inter[CT_MAX_CERTS], first[CT_MAX_CERTS];
	size_t n_anchors, n_inter, n_first, n_entries;
	uint8_t *owned[CT_MAX_CERTS];
	size_t n_owned;
	int error;
};

static void
ct_set_free(struct ct_set *set)
{
	for (size_t i = 0; i < set->n_owned; i++)
		free(set->owned[i]);
	set->n_owned = 0;
}

/* Adds the certificates of one trust entry (its PEM text) to the set. */
static int
ct_collect(void *ctx, const char *pem)
{
	struct ct_set *set = ctx;
	size_t off = 0, len, n = strlen(pem);
	uint8_t *der;
	int r, self;
	bool first = true;

	set->n_entries++;
	while ((r = certs_pem_next(pem, n, &off, &der, &len, NULL)) == 1) {
		if (set->n_owned == CT_MAX_CERTS) {
			free(der);
			set->error = 1;
			return 1;
		}
		set->owned[set->n_owned++] = der;
		if (first)
			set->first[set->n_first++] = (struct certs_der){der, len};
		first = false;
		self = certs_issued_by(der, len, der, len);
		if (self == 1)
			set->anchors[set->n_anchors++] = (struct certs_der){der, len};
		else
			set->inter[set->n_inter++] = (struct certs_der){der, len};
	}
	if (r == -1)
		set->error = 1;
	return 0;
}

int
ca_trust_verify(struct ca_link *l, enum ca_trust_kind kind, const struct certs_der *leaf,
    const struct certs_der *chain, size_t n_chain, bool direct, int64_t now, struct err *err)
{
	struct ct_set *set = calloc(1, sizeof(*set));
	struct err inner = {0};
	enum certs_verdict v;
	int ret = -1;

	if (set == NULL) {
		err_set(err, ERR_FAILED, "out of memory");
		return -1;
	}
	if (ca_ask_trust(l, kind, ct_collect, set, &inner) == -1 || set->error) {
		err_set(err, ERR_FAILED, "trust store: %s",
		    set->error ? "an entry is malformed or there are too many" : inner.msg);
		goto out;
	}
	if (set->n_entries == 0 || set->n_anchors == 0) {
		err_set(err, ERR_FAILED, "no %s CA is trusted", ca_trust_name(kind));
		goto out;
	}
	for (size_t i = 0; i < n_chain && set->n_inter < CT_MAX_CERTS; i++)
		set->inter[set->n_inter++] = chain[i];
	v = certs_verify_chain(leaf, set->inter, set->n_inter, set->anchors, set->n_anchors, now,
	    &inner);
	if (v != CERTS_VALID) {
		err_set(err, ERR_FAILED, "it does not chain to a trusted %s CA (%s: %s)",
		    ca_trust_name(kind), certs_verdict_name(v), inner.msg);
		goto out;
	}
	if (direct) {
		for (size_t i = 0; i < set->n_first; i++) {
			if (certs_issued_by(
			        leaf->der, leaf->len, set->first[i].der, set->first[i].len) == 1) {
				ret = 0;
				goto out;
			}
		}
		err_set(err, ERR_FAILED,
		    "it was not issued by a trusted %s CA itself, only by a CA under its root",
		    ca_trust_name(kind));
		goto out;
	}
	ret = 0;
out:
	ct_set_free(set);
	free(set);
	return ret;
}

int
ca_trust_revoked(struct ca_link *l, const uint8_t *der, size_t len, struct err *err)
{
	char serial[CERTS_SERIAL_HEX_MAX + 1];

	if (certs_cert_serial(der, len, serial) == -1) {
		err_set(err, ERR_FAILED, "the certificate's serial number cannot be read");
		return -1;
	}
	return ca_trust_serial_revoked(l, serial, err);
}

int
ca_trust_serial_revoked(struct ca_link *l, const char *serial, struct err *err)
{
	struct ca_status st;
	struct err e;

	if (ca_ask_status(l, serial, &st, &e) == -1) {
		if (e.kind == ERR_ABSENT)
			return 0; /* neither issued nor revoked here */
		err_set(err, ERR_FAILED, "revocations: the records cannot be read");
		return -1;
	}
	if (st.revoked) {
		err_set(err, ERR_FAILED, "certificate %s is revoked%s%s", serial,
		    st.reason[0] != '\0' ? ": " : "", st.reason);
		return 1;
	}
	return 0;
}
