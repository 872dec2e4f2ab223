# SPDX-License-Identifier: Apache-2.0
# Harness self-check: a step fails (the harness must fail, naming it).
# expect: one two
. "$GPVM_SRC/tests/vm/lib.sh"
pass one
check two "deliberate failure" false
finish
