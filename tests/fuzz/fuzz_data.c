/*
 * fuzz_data: the data channel's framing (tpmwire_frame, as instance.c uses
 * it) on arbitrary bytes, as a client of the data socket or QEMU's data
 * descriptor could send them. Commands are cut one after the other as the
 * instance does, for TPM 2.0 and 1.2 and two buffer sizes; the same bytes
 * arriving in two parts (cut where the first byte says) must be framed the
 * same way; each frame's answer is built as the instance builds it.
 */
#include <stdlib.h>
#include <string.h>

#include "instance/instance.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_MAX_FRAMES 4096

/* How the instance saw a stream: the commands it ran, and how it ended. */
struct fuzz_outcome {
	size_t off[FUZZ_MAX_FRAMES], len[FUZZ_MAX_FRAMES];
	size_t n;
	enum tpmwire_frame last; /* INCOMPLETE (waiting) or BAD_SIZE (closed) */
	size_t pending;          /* bytes left unconsumed */
};

static void
fuzz_check_frame(const uint8_t *buf, size_t len, uint32_t max, enum tpmwire_frame f, size_t need)
{
	struct tpm_header h;

	switch (f) {
	case TPMWIRE_COMPLETE:
		if (need < TPM_HEADER_LEN || need > max || need > len ||
		    tpmwire_header(buf, len, &h) == -1 || h.size != need)
			abort();
		break;
	case TPMWIRE_INCOMPLETE:
		if (need < TPM_HEADER_LEN || need > max || need <= len)
			abort();
		if (len >= TPM_HEADER_LEN && (tpmwire_header(buf, len, &h) == -1 || h.size != need))
			abort();
		break;
	case TPMWIRE_BAD_SIZE:
		if (need != 0 || tpmwire_header(buf, len, &h) == -1 ||
		    (h.size >= TPM_HEADER_LEN && h.size <= max))
			abort();
		break;
	default: abort();
	}
}

/* Consumes whole commands from buf[*off, len) as instance_data_input does,
 * recording them in o. Returns false once the channel would close. */
static bool
fuzz_frame_all(const uint8_t *buf, size_t len, size_t *off, uint32_t max, unsigned int tpm_version,
    struct fuzz_outcome *o)
{
	uint8_t answer[TPM_HEADER_LEN];
	struct tpm_header h;
	enum tpmwire_frame f;
	size_t need;

	for (;;) {
		f = tpmwire_frame(buf + *off, len - *off, max, &need);
		fuzz_check_frame(buf + *off, len - *off, max, f, need);
		o->last = f;
		/* What waits for more bytes; nothing once the channel closes. */
		o->pending = f == TPMWIRE_INCOMPLETE ? len - *off : 0;
		if (f == TPMWIRE_INCOMPLETE)
			return true;
		if (f == TPMWIRE_BAD_SIZE) {
			/* The answer: a bare TPM_RC_COMMAND_SIZE (bad parameter size). */
			if (tpmwire_error(answer, tpm_version, tpm_version == 2 ? 0x142 : 0x19) !=
			        TPM_HEADER_LEN ||
			    tpmwire_header(answer, sizeof(answer), &h) == -1 ||
			    h.size != TPM_HEADER_LEN)
				abort();
			return false;
		}
		/* A command: the orderly-shutdown check sees only its bytes. */
		if (tpmwire_is_shutdown(buf + *off, need, tpm_version) !=
		    (tpmwire_header(buf + *off, need, &h) == 0 &&
		        h.code == (tpm_version == 2 ? 0x145u : 0x98u)))
			abort();
		if (o->n == FUZZ_MAX_FRAMES)
			abort(); /* at least 10 bytes each: cannot happen */
		o->off[o->n] = *off;
		o->len[o->n++] = need;
		*off += need;
	}
}

static void
fuzz_stream(const uint8_t *data, size_t size, uint32_t max, unsigned int tpm_version)
{
	static struct fuzz_outcome whole, parts;
	size_t off = 0, cut;

	/* All bytes at once. */
	memset(&whole, 0, sizeof(whole));
	(void)fuzz_frame_all(data, size, &off, max, tpm_version, &whole);

	/* The same bytes in two reads: framing must not depend on where
	 * a read ended. */
	memset(&parts, 0, sizeof(parts));
	cut = size > 0 ? data[0] * size / 256 : 0;
	off = 0;
	if (fuzz_frame_all(data, cut, &off, max, tpm_version, &parts))
		(void)fuzz_frame_all(data, size, &off, max, tpm_version, &parts);
	if (whole.n != parts.n || whole.last != parts.last || whole.pending != parts.pending ||
	    memcmp(whole.off, parts.off, whole.n * sizeof(whole.off[0])) != 0 ||
	    memcmp(whole.len, parts.len, whole.n * sizeof(whole.len[0])) != 0)
		abort();
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	/* The engines' default buffer size, and a smaller one set with
	 * SET_BUFFERSIZE. */
	fuzz_stream(data, size, 4096, 2);
	fuzz_stream(data, size, 4096, 1);
	fuzz_stream(data, size, 1024, 2);
	return 0;
}
