#!/bin/bash
# Load and soak, the short version of `make soak` (bench/soak.sh says what
# each part checks): 20 vTPMs through the service for 8 s with the control
# API polled alongside, 4 ASan/UBSan instances for 6 s, 1 instance under
# valgrind's memcheck for 6 s. Zero errors; steady PSS, descriptors and
# threads; every instance exits 0 with no sanitizer or memcheck report.
SOAK_N=20 SOAK_SECONDS=8 SAN_N=4 SAN_SECONDS=6 VG_N=1 VG_SECONDS=6 \
	SOAK_PARTS="service asan valgrind" exec "$(dirname "$0")/../../bench/soak.sh"
