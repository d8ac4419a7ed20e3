/*
 * ca_crl.c: a role's CRL (RFC 5280 version 2), made afresh from the
 * records: the revocations of every certificate the role issued (those
 * the cascade of ca_db_revoke added included), the next cRLNumber,
 * thisUpdate now and nextUpdate now + validity, signed by the role's key.
 * An entry leaves the CRL once its certificate expired before the previous
 * regularly scheduled CRL (now - validity): RFC 5280, 5.1.2.6, wants it
 * on one CRL issued after the expiry, and expired certificates fail
 * validation without it. The revocation stays in the records (GET
 * /v1/status still names it).
 * Shared by `vtpm-ca crl` and the parent of `vtpm-ca serve` (GET
 * /v1/ROLE/crl).
 */
#include <stdlib.h>

#include "ca.h"

int
ca_crl_make(struct ca_db *db, const struct certs_ca *ca, const char *role, int64_t now,
    int64_t validity, uint8_t **der, size_t *len, struct err *err)
{
	struct certs_crl_entry *entries = NULL;
	struct certs_crl_req req = {.this_update = now, .next_update = now + validity};
	int ret;

	*der = NULL;
	if (ca_db_crl(db, role, now - validity, &req.number, &entries, &req.n, err) == -1)
		return err_wrap(err, "the %s CA's revocations", role);
	req.entries = entries;
	ret = certs_issue_crl(ca, &req, der, len, err);
	free(entries);
	return ret;
}
