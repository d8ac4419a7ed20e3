/*
 * fuzz_stateblob: the wrapped state blob reader (stateblob.c) on arbitrary
 * bytes, as SET_STATEBLOB hands them over from QEMU's control channel.
 * Anything it accepts must wrap again into a blob it accepts with the same
 * payload, kind, TPM version and generation.
 */
#include <stdlib.h>
#include <string.h>

#include "instance/instance.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* The key the corpus was made with: content key, UUID and key id. */
static const struct stateblob_key fuzz_key = {
    .key = {1, 2, 3, 4, 5, 6, 7, 8},
    .uuid = {0xa1, 0xa2, 0xa3},
    .key_id = {0x4b},
    .source = STATEBLOB_SOURCE_HOST,
};

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct stateblob_info info, again;
	uint8_t *payload = NULL, *payload2 = NULL, *blob = NULL;
	size_t len = 0, len2 = 0, blob_len = 0;

	if (stateblob_unwrap(&fuzz_key, data, size, &info, &payload, &len) != STATEBLOB_OK)
		return 0;
	if (stateblob_wrap(&fuzz_key, info.kind, info.tpm_version, info.generation, payload, len,
		&blob, &blob_len) != 0 ||
	    stateblob_unwrap(&fuzz_key, blob, blob_len, &again, &payload2, &len2) != STATEBLOB_OK ||
	    len2 != len || memcmp(payload2, payload, len) != 0 || again.kind != info.kind ||
	    again.tpm_version != info.tpm_version || again.generation != info.generation)
		abort();
	free(blob);
	free(payload2);
	free(payload);
	return 0;
}
