/*
 * ca_nonce.c: the Virtualization CA's vEK evidence nonces, stateless
 * (docs/ca-api.md, "Virtualization CA"). A nonce carries what the parent
 * needs to recognise it, authenticated under a key only the parent holds:
 *
 *   bytes  0..7   its expiry, seconds since the epoch, big-endian
 *   bytes  8..15  random
 *   bytes 16..31  HMAC-SHA-256(key, "vtpmd vEK nonce v1" 0x00 || bytes 0..15),
 *                 its first 16 bytes
 *
 * so that handing one out costs no record: whoever asks for nonces from
 * any number of addresses fills no table. The parent records a nonce only
 * when evidence signed by an enrolled host's CK redeems it (ca_db_nonce_take),
 * until it expires, which keeps it single-use.
 */
#include <string.h>

#include "ca.h"

#define CA_NONCE_LABEL    "vtpmd vEK nonce v1"
#define CA_NONCE_BODY_LEN 16 /* expiry and random bytes: what the MAC covers */
#define CA_NONCE_MAC_LEN  (EVIDENCE_VEK_NONCE_LEN - CA_NONCE_BODY_LEN)

/* The MAC of a nonce's body under key, into mac. 0, or -1. */
static int
ca_nonce_mac(const uint8_t key[static CA_NONCE_KEY_LEN],
    const uint8_t body[static CA_NONCE_BODY_LEN], uint8_t mac[static CA_NONCE_MAC_LEN])
{
	uint8_t in[sizeof(CA_NONCE_LABEL) + CA_NONCE_BODY_LEN], full[32];
	int rc;

	memcpy(in, CA_NONCE_LABEL, sizeof(CA_NONCE_LABEL)); /* with its NUL */
	memcpy(in + sizeof(CA_NONCE_LABEL), body, CA_NONCE_BODY_LEN);
	rc = ca_hmac_sha256(key, CA_NONCE_KEY_LEN, in, sizeof(in), full);
	memcpy(mac, full, CA_NONCE_MAC_LEN);
	ca_cleanse(full, sizeof(full));
	return rc;
}

int
ca_nonce_make(const uint8_t key[static CA_NONCE_KEY_LEN], int64_t expires_at,
    uint8_t out[static EVIDENCE_VEK_NONCE_LEN], struct err *err)
{
	uint64_t t = (uint64_t)expires_at;

	for (int i = 7; i >= 0; i--, t >>= 8)
		out[i] = (uint8_t)(t & 0xff);
	if (ca_random(out + 8, CA_NONCE_BODY_LEN - 8) == -1)
		return err_set(err, ERR_FAILED, "out of random numbers");
	if (ca_nonce_mac(key, out, out + CA_NONCE_BODY_LEN) == -1)
		return err_set(err, ERR_FAILED, "HMAC-SHA-256 failed");
	return 0;
}

int
ca_nonce_check(const uint8_t key[static CA_NONCE_KEY_LEN],
    const uint8_t nonce[static EVIDENCE_VEK_NONCE_LEN], int64_t now, int64_t *expires_at,
    struct err *err)
{
	uint8_t mac[CA_NONCE_MAC_LEN];
	uint64_t t = 0;

	if (ca_nonce_mac(key, nonce, mac) == -1)
		return err_set(err, ERR_FAILED, "HMAC-SHA-256 failed");
	if (!ca_equal(mac, nonce + CA_NONCE_BODY_LEN, sizeof(mac)))
		return err_set(err, ERR_ABSENT, "the nonce was not handed out by this CA");
	for (int i = 0; i < 8; i++)
		t = t << 8 | nonce[i];
	*expires_at = t > (uint64_t)INT64_MAX ? INT64_MAX : (int64_t)t;
	if (now >= *expires_at)
		return err_set(err, ERR_TIMEOUT, "the nonce expired");
	return 0;
}
