/*
 * hwtpm_private.h: what the files of the host-TPM module (hwtpm*.c) share.
 * Only they include it: tpm2-tss types stay inside the module.
 */
#ifndef HWTPM_PRIVATE_H
#define HWTPM_PRIVATE_H

#include <tss2/tss2_esys.h>
#include <tss2/tss2_sys.h>

/* The storage root key, at the TCG-reserved persistent handle. */
#define HWTPM_SRK_HANDLE 0x81000001

/* A persistent key of hwtpm_attest.c, looked up once per connection. */
struct hwtpm_pkey {
	bool found;	  /* tr is its handle */
	bool checked;	  /* pub is its public area, matched against its template */
	ESYS_TR tr;
	TPM2B_PUBLIC pub;
};

/* A TCTI that forwards to the real one, counts commands and times them
 * (from the transmit to the end of the receive that reads the response). */
struct hwtpm_tcti {
	TSS2_TCTI_CONTEXT_COMMON_V2 common; /* must be first */
	TSS2_TCTI_CONTEXT *inner;
	unsigned long commands;
	int64_t sent_us; /* the command in flight's transmit, or 0 */
	struct metrics_hist latency;
};

/* A session whose cryptography vtpmd does itself (hwtpm_session.c). */
struct hwtpm_session {
	TPM2_HANDLE handle;		/* 0: none */
	uint8_t key[TPM_DIGEST_LEN];	/* sessionKey: secret */
	TPM2B_NONCE nonce_tpm;		/* the TPM's last nonce */
};

/*
 * The connection, in secret memory (hwtpm_open: secret_alloc), so that
 * what vtpmd's own session cryptography handles lives in locked pages
 * that no core dump holds: sessionKeys (struct hwtpm_session), the salt
 * of a session being started, a command's or response's parameter
 * encryption keys. Unsealed keys go straight to the caller's memory
 * (lifecycle.c's is secret memory too). What ESYS derives for its own
 * session (esys_session) stays in tpm2-tss's heap: see hwtpm_esys_session.
 */
struct hwtpm {
	struct hwtpm_tcti tcti;
	ESYS_CONTEXT *esys;
	TSS2_SYS_CONTEXT *sys; /* ESYS's own, for hwtpm_seal.c */
	ESYS_TR srk;	     /* ESYS's, checked against srk_name before any session */
	TPM2B_PUBLIC srk_pub; /* what every session is salted to */
	TPM2B_NAME srk_name; /* from srk_pub, equal to the pinned one */
	ESYS_TR esys_session; /* HMAC, salted to the SRK, parameter encryption;
			       * started at first use (hwtpm_esys_session) */
	struct hwtpm_session policy; /* the unseal's and the CK's and BK's uses',
	                              * kept across them (hwtpm_policy_arm) */
	struct hwtpm_session seal;   /* a seal's, for its one command */
	struct hwtpm_session audit;  /* a PCR read's, for its reads (hwtpm_pcr.c) */
	uint8_t salt[CREDENTIAL_SEED_LEN]; /* a session's salt while it starts */
	uint8_t cfb[32];		   /* AES-128 key || IV of one CFB pass */
	TPM2_HANDLE pending; /* an unsealed object hwtpm_flush_pending drops, or 0 */
	bool software_tcti; /* the TCTI is a simulator's (swtpm, mssim) */
	bool simulator;	    /* ... or the TPM says it is software */
	/* The last verified approval, so it is checked by the TPM once
	 * (hwtpm_verify_approval): its policy, its key's Name, the ticket. */
	bool have_ticket;
	uint8_t ticket_policy[TPM_DIGEST_LEN];
	TPMT_TK_VERIFIED ticket;
	TPM2B_NAME approval_name;
	/* The host PCR values the last audited read returned (hwtpm_pcr.c),
	 * for every bit of pcrs_known: what a quote's digest is compared with
	 * before the PCRs are read again. */
	uint32_t pcrs_known;
	uint8_t pcr_values[TPM_PCRS][TPM_DIGEST_LEN];
	/* hwtpm_attest.c: EKs (RSA, ECC), CK, BK; zeroed by hwtpm_open. */
	struct hwtpm_pkey ek[2], ck, bk;
	uint16_t nv_buffer_max; /* TPM_PT_NV_BUFFER_MAX, 0 until asked */
	/* hwtpm_counter.c: the freshness counter and its HMAC session */
	ESYS_TR counter, counter_session;
	char pin_path[4096];	/* where the SRK's Name is pinned, or "" (tools) */
};

/* hwtpm.c */
int hwtpm_seterr(struct err *err, TSS2_RC rc, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
bool hwtpm_rc_bad_auth(TSS2_RC rc);
int hwtpm_selection(const struct pcr_selection *sel, TPML_PCR_SELECTION *out);
int hwtpm_sha256(const uint8_t *a, size_t alen, const uint8_t *b, size_t blen,
    uint8_t out[TPM_DIGEST_LEN]);
int hwtpm_esys_session(struct hwtpm *hw, struct err *err);
void hwtpm_flush_transients(struct hwtpm *hw);
int hwtpm_enter(struct hwtpm *hw, struct err *err);
int hwtpm_verify_approval(struct hwtpm *hw, const struct approval *ap, struct err *err);
void hwtpm_forget_approval(struct hwtpm *hw);
int hwtpm_object_name(const TPM2B_PUBLIC *pub, TPM2B_NAME *name);
int hwtpm_sealed_parse(const uint8_t *blob, size_t blob_len, TPM2B_PUBLIC *pub, TPM2B_PRIVATE *priv,
    size_t *pub_len, TPM2B_NAME *name, struct err *err);
void hwtpm_name_hex(const TPM2B_NAME *name, char hex[static 2 * sizeof(TPMU_NAME) + 1]);
extern const TPMT_SYM_DEF hwtpm_aes_cfb;

/* hwtpm_session.c: sessions whose cryptography vtpmd does itself */
int hwtpm_session_start(struct hwtpm *hw, TPM2_SE type, struct hwtpm_session *s, struct err *err);
int hwtpm_session_cfb(struct hwtpm *hw, const struct hwtpm_session *s, const TPM2B_NONCE *newer,
    const TPM2B_NONCE *older, uint8_t *buf, size_t len, int encrypt);
int hwtpm_session_begin(const struct hwtpm_session *s, TPMA_SESSION attrs, TPMS_AUTH_COMMAND *auth);
#define HWTPM_SIGN_NAMES 2 /* handles a command signed by vtpmd names */
int hwtpm_session_sign(struct hwtpm *hw, const struct hwtpm_session *s, TPM2_CC cc,
    const TPM2B_NAME *const names[], size_t n_names, TPMS_AUTH_COMMAND *auth);
int hwtpm_session_check(struct hwtpm *hw, struct hwtpm_session *s, TPM2_CC cc,
    const TPMS_AUTH_COMMAND *auth, const TSS2L_SYS_AUTH_RESPONSE *rsp, TPM2B_NONCE *nonce_tpm,
    struct err *err);
int hwtpm_session_check_at(struct hwtpm *hw, struct hwtpm_session *s, TPM2_CC cc,
    const TPMS_AUTH_COMMAND *auth, const TSS2L_SYS_AUTH_RESPONSE *rsp, size_t at,
    TPM2B_NONCE *nonce_tpm, struct err *err);
int hwtpm_load_sealed(struct hwtpm *hw, const TPM2B_PRIVATE *priv, const TPM2B_PUBLIC *pub,
    const TPM2B_NAME *want, TPM2_HANDLE *handle, struct err *err);
int hwtpm_policy_arm(
    struct hwtpm *hw, const struct pcr_selection *sel, const struct approval *ap, struct err *err);

/* hwtpm_sapi.c */
TSS2_RC hwtpm_sapi_execute(struct hwtpm *hw, const TSS2L_SYS_AUTH_COMMAND *auths,
    TSS2L_SYS_AUTH_RESPONSE *rsp);
bool hwtpm_sapi_again(TSS2_RC rc, int *tries);
void hwtpm_sapi_flush(struct hwtpm *hw, TPM2_HANDLE handle);
void hwtpm_session_end(struct hwtpm *hw, struct hwtpm_session *s, bool flush);
/* A host-TPM command that takes longer is taken for a lost TPM (RSA key
 * generation on a slow TPM takes seconds). */
#define HWTPM_TIMEOUT_MS 60000

#endif /* HWTPM_PRIVATE_H */
