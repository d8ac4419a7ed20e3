/*
 * ca_cmd_init.c: `vtpm-ca init`, a new CA: the database, and beside it a
 * root CA with the Privacy CA and the Virtualization CA under it (keys
 * mode 0600). The two issuing CAs are entered in the trust store, so that
 * one vtpm-ca serving both roles trusts its own certificates.
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "ca.h"

#define INIT_YEAR     (365 * 24 * 3600)
#define INIT_NAME_MAX 40 /* "NAME Virtualization CA" fits a common name */
#define INIT_TLS_NAMES 8
#define INIT_TLS_DAYS  730

static const char init_help[] =
    "usage: vtpm-ca init --db FILE [--name NAME] [--tls-name HOST]...\n"
    "\n"
    "Create a CA: database, root, Privacy CA, Virtualization CA.\n"
    "The manual: vtpm-ca(8), COMMANDS, init.\n";

static const char *const init_roles[] = {"root", "privacy", "virtualization"};

struct init_paths {
	char key[3][1024], cert[3][1024];
	char tls_key[1024], tls_cert[1024], tls_root[1024];
};

struct init_tls {
	const char *names[INIT_TLS_NAMES];
	size_t n;
};

static bool
init_exists(const char *path)
{
	return access(path, F_OK) == 0;
}

static int
init_paths(const char *db, bool tls, struct init_paths *p)
{
	const char *taken = NULL;

	if (ca_file(db, "tls", "key", p->tls_key, sizeof(p->tls_key)) == -1 ||
	    ca_file(db, "tls", "pem", p->tls_cert, sizeof(p->tls_cert)) == -1 ||
	    ca_file(db, "tls-root", "pem", p->tls_root, sizeof(p->tls_root)) == -1)
		return ca_fail("%s: path too long", db);
	for (int i = 0; i < 3; i++) {
		if (ca_file(db, init_roles[i], "key", p->key[i], sizeof(p->key[i])) == -1 ||
		    ca_file(db, init_roles[i], "pem", p->cert[i], sizeof(p->cert[i])) == -1)
			return ca_fail("%s: path too long", db);
		if (taken == NULL && init_exists(p->key[i]))
			taken = p->key[i];
		if (taken == NULL && init_exists(p->cert[i]))
			taken = p->cert[i];
	}
	for (int i = 0; tls && taken == NULL && i < 3; i++) {
		const char *t = i == 0 ? p->tls_key : i == 1 ? p->tls_cert : p->tls_root;

		if (init_exists(t))
			taken = t;
	}
	if (taken != NULL)
		return ca_fail("%s exists already: init makes a new CA and overwrites "
		               "nothing; choose another directory for --db",
		    taken);
	return EXIT_OK;
}

/* The lab TLS certificate, when names were given. */
static int
init_tls_make(const struct init_paths *p, const struct init_tls *tls, const char *name,
    char pin_hex[static 65])
{
	struct ca_tls_request rq = {
	    .names = tls->names,
	    .n_names = tls->n,
	    .label = name,
	    .days = INIT_TLS_DAYS,
	    .root_path = p->tls_root,
	    .cert_path = p->tls_cert,
	    .key_path = p->tls_key,
	};
	uint8_t pin[32];
	struct err err;

	if (tls->n == 0)
		return 0;
	if (ca_tls_make(&rq, pin, &err) == -1) {
		ca_fail("the TLS certificate: %s", err.msg);
		return -1;
	}
	hex_encode(pin, sizeof(pin), pin_hex);
	return 0;
}

/* Trusts issuing CA i (its certificate, then the root's). */
static int
init_trust(struct ca_db *db, const struct init_paths *p, int i, enum ca_trust_kind kind)
{
	uint8_t *ca = NULL, *root = NULL;
	size_t ca_len = 0, root_len = 0;
	char *text = NULL;
	struct err err;
	int ret = -1;

	if (fileio_read(p->cert[i], 1 << 20, &ca, &ca_len) == -1 ||
	    fileio_read(p->cert[0], 1 << 20, &root, &root_len) == -1 ||
	    (text = malloc(ca_len + root_len + 1)) == NULL) {
		ca_fail("reading the new certificates: %s", strerror(errno));
		goto out;
	}
	memcpy(text, ca, ca_len);
	memcpy(text + ca_len, root, root_len);
	text[ca_len + root_len] = '\0';
	if (ca_trust_add_pem(db, kind, NULL, text, &err) == -1) {
		ca_fail("trusting the new %s CA: %s", init_roles[i], err.msg);
		goto out;
	}
	ret = 0;
out:
	free(text);
	free(root);
	free(ca);
	return ret;
}

static int
init_run(const char *dbpath, const char *name, const struct init_tls *tls)
{
	static const char *const cn[] = {"Root CA", "Privacy CA", "Virtualization CA"};
	struct certs_ca *ca[3] = {NULL, NULL, NULL};
	struct certs_validity v;
	struct init_paths p;
	struct ca_db *db = NULL;
	char full[CERTS_NAME_MAX + 1], pin_hex[65];
	struct err err;
	int ret;

	if ((ret = init_paths(dbpath, tls->n > 0, &p)) != EXIT_OK)
		return ret;
	ret = EXIT_RUNTIME;
	if ((db = ca_db_open(dbpath, true, &err)) == NULL)
		return ca_fail("%s: %s", dbpath, err.msg);
	for (int i = 0; i < 3; i++) {
		v.not_before = time(NULL) - 60;
		v.not_after = time(NULL) + (i == 0 ? 20 : 10) * (int64_t)INIT_YEAR;
		snprintf(full, sizeof(full), "%s %s", name, cn[i]);
		ca[i] = certs_ca_create(full, i == 0 ? CERTS_CA_ROOT : CERTS_CA_ISSUING,
		    i == 0 ? NULL : ca[0], &v, p.key[i], p.cert[i], &err);
		if (ca[i] == NULL) {
			ca_fail("creating the %s CA: %s", init_roles[i], err.msg);
			goto out;
		}
	}
	if (init_trust(db, &p, 1, CA_TRUST_PRIVACY) == -1 ||
	    init_trust(db, &p, 2, CA_TRUST_VIRTUALIZATION) == -1 ||
	    init_tls_make(&p, tls, name, pin_hex) == -1)
		goto out;
	err_set(&err, ERR_FAILED, "name %s", name);
	ca_db_audit(db, time(NULL), "init", "done", err.msg, NULL);
	printf("database            %s\n", dbpath);
	for (int i = 0; i < 3; i++)
		printf("%-19s %s (key %s)\n", cn[i], p.cert[i], p.key[i]);
	printf("trusted             the Privacy CA and the Virtualization CA\n");
	if (tls->n > 0) {
		printf("TLS certificate     %s (key %s)\n", p.tls_cert, p.tls_key);
		printf("TLS root            %s (its key was not kept)\n", p.tls_root);
		printf("TLS pin             sha256:%s\n", pin_hex);
		printf("serve with          --tls-cert %s --tls-key %s\n", p.tls_cert, p.tls_key);
	}
	printf("next                vtpm-ca trust add --manufacturer ROOT.pem --db %s\n", dbpath);
	ret = EXIT_OK;
out:
	for (int i = 0; i < 3; i++)
		certs_ca_free(ca[i]);
	ca_db_close(db);
	if (ret != EXIT_OK) {
		for (int i = 0; i < 3; i++) {
			if (ca[i] != NULL || access(p.key[i], F_OK) == 0) {
				unlink(p.key[i]);
				unlink(p.cert[i]);
			}
		}
		unlink(dbpath);
		err_set(&err, ERR_FAILED, "%s-wal", dbpath);
		unlink(err.msg);
		err_set(&err, ERR_FAILED, "%s-shm", dbpath);
		unlink(err.msg);
	}
	return ret;
}

int
ca_cmd_init(int argc, char **argv)
{
	static const struct option opts[] = {
	    {"db", required_argument, NULL, 'd'},
	    {"name", required_argument, NULL, 'n'},
	    {"tls-name", required_argument, NULL, 't'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	const char *db = NULL, *name = "vtpm-ca";
	struct init_tls tls = {.n = 0};
	int c;

	opterr = 0;
	while ((c = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
		switch (c) {
		case 'd': db = optarg; break;
		case 'n': name = optarg; break;
		case 't':
			if (tls.n == INIT_TLS_NAMES)
				return ca_usage("init", "--tls-name: at most %d names", INIT_TLS_NAMES);
			if (!ca_tls_name_valid(optarg))
				return ca_usage("init",
				    "--tls-name '%s': a host name (letters, digits, '-', '.'; no "
				    "wildcard) or an IP address",
				    optarg);
			tls.names[tls.n++] = optarg;
			break;
		case 'h': fputs(init_help, stdout); return EXIT_OK;
		case ':': return ca_usage("init", "%s needs a value", argv[optind - 1]);
		default: return ca_usage("init", "unknown option '%s'", argv[optind - 1]);
		}
	}
	if (optind < argc)
		return ca_usage("init", "unexpected argument '%s'", argv[optind]);
	if (db == NULL)
		return ca_usage("init", "--db is required");
	if (name[0] == '\0' || strlen(name) > INIT_NAME_MAX)
		return ca_usage("init", "--name: 1 to %d characters", INIT_NAME_MAX);
	return init_run(db, name, &tls);
}
