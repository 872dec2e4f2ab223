# SPDX-License-Identifier: Apache-2.0
# Harness self-check: the script never ends (the harness must time out).
# expect: one
. "$GPVM_SRC/tests/vm/lib.sh"
pass one
while :; do sleep 1; done
