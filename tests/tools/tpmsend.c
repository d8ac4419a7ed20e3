/*
 * tpmsend: a test client that speaks raw bytes to a vTPM socket.
 *
 *   tpmsend ENDPOINT HEX...         send each HEX as one TPM command; print
 *                                   each response as hex, one per line
 *   tpmsend --raw [--wait MS] ENDPOINT HEX
 *                                   send HEX as is; print whatever comes
 *                                   back as hex, then "EOF" if the peer
 *                                   closed or "OPEN" if it is still open
 *                                   after MS milliseconds (default 1000)
 *
 * Exit status 0, or 1 when the peer closed before a whole response.
 */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "instance/instance.h"

static int
tpmsend_hex_decode(const char *hex, uint8_t **out, size_t *len)
{
	size_t n = strlen(hex);
	uint8_t *p;

	if (n % 2 != 0)
		return -1;
	p = malloc(n / 2 + 1);
	if (p == NULL)
		return -1;
	for (size_t i = 0; i < n / 2; i++) {
		unsigned int b;
		if (sscanf(hex + 2 * i, "%2x", &b) != 1) {
			free(p);
			return -1;
		}
		p[i] = (uint8_t)b;
	}
	*out = p;
	*len = n / 2;
	return 0;
}

static void
tpmsend_hex_print(const uint8_t *p, size_t len)
{
	for (size_t i = 0; i < len; i++)
		printf("%02x", p[i]);
	printf("\n");
}

static int
read_full(int fd, uint8_t *p, size_t len)
{
	ssize_t n;

	while (len > 0) {
		n = read(fd, p, len);
		if (n == -1 && errno == EINTR)
			continue;
		if (n <= 0)
			return -1;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

static int
send_commands(int fd, int argc, char **argv)
{
	static uint8_t rsp[65536];
	struct tpm_header h;
	uint8_t *cmd;
	size_t len;

	for (int i = 0; i < argc; i++) {
		if (tpmsend_hex_decode(argv[i], &cmd, &len) == -1)
			fatalx(2, "not hex: %s", argv[i]);
		if (send(fd, cmd, len, MSG_NOSIGNAL) != (ssize_t)len)
			fatal(1, "send");
		free(cmd);
		if (read_full(fd, rsp, TPM_HEADER_LEN) == -1)
			fatalx(1, "connection closed before a response");
		tpmwire_header(rsp, TPM_HEADER_LEN, &h);
		if (h.size < TPM_HEADER_LEN || h.size > sizeof(rsp))
			fatalx(1, "response size %u", h.size);
		if (read_full(fd, rsp + TPM_HEADER_LEN, h.size - TPM_HEADER_LEN) == -1)
			fatalx(1, "connection closed inside a response");
		tpmsend_hex_print(rsp, h.size);
		/* Each line is an acknowledgement a test may be waiting for. */
		fflush(stdout);
	}
	return 0;
}

static int
send_raw(int fd, const char *hex, int wait_ms)
{
	static uint8_t buf[1 << 20];
	struct pollfd pfd = {.fd = fd, .events = POLLIN};
	size_t got = 0;
	uint8_t *cmd;
	size_t len;
	ssize_t n;

	if (tpmsend_hex_decode(hex, &cmd, &len) == -1)
		fatalx(2, "not hex: %s", hex);
	if (len > 0 && send(fd, cmd, len, MSG_NOSIGNAL) != (ssize_t)len)
		fatal(1, "send");
	free(cmd);
	for (;;) {
		if (poll(&pfd, 1, wait_ms) <= 0) {
			tpmsend_hex_print(buf, got);
			printf("OPEN\n");
			return 0;
		}
		n = read(fd, buf + got, sizeof(buf) - got);
		if (n <= 0) {
			tpmsend_hex_print(buf, got);
			printf("EOF\n");
			return 0;
		}
		got += (size_t)n;
	}
}

int
main(int argc, char **argv)
{
	struct endpoint ep;
	int fd, wait_ms = 1000, raw = 0, i = 1;

	log_init("tpmsend", LOG_LEVEL_WARN);
	if (i < argc && strcmp(argv[i], "--raw") == 0) {
		raw = 1;
		i++;
	}
	if (i + 1 < argc && strcmp(argv[i], "--wait") == 0) {
		wait_ms = atoi(argv[i + 1]);
		i += 2;
	}
	if (argc - i < 2) {
		fprintf(stderr, "usage: tpmsend [--raw [--wait MS]] ENDPOINT HEX...\n");
		return 2;
	}
	if (endpoint_parse(argv[i], &ep) == -1)
		fatalx(2, "bad endpoint %s", argv[i]);
	fd = endpoint_connect(&ep);
	if (fd == -1)
		fatal(1, "connect %s", argv[i]);
	if (raw)
		return send_raw(fd, argv[i + 1], wait_ms);
	return send_commands(fd, argc - i - 1, argv + i + 1);
}
