# SPDX-License-Identifier: Apache-2.0
# Harness self-check: every expected step passes.
# expect: one two
. "$GPVM_SRC/tests/vm/lib.sh"
pass one
check two "true failed" true
finish
