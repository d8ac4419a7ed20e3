/*
 * ca-child.c: for tests/integration/ca-child.sh (the attack review of
 * issue #11, "The CA's network-facing process, taken over"). Plays a
 * network child of `vtpm-ca serve` that an attacker has taken over,
 * against the parent's own code (ca_parent_handle, src/ca/ca_parent.c) on
 * the CA `vtpm-ca init` made in DIR, over a SOCK_SEQPACKET pair as serve
 * has it; it sends only messages ca_msg_check accepts, and holds no key a
 * TPM holds. Each mode prints "issued SERIAL" and exits 0 when the parent
 * issues, or prints the parent's refusal and exits 1.
 *
 *   ca-child DIR enrolled HOST
 *     fixture, not attack: records a CK certificate for HOST as the
 *     Privacy CA issued it to an enrolled host (the CK's private key
 *     stays in that host's TPM: here it is dropped at once); its serial.
 *   ca-child DIR ak KEY.pem UUID OUT.pem
 *     an AK certificate for the P-256 key of KEY.pem (made in software):
 *     CHALLENGE_ADD for it under a software "vEK", CHALLENGE_TAKE with a
 *     secret of the child's choosing (it cannot know the one the parent
 *     drew), ISSUE_AK beneath vEK certificate 1.
 *   ca-child DIR vek CK_SERIAL UUID OUT.pem
 *     an EK certificate for a software "vEK": NONCE_ADD, then ISSUE_EK
 *     with evidence it made and signed in software (a certification of a
 *     sealed object of its own, a quote of the first approved host
 *     configuration's PCR 16 value, the right qualifying data), naming
 *     the enrolled host's CK certificate CK_SERIAL.
 *   ca-child quote KEY.pem NONCE PCR16
 *     a vtpm-attest bundle: a QUOTE over sha256 PCR 16 = PCR16 with
 *     extraData NONCE, signed in software with KEY.pem.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <tss2/tss2_mu.h>

#include "ca/ca_msg.h"

static struct ca_parent P;
static int child_fd;
static struct ca_msg in, reply;

static void
die(const char *what, const char *why)
{
	fprintf(stderr, "ca-child: %s: %s\n", what, why != NULL ? why : "");
	exit(1);
}

/* The parent answers in (an answer of type want), or ends the child. */
static void
ask(enum ca_msg_type want)
{
	struct err err = {0};

	in.hdr.len = (uint32_t)(ca_msg_size(&in) - sizeof(in.hdr));
	if (ca_msg_check(&in, ca_msg_size(&in), CA_MSG_TO_PARENT, &err) == -1)
		die("message refused by ca_msg_check", err.msg);
	if (ca_parent_handle(&P, &in, &err) == -1) {
		printf("the parent ended the child: %s\n", err.msg);
		exit(1);
	}
	if (ca_msg_recv(child_fd, &reply, CA_MSG_TO_CHILD, &err) != 1 || reply.hdr.type != want)
		die("answer", err.msg);
}

static void
load_ca(const char *dir)
{
	char db[512], key[512], cert[512];
	struct err err = {0};
	uint8_t *der = NULL;
	size_t len = 0;
	int sv[2];

	snprintf(db, sizeof(db), "%s/ca.db", dir);
	if ((P.db = ca_db_open(db, false, &err)) == NULL)
		die(db, err.msg);
	snprintf(key, sizeof(key), "%s/ca-privacy.key", dir);
	snprintf(cert, sizeof(cert), "%s/ca-privacy.pem", dir);
	if ((P.privacy = certs_ca_load(key, cert, &err)) == NULL)
		die(key, err.msg);
	snprintf(key, sizeof(key), "%s/ca-virtualization.key", dir);
	snprintf(cert, sizeof(cert), "%s/ca-virtualization.pem", dir);
	if ((P.virt = certs_ca_load(key, cert, &err)) == NULL)
		die(key, err.msg);
	snprintf(cert, sizeof(cert), "%s/ca-root.pem", dir);
	if (certs_read(cert, &der, &len) == -1 || len > sizeof(P.root.der))
		die(cert, "read");
	memcpy(P.root.der, der, len);
	P.root.len = len;
	free(der);
	ca_settings_defaults(&P.cfg);
	P.cfg.role = CA_ROLE_BOTH;
	if ((P.out = calloc(1, sizeof(*P.out))) == NULL ||
	    socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) == -1)
		die("socketpair", NULL);
	ca_parent_reset(&P, sv[0]);
	child_fd = sv[1];
}

/* The coordinates of a P-256 key. */
static void
key_xy(EVP_PKEY *pk, uint8_t x[32], uint8_t y[32])
{
	BIGNUM *bx = NULL, *by = NULL;

	if (EVP_PKEY_get_bn_param(pk, OSSL_PKEY_PARAM_EC_PUB_X, &bx) != 1 ||
	    EVP_PKEY_get_bn_param(pk, OSSL_PKEY_PARAM_EC_PUB_Y, &by) != 1)
		die("key", "not P-256");
	BN_bn2binpad(bx, x, 32);
	BN_bn2binpad(by, y, 32);
	BN_free(bx);
	BN_free(by);
}

static EVP_PKEY *
read_key(const char *file)
{
	FILE *f = fopen(file, "r");
	EVP_PKEY *k = f != NULL ? PEM_read_PrivateKey(f, NULL, NULL, NULL) : NULL;

	if (f != NULL)
		fclose(f);
	if (k == NULL)
		die(file, "not a PEM private key");
	return k;
}

static void
marshal(struct ca_msg_public *out, const TPM2B_PUBLIC *pub)
{
	size_t off = 0;

	memset(out, 0, sizeof(*out));
	if (Tss2_MU_TPM2B_PUBLIC_Marshal(pub, out->data, sizeof(out->data), &off) !=
	    TSS2_RC_SUCCESS)
		die("marshal", "TPM2B_PUBLIC");
	out->len = (uint32_t)off;
}

/* The public area of pk as a TPM would show it: an EK of the TCG template
 * (ek), else a restricted ECDSA signing key. */
static void
pub_ecc(struct ca_msg_public *out, EVP_PKEY *pk, bool ek)
{
	const TPMA_OBJECT key = TPMA_OBJECT_FIXEDTPM | TPMA_OBJECT_FIXEDPARENT |
	                        TPMA_OBJECT_SENSITIVEDATAORIGIN | TPMA_OBJECT_RESTRICTED;
	TPM2B_PUBLIC p = {0};
	TPMS_ECC_PARMS *e = &p.publicArea.parameters.eccDetail;

	p.publicArea.type = TPM2_ALG_ECC;
	p.publicArea.nameAlg = TPM2_ALG_SHA256;
	if (ek) {
		p.publicArea.objectAttributes =
		    key | TPMA_OBJECT_ADMINWITHPOLICY | TPMA_OBJECT_DECRYPT;
		e->symmetric.algorithm = TPM2_ALG_AES;
		e->symmetric.keyBits.aes = 128;
		e->symmetric.mode.aes = TPM2_ALG_CFB;
		e->scheme.scheme = TPM2_ALG_NULL;
	} else {
		p.publicArea.objectAttributes =
		    key | TPMA_OBJECT_SIGN_ENCRYPT | TPMA_OBJECT_USERWITHAUTH;
		e->symmetric.algorithm = TPM2_ALG_NULL;
		e->scheme.scheme = TPM2_ALG_ECDSA;
		e->scheme.details.ecdsa.hashAlg = TPM2_ALG_SHA256;
	}
	e->curveID = TPM2_ECC_NIST_P256;
	e->kdf.scheme = TPM2_ALG_NULL;
	p.publicArea.unique.ecc.x.size = 32;
	p.publicArea.unique.ecc.y.size = 32;
	key_xy(pk, p.publicArea.unique.ecc.x.buffer, p.publicArea.unique.ecc.y.buffer);
	marshal(out, &p);
}

static void
write_issued(const char *out)
{
	if (reply.u.issued.rc != CA_MSG_OK) {
		printf("refused by the parent: %s\n", reply.u.issued.reason);
		exit(1);
	}
	if (certs_write_pem(out, reply.u.issued.der, reply.u.issued.len) == -1)
		die(out, "write");
	printf("issued %s\n", reply.u.issued.serial);
}

/* Fixture: the CK certificate of an enrolled host, in the records. */
static void
enrolled(const char *host)
{
	EVP_PKEY *ck = EVP_EC_gen("P-256");
	struct certs_ck_req req = {.host = host, .validity = {0, CERTS_NO_EXPIRY}};
	struct ca_issued rec = {.role = "privacy", .kind = "ck"};
	struct certs_pkey *pk;
	uint8_t x[32], y[32], *der = NULL;
	size_t len = 0;
	char *pem = NULL;
	struct err err = {0};

	if (ck == NULL)
		die("key", NULL);
	key_xy(ck, x, y);
	EVP_PKEY_free(ck); /* it stays in the host's TPM */
	if ((pk = certs_pkey_from_ecc_p256(x, y)) == NULL)
		die("key", NULL);
	req.ck = pk;
	if (RAND_bytes(req.host_ek_digest, sizeof(req.host_ek_digest)) != 1 ||
	    certs_issue_ck(P.privacy, &req, &der, &len, &err) == -1 ||
	    (pem = certs_pem_encode(der, len)) == NULL ||
	    certs_cert_serial(der, len, rec.serial) == -1)
		die("CK certificate", err.msg);
	snprintf(rec.subject, sizeof(rec.subject), "%s", host);
	rec.issued_at = time(NULL);
	rec.not_after = CERTS_NO_EXPIRY;
	if (ca_db_issued_add(P.db, &rec, pem, &err) == -1)
		die("record", err.msg);
	printf("%s\n", rec.serial);
	free(pem);
	free(der);
	certs_pkey_free(pk);
}

/* An AK certificate for a software key: the challenge answered with a
 * secret of the child's choosing. */
static void
forge_ak(const char *keyfile, const char *uuid, const char *out)
{
	EVP_PKEY *ak = read_key(keyfile), *ek = EVP_EC_gen("P-256");
	char id[CA_ID_HEX + 1];

	if (ek == NULL)
		die("key", NULL);
	ca_msg_init(&in, CA_MSG_CHALLENGE_ADD);
	in.u.challenge_add.kind = CA_KIND_AK;
	snprintf(in.u.challenge_add.subject, sizeof(in.u.challenge_add.subject), "%s", uuid);
	strcpy(in.u.challenge_add.client, "192.0.2.66");
	pub_ecc(&in.u.challenge_add.ek, ek, true);
	pub_ecc(&in.u.challenge_add.key, ak, false);
	in.u.challenge_add.len = 2;
	memcpy(in.u.challenge_add.request, "{}", 2);
	ask(CA_MSG_CHALLENGE_ADDED);
	if (reply.u.challenge_added.rc != CA_MSG_OK) {
		printf("challenge refused by the parent: %s\n", reply.u.challenge_added.reason);
		exit(1);
	}
	memcpy(id, reply.u.challenge_added.id, sizeof(id));
	ca_msg_init(&in, CA_MSG_CHALLENGE_TAKE);
	memcpy(in.u.challenge_take.id, id, sizeof(id));
	in.u.challenge_take.secret_len = 32;
	memset(in.u.challenge_take.secret, 0x41, 32); /* the child's own choice */
	ask(CA_MSG_CHALLENGE_TAKEN);
	printf("challenge %s taken: outcome %u\n", id, reply.u.challenge_taken.rc);
	ca_msg_init(&in, CA_MSG_ISSUE_AK);
	memcpy(in.u.issue_ak.id, id, sizeof(id));
	strcpy(in.u.issue_ak.vek_serial, "1");
	ask(CA_MSG_ISSUED);
	write_issued(out);
	EVP_PKEY_free(ek);
	EVP_PKEY_free(ak);
}

/* at, marshalled and signed (ECDSA-SHA256) with pk, into s. */
static void
sign_attest(struct ca_msg_signed *s, EVP_PKEY *pk, const TPMS_ATTEST *at)
{
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	TPMT_SIGNATURE sig = {0};
	uint8_t *der = NULL;
	const unsigned char *p;
	size_t alen = 0, slen = 0, dlen = 0;
	ECDSA_SIG *es = NULL;
	const BIGNUM *r, *ss;

	memset(s, 0, sizeof(*s));
	if (Tss2_MU_TPMS_ATTEST_Marshal(at, s->attest, sizeof(s->attest), &alen) !=
	        TSS2_RC_SUCCESS ||
	    md == NULL || EVP_DigestSignInit(md, NULL, EVP_sha256(), NULL, pk) != 1 ||
	    EVP_DigestSign(md, NULL, &dlen, s->attest, alen) != 1 || (der = malloc(dlen)) == NULL ||
	    EVP_DigestSign(md, der, &dlen, s->attest, alen) != 1)
		die("sign", NULL);
	s->attest_len = (uint32_t)alen;
	p = der;
	if ((es = d2i_ECDSA_SIG(NULL, &p, (long)dlen)) == NULL)
		die("signature", NULL);
	ECDSA_SIG_get0(es, &r, &ss);
	sig.sigAlg = TPM2_ALG_ECDSA;
	sig.signature.ecdsa.hash = TPM2_ALG_SHA256;
	sig.signature.ecdsa.signatureR.size = 32;
	sig.signature.ecdsa.signatureS.size = 32;
	BN_bn2binpad(r, sig.signature.ecdsa.signatureR.buffer, 32);
	BN_bn2binpad(ss, sig.signature.ecdsa.signatureS.buffer, 32);
	if (Tss2_MU_TPMT_SIGNATURE_Marshal(&sig, s->sig, sizeof(s->sig), &slen) != TSS2_RC_SUCCESS)
		die("marshal signature", NULL);
	s->sig_len = (uint32_t)slen;
	ECDSA_SIG_free(es);
	free(der);
	EVP_MD_CTX_free(md);
}

static void
forge_vek(const char *ck_serial, const char *uuid, const char *out)
{
	struct ca_msg_issue_ek *q = &in.u.issue_ek;
	EVP_PKEY *vek = EVP_EC_gen("P-256"), *signer = EVP_EC_gen("P-256");
	struct evidence_vek_set set = {0};
	struct approval_pub approval;
	struct evidence_public sealed;
	uint8_t nonce[EVIDENCE_VEK_NONCE_LEN], set_digest[32], extra[32], policy[32], pcr[32];
	TPM2B_PUBLIC sp = {0};
	TPMS_ATTEST at = {0};

	if (vek == NULL || signer == NULL)
		die("key", NULL);
	ca_msg_init(&in, CA_MSG_NONCE_ADD);
	strcpy(in.u.nonce_add.client, "192.0.2.66");
	ask(CA_MSG_NONCE_ADDED);
	if (reply.u.nonce_added.rc != CA_MSG_OK)
		die("nonce", reply.u.nonce_added.reason);
	memcpy(nonce, reply.u.nonce_added.nonce, sizeof(nonce));

	ca_msg_init(&in, CA_MSG_ISSUE_EK);
	q->vek_type = EVIDENCE_VEK_ECC_P256;
	pub_ecc(&q->vek_set[EVIDENCE_VEK_ECC_P256], vek, true);
	set.pub[EVIDENCE_VEK_ECC_P256] = q->vek_set[EVIDENCE_VEK_ECC_P256].data;
	set.len[EVIDENCE_VEK_ECC_P256] = q->vek_set[EVIDENCE_VEK_ECC_P256].len;
	if (evidence_vek_set_digest(&set, set_digest, NULL) == -1 ||
	    evidence_vek_qualifying(nonce, set.pub[EVIDENCE_VEK_ECC_P256],
	        set.len[EVIDENCE_VEK_ECC_P256], uuid, set_digest, extra, NULL) == -1)
		die("qualifying data", NULL);
	/* a sealed object of the child's own, under an approval key of its own */
	key_xy(signer, approval.x, approval.y);
	if (pcrpolicy_authorize(&approval, policy) == -1)
		die("policy", NULL);
	sp.publicArea.type = TPM2_ALG_KEYEDHASH;
	sp.publicArea.nameAlg = TPM2_ALG_SHA256;
	sp.publicArea.objectAttributes = TPMA_OBJECT_FIXEDTPM | TPMA_OBJECT_FIXEDPARENT;
	sp.publicArea.authPolicy.size = 32;
	memcpy(sp.publicArea.authPolicy.buffer, policy, 32);
	sp.publicArea.parameters.keyedHashDetail.scheme.scheme = TPM2_ALG_NULL;
	sp.publicArea.unique.keyedHash.size = 32;
	if (RAND_bytes(sp.publicArea.unique.keyedHash.buffer, 32) != 1)
		die("random", NULL);
	marshal(&q->sealed, &sp);
	if (evidence_parse_public(q->sealed.data, q->sealed.len, &sealed, NULL) == -1)
		die("sealed", NULL);

	at.magic = TPM2_GENERATED_VALUE;
	at.type = TPM2_ST_ATTEST_CERTIFY;
	at.extraData.size = sizeof(extra);
	memcpy(at.extraData.buffer, extra, sizeof(extra));
	at.clockInfo.safe = 1;
	at.attested.certify.name.size = (UINT16)sealed.name_len;
	memcpy(at.attested.certify.name.name, sealed.name, sealed.name_len);
	sign_attest(&q->certify, signer, &at);
	memset(&at.attested, 0, sizeof(at.attested));
	at.type = TPM2_ST_ATTEST_QUOTE;
	at.attested.quote.pcrSelect.count = 1;
	at.attested.quote.pcrSelect.pcrSelections[0].hash = TPM2_ALG_SHA256;
	at.attested.quote.pcrSelect.pcrSelections[0].sizeofSelect = 3;
	at.attested.quote.pcrSelect.pcrSelections[0].pcrSelect[2] = 0x01; /* PCR 16 */
	at.attested.quote.pcrDigest.size = 32;
	memset(pcr, 0, sizeof(pcr)); /* the value ca-child.sh approves (no secret) */
	if (ca_sha256(pcr, 32, at.attested.quote.pcrDigest.buffer) == -1)
		die("digest", NULL);
	sign_attest(&q->quote, signer, &at);

	memcpy(q->nonce, nonce, sizeof(nonce));
	q->pcr_mask = 1u << 16;
	memcpy(q->pcrs[16], pcr, 32);
	memcpy(q->approval_x, approval.x, 32);
	memcpy(q->approval_y, approval.y, 32);
	snprintf(q->ck_serial, sizeof(q->ck_serial), "%s", ck_serial);
	snprintf(q->instance_uuid, sizeof(q->instance_uuid), "%s", uuid);
	ask(CA_MSG_ISSUED);
	write_issued(out);
	EVP_PKEY_free(vek);
	EVP_PKEY_free(signer);
}

/* A TPMS_ATTEST of type QUOTE over sha256 PCR 16 = value, extraData
 * nonce, signed in software by the key of keyfile: a vtpm-attest bundle
 * on stdout. */
static void
software_quote(const char *keyfile, const char *nonce_hex, const char *value_hex)
{
	EVP_PKEY *pk = read_key(keyfile);
	struct ca_msg_signed s;
	TPMS_ATTEST at = {0};
	uint8_t value[32];
	char *a64, *s64;

	at.magic = TPM2_GENERATED_VALUE;
	at.type = TPM2_ST_ATTEST_QUOTE;
	at.extraData.size = (UINT16)(strlen(nonce_hex) / 2);
	if (at.extraData.size > sizeof(at.extraData.buffer) ||
	    hex_decode(nonce_hex, at.extraData.buffer, at.extraData.size) == -1 ||
	    hex_decode(value_hex, value, 32) == -1)
		die("hex", NULL);
	at.clockInfo.clock = 123456;
	at.clockInfo.safe = 1;
	at.attested.quote.pcrSelect.count = 1;
	at.attested.quote.pcrSelect.pcrSelections[0].hash = TPM2_ALG_SHA256;
	at.attested.quote.pcrSelect.pcrSelections[0].sizeofSelect = 3;
	at.attested.quote.pcrSelect.pcrSelections[0].pcrSelect[2] = 0x01; /* PCR 16 */
	at.attested.quote.pcrDigest.size = 32;
	if (ca_sha256(value, 32, at.attested.quote.pcrDigest.buffer) == -1)
		die("digest", NULL);
	sign_attest(&s, pk, &at);
	a64 = base64_encode(s.attest, s.attest_len);
	s64 = base64_encode(s.sig, s.sig_len);
	if (a64 == NULL || s64 == NULL)
		die("base64", NULL);
	printf("{\"attest\": \"%s\", \"signature\": \"%s\", \"pcrs\": {\"sha256\": "
	       "{\"16\": \"%s\"}}}\n",
	    a64, s64, value_hex);
	free(a64);
	free(s64);
	EVP_PKEY_free(pk);
}

int
main(int argc, char **argv)
{
	if (argc == 5 && strcmp(argv[1], "quote") == 0) {
		software_quote(argv[2], argv[3], argv[4]);
		return 0;
	}
	if (argc == 4 && strcmp(argv[2], "enrolled") == 0) {
		load_ca(argv[1]);
		enrolled(argv[3]);
	} else if (argc == 6 && strcmp(argv[2], "ak") == 0) {
		load_ca(argv[1]);
		forge_ak(argv[3], argv[4], argv[5]);
	} else if (argc == 6 && strcmp(argv[2], "vek") == 0) {
		load_ca(argv[1]);
		forge_vek(argv[3], argv[4], argv[5]);
	} else {
		fprintf(stderr,
		    "usage: ca-child DIR enrolled HOST | ca-child DIR ak KEY.pem UUID OUT "
		    "| ca-child DIR vek CK_SERIAL UUID OUT | ca-child quote KEY.pem NONCE "
		    "PCR16\n");
		return 2;
	}
	return 0;
}
