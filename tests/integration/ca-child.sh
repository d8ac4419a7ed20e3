#!/bin/bash
# The threat model's "The CA's network-facing process, taken over" (the
# attack review of issue #11): whoever takes `vtpm-ca serve`'s network
# child over must not obtain a certificate for a key of its choosing.
# build/ca-child plays such a child against the parent's own code
# (ca_parent_handle) on a CA `vtpm-ca init` made, sending only messages
# the parent's decoder accepts:
#  - an AK certificate for a key made in software: the parent drew the
#    challenge's secret and made the credential itself, so the child's
#    answer with a secret of its choosing uses the challenge up, and
#    ISSUE_AK without the permit ends the child;
#  - a vEK certificate for a key made in software, on evidence the child
#    made and signed itself naming an enrolled host's CK certificate: the
#    parent verifies the signatures with that CK certificate's key from its
#    own records and refuses.
# Nothing is issued; vtpm-attest, had an AK certificate come out, would
# have trusted a quote signed in software ("trusted: virtual TPM on host
# rack1 … in approved configuration boot-1"), as it did before the parent
# re-verified what it signs for.
source "$(dirname "$0")/../lib.sh"
CA=$TOP/build/vtpm-ca
CHILD=$TOP/build/ca-child
require_tools openssl sqlite3
for t in "$CA" "$CHILD"; do
	[ -x "$t" ] || fail "$t is missing (make)"
done
W=$T/w
mkdir -p "$W" "$T/ca"
DB=$T/ca/ca.db
UUID=3f1c2a9e-5b7d-4e21-9c0a-7d4b8e6f1a23

issued() {
	sqlite3 "$DB" "SELECT count(*) FROM issued WHERE kind = '$1'"
}

note "a CA as vtpm-ca init makes it, one approved host configuration (public)"
"$CA" init --db "$DB" --name attack >/dev/null || fail "vtpm-ca init"
printf '{"16": "%s"}\n' "$(printf '%064x' 0)" >"$W/values.json"
"$CA" approve-host-config --db "$DB" --id boot-1 --pcrs 16 --values "$W/values.json" \
	>/dev/null || fail "approve-host-config"
CK_SERIAL=$("$CHILD" "$T/ca" enrolled rack1) || fail "the enrolled host's CK certificate"
assert_eq "$(issued ck)" 1 "the enrolled host's CK certificate"

note "the child asks for an AK certificate for a key made in software"
openssl ecparam -name prime256v1 -genkey -noout -out "$W/soft.pem" 2>/dev/null || fail "key"
if "$CHILD" "$T/ca" ak "$W/soft.pem" "$UUID" "$W/ak.pem" >"$W/ak.out" 2>&1; then
	fail "the parent issued an AK certificate for a software key: $(cat "$W/ak.out")"
fi
note "ISSUE_AK: $(tr '\n' ' ' <"$W/ak.out")"
assert_contains "$(cat "$W/ak.out")" "taken: outcome 5" "the child's own secret is wrong"
assert_contains "$(cat "$W/ak.out")" "the parent ended the child" "ISSUE_AK without a permit"
[ ! -e "$W/ak.pem" ] || fail "an AK certificate was written"

note "the child asks for a vEK certificate on evidence it signed itself"
if "$CHILD" "$T/ca" vek "$CK_SERIAL" "$UUID" "$W/vek.pem" >"$W/vek.out" 2>&1; then
	fail "the parent issued a vEK certificate on forged evidence: $(cat "$W/vek.out")"
fi
note "ISSUE_EK: $(cat "$W/vek.out")"
assert_contains "$(cat "$W/vek.out")" "does not verify with the CK certificate's key" \
	"forged evidence"
if "$CHILD" "$T/ca" vek 7c "$UUID" "$W/vek.pem" >"$W/vek2.out" 2>&1; then
	fail "the parent issued a vEK certificate under a CK it never issued"
fi
assert_contains "$(cat "$W/vek2.out")" "was not issued here" "a CK certificate not issued here"

assert_eq "$(issued ak)" 0 "AK certificates issued"
assert_eq "$(issued ek)" 0 "vEK certificates issued"
assert_eq "$(sqlite3 "$DB" "SELECT count(*) FROM vtpm_identities")" 0 "identities bound"
echo "ok"
