/*
 * impostorca: someone on the plain-HTTP link between vtpmd and its CAs,
 * answering in the CA's place, for tests/integration/ca-answers.sh (issue
 * #11: vtpmd checks every certificate before it keeps or writes it).
 *
 *   impostorca [--upstream URL [--upstream-tls-root FILE]] [--answer PATH=FILE]...
 *              [--issue PATH --ca-key KEY --ca-cert CERT --ca-chain FILE
 *               [--drop san|eku|spec|policy|marker]]
 *              [--tls-cert FILE --tls-key FILE]
 *
 * Listens on 127.0.0.1, on a port the kernel picks, and prints that port
 * alone on the first line of stdout. Then it serves one request at a time
 * until a signal ends it:
 *
 *   --answer PATH=FILE   a request for PATH gets 200 and FILE's bytes (a
 *                        JSON answer made in advance: another vTPM's or
 *                        another host's genuine certificate)
 *   --issue PATH         a Virtualization CA request for PATH gets an EK
 *                        certificate made now for the request's
 *                        vek_public (and, for a whole set, one for each
 *                        of other_veks), with the vtpmd marker it asks for
 *                        (its CK, host and instance UUID), by the CA whose
 *                        key and certificate are KEY and CERT, answered
 *                        with the chain in FILE (PEM, issuer first); with
 *                        --drop, without that part of the EK profile
 *                        (re-signed, so that only the profile is wrong)
 *   anything else        forwarded to --upstream, its answer relayed as
 *                        it came (404 without --upstream); an https://
 *                        upstream is checked against --upstream-tls-root
 *
 * With --tls-cert and --tls-key it speaks HTTPS (TLS 1.3, src/common/tls.c)
 * with that certificate, as an impostor on the TLS link would: one whose
 * certificate its clients do not trust (self-signed, another name, another
 * root). A client that refuses it ends the handshake before sending its
 * request: "request K unreadable".
 *
 * Each request is a line on stdout, flushed at once, for the test to wait
 * on: "request K METHOD PATH answered|issued|forwarded|failed". Exit status
 * 2 for a usage error, 1 when it cannot listen or read its files.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "common/common.h"
#include "tpm/tpm.h"

#define IMP_MAX_ANSWERS 8
#define IMP_MAX_REQUEST (1u << 20)

struct imp_answer {
	const char *path;
	char *body;
	size_t len;
};

struct impostor {
	const char *upstream;
	struct tls_peer upstream_tls; /* --upstream-tls-root */
	struct tls_server *tls;       /* --tls-cert, --tls-key: HTTPS */
	struct imp_answer answers[IMP_MAX_ANSWERS];
	size_t n_answers;
	const char *issue_path, *drop;
	struct certs_ca *ca;
	EVP_PKEY *ca_key;
	json_t *chain; /* [PEM…] */
	unsigned int requests;
};

static void __attribute__((noreturn)) imp_usage(const char *why)
{
	fprintf(stderr, "impostorca: %s\nusage: impostorca [--upstream URL [--upstream-tls-root "
	                "FILE]] [--answer PATH=FILE]... [--issue PATH --ca-key KEY --ca-cert CERT "
	                "--ca-chain FILE [--drop san|eku|spec|policy|marker]] [--tls-cert FILE "
	                "--tls-key FILE]\n",
	    why);
	exit(2);
}

static void __attribute__((noreturn)) imp_die(const char *what, const char *why)
{
	fprintf(stderr, "impostorca: %s: %s\n", what, why);
	exit(1);
}

static char *
imp_read(const char *path, size_t *len)
{
	uint8_t *buf = NULL;
	char *s;

	if (fileio_read(path, IMP_MAX_REQUEST, &buf, len) == -1)
		imp_die(path, strerror(errno));
	s = realloc(buf, *len + 1);
	if (s == NULL)
		imp_die(path, "out of memory");
	s[*len] = '\0';
	return s;
}

/* The PEM certificates of a file, as a JSON array. */
static json_t *
imp_chain(const char *path)
{
	size_t len, off = 0, der_len;
	char *text = imp_read(path, &len), *pem;
	json_t *a = json_array();
	uint8_t *der;

	while (certs_pem_next(text, len, &off, &der, &der_len, NULL) == 1) {
		pem = certs_pem_encode(der, der_len);
		json_array_append_new(a, json_string(pem));
		free(pem);
		free(der);
	}
	free(text);
	if (json_array_size(a) == 0)
		imp_die(path, "no PEM certificate");
	return a;
}

static EVP_PKEY *
imp_key(const char *path)
{
	FILE *f = fopen(path, "re");
	EVP_PKEY *k;

	if (f == NULL)
		imp_die(path, strerror(errno));
	k = PEM_read_PrivateKey(f, NULL, NULL, NULL);
	fclose(f);
	if (k == NULL)
		imp_die(path, "not a PEM private key");
	return k;
}

/* A client's connection: its socket, and TLS on it with --tls-cert. */
struct imp_conn {
	int fd;
	struct tls_conn *tls;
};

/* Sends all of buf, as far as the client takes it. */
static void
imp_write(const struct imp_conn *c, const void *buf, size_t len)
{
	const char *p = buf;
	size_t n = 0;
	ssize_t r;

	while (len > 0) {
		if (c->tls != NULL) {
			if (tls_write(c->tls, p, len, &n, NULL) != TLS_IO_OK)
				return;
		} else {
			if ((r = send(c->fd, p, len, MSG_NOSIGNAL)) <= 0)
				return;
			n = (size_t)r;
		}
		p += n;
		len -= n;
	}
}

/* Reads what comes: n bytes, 0 at the end, -1 on a failure (a refused
 * TLS handshake included). */
static ssize_t
imp_read_some(const struct imp_conn *c, void *buf, size_t len)
{
	size_t n = 0;

	if (c->tls == NULL)
		return recv(c->fd, buf, len, 0);
	switch (tls_read(c->tls, buf, len, &n, NULL)) {
	case TLS_IO_OK: return (ssize_t)n;
	case TLS_IO_EOF: return 0;
	default: return -1;
	}
}

static void
imp_send(const struct imp_conn *fd, int status, const char *body, size_t len)
{
	char head[256];
	int n;

	n = snprintf(head, sizeof(head),
	    "HTTP/1.1 %d %s\r\nContent-Type: application/json\r\nContent-Length: %zu\r\n"
	    "Connection: close\r\n\r\n",
	    status, status == 200 ? "OK" : "Error", len);
	imp_write(fd, head, (size_t)n);
	imp_write(fd, body, len);
}

static void
imp_send_json(const struct imp_conn *fd, int status, json_t *o)
{
	char *text = json_dumps(o, 0);

	if (text != NULL)
		imp_send(fd, status, text, strlen(text));
	free(text);
	json_decref(o);
}

/* Reads one request (api_parse's framing). Returns 0 with req, or -1. */
static int
imp_recv(const struct imp_conn *fd, struct api_request *req)
{
	uint8_t *buf = malloc(IMP_MAX_REQUEST);
	size_t len = 0;
	struct err err;
	ssize_t n;
	int status, ret = -1;

	if (buf == NULL)
		return -1;
	while (len < IMP_MAX_REQUEST) {
		n = imp_read_some(fd, buf + len, IMP_MAX_REQUEST - len);
		if (n == -1 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		len += (size_t)n;
		switch (api_parse(buf, len, req, &status, &err)) {
		case API_PARSE_COMPLETE: ret = 0; goto out;
		case API_PARSE_ERROR: goto out;
		case API_PARSE_INCOMPLETE: api_request_clear(req); break;
		}
	}
out:
	free(buf);
	return ret;
}

/* The key of a vEK's TPM2B_PUBLIC in base64 (a JSON string). */
static struct certs_pkey *
imp_vek(const json_t *vek)
{
	const char *b64 = json_string_value(vek);
	struct evidence_public pub;
	uint8_t buf[1024];
	size_t len;

	if (b64 == NULL || base64_decode(b64, buf, sizeof(buf), &len) == -1 ||
	    evidence_parse_public(buf, len, &pub, NULL) == -1)
		return NULL;
	if (pub.key == EVIDENCE_KEY_ECC_P256)
		return certs_pkey_from_ecc_p256(pub.ecc_x, pub.ecc_y);
	if (pub.type == EVIDENCE_ALG_RSA)
		return certs_pkey_from_rsa(pub.modulus, pub.modulus_len, pub.exponent);
	return NULL;
}

/* The marker the request asks for: its CK certificate's key and host, its
 * instance UUID. */
static int
imp_marker(const json_t *body, struct certs_virtual *virt)
{
	const char *ck = json_string_value(json_object_get(body, "ck_certificate"));
	const char *uuid = json_string_value(json_object_get(body, "instance_uuid"));
	struct certs_host_key hk;
	uint8_t *der = NULL;
	size_t off = 0, len;
	int ret = -1;

	memset(virt, 0, sizeof(*virt));
	if (ck == NULL || uuid == NULL ||
	    certs_pem_next(ck, strlen(ck), &off, &der, &len, NULL) != 1)
		return -1;
	if (certs_cert_key_digest(der, len, virt->ck_digest) == 0 &&
	    certs_parse_ck(der, len, &hk, NULL) == 0) {
		virt->is_virtual = true;
		snprintf(virt->host, sizeof(virt->host), "%s", hk.host);
		snprintf(virt->host_config, sizeof(virt->host_config), "impostor-config");
		snprintf(virt->instance_uuid, sizeof(virt->instance_uuid), "%s", uuid);
		ret = 0;
	}
	free(der);
	return ret;
}

/* der without the part of the profile named drop, re-signed. */
static int
imp_drop(const struct impostor *imp, uint8_t **der, size_t *len)
{
	static const struct {
		const char *name, *oid;
	} parts[] = {
	    {"san", "2.5.29.17"},
	    {"eku", "2.5.29.37"},
	    {"spec", "2.5.29.9"},
	    {"policy", "2.5.29.32"},
	    {"marker", CERTS_OID_VIRTUAL_EXT},
	};
	const unsigned char *p = *der;
	unsigned char *out = NULL;
	ASN1_OBJECT *obj = NULL;
	X509 *x = d2i_X509(NULL, &p, (long)*len);
	int i, n, ret = -1;

	for (size_t k = 0; k < sizeof(parts) / sizeof(parts[0]); k++)
		if (strcmp(imp->drop, parts[k].name) == 0)
			obj = OBJ_txt2obj(parts[k].oid, 1);
	if (x == NULL || obj == NULL || (i = X509_get_ext_by_OBJ(x, obj, -1)) < 0)
		goto out;
	X509_EXTENSION_free(X509_delete_ext(x, i));
	if (X509_sign(x, imp->ca_key, EVP_sha256()) <= 0 || (n = i2d_X509(x, &out)) <= 0)
		goto out;
	free(*der);
	*der = malloc((size_t)n);
	if (*der == NULL)
		goto out;
	memcpy(*der, out, (size_t)n);
	*len = (size_t)n;
	ret = 0;
out:
	OPENSSL_free(out);
	ASN1_OBJECT_free(obj);
	X509_free(x);
	return ret;
}

/* An EK certificate for vek (base64 TPM2B_PUBLIC) of the request, as a
 * Virtualization CA's answer. */
static json_t *
imp_issue_one(const struct impostor *imp, const json_t *body, const json_t *vek)
{
	struct certs_ek_req req = {0};
	char serial[CERTS_SERIAL_HEX_MAX + 1], *pem = NULL;
	uint8_t *der = NULL;
	size_t len = 0;
	json_t *o = NULL;

	req.ek = imp_vek(vek);
	certs_tpm_defaults(&req.tpm);
	req.validity = (struct certs_validity){time(NULL) - 60, CERTS_NO_EXPIRY};
	if (req.ek == NULL || imp_marker(body, &req.virt) == -1 ||
	    certs_issue_ek(imp->ca, &req, &der, &len, NULL) == -1 ||
	    (imp->drop != NULL && imp_drop(imp, &der, &len) == -1) ||
	    certs_cert_serial(der, len, serial) == -1 || (pem = certs_pem_encode(der, len)) == NULL)
		goto out;
	o = json_pack("{s:s, s:O, s:s, s:s}", "certificate", pem, "chain", imp->chain, "serial",
	    serial, "host_config", req.virt.host_config);
out:
	free(pem);
	free(der);
	certs_pkey_free((struct certs_pkey *)req.ek);
	return o;
}

/* The answer to an EK certificate request: one certificate, or, for a
 * whole set, {"eks": [vek_public's, then each of other_veks'], ...}. */
static json_t *
imp_issue(const struct impostor *imp, const json_t *body)
{
	const json_t *others = json_object_get(body, "other_veks"), *v;
	json_t *eks;
	size_t i;

	if (!json_is_true(json_object_get(body, "whole_set")))
		return imp_issue_one(imp, body, json_object_get(body, "vek_public"));
	if ((eks = json_array()) == NULL ||
	    json_array_append_new(
	        eks, imp_issue_one(imp, body, json_object_get(body, "vek_public"))) == -1) {
		json_decref(eks);
		return NULL;
	}
	for (i = 0; (v = json_array_get(others, i)) != NULL; i++) {
		if (json_array_append_new(eks, imp_issue_one(imp, body, v)) == -1) {
			json_decref(eks);
			return NULL;
		}
	}
	return json_pack("{s:o, s:s}", "eks", eks, "host_config", "impostor-config");
}

/* Relays the upstream CA's answer to the request, as it came. */
static int
imp_forward(const struct impostor *imp, const struct imp_conn *fd, const struct api_request *req)
{
	const char *method = req->method == API_GET ? "GET" : "POST";
	char *resp = NULL;
	size_t len = 0;
	struct err err;

	if (httpc_fetch_url(imp->upstream, &imp->upstream_tls, "impostorca", NULL, 20, method,
	        req->path, req->body, &resp, &len, &err) == -1) {
		imp_send_json(fd, 502, json_pack("{s:s}", "error", err.msg));
		return -1;
	}
	imp_write(fd, resp, len);
	free(resp);
	return 0;
}

static const char *
imp_handle(struct impostor *imp, const struct imp_conn *fd, const struct api_request *req)
{
	json_t *o;

	for (size_t i = 0; i < imp->n_answers; i++) {
		if (strcmp(req->path, imp->answers[i].path) == 0) {
			imp_send(fd, 200, imp->answers[i].body, imp->answers[i].len);
			return "answered";
		}
	}
	if (imp->issue_path != NULL && strcmp(req->path, imp->issue_path) == 0) {
		o = imp_issue(imp, req->body);
		if (o == NULL) {
			imp_send_json(fd, 500, json_pack("{s:s}", "error", "impostor: cannot issue"));
			return "failed";
		}
		imp_send_json(fd, 200, o);
		return "issued";
	}
	if (imp->upstream == NULL) {
		imp_send_json(fd, 404, json_pack("{s:s}", "error", "no such path"));
		return "failed";
	}
	return imp_forward(imp, fd, req) == 0 ? "forwarded" : "failed";
}

static int
imp_listen(void)
{
	struct sockaddr_in sin = {.sin_family = AF_INET};
	socklen_t sl = sizeof(sin);
	int fd;

	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd == -1 || bind(fd, (struct sockaddr *)&sin, sizeof(sin)) == -1 ||
	    listen(fd, 16) == -1 || getsockname(fd, (struct sockaddr *)&sin, &sl) == -1)
		imp_die("listen on 127.0.0.1", strerror(errno));
	printf("%u\n", (unsigned int)ntohs(sin.sin_port));
	fflush(stdout);
	return fd;
}

static void
imp_serve(struct impostor *imp, int lfd)
{
	struct timeval tv = {.tv_sec = 10};
	struct api_request req;
	struct imp_conn c;
	const char *what;
	struct err err;

	for (;;) {
		c = (struct imp_conn){.fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC)};
		if (c.fd == -1) {
			if (errno == EINTR)
				continue;
			imp_die("accept", strerror(errno));
		}
		setsockopt(c.fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
		setsockopt(c.fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
		imp->requests++;
		if (imp->tls != NULL && (c.tls = tls_accept(imp->tls, c.fd, &err)) == NULL)
			imp_die("TLS", err.msg);
		if (imp_recv(&c, &req) == -1) {
			printf("request %u unreadable\n", imp->requests);
		} else {
			what = imp_handle(imp, &c, &req);
			printf("request %u %s %s %s\n", imp->requests,
			    req.method == API_GET ? "GET" : "POST", req.path, what);
			api_request_clear(&req);
		}
		fflush(stdout);
		tls_conn_free(c.tls);
		close(c.fd);
	}
}

int
main(int argc, char **argv)
{
	static struct impostor imp;
	const char *key = NULL, *cert = NULL, *chain = NULL, *tls_cert = NULL, *tls_key = NULL;
	size_t root_len = 0;
	uint8_t *root;
	struct err err;
	char *eq;

	log_init("impostorca", LOG_LEVEL_WARN);
	for (int i = 1; i < argc; i++) {
		const char *opt = argv[i], *val = i + 1 < argc ? argv[i + 1] : NULL;
		if (val == NULL)
			imp_usage("an option needs a value");
		i++;
		if (strcmp(opt, "--upstream") == 0) {
			imp.upstream = val;
		} else if (strcmp(opt, "--answer") == 0) {
			if ((eq = strchr(val, '=')) == NULL || imp.n_answers == IMP_MAX_ANSWERS)
				imp_usage("--answer PATH=FILE");
			*eq = '\0';
			imp.answers[imp.n_answers].path = val;
			imp.answers[imp.n_answers].body =
			    imp_read(eq + 1, &imp.answers[imp.n_answers].len);
			imp.n_answers++;
		} else if (strcmp(opt, "--issue") == 0) {
			imp.issue_path = val;
		} else if (strcmp(opt, "--ca-key") == 0) {
			key = val;
		} else if (strcmp(opt, "--ca-cert") == 0) {
			cert = val;
		} else if (strcmp(opt, "--ca-chain") == 0) {
			chain = val;
		} else if (strcmp(opt, "--drop") == 0) {
			imp.drop = val;
		} else if (strcmp(opt, "--tls-cert") == 0) {
			tls_cert = val;
		} else if (strcmp(opt, "--tls-key") == 0) {
			tls_key = val;
		} else if (strcmp(opt, "--upstream-tls-root") == 0) {
			root = (uint8_t *)imp_read(val, &root_len);
			imp.upstream_tls.root_pem = (const char *)root;
			imp.upstream_tls.root_pem_len = root_len;
		} else {
			imp_usage("unknown option");
		}
	}
	if (imp.issue_path != NULL) {
		if (key == NULL || cert == NULL || chain == NULL)
			imp_usage("--issue needs --ca-key, --ca-cert and --ca-chain");
		imp.ca = certs_ca_load(key, cert, &err);
		if (imp.ca == NULL)
			imp_die(key, err.msg);
		imp.ca_key = imp_key(key);
		imp.chain = imp_chain(chain);
	}
	if ((tls_cert == NULL) != (tls_key == NULL))
		imp_usage("--tls-cert and --tls-key go together");
	if (tls_cert != NULL && (imp.tls = tls_server_new(tls_cert, tls_key, &err)) == NULL)
		imp_die(tls_cert, err.msg);
	imp_serve(&imp, imp_listen());
	return 0;
}
