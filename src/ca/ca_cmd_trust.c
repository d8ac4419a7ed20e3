/*
 * ca_cmd_trust.c: `vtpm-ca trust add`, the trust store: TPM manufacturer
 * roots (host EK certificates), Virtualization CAs (vEK certificates),
 * Privacy CAs (host CK certificates), and host administrators' approval
 * keys (the PolicyAuthorize of sealed vTPM state keys).
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ca.h"

#define TRUST_FILE_MAX  (1u << 20)
#define TRUST_CERTS_MAX 16

static const char trust_help[] =
    "usage: vtpm-ca trust add --manufacturer FILE [--name NAME] --db DB\n"
    "       vtpm-ca trust add --virtualization FILE [--name NAME] --db DB\n"
    "       vtpm-ca trust add --privacy FILE [--name NAME] --db DB\n"
    "       vtpm-ca trust add --approval-key FILE [--name NAME] --db DB\n"
    "\n"
    "Add to the trust store.\n"
    "The manual: vtpm-ca(8), COMMANDS, trust.\n";

struct trust_certs {
	uint8_t *der[TRUST_CERTS_MAX];
	size_t len[TRUST_CERTS_MAX];
	size_t n;
};

static void
trust_certs_free(struct trust_certs *c)
{
	for (size_t i = 0; i < c->n; i++)
		free(c->der[i]);
	c->n = 0;
}

static int
trust_split(const char *text, struct trust_certs *c, struct err *err)
{
	size_t off = 0, n = strlen(text);
	uint8_t *der;
	size_t len;
	int r;

	while ((r = certs_pem_next(text, n, &off, &der, &len, err)) == 1) {
		if (c->n == TRUST_CERTS_MAX) {
			free(der);
			err_set(err, ERR_FAILED, "more than %d certificates", TRUST_CERTS_MAX);
			return -1;
		}
		c->der[c->n] = der;
		c->len[c->n++] = len;
	}
	if (r == -1)
		return -1;
	if (c->n == 0) {
		err_set(err, ERR_FAILED, "no PEM certificate");
		return -1;
	}
	return 0;
}

/* The certificates must form a chain from the first to a root among them. */
static int
trust_check_chain(const struct trust_certs *c, struct err *err)
{
	struct certs_der leaf = {c->der[0], c->len[0]}, roots[TRUST_CERTS_MAX],
	                 inter[TRUST_CERTS_MAX];
	size_t n_roots = 0, n_inter = 0;
	struct err inner;
	enum certs_verdict v;

	for (size_t i = 0; i < c->n; i++) {
		if (certs_issued_by(c->der[i], c->len[i], c->der[i], c->len[i]) == 1)
			roots[n_roots++] = (struct certs_der){c->der[i], c->len[i]};
		else
			inter[n_inter++] = (struct certs_der){c->der[i], c->len[i]};
	}
	if (n_roots == 0) {
		err_set(err, ERR_FAILED, "no self-signed root certificate in the file: append the "
		    "certificates above the CA, up to its root "
		    "(cat CA.pem ROOT.pem > CHAIN.pem)");
		return -1;
	}
	v = certs_verify_chain(
	    &leaf, inter, n_inter, roots, n_roots, time(NULL), &inner);
	if (v != CERTS_VALID) {
		err_set(err, ERR_FAILED, "the first certificate does not verify up to the root in "
		    "the file (%s: %s)",
		    certs_verdict_name(v), inner.msg);
		return -1;
	}
	return 0;
}

int
ca_trust_add_pem(struct ca_db *db, enum ca_trust_kind kind, const char *name, const char *text,
    struct err *err)
{
	struct trust_certs c = {0};
	char subject[CA_SUBJECT_MAX], label[CA_SUBJECT_MAX + 96], fp[65], *data = NULL, *pem;
	uint8_t digest[32];
	size_t used = 0, cap = 0;
	int ret = -1;

	if (trust_split(text, &c, err) == -1 || trust_check_chain(&c, err) == -1)
		goto out;
	for (size_t i = 0; i < c.n; i++) {
		if ((pem = certs_pem_encode(c.der[i], c.len[i])) == NULL)
			goto oom;
		cap = used + strlen(pem) + 1;
		char *bigger = realloc(data, cap);
		if (bigger == NULL) {
			free(pem);
			goto oom;
		}
		data = bigger;
		memcpy(data + used, pem, strlen(pem) + 1);
		used += strlen(pem);
		free(pem);
	}
	if (name == NULL) {
		if (certs_subject(c.der[0], c.len[0], subject, sizeof(subject)) == -1)
			snprintf(subject, sizeof(subject), "(no subject)");
		name = subject;
	}
	if (ca_sha256(c.der[0], c.len[0], digest) == -1)
		goto oom;
	hex_encode(digest, sizeof(digest), fp);
	if (ca_db_trust_add(db, kind, name, fp, data, time(NULL), err) == -1)
		goto out;
	snprintf(label, sizeof(label), "%s %s (%.16s)", ca_trust_name(kind), name, fp);
	ca_db_audit(db, time(NULL), "trust add", "done", label, NULL);
	ret = 0;
	goto out;
oom:
	err_set(err, ERR_FAILED, "out of memory");
out:
	free(data);
	trust_certs_free(&c);
	return ret;
}

static int
trust_add_key(struct ca_db *db, const char *path, const char *name)
{
	struct approval_pub pub;
	uint8_t digest[32], *text = NULL;
	char data[130], fp[65], label[CA_SUBJECT_MAX], detail[CA_SUBJECT_MAX + 64];
	size_t len = 0;
	struct err err;

	if (fileio_read(path, TRUST_FILE_MAX, &text, &len) == -1)
		return ca_fail("%s: %s", path, strerror(errno));
	if (memmem(text, len, "PRIVATE KEY", 11) != NULL)
		fprintf(stderr,
		    "vtpm-ca: %s holds a private key: only its public half is stored; "
		    "keep the private key with the host administrator\n",
		    path);
	free(text);
	if (approval_key_public(path, &pub) == -1)
		return ca_fail("%s: not an ECC P-256 key in PEM", path);
	hex_encode(pub.x, 32, data);
	data[64] = ',';
	hex_encode(pub.y, 32, data + 65);
	if (ca_sha256((const uint8_t *)data, strlen(data), digest) == -1)
		return ca_fail("out of memory");
	hex_encode(digest, sizeof(digest), fp);
	if (name == NULL) {
		snprintf(label, sizeof(label), "approval key %.16s", fp);
		name = label;
	}
	if (ca_db_trust_add(db, CA_TRUST_APPROVAL_KEY, name, fp, data, time(NULL), &err) == -1)
		return ca_fail("%s: %s", path, err.msg);
	snprintf(detail, sizeof(detail), "approval-key %s (%.16s)", name, fp);
	ca_db_audit(db, time(NULL), "trust add", "done", detail, NULL);
	printf("trusted approval key %s (fingerprint %.16s)\n", name, fp);
	return EXIT_OK;
}

static int
trust_add_file(struct ca_db *db, enum ca_trust_kind kind, const char *path, const char *name)
{
	uint8_t *buf = NULL;
	size_t len = 0;
	char *text = NULL;
	struct err err;
	int ret = EXIT_RUNTIME;

	if (fileio_read(path, TRUST_FILE_MAX, &buf, &len) == -1)
		return ca_fail("%s: %s", path, strerror(errno));
	if (memmem(buf, len, "-----BEGIN", 10) == NULL) {
		/* one DER certificate */
		text = certs_pem_encode(buf, len);
		if (text == NULL) {
			ca_fail("%s: neither PEM nor a DER certificate", path);
			goto out;
		}
	} else if ((text = strndup((const char *)buf, len)) == NULL) {
		ca_fail("out of memory");
		goto out;
	}
	if (ca_trust_add_pem(db, kind, name, text, &err) == -1) {
		ca_fail("%s: %s", path, err.msg);
		goto out;
	}
	printf("trusted %s CA from %s\n", ca_trust_name(kind), path);
	ret = EXIT_OK;
out:
	free(text);
	free(buf);
	return ret;
}

int
ca_cmd_trust(int argc, char **argv)
{
	static const struct option opts[] = {
	    {"manufacturer", required_argument, NULL, 'm'},
	    {"virtualization", required_argument, NULL, 'v'},
	    {"privacy", required_argument, NULL, 'p'},
	    {"approval-key", required_argument, NULL, 'a'},
	    {"name", required_argument, NULL, 'n'},
	    {"db", required_argument, NULL, 'd'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	const char *dbpath = NULL, *file = NULL, *name = NULL;
	enum ca_trust_kind kind = CA_TRUST_MANUFACTURER;
	struct err err;
	struct ca_db *db;
	int c, n = 0, ret;

	opterr = 0;
	while ((c = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
		switch (c) {
		case 'm':
			kind = CA_TRUST_MANUFACTURER;
			file = optarg;
			n++;
			break;
		case 'v':
			kind = CA_TRUST_VIRTUALIZATION;
			file = optarg;
			n++;
			break;
		case 'p':
			kind = CA_TRUST_PRIVACY;
			file = optarg;
			n++;
			break;
		case 'a':
			kind = CA_TRUST_APPROVAL_KEY;
			file = optarg;
			n++;
			break;
		case 'n': name = optarg; break;
		case 'd': dbpath = optarg; break;
		case 'h': fputs(trust_help, stdout); return EXIT_OK;
		case ':': return ca_usage("trust", "%s needs a value", argv[optind - 1]);
		default: return ca_usage("trust", "unknown option '%s'", argv[optind - 1]);
		}
	}
	if (optind >= argc || strcmp(argv[optind], "add") != 0)
		return ca_usage("trust", "expected 'trust add' (list the store with 'vtpm-ca list "
		                         "trust')");
	if (optind + 1 < argc)
		return ca_usage("trust", "unexpected argument '%s'", argv[optind + 1]);
	if (n != 1)
		return ca_usage("trust", "give exactly one of --manufacturer, --virtualization, "
		                         "--privacy, --approval-key");
	if (dbpath == NULL)
		return ca_usage("trust", "--db is required");
	if (name != NULL && (name[0] == '\0' || strlen(name) >= CA_SUBJECT_MAX))
		return ca_usage("trust", "--name: 1 to %d characters", CA_SUBJECT_MAX - 1);
	if ((db = ca_db_open(dbpath, false, &err)) == NULL)
		return ca_fail("%s: %s", dbpath, err.msg);
	if (kind == CA_TRUST_APPROVAL_KEY)
		ret = trust_add_key(db, file, name);
	else
		ret = trust_add_file(db, kind, file, name);
	ca_db_close(db);
	return ret;
}
