/*
 * fuzz_config: the configuration parser (config.c) on arbitrary text, as
 * `vtpmd -n --config FILE` reads it: config_parse_buffer over the defaults.
 * Every problem is one message naming its line; whatever is accepted keeps
 * the configuration's invariants (absolute paths, a PCR selection, bounded
 * strings), and the PCR list formats and parses back to itself.
 */
#include <stdlib.h>
#include <string.h>

#include "manager/manager.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static bool
fuzz_string_ok(const char *s, size_t cap, bool absolute, bool may_be_empty)
{
	size_t n = strnlen(s, cap);

	if (n == cap)
		return false;
	if (n == 0)
		return may_be_empty;
	return !absolute || s[0] == '/';
}

/* Every message is "fuzz:LINE: ..." with 1 <= LINE <= lines. */
static size_t
fuzz_check_messages(const char *out, size_t out_len, size_t lines)
{
	size_t count = 0;
	const char *p = out, *end = out + out_len, *nl;

	while (p < end) {
		char *after;
		unsigned long line;
		nl = memchr(p, '\n', (size_t)(end - p));
		if (nl == NULL || (size_t)(end - p) < 6 || memcmp(p, "fuzz:", 5) != 0)
			abort();
		line = strtoul(p + 5, &after, 10);
		if (after == p + 5 || *after != ':' || line < 1 || line > lines)
			abort();
		count++;
		p = nl + 1;
	}
	return count;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct config cfg;
	struct pcr_selection again;
	char pcrs[128], *out = NULL;
	size_t out_len = 0, lines = 0;
	FILE *errors;
	int problems;

	errors = open_memstream(&out, &out_len);
	if (errors == NULL)
		return 0;
	config_defaults(&cfg);
	problems = config_parse_buffer("fuzz", (const char *)data, size, &cfg, errors);
	fclose(errors);

	for (size_t i = 0; i < size; i++)
		lines += data[i] == '\n';
	if (size > 0 && data[size - 1] != '\n')
		lines++;
	if (problems < 0 || (size_t)problems != fuzz_check_messages(out, out_len, lines))
		abort();
	free(out);

	if (!fuzz_string_ok(cfg.tcti, sizeof(cfg.tcti), false, false) ||
	    !fuzz_string_ok(cfg.state_dir, sizeof(cfg.state_dir), true, false) ||
	    !fuzz_string_ok(cfg.run_dir, sizeof(cfg.run_dir), true, false) ||
	    !fuzz_string_ok(cfg.socket, sizeof(cfg.socket), true, false) ||
	    !fuzz_string_ok(cfg.approval_public, sizeof(cfg.approval_public), true, true))
		abort();
	if (cfg.pcrs.mask == 0 || cfg.pcrs.mask >= 1u << TPM_PCRS)
		abort();
	if (cfg.worker_uid_base >= 0x7fff0000u || cfg.log_level > LOG_LEVEL_DEBUG)
		abort();
	pcrpolicy_format(&cfg.pcrs, pcrs, sizeof(pcrs));
	if (pcrpolicy_parse(pcrs, &again) == -1 || again.mask != cfg.pcrs.mask)
		abort();
	return 0;
}
