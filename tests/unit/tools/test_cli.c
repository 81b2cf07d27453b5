/*
 * test_cli.c: atlasctl's shared command-line pieces (tools/cli.h): option values that are usage
 * errors (empty strings, numbers that do not parse, are not finite or lie outside a range), empty
 * arguments, required options (CLI_NEED), the store check that keeps commands out of directories
 * that are no store, and the check of stdout's writes.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "algo/atl.h"
#include "tests/check.h"
#include "tools/cli.h"

static const char *path_opt;
static uint64_t count_opt;
static double frac_opt;
static int flag_opt;

static const cli_opt_t opts[] = {
    {"db", CLI_STR, &path_opt, "DIR", "a path"},
    {"count", CLI_U64, &count_opt, "N", "a count"},
    {"frac", CLI_F64, &frac_opt, "X", "a fraction"},
    {"any", CLI_F64, &frac_opt, "X", "any finite number"},
    {"big", CLI_U64, &count_opt, "N", "any count"},
    {"flag", CLI_FLAG, &flag_opt, NULL, "a flag"},
};
static const cli_range_t ranges[] = {{"count", 1, 4294967295.0}, {"frac", 0, 1}};
static const cli_cmd_t cmd = {
    "test", "[options]", "A test table.", opts, ATL_ARRAY_LEN(opts), ranges, ATL_ARRAY_LEN(ranges)};

/* cli_parse() of the NULL-terminated arguments after the command name. */
static int parse(const char *a0, ...)
{
    char *argv[16] = {"test"};
    int argc = 1;
    va_list ap;
    va_start(ap, a0);
    for (const char *a = a0; a && argc < 15; a = va_arg(ap, const char *))
        argv[argc++] = (char *)a;
    va_end(ap);
    const char **rest = NULL;
    size_t n_rest = 0;
    int rc = cli_parse(&cmd, argc, argv, &rest, &n_rest);
    free(rest);
    return rc;
}

static void test_empty_values(void)
{
    path_opt = "unchanged";
    CHECK_EQ(parse("--db", "", NULL), ATL_ECONFIG);
    CHECK_EQ(parse("--db=", NULL), ATL_ECONFIG);
    CHECK_STREQ(path_opt, "unchanged");
    CHECK_EQ(parse("--db", "/tmp", "", NULL), ATL_ECONFIG); /* an empty argument */
    CHECK_EQ(parse("--db", "/tmp", "--", "", NULL), ATL_ECONFIG);
    CHECK_EQ(parse("--db", "/tmp", "file", NULL), 0);
    CHECK_STREQ(path_opt, "/tmp");
    CHECK_EQ(cli_exit(ATL_ECONFIG), CLI_EXIT_USAGE);
}

static void test_unsigned(void)
{
    count_opt = 7;
    CHECK_EQ(parse("--count", "5", NULL), 0);
    CHECK_EQ(count_opt, 5);
    CHECK_EQ(parse("--count", "4294967295", NULL), 0);
    CHECK_EQ(count_opt, 4294967295u);
    /* out of range (2^32 used to become 0 in a uint32_t), not numbers, signs and spaces */
    const char *bad[] = {"0",  "4294967296", "-1",   "+5",  " 5",
                         "5 ", "",           "0x10", "1e3", "18446744073709551616"};
    for (size_t i = 0; i < ATL_ARRAY_LEN(bad); i++) {
        CHECK_EQ(parse("--count", bad[i], NULL), ATL_ECONFIG);
        CHECK_EQ(count_opt, 4294967295u); /* untouched by a rejected value */
    }
    CHECK_EQ(parse("--big", "18446744073709551615", NULL), 0); /* no range: any uint64 */
    CHECK(count_opt == UINT64_MAX);
}

static void test_doubles(void)
{
    frac_opt = 0.25;
    CHECK_EQ(parse("--frac", "0.5", NULL), 0);
    CHECK_NEAR(frac_opt, 0.5, 0);
    const char *bad[] = {"nan", "NaN", "inf", "-inf", "1e999", "-1", "1.5", "", "0.5x", "x"};
    for (size_t i = 0; i < ATL_ARRAY_LEN(bad); i++) {
        CHECK_EQ(parse("--frac", bad[i], NULL), ATL_ECONFIG);
        CHECK_NEAR(frac_opt, 0.5, 0);
    }
    CHECK_EQ(parse("--any", "-1e300", NULL), 0); /* no range: any finite value */
    CHECK_EQ(parse("--any", "nan", NULL), ATL_ECONFIG);
    double v = 0;
    CHECK_EQ(cli_f64_parse("2.5", &v), 0);
    CHECK_NEAR(v, 2.5, 0);
    CHECK_EQ(cli_f64_parse("inf", &v), -EINVAL);
    CHECK_EQ(cli_f64_parse("", &v), -EINVAL);
    CHECK_EQ(cli_f64_parse("1,5", &v), -EINVAL);
}

/* --help of @p c into @p buf (NUL-terminated) */
static void help_of(const cli_cmd_t *c, char *buf, size_t len)
{
    memset(buf, 0, len);
    FILE *f = fmemopen(buf, len - 1, "w");
    CHECK(f != NULL);
    cli_help(c, f);
    fclose(f);
}

static void test_help_shows_ranges(void)
{
    char buf[4096];
    help_of(&cmd, buf, sizeof(buf));
    CHECK(strstr(buf, "a count [1..4294967295]") != NULL);
    CHECK(strstr(buf, "a fraction [0..1]") != NULL);
    CHECK(strstr(buf, "a path\n") != NULL);
}

/* A CLI_NEED option missing is a usage error after the whole line was read (so --help works
 * without it), and --help marks it. */
static void test_required(void)
{
    static const char *out_opt;
    static const cli_opt_t need_opts[] = {
        {"out", CLI_NEED, &out_opt, "FILE", "where"},
        {"db", CLI_STR, &path_opt, "DIR", "a path"},
    };
    static const cli_cmd_t need = {"need", "[options]", "A test table.", need_opts, 2, NULL, 0};
    char *line[][4] = {{"need", "--db", "/tmp", NULL},
                       {"need", "--out", "f", NULL},
                       {"need", "--help", NULL, NULL},
                       {"need", "--out", "", NULL}};
    int want[] = {ATL_ECONFIG, 0, CLI_PARSE_HELP, ATL_ECONFIG};
    for (size_t i = 0; i < ATL_ARRAY_LEN(want); i++) {
        out_opt = NULL;
        int argc = 0;
        while (line[i][argc])
            argc++;
        CHECK_EQ(cli_parse(&need, argc, line[i], NULL, NULL), want[i]);
    }
    CHECK(out_opt == NULL); /* the empty value was refused */
    char buf[1024];
    help_of(&need, buf, sizeof(buf));
    CHECK(strstr(buf, "where (required)\n") != NULL);
    CHECK(strstr(buf, "a path\n") != NULL);
}

static void test_store_check(void)
{
    char dir[] = "/tmp/atl-test-cli-XXXXXX", path[256];
    CHECK(mkdtemp(dir) != NULL);
    CHECK_EQ(cli_mkdir_p(""), -EINVAL);
    CHECK_EQ(cli_store_check("test", dir), ATL_ENOTFOUND); /* a directory, but no store */
    snprintf(path, sizeof(path), "%s/missing", dir);
    CHECK_EQ(cli_store_check("test", path), -ENOENT);
    snprintf(path, sizeof(path), "%s/data.mdb", dir);
    int fd = open(path, O_CREAT | O_WRONLY, 0644);
    CHECK(fd >= 0);
    close(fd);
    CHECK_EQ(cli_store_check("test", dir), 0);
    CHECK_EQ(cli_store_check("test", path), -ENOTDIR);
    unlink(path);
    rmdir(dir);
}

/* Last: stdout stays on /dev/full afterwards. */
static void test_stdout_close(void)
{
    CHECK_EQ(cli_stdout_close("test", CLI_EXIT_OK), CLI_EXIT_OK);
    if (!freopen("/dev/full", "w", stdout)) {
        fprintf(stderr, "no /dev/full: stdout check skipped\n");
        return;
    }
    printf("lost\n");
    CHECK_EQ(cli_stdout_close("test", CLI_EXIT_OK), CLI_EXIT_FAIL);
}

int main(void)
{
    test_empty_values();
    test_unsigned();
    test_doubles();
    test_help_shows_ranges();
    test_required();
    test_store_check();
    test_stdout_close();
    fprintf(stderr, "test_cli: ok\n");
    return 0;
}
