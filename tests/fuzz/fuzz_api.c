/*
 * fuzz_api.c: libFuzzer target for api_parse(), the decoder of the bytes a
 * control-API client sends. Besides memory safety it checks the parser's
 * contract: refusals carry a 4xx/5xx status and a reason; a complete
 * request has a clean path (no "..", no control characters) and used every
 * byte; an incomplete one asks for more than it has, but never for more
 * than API_MAX_REQUEST.
 *
 *   make fuzz-build && build/fuzz/fuzz_api tests/fuzz/corpus/api
 */
#include <stdlib.h>
#include <string.h>

#include "common/common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
fuzz_check_complete(const struct api_request *req, size_t size)
{
	const char *s;

	if (req->path[0] != '/' || strlen(req->path) >= sizeof(req->path) ||
	    strlen(req->query) >= sizeof(req->query) || req->need != size || size > API_MAX_REQUEST)
		abort();
	for (s = req->path; *s != '\0'; s++)
		if ((unsigned char)*s <= 0x20 || (unsigned char)*s >= 0x7f)
			abort();
	for (s = req->query; *s != '\0'; s++)
		if ((unsigned char)*s <= 0x20 || (unsigned char)*s >= 0x7f)
			abort();
	for (s = req->path; s != NULL; s = strchr(s + 1, '/'))
		if (strncmp(s, "/..", 3) == 0 && (s[3] == '/' || s[3] == '\0'))
			abort();
	if (req->method > API_OTHER)
		abort();
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct api_request req;
	struct err err;
	int status = -1;

	switch (api_parse(data, size, &req, &status, &err)) {
	case API_PARSE_COMPLETE: fuzz_check_complete(&req, size); break;
	case API_PARSE_INCOMPLETE:
		if (req.need <= size || req.need > API_MAX_REQUEST || req.body != NULL)
			abort();
		break;
	case API_PARSE_ERROR:
		if (status < 400 || status > 599 || err.msg[0] == '\0' || req.body != NULL)
			abort();
		break;
	}
	api_request_clear(&req);
	return 0;
}
