/*
 * attest_verify.c: the challenger. Verifies a quote by a guest's
 * attestation key against the AK certificate the Privacy CA issued, and
 * says what kind of TPM, on what host, made it.
 *
 * attest_verify_quote() is the check itself, a function of its inputs
 * alone. The command around it reads the files (a vtpm-attest bundle, or
 * tpm2_quote's three files), keeps the clockInfo of the last quote accepted
 * from each AK (--state DIR, a file named after the AK key's digest), and
 * checks the revocation of the AK's whole chain (attest_revoke.c) when
 * given --ca or --crl.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "attest.h"

#define AV_MAX_UNTRUSTED 8
#define AV_STATE_MAGIC   "vtpm-attest-clock-1"
#define AV_FILE_MAX      (1u << 20)

static void av_fail(struct attest_result *res, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void
av_fail(struct attest_result *res, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(res->reason, sizeof(res->reason), fmt, ap);
	va_end(ap);
	res->trusted = false;
}

/* ---- the check ---- */

/* The certificate chains to a trusted root and is an attestation key's;
 * its key's digest, its vtpmd extension. */
static int
av_check_cert(const struct attest_check *chk, struct attest_result *res)
{
	struct err err;
	enum certs_verdict v;

	v = certs_verify_chain(&chk->ak_cert, chk->untrusted, chk->n_untrusted, chk->roots,
	    chk->n_roots, chk->now, &err);
	if (v != CERTS_VALID) {
		av_fail(res, "AK certificate: %s: %s", certs_verdict_name(v), err.msg);
		return -1;
	}
	/* Under one root, the CAs also certify EKs and host keys: only an
	 * attestation key's certificate vouches for a quote. */
	if (certs_check_ak(chk->ak_cert.der, chk->ak_cert.len, &err) == -1) {
		av_fail(res, "AK certificate: %s", err.msg);
		return -1;
	}
	if (certs_cert_key_digest(chk->ak_cert.der, chk->ak_cert.len, res->ak_digest) == -1) {
		av_fail(res, "AK certificate: its key cannot be read");
		return -1;
	}
	if (certs_parse_virtual(chk->ak_cert.der, chk->ak_cert.len, &res->virt, &err) ==
	    -1) {
		av_fail(res, "AK certificate: vtpmd extension: %s", err.msg);
		return -1;
	}
	return 0;
}

/* When the evidence carries the AK's public area: it is a restricted
 * signing key and the very key the certificate certifies. */
static int
av_check_ak_public(const struct attest_check *chk, struct attest_result *res)
{
	const struct attest_evidence *ev = chk->ev;
	struct evidence_public pub;
	struct certs_pkey *k = NULL;
	uint8_t digest[CERTS_DIGEST_LEN];
	struct err err;
	int ret = -1;

	if (ev->ak_public_len == 0)
		return 0;
	if (evidence_parse_public(ev->ak_public, ev->ak_public_len, &pub, &err) == -1) {
		av_fail(res, "AK public area: %s", err.msg);
		return -1;
	}
	if (!evidence_key_is_restricted_signing(&pub)) {
		av_fail(res, "AK public area: not a restricted signing key");
		return -1;
	}
	if (pub.key == EVIDENCE_KEY_ECC_P256)
		k = certs_pkey_from_ecc_p256(pub.ecc_x, pub.ecc_y);
	else if (pub.type == EVIDENCE_ALG_RSA)
		k = certs_pkey_from_rsa(pub.modulus, pub.modulus_len, pub.exponent);
	if (k == NULL || certs_pkey_digest(k, digest) == -1) {
		av_fail(res, "AK public area: a key this challenger cannot compare (RSA or ECC "
		             "P-256)");
		goto out;
	}
	if (memcmp(digest, res->ak_digest, sizeof(digest)) != 0) {
		av_fail(res, "AK public area: not the key the AK certificate certifies");
		goto out;
	}
	ret = 0;
out:
	certs_pkey_free(k);
	return ret;
}

/* The signature over the attestation verifies with the certificate's key. */
static int
av_check_signature(const struct attest_check *chk, struct attest_result *res)
{
	struct certs_pkey *k = certs_pkey_from_cert(chk->ak_cert.der, chk->ak_cert.len);
	struct err err;
	uint8_t *spki = NULL;
	size_t spki_len = 0;
	int ret = -1;

	if (k == NULL || certs_pkey_spki(k, &spki, &spki_len) == -1) {
		av_fail(res, "AK certificate: its key cannot be read");
		goto out;
	}
	if (evidence_verify_signature_spki(spki, spki_len, chk->ev->attest, chk->ev->attest_len,
	        chk->ev->signature, chk->ev->signature_len, &err) == -1) {
		av_fail(res, "quote not signed by the certified AK: %s", err.msg);
		goto out;
	}
	ret = 0;
out:
	free(spki);
	certs_pkey_free(k);
	return ret;
}

/* The PCR values required (--pcrs) are among those quoted, and equal. */
static int
av_check_required(const struct attest_check *chk, struct attest_result *res)
{
	const struct attest_evidence *ev = chk->ev;

	for (size_t i = 0; i < chk->n_want; i++) {
		const struct evidence_pcr_values *w = &chk->want[i], *have = NULL;
		size_t size = attest_bank_size(w->hash_alg);

		for (size_t j = 0; j < ev->n_pcrs; j++)
			if (ev->pcrs[j].hash_alg == w->hash_alg)
				have = &ev->pcrs[j];
		for (int p = 0; p < EVIDENCE_MAX_PCRS; p++) {
			if ((w->mask & 1u << p) == 0)
				continue;
			if (have == NULL || (have->mask & 1u << p) == 0) {
				av_fail(res, "PCR %s:%d is required but not quoted",
				    attest_bank_name(w->hash_alg), p);
				return -1;
			}
			if (memcmp(have->value[p], w->value[p], size) != 0) {
				av_fail(res, "PCR %s:%d differs from the value required",
				    attest_bank_name(w->hash_alg), p);
				return -1;
			}
		}
	}
	return 0;
}

/* The clockInfo moves forward from the last quote accepted from this AK,
 * and is not that quote's again (a replay). */
static int
av_check_clock(
    const struct attest_check *chk, const struct evidence_attest *a, struct attest_result *res)
{
	const struct evidence_clock *p = chk->prev;
	struct err err;

	if (p == NULL)
		return 0;
	if (evidence_check_clock(p, &a->clock, &err) == -1) {
		av_fail(res, "%s", err.msg);
		return -1;
	}
	if (a->clock.clock == p->clock && a->clock.reset_count == p->reset_count &&
	    a->clock.restart_count == p->restart_count) {
		av_fail(res,
		    "replayed quote: its clockInfo (%" PRIu64 " ms, resetCount %" PRIu32
		    ", restartCount %" PRIu32 ") is that of the last quote accepted "
		    "from this AK",
		    p->clock, p->reset_count, p->restart_count);
		return -1;
	}
	return 0;
}

/* The policy on the kind of TPM, and the verdict's text. */
static int
av_check_policy(const struct attest_check *chk, struct attest_result *res)
{
	const struct certs_virtual *v = &res->virt;
	char ck[2 * CERTS_DIGEST_LEN + 1];

	if (!v->is_virtual) {
		snprintf(res->verdict, sizeof(res->verdict), "hardware TPM");
		if (chk->policy == ATTEST_REQUIRE_HOST_CONFIG) {
			av_fail(res,
			    "policy: host configuration %s required, but the AK is a "
			    "hardware TPM's",
			    chk->host_config);
			return -1;
		}
		return 0;
	}
	hex_encode(v->ck_digest, sizeof(v->ck_digest), ck);
	if (v->host[0] != '\0')
		snprintf(res->verdict, sizeof(res->verdict),
		    "virtual TPM on host %s (CK %.16s) in approved configuration %s (instance %s)",
		    v->host, ck, v->host_config, v->instance_uuid);
	else
		snprintf(res->verdict, sizeof(res->verdict),
		    "virtual TPM on host CK %.16s in approved configuration %s (instance %s)", ck,
		    v->host_config, v->instance_uuid);
	if (chk->policy == ATTEST_REJECT_VIRTUAL) {
		av_fail(res, "policy: virtual TPMs are refused (reject-virtual), and this is a %s",
		    res->verdict);
		return -1;
	}
	if (chk->policy == ATTEST_REQUIRE_HOST_CONFIG &&
	    strcmp(v->host_config, chk->host_config) != 0) {
		av_fail(res, "policy: host configuration %s required, but the vTPM's host runs %s",
		    chk->host_config, v->host_config);
		return -1;
	}
	return 0;
}

int
attest_verify_quote(const struct attest_check *chk, struct attest_result *res)
{
	struct evidence_attest a;
	struct err err;

	memset(res, 0, sizeof(*res));
	if (av_check_cert(chk, res) == -1 || av_check_ak_public(chk, res) == -1 ||
	    av_check_signature(chk, res) == -1)
		return -1;
	if (evidence_parse_attest(chk->ev->attest, chk->ev->attest_len, &a, &err) ==
	    -1) {
		av_fail(res, "attestation: %s", err.msg);
		return -1;
	}
	res->clock = a.clock;
	if (evidence_check_quote(&a, chk->nonce, chk->nonce_len, chk->ev->pcrs, chk->ev->n_pcrs,
	        NULL, &err) == -1) {
		av_fail(res, "quote: %s", err.msg);
		return -1;
	}
	if (av_check_required(chk, res) == -1 || av_check_clock(chk, &a, res) == -1 ||
	    av_check_policy(chk, res) == -1)
		return -1;
	res->trusted = true;
	return 0;
}

/* ---- the state of the last quote seen ---- */

static void
av_state_path(const char *dir, const uint8_t digest[static CERTS_DIGEST_LEN], char *buf, size_t len)
{
	char hex[2 * CERTS_DIGEST_LEN + 1];

	hex_encode(digest, CERTS_DIGEST_LEN, hex);
	snprintf(buf, len, "%s/%s", dir, hex);
}

int
attest_state_load(const char *dir, const uint8_t digest[static CERTS_DIGEST_LEN],
    struct evidence_clock *clock, struct err *err)
{
	char path[4096], magic[32];
	unsigned long long c;
	unsigned int reset, restart, safe;
	uint8_t *buf = NULL;
	size_t len = 0;
	int ret = -1;

	memset(clock, 0, sizeof(*clock));
	av_state_path(dir, digest, path, sizeof(path));
	if (fileio_read(path, 4096, &buf, &len) == -1) {
		if (errno == ENOENT)
			return 0;
		err_set(err, ERR_FAILED, "%s: %s", path, strerror(errno));
		return -1;
	}
	buf[len < 4096 ? len : 4095] = '\0';
	/* NOLINTNEXTLINE(cert-err34-c): our own file; an out-of-range number saturates */
	if (sscanf((char *)buf, "%31s %llu %u %u %u", magic, &c, &reset, &restart, &safe) != 5 ||
	    strcmp(magic, AV_STATE_MAGIC) != 0 || safe > 1) {
		err_set(err, ERR_FAILED, "%s: not a vtpm-attest state file", path);
		goto out;
	}
	*clock = (struct evidence_clock){c, reset, restart, safe == 1};
	ret = 1;
out:
	free(buf);
	return ret;
}

int
attest_state_save(const char *dir, const uint8_t digest[static CERTS_DIGEST_LEN],
    const struct evidence_clock *clock, struct err *err)
{
	char path[4096], line[128];
	int n;

	if (fileio_mkdirs(dir, 0700) == -1) {
		err_set(err, ERR_FAILED, "%s: %s", dir, strerror(errno));
		return -1;
	}
	av_state_path(dir, digest, path, sizeof(path));
	n = snprintf(line, sizeof(line), "%s %llu %u %u %u\n", AV_STATE_MAGIC,
	    (unsigned long long)clock->clock, clock->reset_count, clock->restart_count,
	    clock->safe ? 1u : 0u);
	if (fileio_write_atomic(path, line, (size_t)n, 0600) == -1) {
		err_set(err, ERR_FAILED, "%s: %s", path, strerror(errno));
		return -1;
	}
	return 0;
}

/* ---- the command ---- */

static const char av_help[] =
    "usage: vtpm-attest verify --ak-cert FILE --nonce HEX --trust ROOT.pem\n"
    "           (--quote BUNDLE | --message FILE --signature FILE --pcr-file FILE)\n"
    "           [--untrusted FILE]... [--pcrs SPEC | --any-pcrs]\n"
    "           [--ca URL | --no-revocation-check] [--state DIR]\n"
    "           [--policy accept-virtual|reject-virtual|require-host-config ID] [--json]\n"
    "\n"
    "Check a quote by a guest's attestation key.\n"
    "The manual: vtpm-attest(1), COMMANDS, verify.\n";

#define AV_NONCE_MIN 16 /* bytes of a challenger's nonce */

struct av_opts {
	const char *ak_cert, *quote, *message, *signature, *pcr_file, *trust, *pcrs, *ca, *state;
	const char *untrusted[AV_MAX_UNTRUSTED];
	size_t n_untrusted;
	const char *crls[ATTEST_CRL_MAX];
	size_t n_crls;
	uint8_t nonce[EVIDENCE_DATA_MAX];
	size_t nonce_len;
	bool have_nonce, json;
	bool any_pcrs, no_revocation_check; /* checks waived explicitly */
	enum attest_policy policy;
	const char *host_config;
};

static int
av_parse_policy(struct av_opts *o, int argc, char **argv)
{
	if (strcmp(optarg, "accept-virtual") == 0) {
		o->policy = ATTEST_ACCEPT_VIRTUAL;
	} else if (strcmp(optarg, "reject-virtual") == 0) {
		o->policy = ATTEST_REJECT_VIRTUAL;
	} else if (strcmp(optarg, "require-host-config") == 0) {
		if (optind >= argc || argv[optind][0] == '-')
			return attest_usage("verify", "require-host-config needs an ID");
		o->policy = ATTEST_REQUIRE_HOST_CONFIG;
		o->host_config = argv[optind++];
	} else {
		return attest_usage("verify",
		    "--policy is accept-virtual, reject-virtual or require-host-config ID");
	}
	return EXIT_OK;
}

/* "Trusted … in approved configuration" only with the checks that make it
 * true, or with them waived by name. */
static int
av_check_waivers(const struct av_opts *o)
{
	if ((o->ca != NULL || o->n_crls > 0) && o->no_revocation_check)
		return attest_usage(
		    "verify", "--ca or --crl and --no-revocation-check contradict each other");
	if (o->ca != NULL && o->n_crls > 0)
		return attest_usage("verify", "give --ca URL or --crl FILE, not both");
	if (o->ca != NULL && attest_http_check_url("verify", o->ca) != EXIT_OK)
		return EXIT_USAGE;
	if (o->pcrs != NULL && o->any_pcrs)
		return attest_usage("verify", "--pcrs and --any-pcrs contradict each other");
	if (o->policy != ATTEST_REQUIRE_HOST_CONFIG)
		return EXIT_OK;
	if (o->ca == NULL && o->n_crls == 0 && !o->no_revocation_check)
		return attest_usage("verify",
		    "require-host-config needs revocation checked: give --ca URL or --crl FILE, "
		    "or waive it with --no-revocation-check");
	if (o->pcrs == NULL && !o->any_pcrs)
		return attest_usage("verify",
		    "require-host-config needs the PCR values expected: give --pcrs SPEC, or "
		    "waive it with --any-pcrs");
	return EXIT_OK;
}

static int
av_parse(struct av_opts *o, int argc, char **argv)
{
	static const struct option opts[] = {
	    {"ak-cert", required_argument, NULL, 'a'},
	    {"quote", required_argument, NULL, 'q'},
	    {"message", required_argument, NULL, 'm'},
	    {"signature", required_argument, NULL, 's'},
	    {"pcr-file", required_argument, NULL, 'f'},
	    {"nonce", required_argument, NULL, 'n'},
	    {"trust", required_argument, NULL, 't'},
	    {"untrusted", required_argument, NULL, 'u'},
	    {"pcrs", required_argument, NULL, 'p'},
	    {"policy", required_argument, NULL, 'P'},
	    {"ca", required_argument, NULL, 'c'},
	    {"crl", required_argument, NULL, 'C'},
	    {"state", required_argument, NULL, 'S'},
	    {"json", no_argument, NULL, 'j'},
	    {"any-pcrs", no_argument, NULL, 'A'},
	    {"no-revocation-check", no_argument, NULL, 'R'},
	    ATTEST_TLS_OPTIONS,
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	int c, r;

	opterr = 0;
	while ((c = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
		switch (c) {
		case 'a': o->ak_cert = optarg; break;
		case 'q': o->quote = optarg; break;
		case 'm': o->message = optarg; break;
		case 's': o->signature = optarg; break;
		case 'f': o->pcr_file = optarg; break;
		case 't': o->trust = optarg; break;
		case 'p': o->pcrs = optarg; break;
		case 'c': o->ca = optarg; break;
		case 'S': o->state = optarg; break;
		case 'j': o->json = true; break;
		case 'A': o->any_pcrs = true; break;
		case 'R': o->no_revocation_check = true; break;
		case ATTEST_OPT_CA_TLS_ROOT:
		case ATTEST_OPT_CA_TLS_PIN:
			if ((r = attest_http_tls_option("verify", c, optarg)) != EXIT_OK)
				return r;
			break;
		case 'h': fputs(av_help, stdout); return -1;
		case 'n':
			if ((r = attest_parse_hex("verify", "--nonce", optarg, o->nonce,
			         sizeof(o->nonce), &o->nonce_len)) != EXIT_OK)
				return r;
			/* A short nonce repeats: an old quote would pass for fresh. */
			if (o->nonce_len < AV_NONCE_MIN)
				return attest_usage("verify", "--nonce: at least %d bytes, drawn at "
				    "random for each challenge", AV_NONCE_MIN);
			o->have_nonce = true;
			break;
		case 'C':
			if (o->n_crls == ATTEST_CRL_MAX)
				return attest_usage("verify", "at most %d --crl", ATTEST_CRL_MAX);
			o->crls[o->n_crls++] = optarg;
			break;
		case 'u':
			if (o->n_untrusted == AV_MAX_UNTRUSTED)
				return attest_usage(
				    "verify", "at most %d --untrusted", AV_MAX_UNTRUSTED);
			o->untrusted[o->n_untrusted++] = optarg;
			break;
		case 'P':
			if ((r = av_parse_policy(o, argc, argv)) != EXIT_OK)
				return r;
			break;
		case ':': return attest_usage("verify", "%s needs a value", argv[optind - 1]);
		default: return attest_usage("verify", "unknown option '%s'", argv[optind - 1]);
		}
	}
	if (optind < argc)
		return attest_usage("verify", "unexpected argument '%s'", argv[optind]);
	if (o->ak_cert == NULL || o->trust == NULL || !o->have_nonce)
		return attest_usage("verify", "--ak-cert, --trust and --nonce are required");
	if ((o->quote != NULL) ==
	    (o->message != NULL || o->signature != NULL || o->pcr_file != NULL))
		return attest_usage("verify",
		    "give either --quote BUNDLE or --message, --signature and --pcr-file");
	if (o->quote == NULL && (o->message == NULL || o->signature == NULL || o->pcr_file == NULL))
		return attest_usage("verify", "--message, --signature and --pcr-file go together");
	return av_check_waivers(o);
}

/* Reads a whole file of at most max bytes into out. */
static int
av_read_into(const char *path, uint8_t *out, size_t max, size_t *len, struct err *err)
{
	uint8_t *buf = NULL;
	size_t n = 0;

	if (fileio_read(path, max, &buf, &n) == -1) {
		err_set(err, ERR_FAILED, "%s: %s", path, errno == EFBIG ? "too large" : strerror(errno));
		return -1;
	}
	memcpy(out, buf, n);
	*len = n;
	free(buf);
	return 0;
}

/* The evidence from the bundle or from tpm2_quote's three files. */
static int
av_load_evidence(const struct av_opts *o, struct attest_evidence *ev, struct err *err)
{
	uint8_t *buf = NULL;
	size_t len = 0;
	struct err inner;
	int ret = -1;

	memset(ev, 0, sizeof(*ev));
	if (o->quote != NULL) {
		if (fileio_read(o->quote, ATTEST_BUNDLE_MAX, &buf, &len) == -1) {
			err_set(err, ERR_FAILED, "%s: %s", o->quote, strerror(errno));
			return -1;
		}
		ret = attest_bundle_parse(buf, len, ev, &inner);
		if (ret == -1)
			err_set(err, ERR_FAILED, "%s: %s", o->quote, inner.msg);
		free(buf);
		return ret;
	}
	if (av_read_into(
	        o->message, ev->attest, sizeof(ev->attest), &ev->attest_len, err) == -1 ||
	    av_read_into(o->signature, ev->signature, sizeof(ev->signature), &ev->signature_len,
	        err) == -1)
		return -1;
	if (fileio_read(o->pcr_file, AV_FILE_MAX, &buf, &len) == -1) {
		err_set(err, ERR_FAILED, "%s: %s", o->pcr_file, strerror(errno));
		return -1;
	}
	ret = attest_pcrfile_parse(buf, len, ev->pcrs, &ev->n_pcrs, &inner);
	if (ret == -1)
		err_set(err, ERR_FAILED, "%s: %s", o->pcr_file, inner.msg);
	free(buf);
	return ret;
}

/* The default state directory. */
static const char *
av_state_dir(char *buf, size_t len)
{
	const char *xdg = getenv("XDG_STATE_HOME"), *home = getenv("HOME");

	if (geteuid() == 0)
		return "/var/lib/vtpm-attest";
	if (xdg != NULL && xdg[0] == '/')
		snprintf(buf, len, "%s/vtpm-attest", xdg);
	else if (home != NULL && home[0] == '/')
		snprintf(buf, len, "%s/.local/state/vtpm-attest", home);
	else
		return "/var/lib/vtpm-attest";
	return buf;
}

/* Certificates of the command line, as DER (freed by av_free_certs). */
struct av_certs {
	struct certs_der ak, root, untrusted[AV_MAX_UNTRUSTED];
	size_t n_untrusted;
};

static void
av_free_certs(struct av_certs *c)
{
	free((void *)c->ak.der);
	free((void *)c->root.der);
	for (size_t i = 0; i < c->n_untrusted; i++)
		free((void *)c->untrusted[i].der);
}

static int
av_read_cert(const char *path, struct certs_der *out, struct err *err)
{
	uint8_t *der = NULL;
	size_t len = 0;

	if (certs_read(path, &der, &len) == -1) {
		err_set(err, ERR_FAILED, "%s: %s", path,
		    errno == EINVAL ? "not a certificate (PEM or DER)" : strerror(errno));
		return -1;
	}
	*out = (struct certs_der){der, len};
	return 0;
}

static int
av_load_certs(const struct av_opts *o, struct av_certs *c, struct err *err)
{
	if (av_read_cert(o->ak_cert, &c->ak, err) == -1 ||
	    av_read_cert(o->trust, &c->root, err) == -1)
		return -1;
	for (size_t i = 0; i < o->n_untrusted; i++) {
		if (av_read_cert(o->untrusted[i], &c->untrusted[i], err) == -1)
			return -1;
		c->n_untrusted++;
	}
	return 0;
}

static void
av_print(const struct av_opts *o, const struct attest_result *res, const char *revocation)
{
	char digest[2 * CERTS_DIGEST_LEN + 1];
	json_t *j;

	hex_encode(res->ak_digest, sizeof(res->ak_digest), digest);
	if (!o->json) {
		if (res->trusted)
			printf("trusted: %s; %s%s\n", res->verdict, revocation,
			    o->any_pcrs         ? "; PCR values NOT compared with any expected (waived: "
			                          "--any-pcrs)"
			    : o->pcrs == NULL   ? "; PCR values not compared (no --pcrs given)"
			                        : "");
		else
			fprintf(stderr, "vtpm-attest: refused: %s\n", res->reason);
		return;
	}
	j = json_pack("{s:b, s:s, s:s, s:s, s:b, s:{s:I, s:I, s:I, s:b}}", "trusted", res->trusted,
	    "verdict", res->verdict, "reason", res->trusted ? "" : res->reason, "ak_key_digest",
	    digest, "virtual", res->virt.is_virtual, "clock", "clock", (json_int_t)res->clock.clock,
	    "reset_count", (json_int_t)res->clock.reset_count, "restart_count",
	    (json_int_t)res->clock.restart_count, "safe", res->clock.safe);
	if (j != NULL && res->virt.is_virtual) {
		char ck[2 * CERTS_DIGEST_LEN + 1];

		hex_encode(res->virt.ck_digest, sizeof(res->virt.ck_digest), ck);
		json_object_set_new(j, "host_ck_digest", json_string(ck));
		if (res->virt.host[0] != '\0')
			json_object_set_new(j, "host", json_string(res->virt.host));
		json_object_set_new(j, "host_config", json_string(res->virt.host_config));
		json_object_set_new(j, "instance_uuid", json_string(res->virt.instance_uuid));
	}
	if (j != NULL) {
		json_t *w = json_array();

		json_object_set_new(j, "revocation", json_string(revocation));
		if (w != NULL && o->no_revocation_check)
			json_array_append_new(w, json_string("revocation-check"));
		if (w != NULL && (o->any_pcrs || o->pcrs == NULL))
			json_array_append_new(w, json_string("pcr-expectations"));
		json_object_set_new(j, "waived", w);
	}
	json_dumpf(j, stdout, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
	fputc('\n', stdout);
	json_decref(j);
	if (!res->trusted)
		fprintf(stderr, "vtpm-attest: refused: %s\n", res->reason);
}

/* Revocation of the AK certificate's whole chain: the text for the
 * verdict; -1 with res->reason when a link is revoked or unknown. */
static int
av_revocation(const struct av_opts *o, const struct av_certs *c, struct attest_result *res,
    char *text, size_t len)
{
	struct certs_crls *crls = NULL;
	struct attest_chain chain;
	struct err err;
	int ret = -1;

	if (o->ca == NULL && o->n_crls == 0) {
		snprintf(text, len, "%s", o->no_revocation_check
		                              ? "revocation NOT checked (waived: --no-revocation-check)"
		                              : "revocation not checked");
		return 0;
	}
	if (attest_chain_of(&c->ak, &chain, &err) == -1)
		goto out;
	if (o->ca != NULL) {
		if (attest_revoked_ca(o->ca, &chain, &err) == -1)
			goto out;
		snprintf(text, len, "not revoked: %s (vtpm-ca at %s)",
		    chain.n == 3 ? "AK, vEK and CK certificates" : "AK certificate", o->ca);
		ret = 0;
		goto out;
	}
	if (attest_crls_load(o->crls, o->n_crls, c->untrusted, c->n_untrusted, &c->root, 1,
	        (int64_t)time(NULL), &crls, &err) == -1 ||
	    attest_revoked_crls(crls, &chain, &err) == -1)
		goto out;
	snprintf(text, len, "not revoked: %s (%zu CRL%s)",
	    chain.n == 3 ? "AK, vEK and CK certificates" : "AK certificate", o->n_crls,
	    o->n_crls > 1 ? "s" : "");
	ret = 0;
out:
	if (ret == -1)
		snprintf(res->reason, sizeof(res->reason), "%s", err.msg);
	certs_crls_free(crls);
	return ret;
}

int
attest_verify(int argc, char **argv)
{
	struct av_opts o = {0};
	struct av_certs c = {0};
	struct attest_evidence *ev = calloc(1, sizeof(*ev));
	struct evidence_pcr_values *want = calloc(ATTEST_BANKS, sizeof(*want));
	struct evidence_pcr_select want_sel;
	struct attest_check chk;
	struct attest_result res;
	struct evidence_clock prev;
	char dirbuf[4096], revocation[ATTEST_WHY_MAX];
	struct err err;
	const char *dir;
	size_t n_want = 0;
	int ret, found;

	if (ev == NULL || want == NULL) {
		ret = attest_fail("out of memory");
		goto out;
	}
	ret = av_parse(&o, argc, argv);
	if (ret != EXIT_OK) {
		ret = ret == -1 ? EXIT_OK : ret;
		goto out;
	}
	if (o.pcrs != NULL &&
	    attest_pcr_spec_parse(o.pcrs, &want_sel, want, &n_want, &err) == -1) {
		ret = attest_usage("verify", "--pcrs: %s", err.msg);
		goto out;
	}
	ret = EXIT_RUNTIME;
	if (av_load_certs(&o, &c, &err) == -1 ||
	    av_load_evidence(&o, ev, &err) == -1) {
		attest_fail("%s", err.msg);
		goto out;
	}
	dir = o.state != NULL ? o.state : av_state_dir(dirbuf, sizeof(dirbuf));
	if (certs_cert_key_digest(c.ak.der, c.ak.len, res.ak_digest) == -1) {
		attest_fail("%s: its key cannot be read", o.ak_cert);
		goto out;
	}
	found = attest_state_load(dir, res.ak_digest, &prev, &err);
	if (found == -1) {
		attest_fail("%s", err.msg);
		goto out;
	}
	chk = (struct attest_check){.ak_cert = c.ak,
	    .untrusted = c.untrusted,
	    .n_untrusted = c.n_untrusted,
	    .roots = &c.root,
	    .n_roots = 1,
	    .now = (int64_t)time(NULL),
	    .ev = ev,
	    .nonce = o.nonce,
	    .nonce_len = o.nonce_len,
	    .want = want,
	    .n_want = n_want,
	    .policy = o.policy,
	    .host_config = o.host_config,
	    .prev = found == 1 ? &prev : NULL};
	if (attest_verify_quote(&chk, &res) == 0 &&
	    av_revocation(&o, &c, &res, revocation, sizeof(revocation)) == -1)
		res.trusted = false;
	if (res.trusted &&
	    attest_state_save(dir, res.ak_digest, &res.clock, &err) == -1) {
		res.trusted = false;
		snprintf(
		    res.reason, sizeof(res.reason), "cannot record the quote's clock: %s", err.msg);
	}
	if (!res.trusted)
		revocation[0] = '\0';
	av_print(&o, &res, revocation);
	ret = res.trusted ? EXIT_OK : EXIT_RUNTIME;
out:
	av_free_certs(&c);
	free(want);
	free(ev);
	return ret;
}
