/* SPDX-License-Identifier: Apache-2.0 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "common/util.h"

static void test_parse_size(void **state)
{
	uint64_t v;

	(void)state;
	assert_int_equal(gp_parse_size("4096", &v), 0);
	assert_int_equal(v, 4096);
	assert_int_equal(gp_parse_size("64K", &v), 0);
	assert_int_equal(v, 65536);
	assert_int_equal(gp_parse_size("512m", &v), 0);
	assert_int_equal(v, 512ull << 20);
	assert_int_equal(gp_parse_size("4G", &v), 0);
	assert_int_equal(v, 4ull << 30);
	assert_int_equal(gp_parse_size("2GiB", &v), 0);
	assert_int_equal(v, 2ull << 30);
	assert_int_equal(gp_parse_size(" 1T ", &v), 0);
	assert_int_equal(v, 1ull << 40);
	assert_int_equal(gp_parse_size("", &v), -EINVAL);
	assert_int_equal(gp_parse_size("-1G", &v), -EINVAL);
	assert_int_equal(gp_parse_size("4X", &v), -EINVAL);
	assert_int_equal(gp_parse_size("G", &v), -EINVAL);
	assert_int_equal(gp_parse_size("4GG", &v), -EINVAL);
	assert_int_equal(gp_parse_size("99999999999999999999", &v), -ERANGE);
	assert_int_equal(gp_parse_size("17179869184G", &v), -ERANGE);
	assert_int_equal(gp_parse_size(NULL, &v), -EINVAL);
}

static void test_parse_u64(void **state)
{
	uint64_t v;
	int i;

	(void)state;
	assert_int_equal(gp_parse_u64("0x10de\n", 16, &v), 0);
	assert_int_equal(v, 0x10de);
	assert_int_equal(gp_parse_u64("030200", 16, &v), 0);
	assert_int_equal(v, 0x030200);
	assert_int_equal(gp_parse_u64("zz", 16, &v), -EINVAL);
	assert_int_equal(gp_parse_u64("12 34", 10, &v), -EINVAL);
	assert_int_equal(gp_parse_u64("-5", 10, &v), -EINVAL);
	assert_int_equal(gp_parse_u64("", 10, &v), -EINVAL);
	assert_int_equal(gp_parse_int("-1", &i), 0);
	assert_int_equal(i, -1);
	assert_int_equal(gp_parse_int("99999999999", &i), -ERANGE);
	assert_int_equal(gp_parse_int("1a", &i), -EINVAL);
}

static void test_format_size(void **state)
{
	char buf[32];

	(void)state;
	assert_string_equal(gp_format_size(16u << 20, buf, sizeof(buf)), "16 MiB");
	assert_string_equal(gp_format_size(128ull << 30, buf, sizeof(buf)), "128 GiB");
	assert_string_equal(gp_format_size(4096, buf, sizeof(buf)), "4 KiB");
	assert_string_equal(gp_format_size(100, buf, sizeof(buf)), "100 B");
	assert_string_equal(gp_format_size(1536 + 1, buf, sizeof(buf)), "1.5 KiB");
}

static void test_strv(void **state)
{
	struct gp_strv sv = { 0 };
	char s[] = "  padded\t\n";

	(void)state;
	assert_int_equal(gp_strv_push(&sv, "b"), 0);
	assert_int_equal(gp_strv_push_printf(&sv, "%s", "a"), 0);
	gp_strv_sort(&sv);
	assert_int_equal(sv.n, 2);
	assert_string_equal(sv.v[0], "a");
	assert_string_equal(sv.v[1], "b");
	assert_null(sv.v[2]);
	assert_true(gp_strv_contains(&sv, "b"));
	assert_false(gp_strv_contains(&sv, "c"));
	gp_strv_clear(&sv);
	assert_int_equal(sv.n, 0);
	assert_string_equal(gp_strtrim(s), "padded");
	assert_true(gp_str_icontains("NVIDIA Tesla T4", "tesla t4"));
	assert_false(gp_str_icontains("NVIDIA Tesla T4", "A100"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse_size),
		cmocka_unit_test(test_parse_u64),
		cmocka_unit_test(test_format_size),
		cmocka_unit_test(test_strv),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
