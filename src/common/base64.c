/*
 * base64.c: base64 (RFC 4648 section 4, with padding), as vtpm-ca's
 * protocol carries TPM structures. Decoding is strict: no whitespace, no
 * missing or misplaced padding, no non-zero bits after the last byte, so
 * one byte string has exactly one encoding.
 */
#include <stdlib.h>
#include <string.h>

#include "common.h"

static const char base64_alphabet[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

static int
base64_value(char c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '+')
		return 62;
	if (c == '/')
		return 63;
	return -1;
}

char *
base64_encode(const uint8_t *in, size_t len)
{
	char *out, *p;
	uint32_t v;

	if (len > (SIZE_MAX - 1) / 4 * 3 - 3)
		return NULL;
	out = malloc((len + 2) / 3 * 4 + 1);
	if (out == NULL)
		return NULL;
	p = out;
	for (size_t i = 0; i < len; i += 3) {
		v = (uint32_t)in[i] << 16;
		if (i + 1 < len)
			v |= (uint32_t)in[i + 1] << 8;
		if (i + 2 < len)
			v |= in[i + 2];
		*p++ = base64_alphabet[v >> 18 & 63];
		*p++ = base64_alphabet[v >> 12 & 63];
		*p++ = i + 1 < len ? base64_alphabet[v >> 6 & 63] : '=';
		*p++ = i + 2 < len ? base64_alphabet[v & 63] : '=';
	}
	*p = '\0';
	return out;
}

int
base64_decode(const char *in, uint8_t *out, size_t max, size_t *len)
{
	size_t n = strlen(in), o = 0, pad = 0;
	int v[4];

	*len = 0;
	if (n % 4 != 0)
		return -1;
	if (n > 0 && in[n - 1] == '=')
		pad = n > 1 && in[n - 2] == '=' ? 2 : 1;
	if (n / 4 * 3 - pad > max)
		return -1;
	for (size_t i = 0; i < n; i += 4) {
		bool last = i + 4 == n;
		for (int k = 0; k < 4; k++) {
			v[k] = base64_value(in[i + k]);
			if (v[k] == -1 && !(last && in[i + k] == '=' && k >= 4 - (int)pad))
				return -1;
		}
		out[o++] = (uint8_t)(v[0] << 2 | v[1] >> 4);
		if (last && pad == 2) {
			if ((v[1] & 15) != 0)
				return -1;
			break;
		}
		out[o++] = (uint8_t)((v[1] & 15) << 4 | v[2] >> 2);
		if (last && pad == 1) {
			if ((v[2] & 3) != 0)
				return -1;
			break;
		}
		out[o++] = (uint8_t)((v[2] & 3) << 6 | v[3]);
	}
	*len = o;
	return 0;
}
