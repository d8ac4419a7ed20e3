/*
 * fuzz_statefile: the state file decoder (statefile.c) on arbitrary bytes,
 * as a tampered or damaged file on disk would present them, with and
 * without a key. Anything the decoder accepts must re-encode to a file it
 * accepts again with the same payload.
 */
#include <stdlib.h>
#include <string.h>

#include "instance/instance.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const uint8_t fuzz_key[STATE_KEY_LEN] = {1, 2, 3, 4, 5, 6, 7, 8};

static void
fuzz_one(const uint8_t *key, const uint8_t *data, size_t size, enum state_kind kind)
{
	struct statefile_info want = {.kind = kind, .tpm_version = 2};
	uint8_t *payload = NULL, *again = NULL, *enc;
	size_t len = 0, len2 = 0, enc_len;
	uint64_t gen = 0, gen2 = 0;

	if (statefile_decode(key, data, size, &want, &gen, &payload, &len) != STATEFILE_OK)
		return;
	want.generation = gen;
	enc_len = statefile_encoded_size(len, key != NULL);
	enc = malloc(enc_len);
	if (enc == NULL || statefile_encode(&want, key, payload, len, enc, enc_len) < 0 ||
	    statefile_decode(key, enc, enc_len, &want, &gen2, &again, &len2) != STATEFILE_OK ||
	    len2 != len || gen2 != gen || memcmp(again, payload, len) != 0)
		abort();
	free(enc);
	free(again);
	free(payload);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	fuzz_one(NULL, data, size, STATE_PERMANENT);
	fuzz_one(fuzz_key, data, size, STATE_PERMANENT);
	fuzz_one(NULL, data, size, STATE_VOLATILE);
	return 0;
}
