/*
 * tss.h: tpm2-tss helpers shared by the modules that speak to a TPM
 * through ESYS (hwtpm_attest.c, guesttpm.c, attest_tpm.c). tpm2-tss types
 * stay in those files and here.
 */
#ifndef VTPMD_TSS_H
#define VTPMD_TSS_H

#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>

#include <tss2/tss2_esys.h>

#include "common/common.h"

/* Fills err with kind, prefix (may be ""), fmt and, when rc is a failure,
 * tpm2-tss's text for it: the one place its response codes are decoded.
 * Returns -1. */
int tss_verr(struct err *err, enum err_kind kind, const char *prefix, TSS2_RC rc,
    const char *fmt, va_list ap) __attribute__((format(printf, 5, 0)));

void tss_ek_template(bool ecc, TPM2B_PUBLIC *t);
TSS2_RC tss_nv_read(ESYS_CONTEXT *esys, ESYS_TR auth, ESYS_TR nv, uint16_t size, uint16_t chunk,
    uint8_t *out, uint16_t *at);

#endif /* VTPMD_TSS_H */
