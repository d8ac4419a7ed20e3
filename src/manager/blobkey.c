/*
 * blobkey.c: the host's state-blob key. A worker's GET_STATEBLOB wraps
 * the TPM state it releases under a key of its own, which this host's
 * blob key derives for it (stateblob_instance_key: HKDF over its UUID),
 * so that only this host, in an approved configuration, can read or
 * restore it. The blob key is made once (at the first start that needs
 * it), sealed by the host TPM under the approval policy that seals the
 * state keys, and exists at rest only so (STATE/blobkey.sealed); the
 * manager unseals it once and keeps it in secret memory. Its key id, the
 * SHA-256 of the sealed object's Name, is what a blob names as its host.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <openssl/rand.h>
#include <openssl/sha.h>

#include "manager.h"

#define BLOBKEY_SEALED_MAX 4096

static int
blobkey_path(const struct manager *m, char *buf, size_t len, struct err *err)
{
	if ((size_t)snprintf(buf, len, "%s/%s", m->cfg.state_dir, BLOBKEY_FILE) >= len)
		return err_set(
		    err, ERR_FAILED, "%s/%s: path too long", m->cfg.state_dir, BLOBKEY_FILE);
	return 0;
}

/* Sets m's key id from the sealed object's Name. 0, or -1 with err. */
static int
blobkey_set_id(
    struct manager *m, const uint8_t *blob, size_t len, const char *path, struct err *err)
{
	uint8_t name[HWTPM_NAME_LEN];

	if (hwtpm_sealed_name(blob, len, name, err) == -1)
		return err_wrap(err, "%s", path);
	SHA256(name, sizeof(name), m->blob_key_id);
	return 0;
}

/* Makes the host's blob key into key and seals it to path. 0, or -1. */
static int
blobkey_make(struct manager *m, const char *path, uint8_t *key, struct err *err)
{
	uint8_t policy[TPM_DIGEST_LEN], *blob = NULL;
	size_t len = 0;
	int rc = -1;

	if (RAND_priv_bytes(key, STATE_KEY_LEN) != 1 ||
	    policy_auth_digest(&m->policy, policy) == -1)
		return err_set(err, ERR_FAILED, "cannot generate the host's state-blob key");
	if (hwtpm_seal(m->hw, key, STATE_KEY_LEN, policy, &blob, &len, err) == -1 &&
	    (!hwtpm_recover(m->hw) ||
	        hwtpm_seal(m->hw, key, STATE_KEY_LEN, policy, &blob, &len, err) == -1))
		return err_wrap(err, "host TPM: seal the state-blob key");
	if (blobkey_set_id(m, blob, len, path, err) == 0) {
		if (fileio_write_atomic(path, blob, len, 0600) == -1)
			err_errno(err, "%s", path);
		else
			rc = 0;
	}
	free(blob);
	if (rc == 0)
		log_info("%s: the host's state-blob key made, sealed by the host TPM", path);
	return rc;
}

/* Unseals the host's blob key of path (blob) into key. 0, or -1 with err. */
static int
blobkey_unseal(struct manager *m, const struct policy_entry *e, const char *path,
    const uint8_t *blob, size_t len, uint8_t *key, struct err *err)
{
	if (blobkey_set_id(m, blob, len, path, err) == -1)
		return -1;
	if (hwtpm_unseal(m->hw, blob, len, &m->cfg.pcrs, &e->ap, key, STATE_KEY_LEN, err) == 0)
		return 0;
	if (err->kind == ERR_FOREIGN)
		return err_wrap(err,
		    "%s was not sealed by this host's TPM (copied from another "
		    "host?); remove it and vtpmd makes a new one (blobs saved under the old one "
		    "then cannot be restored)",
		    path);
	return err_wrap(err, "unseal %s", path);
}

/*
 * Makes sure m holds the host's blob key: unsealed from STATE/blobkey.sealed
 * under the approval e (the one the caller just unsealed a state key
 * with), or made and sealed when there is none yet. Returns 0, or -1 with
 * err (ERR_POLICY, ERR_HOST_TPM, ERR_FOREIGN as hwtpm_unseal).
 */
int
blobkey_load(struct manager *m, const struct policy_entry *e, struct err *err)
{
	char path[PATH_MAX];
	uint8_t *key, *blob = NULL;
	size_t len = 0;
	int rc;

	if (m->blob_key != NULL)
		return 0;
	if (blobkey_path(m, path, sizeof(path), err) == -1)
		return -1;
	key = secret_alloc(STATE_KEY_LEN);
	if (key == NULL)
		return err_set(err, ERR_FAILED, "out of memory");
	if (fileio_read(path, BLOBKEY_SEALED_MAX, &blob, &len) == 0)
		rc = blobkey_unseal(m, e, path, blob, len, key, err);
	else if (errno == ENOENT)
		rc = blobkey_make(m, path, key, err);
	else
		rc = err_errno(err, "%s", path);
	free(blob);
	if (rc == -1) {
		secret_free(key, STATE_KEY_LEN);
		return -1;
	}
	m->blob_key = key;
	return 0;
}

/* The record a worker gets after its state key (struct stateblob_key):
 * its own key derived for uuid, uuid, and the host's key id. 0, or -1. */
int
blobkey_record(const struct manager *m, const uint8_t uuid[STATEBLOB_UUID_LEN],
    uint8_t rec[static STATEBLOB_KEY_RECORD_LEN])
{
	if (m->blob_key == NULL || stateblob_instance_key(m->blob_key, uuid, rec) == -1)
		return -1;
	memcpy(rec + STATE_KEY_LEN, uuid, STATEBLOB_UUID_LEN);
	memcpy(rec + STATE_KEY_LEN + STATEBLOB_UUID_LEN, m->blob_key_id, STATEBLOB_KEY_ID_LEN);
	return 0;
}

/* Wipes the key (at exit). */
void
blobkey_forget(struct manager *m)
{
	secret_free(m->blob_key, STATE_KEY_LEN);
	m->blob_key = NULL;
}
