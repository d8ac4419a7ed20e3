/*
 * tpmproxy: an interposer on the host-TPM link, for
 * tests/integration/hostlink.sh. It sits between a client speaking
 * tpm2-tss's swtpm TCTI (vtpmd, tpm2-tools) and a swtpm simulator, and
 * does what something on a discrete TPM's bus, or on a simulator's TCP
 * link, can do: read every byte, and change what it likes.
 *
 *   tpmproxy --upstream PORT [--ready-fd FD] [MODE...]
 *
 * Listens on free loopback ports P and P+1 (TPM commands and swtpm's
 * control channel, as swtpm does), relays to PORT and PORT+1, and writes
 * "P\n" to FD once it listens. Modes:
 *
 *   --swap-load PUB PRIV  every TPM2_Load under the SRK (0x81000001)
 *                         loads PUB (a TPM2B_PUBLIC) and PRIV (a
 *                         TPM2B_PRIVATE), as tpm2_create -u/-r writes
 *                         them, instead of the object the client sent
 *   --forge-name          with --swap-load: the Load response carries the
 *                         Name of the object the client sent (computed
 *                         from its public area), not the one loaded
 *   --srk-public first|always
 *                         ReadPublic of 0x81000001 answers with a key of
 *                         the proxy's own (made at start, in the SRK's
 *                         template): the first time only, or every time.
 *                         A session later salted to the SRK is decrypted
 *                         with that key when it can be: "recovered the
 *                         salt of session …" and its sessionKey
 *   --flip CC:OFFSET[:once]
 *                         inverts the byte at OFFSET (from the end when
 *                         negative) of every response to command code CC
 *                         (hex), or of the first one only
 *   --flip-param CC:OFFSET[:once]
 *                         the same, OFFSET counted in the response's
 *                         parameters (from their end when negative),
 *                         whether or not a session area follows them: for
 *                         commands without response handles, e.g. the
 *                         last byte of TPM2_PCR_Read's last value (17e:-1)
 *
 * Every intervention is reported on stderr, one line each. Serves one
 * connection at a time (the swtpm TCTI opens one per command) until it is
 * killed. Exit status 1 on a set-up failure, 2 on bad usage.
 */
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/param_build.h>
#include <openssl/sha.h>

#include "tpm/tpm.h"

#define PROXY_MSG_MAX    8192 /* a TPM command or response, swtpm's limit is 4096 */
#define PROXY_TIMEOUT_MS 60000
#define PROXY_SRK        0x81000001u
#define CC_LOAD          0x157u
#define CC_READ_PUBLIC   0x173u
#define CC_START_SESSION 0x176u
#define ST_SESSIONS      0x8002u
#define ECC_COORD        32 /* P-256 */
#define NAME_LEN         34 /* nameAlg (SHA-256) || digest */

enum proxy_srk { SRK_KEEP, SRK_FIRST, SRK_ALWAYS };

struct proxy {
	uint16_t upstream;
	/* --swap-load */
	uint8_t *swap_pub, *swap_priv;
	size_t swap_pub_len, swap_priv_len;
	bool forge_name;
	uint8_t sent_name[NAME_LEN]; /* the Name of the object the client sent */
	/* --srk-public */
	enum proxy_srk srk;
	unsigned int srk_given; /* substitute public areas handed out */
	EVP_PKEY *sub;          /* the substitute's key pair */
	uint8_t sub_x[ECC_COORD], sub_y[ECC_COORD];
	bool salt_known; /* the last StartAuthSession was salted to sub */
	uint8_t salt[TPM_DIGEST_LEN], nonce_caller[64];
	size_t nonce_caller_len;
	/* --flip */
	bool flip;
	uint32_t flip_cc;
	long flip_offset;
	bool flip_once;
	bool flip_param; /* --flip-param: OFFSET within the parameters */
	unsigned int flipped;
};

static uint32_t
be32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static uint16_t
be16(const uint8_t *p)
{
	return (uint16_t)(p[0] << 8 | p[1]);
}

static void
put32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
}

static void
proxy_hex(const char *what, const uint8_t *buf, size_t len)
{
	char hex[2 * 64 + 1];

	if (len > 64)
		len = 64;
	hex_encode(buf, len, hex);
	fprintf(stderr, "tpmproxy: %s %s\n", what, hex);
}

/* Reads exactly len bytes within the timeout. Returns 1, 0 at a clean end
 * of stream before the first byte, -1 otherwise. */
static int
proxy_read(int fd, uint8_t *buf, size_t len)
{
	size_t got = 0;

	while (got < len) {
		struct pollfd p = {.fd = fd, .events = POLLIN};
		ssize_t n;

		if (poll(&p, 1, PROXY_TIMEOUT_MS) != 1)
			return -1;
		n = read(fd, buf + got, len - got);
		if (n == -1 && errno == EINTR)
			continue;
		if (n <= 0)
			return n == 0 && got == 0 ? 0 : -1;
		got += (size_t)n;
	}
	return 1;
}

static int
proxy_write(int fd, const uint8_t *buf, size_t len)
{
	while (len > 0) {
		ssize_t n = write(fd, buf, len);

		if (n == -1 && errno == EINTR)
			continue;
		if (n <= 0)
			return -1;
		buf += n;
		len -= (size_t)n;
	}
	return 0;
}

/* One TPM command or response: its header, then the rest its size says.
 * Returns its length, 0 at the end of the stream, -1 on failure. */
static ssize_t
proxy_read_msg(int fd, uint8_t buf[static PROXY_MSG_MAX])
{
	uint32_t size;
	int r;

	if ((r = proxy_read(fd, buf, 10)) != 1)
		return r;
	size = be32(buf + 2);
	if (size < 10 || size > PROXY_MSG_MAX || proxy_read(fd, buf + 10, size - 10) != 1)
		return -1;
	return (ssize_t)size;
}

static int
proxy_connect(uint16_t port)
{
	struct sockaddr_in a = {.sin_family = AF_INET,
	    .sin_port = htons(port),
	    .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	if (fd != -1 && connect(fd, (struct sockaddr *)&a, sizeof(a)) == 0)
		return fd;
	if (fd != -1)
		close(fd);
	return -1;
}

static int
proxy_listen(uint16_t port, uint16_t *bound)
{
	struct sockaddr_in a = {.sin_family = AF_INET,
	    .sin_port = htons(port),
	    .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t alen = sizeof(a);
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	if (fd == -1)
		return -1;
	if (bind(fd, (struct sockaddr *)&a, sizeof(a)) == -1 || listen(fd, 8) == -1 ||
	    getsockname(fd, (struct sockaddr *)&a, &alen) == -1) {
		close(fd);
		return -1;
	}
	*bound = ntohs(a.sin_port);
	return fd;
}

/* Binds P (the kernel's choice) and P+1 on loopback. */
static void
proxy_listen_pair(int fds[2], uint16_t *port)
{
	for (int i = 0; i < 64; i++) {
		uint16_t p, q;

		if ((fds[0] = proxy_listen(0, &p)) == -1)
			fatal(1, "listen");
		if (p < 65535 && (fds[1] = proxy_listen((uint16_t)(p + 1), &q)) != -1) {
			*port = p;
			return;
		}
		close(fds[0]);
	}
	fatalx(1, "no two free consecutive loopback ports");
}

/* Name = 000b || SHA-256(TPMT_PUBLIC), of a TPMT_PUBLIC's bytes. */
static void
proxy_name(const uint8_t *tpmt, size_t len, uint8_t name[static NAME_LEN])
{
	name[0] = 0x00;
	name[1] = 0x0b;
	SHA256(tpmt, len, name + 2);
}

/* The offset of the parameters of a command with nhandles handles. */
static size_t
proxy_cmd_params(const uint8_t *cmd, size_t len, size_t nhandles)
{
	size_t off = 10 + 4 * nhandles;

	if (be16(cmd) == ST_SESSIONS && len >= off + 4)
		off += 4 + be32(cmd + off);
	return off;
}

/* --swap-load: the Load command with the proxy's object in place of the
 * client's. Returns the new length (in place), or len unchanged. */
static size_t
proxy_swap_load(struct proxy *px, uint8_t *cmd, size_t len)
{
	size_t off = proxy_cmd_params(cmd, len, 1), priv, pub, n;

	if (px->swap_pub == NULL || be32(cmd + 10) != PROXY_SRK || off + 2 > len)
		return len;
	priv = 2 + be16(cmd + off);
	if (off + priv + 2 > len)
		return len;
	pub = 2 + be16(cmd + off + priv);
	if (off + priv + pub != len)
		return len;
	proxy_name(cmd + off + priv + 2, pub - 2, px->sent_name);
	n = off + px->swap_priv_len + px->swap_pub_len;
	if (n > PROXY_MSG_MAX)
		return len;
	memcpy(cmd + off, px->swap_priv, px->swap_priv_len);
	memcpy(cmd + off + px->swap_priv_len, px->swap_pub, px->swap_pub_len);
	put32(cmd + 2, (uint32_t)n);
	proxy_hex("swapped TPM2_Load's object; the client sent Name", px->sent_name, NAME_LEN);
	return n;
}

/* --forge-name: the Load response names the object the client sent. */
static void
proxy_forge_name(struct proxy *px, uint8_t *rsp, size_t len)
{
	/* tag 8002: handle, parameterSize, then the Name (TPM2B_NAME) */
	if (!px->forge_name || px->swap_pub == NULL || len < 20 + NAME_LEN ||
	    be16(rsp) != ST_SESSIONS || be16(rsp + 18) != NAME_LEN)
		return;
	memcpy(rsp + 20, px->sent_name, NAME_LEN);
	fprintf(stderr, "tpmproxy: forged the Name in TPM2_Load's response\n");
}

/* --srk-public: the SRK's public area with the substitute's point, its
 * Name to match. The point (two 32-byte TPM2B coordinates) ends the
 * TPMT_PUBLIC of an ECC P-256 key. */
static void
proxy_substitute_srk(struct proxy *px, uint8_t *rsp, size_t len)
{
	size_t off = be16(rsp) == ST_SESSIONS ? 14 : 10, pub, end;

	if (px->srk == SRK_KEEP || (px->srk == SRK_FIRST && px->srk_given > 0) || off + 2 > len)
		return;
	pub = be16(rsp + off);
	end = off + 2 + pub;
	if (pub < 4 + 2 * (2 + ECC_COORD) || end + 2 + NAME_LEN > len ||
	    be16(rsp + off + 2) != 0x0023 /* ECC */ || be16(rsp + end - 68) != ECC_COORD ||
	    be16(rsp + end - 34) != ECC_COORD || be16(rsp + end) != NAME_LEN)
		return;
	memcpy(rsp + end - 66, px->sub_x, ECC_COORD);
	memcpy(rsp + end - 32, px->sub_y, ECC_COORD);
	proxy_name(rsp + off + 2, pub, rsp + end + 2);
	px->srk_given++;
	proxy_hex(
	    "answered ReadPublic of the SRK with the substitute, Name", rsp + end + 2, NAME_LEN);
}

/* ECDH of the substitute's private key with the point (x, y). */
static int
proxy_ecdh(struct proxy *px, const uint8_t *x, const uint8_t *y, uint8_t z[static ECC_COORD])
{
	uint8_t point[1 + 2 * ECC_COORD];
	OSSL_PARAM_BLD *bld = NULL;
	OSSL_PARAM *params = NULL;
	EVP_PKEY_CTX *fctx = NULL, *dctx = NULL;
	EVP_PKEY *peer = NULL;
	size_t zlen = ECC_COORD;
	int ret = -1;

	point[0] = 0x04;
	memcpy(point + 1, x, ECC_COORD);
	memcpy(point + 1 + ECC_COORD, y, ECC_COORD);
	if ((bld = OSSL_PARAM_BLD_new()) != NULL &&
	    OSSL_PARAM_BLD_push_utf8_string(bld, OSSL_PKEY_PARAM_GROUP_NAME, "prime256v1", 0) &&
	    OSSL_PARAM_BLD_push_octet_string(bld, OSSL_PKEY_PARAM_PUB_KEY, point, sizeof(point)) &&
	    (params = OSSL_PARAM_BLD_to_param(bld)) != NULL &&
	    (fctx = EVP_PKEY_CTX_new_from_name(NULL, "EC", NULL)) != NULL &&
	    EVP_PKEY_fromdata_init(fctx) == 1 &&
	    EVP_PKEY_fromdata(fctx, &peer, EVP_PKEY_PUBLIC_KEY, params) == 1 &&
	    (dctx = EVP_PKEY_CTX_new(px->sub, NULL)) != NULL && EVP_PKEY_derive_init(dctx) == 1 &&
	    EVP_PKEY_derive_set_peer(dctx, peer) == 1 && EVP_PKEY_derive(dctx, z, &zlen) == 1 &&
	    zlen == ECC_COORD)
		ret = 0;
	EVP_PKEY_CTX_free(dctx);
	EVP_PKEY_CTX_free(fctx);
	EVP_PKEY_free(peer);
	OSSL_PARAM_free(params);
	OSSL_PARAM_BLD_free(bld);
	return ret;
}

/* A StartAuthSession salted to the SRK after the substitute was handed
 * out: the salt, as the client computed it, decrypted with the
 * substitute's key (TPM 2.0 Part 1, "Salted Session": KDFe over the ECDH
 * secret, label "SECRET", the ephemeral and the key's x-coordinates). */
static void
proxy_recover_salt(struct proxy *px, const uint8_t *cmd, size_t len)
{
	size_t off = proxy_cmd_params(cmd, len, 2), n, s;
	const uint8_t *p;
	uint8_t z[ECC_COORD];

	px->salt_known = false;
	if (px->srk_given == 0 || be32(cmd + 10) != PROXY_SRK || off + 2 > len)
		return;
	n = be16(cmd + off);
	if (n > sizeof(px->nonce_caller) || off + 2 + n + 2 > len)
		return;
	memcpy(px->nonce_caller, cmd + off + 2, n);
	px->nonce_caller_len = n;
	p = cmd + off + 2 + n; /* TPM2B_ENCRYPTED_SECRET holding a TPMS_ECC_POINT */
	s = be16(p);
	if (s != 2 * (2 + ECC_COORD) || (size_t)(p + 2 + s - cmd) > len ||
	    be16(p + 2) != ECC_COORD || be16(p + 4 + ECC_COORD) != ECC_COORD)
		return;
	if (proxy_ecdh(px, p + 4, p + 6 + ECC_COORD, z) == -1 ||
	    credential_kdfe(z, sizeof(z), "SECRET", p + 4, ECC_COORD, px->sub_x, ECC_COORD,
	        px->salt, 8 * sizeof(px->salt), NULL) == -1)
		return;
	px->salt_known = true;
	proxy_hex("recovered the salt of a session salted to the substitute SRK:", px->salt,
	    sizeof(px->salt));
}

/* The StartAuthSession response of a session whose salt is known: its
 * sessionKey = KDFa(salt, "ATH", nonceTPM, nonceCaller). */
static void
proxy_session_key(struct proxy *px, const uint8_t *rsp, size_t len)
{
	uint8_t key[TPM_DIGEST_LEN];
	size_t n;

	if (!px->salt_known || len < 16 || be32(rsp + 6) != 0)
		return;
	px->salt_known = false;
	n = be16(rsp + 14);
	if (16 + n > len ||
	    credential_kdfa(px->salt, sizeof(px->salt), "ATH", rsp + 16, n, px->nonce_caller,
	        px->nonce_caller_len, key, 8 * sizeof(key), NULL) == -1)
		return;
	fprintf(
	    stderr, "tpmproxy: session 0x%08x is salted to the substitute SRK\n", be32(rsp + 10));
	proxy_hex("  its sessionKey:", key, sizeof(key));
}

/* --flip, --flip-param: inverts one byte of a response to flip_cc. */
static void
proxy_flip(struct proxy *px, uint32_t cc, uint8_t *rsp, size_t len)
{
	long start = 0, end = (long)len, at;

	if (!px->flip || cc != px->flip_cc || (px->flip_once && px->flipped > 0))
		return;
	if (px->flip_param) {
		/* The parameters follow the header and, in a response with
		 * sessions, parameterSize; the session area follows them. */
		start = 10;
		if (be16(rsp) == ST_SESSIONS && len >= 14) {
			start = 14;
			end = 14 + (long)be32(rsp + 10);
		}
	}
	at = px->flip_offset < 0 ? end + px->flip_offset : start + px->flip_offset;
	if (at < 10 || at >= end || at >= (long)len)
		return;
	rsp[at] ^= 0xff;
	px->flipped++;
	fprintf(stderr, "tpmproxy: flipped byte %ld of the response to 0x%x\n", at, cc);
}

/* One client connection on the TPM port, one upstream connection. */
static void
proxy_serve_data(struct proxy *px, int client)
{
	static uint8_t cmd[PROXY_MSG_MAX], rsp[PROXY_MSG_MAX];
	int up = proxy_connect(px->upstream);
	ssize_t n, m;

	if (up == -1) {
		log_warn("connect to 127.0.0.1:%u", px->upstream);
		return;
	}
	while ((n = proxy_read_msg(client, cmd)) > 0) {
		uint32_t cc = be32(cmd + 6);
		size_t len = (size_t)n;

		if (cc == CC_LOAD)
			len = proxy_swap_load(px, cmd, len);
		if (cc == CC_START_SESSION)
			proxy_recover_salt(px, cmd, len);
		if (proxy_write(up, cmd, len) == -1 || (m = proxy_read_msg(up, rsp)) <= 0)
			break;
		if (be32(rsp + 6) == 0 && cc == CC_LOAD)
			proxy_forge_name(px, rsp, (size_t)m);
		if (be32(rsp + 6) == 0 && cc == CC_READ_PUBLIC && be32(cmd + 10) == PROXY_SRK)
			proxy_substitute_srk(px, rsp, (size_t)m);
		if (cc == CC_START_SESSION)
			proxy_session_key(px, rsp, (size_t)m);
		proxy_flip(px, cc, rsp, (size_t)m);
		if (proxy_write(client, rsp, (size_t)m) == -1)
			break;
	}
	close(up);
}

/* One client connection on the control port: relayed as it is. */
static void
proxy_serve_ctrl(struct proxy *px, int client)
{
	uint8_t buf[4096];
	int up = proxy_connect((uint16_t)(px->upstream + 1));

	if (up == -1) {
		log_warn("connect to 127.0.0.1:%u", px->upstream + 1);
		return;
	}
	for (;;) {
		struct pollfd p[2] = {
		    {.fd = client, .events = POLLIN}, {.fd = up, .events = POLLIN}};
		ssize_t n;

		if (poll(p, 2, PROXY_TIMEOUT_MS) <= 0)
			break;
		if (p[0].revents != 0) {
			if ((n = read(client, buf, sizeof(buf))) <= 0 ||
			    proxy_write(up, buf, (size_t)n) == -1)
				break;
		}
		if (p[1].revents != 0) {
			if ((n = read(up, buf, sizeof(buf))) <= 0 ||
			    proxy_write(client, buf, (size_t)n) == -1)
				break;
		}
	}
	close(up);
}

static uint8_t *
proxy_load_file(const char *path, size_t *len)
{
	uint8_t *buf = NULL;

	if (fileio_read(path, PROXY_MSG_MAX, &buf, len) == -1)
		fatal(1, "%s", path);
	if (*len < 2 || (size_t)be16(buf) + 2 != *len)
		fatalx(1, "%s: not a TPM2B (as tpm2_create -u/-r writes)", path);
	return buf;
}

/* The substitute SRK: a P-256 key pair of the proxy's own. */
static void
proxy_make_sub(struct proxy *px)
{
	BIGNUM *x = NULL, *y = NULL;

	px->sub = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
	if (px->sub == NULL || EVP_PKEY_get_bn_param(px->sub, OSSL_PKEY_PARAM_EC_PUB_X, &x) != 1 ||
	    EVP_PKEY_get_bn_param(px->sub, OSSL_PKEY_PARAM_EC_PUB_Y, &y) != 1 ||
	    BN_bn2binpad(x, px->sub_x, ECC_COORD) != ECC_COORD ||
	    BN_bn2binpad(y, px->sub_y, ECC_COORD) != ECC_COORD)
		fatalx(1, "make the substitute SRK");
	BN_free(x);
	BN_free(y);
}

static void
proxy_usage(void)
{
	fatalx(2, "usage: tpmproxy --upstream PORT [--ready-fd FD] [--swap-load PUB PRIV "
	          "[--forge-name]] [--srk-public first|always] [--flip CC:OFFSET[:once]] "
	          "[--flip-param CC:OFFSET[:once]]");
}

static void
proxy_parse(struct proxy *px, int argc, char **argv, int *ready_fd)
{
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		bool more = i + 1 < argc;

		if (strcmp(a, "--upstream") == 0 && more) {
			px->upstream = (uint16_t)strtoul(argv[++i], NULL, 10);
		} else if (strcmp(a, "--ready-fd") == 0 && more) {
			*ready_fd = (int)strtol(argv[++i], NULL, 10);
		} else if (strcmp(a, "--swap-load") == 0 && i + 2 < argc) {
			px->swap_pub = proxy_load_file(argv[++i], &px->swap_pub_len);
			px->swap_priv = proxy_load_file(argv[++i], &px->swap_priv_len);
		} else if (strcmp(a, "--forge-name") == 0) {
			px->forge_name = true;
		} else if (strcmp(a, "--srk-public") == 0 && more) {
			a = argv[++i];
			px->srk = strcmp(a, "first") == 0    ? SRK_FIRST
			          : strcmp(a, "always") == 0 ? SRK_ALWAYS
			                                     : SRK_KEEP;
			if (px->srk == SRK_KEEP)
				proxy_usage();
		} else if ((strcmp(a, "--flip") == 0 || strcmp(a, "--flip-param") == 0) && more) {
			char *end;

			px->flip = true;
			px->flip_param = strcmp(a, "--flip-param") == 0;
			px->flip_cc = (uint32_t)strtoul(argv[++i], &end, 16);
			if (*end != ':')
				proxy_usage();
			px->flip_offset = strtol(end + 1, &end, 10);
			px->flip_once = strcmp(end, ":once") == 0;
			if (*end != '\0' && !px->flip_once)
				proxy_usage();
		} else {
			proxy_usage();
		}
	}
	if (px->upstream == 0 || px->upstream == 65535 || (px->forge_name && px->swap_pub == NULL))
		proxy_usage();
}

int
main(int argc, char **argv)
{
	static struct proxy px;
	int ready_fd = -1, fds[2];
	uint16_t port;

	log_init("tpmproxy", LOG_LEVEL_INFO);
	signal(SIGPIPE, SIG_IGN);
	proxy_parse(&px, argc, argv, &ready_fd);
	if (px.srk != SRK_KEEP)
		proxy_make_sub(&px);
	proxy_listen_pair(fds, &port);
	if (ready_fd != -1) {
		dprintf(ready_fd, "%u\n", port);
		close(ready_fd);
	}
	for (;;) {
		struct pollfd p[2] = {
		    {.fd = fds[0], .events = POLLIN}, {.fd = fds[1], .events = POLLIN}};

		if (poll(p, 2, -1) == -1) {
			if (errno == EINTR)
				continue;
			fatal(1, "poll");
		}
		for (int i = 0; i < 2; i++) {
			int c;

			if (p[i].revents == 0 ||
			    (c = accept4(fds[i], NULL, NULL, SOCK_CLOEXEC)) == -1)
				continue;
			if (i == 0)
				proxy_serve_data(&px, c);
			else
				proxy_serve_ctrl(&px, c);
			close(c);
		}
	}
}
