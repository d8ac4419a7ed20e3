/*
 * tls.c: TLS 1.3 on a connected TCP socket, with OpenSSL's libssl, for
 * vtpm-ca's HTTPS (the server side, in its network child) and for the
 * clients of vtpm-ca (vtpmd's CA requests, vtpm-attest).
 *
 * Only TLS 1.3 is spoken, either way: a peer offering less is refused in
 * the handshake. The server sends no session tickets (every connection
 * carries one request, clients never resume). A client recognises its
 * server either by a root (PEM certificates the server's chain must reach,
 * and the name or address of the URL in the server's certificate:
 * X509_VERIFY_PARAM_set1_host or set1_ip_asc) or by a pin (SHA-256 of the
 * server's SubjectPublicKeyInfo, compared once the handshake is over and
 * before any byte of the request is sent; the pin is the whole check:
 * neither chain nor name is looked at).
 *
 * Bytes move through a BIO of this file's over recv() and send() with
 * MSG_NOSIGNAL rather than OpenSSL's socket BIO (read() and write()): a
 * peer that resets never raises SIGPIPE, and vtpm-ca's sandboxed network
 * child (src/ca/ca_sandbox.c) needs no system call beyond those its plain
 * HTTP already made.
 *
 * OpenSSL's types stay in this file: callers hold struct tls_server and
 * struct tls_conn.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <sys/socket.h>

#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "common.h"

struct tls_server {
	SSL_CTX *ctx;
};

struct tls_conn {
	SSL *ssl;
	SSL_CTX *own_ctx; /* a client's context, freed with the connection */
	bool failed;      /* a fatal error: no close_notify then */
	int fd;           /* the socket (the caller's), which its BIO points at */
};

/* --- the socket BIO: recv() and send() on the descriptor in its data ------ */

static int
tls_bio_fd(BIO *b)
{
	return *(const int *)BIO_get_data(b);
}

/* Whether a failed recv() or send() is worth trying again later. */
static bool
tls_bio_retry(void)
{
	return errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR;
}

static int
tls_bio_read(BIO *b, char *buf, int len)
{
	ssize_t n = recv(tls_bio_fd(b), buf, (size_t)len, 0);

	BIO_clear_retry_flags(b);
	if (n == 0)
		BIO_set_flags(b, BIO_FLAGS_IN_EOF);
	else if (n < 0 && tls_bio_retry())
		BIO_set_retry_read(b);
	return (int)n;
}

static int
tls_bio_write(BIO *b, const char *buf, int len)
{
	ssize_t n = send(tls_bio_fd(b), buf, (size_t)len, MSG_NOSIGNAL);

	BIO_clear_retry_flags(b);
	if (n < 0 && tls_bio_retry())
		BIO_set_retry_write(b);
	return (int)n;
}

/* Only what libssl asks of a socket: end of stream, flush (nothing is
 * buffered here). Anything else is not supported (0). */
static long
tls_bio_ctrl(BIO *b, int cmd, long num, void *ptr)
{
	switch (cmd) {
	case BIO_CTRL_EOF: return BIO_test_flags(b, BIO_FLAGS_IN_EOF) != 0;
	case BIO_CTRL_FLUSH: return 1;
	default: return 0;
	}
}

static int
tls_bio_create(BIO *b)
{
	BIO_set_init(b, 1);
	return 1;
}

static BIO_METHOD *tls_bio_meth;
static CRYPTO_ONCE tls_bio_once = CRYPTO_ONCE_STATIC_INIT;

static void
tls_bio_meth_init(void)
{
	BIO_METHOD *m = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "vtpm socket");

	if (m == NULL || BIO_meth_set_read(m, tls_bio_read) != 1 ||
	    BIO_meth_set_write(m, tls_bio_write) != 1 || BIO_meth_set_ctrl(m, tls_bio_ctrl) != 1 ||
	    BIO_meth_set_create(m, tls_bio_create) != 1) {
		BIO_meth_free(m);
		return;
	}
	tls_bio_meth = m;
}

/* A BIO on the socket *fd (which stays the caller's, and must outlive the
 * BIO), or NULL. */
static BIO *
tls_bio_new(int *fd)
{
	BIO *b;

	if (!CRYPTO_THREAD_run_once(&tls_bio_once, tls_bio_meth_init) || tls_bio_meth == NULL)
		return NULL;
	if ((b = BIO_new(tls_bio_meth)) != NULL)
		BIO_set_data(b, fd);
	return b;
}

/* --- contexts and connections -------------------------------------------- */

/* A context that speaks TLS 1.3 only. */
static SSL_CTX *
tls_ctx_new(const SSL_METHOD *method, struct err *err)
{
	SSL_CTX *ctx = SSL_CTX_new(method);

	if (ctx == NULL) {
		err_ssl(err, "TLS: cannot make a context");
		return NULL;
	}
	if (SSL_CTX_set_min_proto_version(ctx, TLS1_3_VERSION) != 1) {
		err_ssl(err, "TLS: cannot require TLS 1.3");
		SSL_CTX_free(ctx);
		return NULL;
	}
	SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
	/* A stream that ends without close_notify reads as its end: HTTP's
	 * Content-Length tells a whole message from a cut one. */
	SSL_CTX_set_options(ctx, SSL_OP_IGNORE_UNEXPECTED_EOF);
	return ctx;
}

/* The server's private key (key_file, PEM), which must be the key of the
 * certificate ctx holds (from cert_file). */
static int
tls_server_key(SSL_CTX *ctx, const char *cert_file, const char *key_file, struct err *err)
{
	BIO *bio = BIO_new_file(key_file, "r");
	EVP_PKEY *key = bio != NULL ? PEM_read_bio_PrivateKey(bio, NULL, NULL, NULL) : NULL;
	int ret = -1;

	BIO_free(bio);
	if (key == NULL)
		return err_ssl(err, "TLS key %s: not a readable PEM private key", key_file);
	ERR_clear_error();
	if (SSL_CTX_use_PrivateKey(ctx, key) != 1 || SSL_CTX_check_private_key(ctx) != 1)
		err_set(err, ERR_INVALID, "TLS key %s does not match the certificate in %s",
		    key_file, cert_file);
	else
		ret = 0;
	ERR_clear_error();
	EVP_PKEY_free(key);
	return ret;
}

/*
 * The server's context: its certificate chain (cert_file, PEM: the
 * server's certificate first, then intermediates) and private key
 * (key_file, PEM), which must match. Reads both files now: call it before
 * a sandbox closes the filesystem. Returns the server (free with
 * tls_server_free), or NULL with err naming the file at fault.
 */
struct tls_server *
tls_server_new(const char *cert_file, const char *key_file, struct err *err)
{
	struct tls_server *s = calloc(1, sizeof(*s));

	if (s == NULL) {
		err_set(err, ERR_FAILED, "out of memory");
		return NULL;
	}
	if ((s->ctx = tls_ctx_new(TLS_server_method(), err)) == NULL)
		goto fail;
	if (SSL_CTX_use_certificate_chain_file(s->ctx, cert_file) != 1) {
		err_ssl(err, "TLS certificate %s: not a readable PEM certificate chain", cert_file);
		goto fail;
	}
	if (tls_server_key(s->ctx, cert_file, key_file, err) == -1)
		goto fail;
	SSL_CTX_set_num_tickets(s->ctx, 0);
	SSL_CTX_set_session_cache_mode(s->ctx, SSL_SESS_CACHE_OFF);
	return s;
fail:
	tls_server_free(s);
	return NULL;
}

/* NULL-safe. */
void
tls_server_free(struct tls_server *s)
{
	if (s == NULL)
		return;
	SSL_CTX_free(s->ctx);
	free(s);
}

static struct tls_conn *
tls_conn_wrap(SSL_CTX *ctx, int fd, struct err *err)
{
	struct tls_conn *c = calloc(1, sizeof(*c));
	BIO *bio = NULL;

	if (c == NULL) {
		err_set(err, ERR_FAILED, "out of memory");
		return NULL;
	}
	c->fd = fd;
	if ((c->ssl = SSL_new(ctx)) == NULL || (bio = tls_bio_new(&c->fd)) == NULL) {
		err_ssl(err, "TLS: cannot set up a connection");
		BIO_free(bio);
		SSL_free(c->ssl);
		free(c);
		return NULL;
	}
	SSL_set_bio(c->ssl, bio, bio); /* the SSL owns it now */
	return c;
}

/*
 * The server's side of a connection just accepted on fd (non-blocking):
 * the handshake runs as tls_read is called. Returns the connection (free
 * with tls_conn_free; fd stays the caller's), or NULL with err.
 */
struct tls_conn *
tls_accept(struct tls_server *s, int fd, struct err *err)
{
	struct tls_conn *c = tls_conn_wrap(s->ctx, fd, err);

	if (c != NULL)
		SSL_set_accept_state(c->ssl);
	return c;
}

/* What an SSL_read_ex or SSL_write_ex that returned 0 means. */
static enum tls_io
tls_io_status(struct tls_conn *c, int ret)
{
	switch (SSL_get_error(c->ssl, ret)) {
	case SSL_ERROR_WANT_READ: return TLS_IO_WANT_READ;
	case SSL_ERROR_WANT_WRITE: return TLS_IO_WANT_WRITE;
	case SSL_ERROR_ZERO_RETURN: return TLS_IO_EOF;
	default: c->failed = true; return TLS_IO_ERROR;
	}
}

/*
 * Reads up to len bytes (the handshake first, when it is not over).
 * Returns TLS_IO_OK with *n bytes, or why none came: the socket has
 * nothing now (WANT_READ) or must be writable first (WANT_WRITE), the
 * peer ended the stream (EOF: its close_notify, or the TCP stream ending
 * without one, which a reader of an HTTP message with Content-Length
 * notices as a short one), or the connection failed (ERROR; err says why,
 * OpenSSL's queue is emptied).
 */
enum tls_io
tls_read(struct tls_conn *c, void *buf, size_t len, size_t *n, struct err *err)
{
	enum tls_io io;

	*n = 0;
	ERR_clear_error();
	if (SSL_read_ex(c->ssl, buf, len, n) == 1)
		return TLS_IO_OK;
	if ((io = tls_io_status(c, 0)) == TLS_IO_ERROR)
		err_ssl(err, "TLS");
	return io;
}

/* Writes up to len bytes; as tls_read, *n bytes written with TLS_IO_OK. */
enum tls_io
tls_write(struct tls_conn *c, const void *buf, size_t len, size_t *n, struct err *err)
{
	enum tls_io io;

	*n = 0;
	ERR_clear_error();
	if (SSL_write_ex(c->ssl, buf, len, n) == 1)
		return TLS_IO_OK;
	if ((io = tls_io_status(c, 0)) == TLS_IO_ERROR)
		err_ssl(err, "TLS");
	return io;
}

/* Sends close_notify, once and without waiting, unless the connection
 * failed. */
void
tls_conn_close_notify(struct tls_conn *c)
{
	if (c == NULL || c->failed || !SSL_is_init_finished(c->ssl))
		return;
	ERR_clear_error();
	SSL_shutdown(c->ssl);
	ERR_clear_error();
}

/* Sends close_notify (as tls_conn_close_notify) and frees; the socket
 * stays open, the caller's. NULL-safe. */
void
tls_conn_free(struct tls_conn *c)
{
	if (c == NULL)
		return;
	tls_conn_close_notify(c);
	SSL_free(c->ssl);
	SSL_CTX_free(c->own_ctx);
	free(c);
}

/* Adds every certificate of the PEM text to store (NULL: counts them);
 * at least one. */
static int
tls_add_roots(X509_STORE *store, const char *pem, size_t len, struct err *err)
{
	BIO *bio = len <= INT32_MAX ? BIO_new_mem_buf(pem, (int)len) : NULL;
	X509 *x;
	int n = 0;

	if (bio == NULL)
		return err_set(err, ERR_FAILED, "out of memory");
	while ((x = PEM_read_bio_X509(bio, NULL, NULL, NULL)) != NULL) {
		if (store == NULL || X509_STORE_add_cert(store, x) == 1)
			n++;
		X509_free(x);
	}
	ERR_clear_error();
	BIO_free(bio);
	if (n == 0)
		return err_set(err, ERR_INVALID, "holds no PEM certificate to be a TLS root");
	return 0;
}

/* Whether pem (len bytes) holds a TLS root a client can use: 0, or -1
 * with err. */
int
tls_roots_check(const char *pem, size_t len, struct err *err)
{
	return tls_add_roots(NULL, pem, len, err);
}

/* Whether host is an IPv4 or IPv6 literal. */
static bool
tls_is_ip(const char *host)
{
	unsigned char addr[16];

	return inet_pton(AF_INET, host, addr) == 1 || inet_pton(AF_INET6, host, addr) == 1;
}

/* A client context that checks the server's chain against the root and
 * its certificate against host (a DNS name, or an IP address). */
static int
tls_client_verify_root(
    SSL_CTX *ctx, SSL *ssl, const char *host, const struct tls_peer *peer, struct err *err)
{
	X509_VERIFY_PARAM *param = SSL_get0_param(ssl);
	int ok;

	if (tls_add_roots(SSL_CTX_get_cert_store(ctx), peer->root_pem, peer->root_pem_len, err) ==
	    -1)
		return -1;
	X509_VERIFY_PARAM_set_hostflags(param, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
	if (tls_is_ip(host))
		ok = X509_VERIFY_PARAM_set1_ip_asc(param, host);
	else
		ok = X509_VERIFY_PARAM_set1_host(param, host, 0) &&
		     SSL_set_tlsext_host_name(ssl, host);
	if (ok != 1)
		return err_ssl(err, "TLS: cannot check the name %s", host);
	SSL_set_verify(ssl, SSL_VERIFY_PEER, NULL);
	return 0;
}

/* After the handshake: the server's key must be the pinned one. */
static int
tls_check_pin(SSL *ssl, const uint8_t pin[static 32], struct err *err)
{
	X509 *cert = SSL_get0_peer_certificate(ssl);
	unsigned char *der = NULL;
	uint8_t md[32];
	char hex[65];
	unsigned int mdlen = 0;
	int len, ret = -1;

	if (cert == NULL)
		return err_set(err, ERR_UNTRUSTED, "TLS: the server sent no certificate");
	len = i2d_X509_PUBKEY(X509_get_X509_PUBKEY(cert), &der);
	if (len <= 0 || EVP_Digest(der, (size_t)len, md, &mdlen, EVP_sha256(), NULL) != 1) {
		err_ssl(err, "TLS: the server's public key");
		goto out;
	}
	if (CRYPTO_memcmp(md, pin, sizeof(md)) != 0) {
		hex_encode(md, sizeof(md), hex);
		err_set(err, ERR_UNTRUSTED,
		    "TLS verification failed: the server's public key (sha256:%s) is not the "
		    "pinned one",
		    hex);
		goto out;
	}
	ret = 0;
out:
	OPENSSL_free(der);
	return ret;
}

/* Why a handshake with a root failed: the certificate's fault (untrusted)
 * or the connection's. */
static int
tls_handshake_failed(SSL *ssl, int rc, struct err *err)
{
	long v = SSL_get_verify_result(ssl);
	int e = SSL_get_error(ssl, rc);

	if (v != X509_V_OK) {
		ERR_clear_error();
		return err_set(err, ERR_UNTRUSTED,
		    "TLS verification of the server's certificate failed: %s",
		    X509_verify_cert_error_string(v));
	}
	if (e == SSL_ERROR_SYSCALL && (errno == EAGAIN || errno == EWOULDBLOCK)) {
		ERR_clear_error();
		return err_set(err, ERR_TIMEOUT, "TLS handshake: no answer within the time limit");
	}
	if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
		ERR_clear_error();
		return err_set(err, ERR_TIMEOUT, "TLS handshake: no answer within the time limit");
	}
	if (ERR_peek_error() == 0) {
		return err_set(err, ERR_UNREACHABLE,
		    "TLS handshake: the server closed the connection%s%s", errno != 0 ? ": " : "",
		    errno != 0 ? strerror(errno) : "");
	}
	err_ssl(err, "TLS handshake failed (does the server speak TLS 1.3?)");
	err->kind = ERR_UNREACHABLE;
	return -1;
}

/*
 * The client's side, on fd (connected, blocking; its SO_RCVTIMEO and
 * SO_SNDTIMEO bound each wait): the handshake with the server named host
 * (the URL's host: a DNS name, or an IP literal), checked as peer says
 * (a root, or a pin; one of them is required). Returns the connection
 * (free with tls_conn_free), or NULL with err: ERR_UNTRUSTED when the
 * server's certificate is not the one expected, ERR_TIMEOUT,
 * ERR_UNREACHABLE when the handshake failed otherwise, ERR_INVALID when
 * peer gives neither root nor pin.
 */
struct tls_conn *
tls_connect(int fd, const char *host, const struct tls_peer *peer, struct err *err)
{
	struct tls_conn *c = NULL;
	SSL_CTX *ctx;
	int rc;

	if (peer == NULL || (peer->root_pem == NULL && !peer->pinned)) {
		err_set(
		    err, ERR_INVALID, "https:// needs a TLS root or pin to check the server by");
		return NULL;
	}
	if ((ctx = tls_ctx_new(TLS_client_method(), err)) == NULL)
		return NULL;
	if ((c = tls_conn_wrap(ctx, fd, err)) == NULL) {
		SSL_CTX_free(ctx);
		return NULL;
	}
	c->own_ctx = ctx;
	if (peer->root_pem != NULL && tls_client_verify_root(ctx, c->ssl, host, peer, err) == -1)
		goto fail;
	if (peer->root_pem == NULL && !tls_is_ip(host) &&
	    SSL_set_tlsext_host_name(c->ssl, host) != 1)
		ERR_clear_error(); /* SNI is a courtesy here: the pin decides */
	errno = 0;
	ERR_clear_error();
	if ((rc = SSL_connect(c->ssl)) != 1) {
		c->failed = true;
		tls_handshake_failed(c->ssl, rc, err);
		goto fail;
	}
	if (peer->root_pem == NULL && tls_check_pin(c->ssl, peer->pin, err) == -1)
		goto fail;
	return c;
fail:
	tls_conn_free(c);
	return NULL;
}

/*
 * Makes a client context and drops it, once per process: OpenSSL 3 looks
 * up libssl's algorithms (ciphers, groups, signature schemes) in its
 * providers at the first context, about 1.5 ms, and keeps them. A process
 * that forks a child per request (caclient.c) calls this first, so that
 * each child inherits them and makes its context in a third of the time.
 */
void
tls_client_warm(void)
{
	static bool warm;
	SSL_CTX *ctx;

	if (warm)
		return;
	ctx = SSL_CTX_new(TLS_client_method());
	SSL_CTX_free(ctx);
	ERR_clear_error();
	warm = true;
}

/* Parses "sha256:HEX" (64 hexadecimal digits, either case) into pin. */
int
tls_pin_parse(const char *spec, uint8_t pin[static 32], struct err *err)
{
	if (strncmp(spec, "sha256:", 7) != 0 || hex_decode(spec + 7, pin, 32) == -1)
		return err_set(err, ERR_INVALID,
		    "a TLS pin is sha256: and 64 hexadecimal digits (SHA-256 of the server's "
		    "SubjectPublicKeyInfo), not '%s'",
		    spec);
	return 0;
}
