/*
 * fuzz_certs.c: libFuzzer target for the readers of certificates that a
 * challenger or CA receives from guests and hosts (src/tpm/certs.c):
 * certs_parse_virtual(), certs_ek_info(), certs_parse_ck(),
 * certs_cert_key_digest() and certs_verify_chain(). Besides memory safety
 * it checks their contracts: a refusal says why and leaves the output
 * zeroed; an answer holds NUL-terminated strings of the documented shapes.
 *
 *   make fuzz-build && build/fuzz/fuzz_certs tests/fuzz/corpus/certs
 */
#include <stdlib.h>
#include <string.h>

#include "common/common.h"
#include "tpm/tpm.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
fuzz_zeroed(const void *p, size_t len)
{
	const uint8_t *b = p;

	for (size_t i = 0; i < len; i++)
		if (b[i] != 0)
			abort();
}

static void
fuzz_virtual(const uint8_t *data, size_t size)
{
	struct certs_virtual v;
	struct err err = {0};

	if (certs_parse_virtual(data, size, &v, &err) == -1) {
		if (err.msg[0] == '\0')
			abort();
		fuzz_zeroed(&v, sizeof(v));
		return;
	}
	if (!v.is_virtual && v.host_config[0] == '\0') {
		fuzz_zeroed(&v, sizeof(v)); /* no extension */
		return;
	}
	if (strlen(v.instance_uuid) != CERTS_UUID_LEN || v.host_config[0] == '\0' ||
	    strnlen(v.host_config, sizeof(v.host_config)) == sizeof(v.host_config))
		abort();
}

static void
fuzz_ek_info(const uint8_t *data, size_t size)
{
	struct certs_ek_info info;
	struct err err = {0};

	if (certs_ek_info(data, size, &info, &err) == -1) {
		if (err.msg[0] == '\0')
			abort();
		fuzz_zeroed(&info, sizeof(info));
		return;
	}
	if (info.manufacturer[0] == '\0' || info.model[0] == '\0' || info.version[0] == '\0' ||
	    info.has_spec != (info.family[0] != '\0'))
		abort();
}

static void
fuzz_ck(const uint8_t *data, size_t size)
{
	struct certs_host_key hk;
	struct err err = {0};

	if (certs_parse_ck(data, size, &hk, &err) == -1) {
		if (err.msg[0] == '\0')
			abort();
		fuzz_zeroed(&hk, sizeof(hk));
	} else if (hk.host[0] == '\0' || strnlen(hk.host, sizeof(hk.host)) == sizeof(hk.host)) {
		abort();
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct certs_der leaf = {data, size};
	uint8_t digest[CERTS_DIGEST_LEN];
	enum certs_verdict v;
	struct err err = {0};

	fuzz_virtual(data, size);
	fuzz_ek_info(data, size);
	fuzz_ck(data, size);
	(void)certs_cert_key_digest(data, size, digest);
	/* Against itself as the only root: whatever it is, a refusal says why. */
	v = certs_verify_chain(&leaf, NULL, 0, &leaf, 1, 0, &err);
	if (v != CERTS_VALID && err.msg[0] == '\0')
		abort();
	if (v > CERTS_INVALID)
		abort();
	return 0;
}
