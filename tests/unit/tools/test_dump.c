/*
 * test_dump.c: the dump reader `import` and `produce` share (tools/dump.h): format detection
 * past a BOM and blank lines, RFC 4180 quoting, CRLF, header checks, every kind of bad record
 * reported by the line it started on, the lines a stray quote swallowed read again, and the JSON
 * typing of cells.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cJSON.h>

#include "algo/atl.h"
#include "tests/check.h"
#include "tools/dump.h"

static char dir[] = "/tmp/atl-test-dump-XXXXXX";
static char path[300];

/* Write @p text to DIR/@p name and open it. */
static void open_text(dump_t *d, const char *name, const char *text)
{
    char err[256];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    FILE *f = fopen(path, "w");
    CHECK(f != NULL);
    fputs(text, f);
    fclose(f);
    E(dump_open(d, path, err, sizeof(err)));
}

#define HDR "user,beatmap_id,pp,mods,mode,update_time,rank\n"

/* The next record must be good, with @p cell0 first, starting on @p line. */
static void next_ok(dump_t *d, uint64_t line, const char *cell0)
{
    char err[256] = "";
    int rc = dump_csv_next(d, err, sizeof(err));
    if (rc != 1)
        fprintf(stderr, "line %d: %s\n", (int)line, err);
    CHECK_EQ(rc, 1);
    CHECK_EQ(d->record_line, line);
    CHECK_STREQ(d->cells[0], cell0);
}

/* The next record must be bad, starting on @p line, its message holding @p what. */
static void next_bad(dump_t *d, uint64_t line, const char *what)
{
    char err[256] = "";
    CHECK_EQ(dump_csv_next(d, err, sizeof(err)), ATL_EBADEVENT);
    CHECK_EQ(d->record_line, line);
    if (!strstr(err, what))
        fprintf(stderr, "\"%s\" lacks \"%s\"\n", err, what);
    CHECK(strstr(err, what) != NULL);
}

static void header_ok(dump_t *d)
{
    char err[256] = "";
    int rc = dump_csv_header(d, err, sizeof(err));
    if (rc != 0)
        fprintf(stderr, "%s\n", err);
    CHECK_EQ(rc, 0);
}

static void test_detect(void)
{
    dump_t d;
    const char *line;
    size_t len;
    /* no telling suffix: JSONL by its first non-blank line, past a BOM and blank lines */
    open_text(&d, "a.dump", "\xEF\xBB\xBF\n\r\n  {\"user\":1}\r\n\n{\"user\":2}");
    CHECK_EQ(d.format, DUMP_JSONL);
    CHECK_EQ(dump_line_next(&d, &line, &len), 1);
    CHECK_EQ(d.lineno, 3);
    CHECK_EQ(len, 12);
    CHECK(memcmp(line, "  {\"user\":1}", len) == 0);
    CHECK_EQ(dump_line_next(&d, &line, &len), 1);
    CHECK_EQ(d.lineno, 5);
    CHECK_EQ(dump_line_next(&d, &line, &len), 0);
    dump_close(&d);
    /* a BOM before a CSV header: the first column is "user", not "\xEF\xBB\xBFuser" */
    open_text(&d, "b.dump", "\xEF\xBB\xBF" HDR "1,2,3,4,0,t,A\n");
    CHECK_EQ(d.format, DUMP_CSV);
    header_ok(&d);
    CHECK_STREQ(d.names[0], "user");
    next_ok(&d, 2, "1");
    dump_close(&d);
    /* suffixes decide: a .csv starting with '{' is CSV, a .jsonl starting otherwise JSONL */
    open_text(&d, "c.csv", "{x,user\n");
    CHECK_EQ(d.format, DUMP_CSV);
    dump_close(&d);
    open_text(&d, "d.jsonl", "not json\n");
    CHECK_EQ(d.format, DUMP_JSONL);
    dump_close(&d);
    /* an empty CSV: no header, no rows, no error */
    open_text(&d, "e.csv", "\n\n");
    char err[64];
    CHECK_EQ(dump_csv_header(&d, err, sizeof(err)), 0);
    CHECK_EQ(d.n_names, 0);
    dump_close(&d);
    CHECK_EQ(dump_open(&d, "/nonexistent/x.csv", err, sizeof(err)), -ENOENT);
    CHECK(strstr(err, "/nonexistent/x.csv") != NULL);
}

static void test_quoting(void)
{
    dump_t d;
    open_text(&d, "q.csv",
              HDR "1,\"2\",\"3,5\",\"a\"\"b\",,\"\",x\"y\r\n"
                  "\r\n"
                  "4,5,6,7,8,9,\"z\"\n");
    header_ok(&d);
    next_ok(&d, 2, "1");
    CHECK_STREQ(d.cells[1], "2");
    CHECK_STREQ(d.cells[2], "3,5");
    CHECK_STREQ(d.cells[3], "a\"b");
    CHECK_STREQ(d.cells[4], "");
    CHECK_STREQ(d.cells[5], "");
    CHECK_STREQ(d.cells[6], "x\"y"); /* a quote inside an unquoted field is a character */
    next_ok(&d, 4, "4");
    CHECK_STREQ(d.cells[6], "z");
    char err[64];
    CHECK_EQ(dump_csv_next(&d, err, sizeof(err)), 0);
    dump_close(&d);
}

static void test_bad_records(void)
{
    dump_t d;
    char row70[256] = "";
    for (int i = 0; i < 70; i++)
        strcat(row70, i ? ",1" : "1");
    char text[1024];
    snprintf(text, sizeof(text),
             HDR "1,2,3,4,0,t,A\n"      /* 2 */
                 "1,2,3\n"              /* 3: too few */
                 "%s\n"                 /* 4: too many */
                 "1,2,3,4,0,\"t\"x,A\n" /* 5: text after a closing quote */
                 "6,2,3,4,0,t,A\n"      /* 6 */
                 "7,2,3,4,0,t,\"A\n"    /* 7: opens a quote to the end */
                 "8,2,3,4,0,t,A\n"      /* 8: read again */
                 "9,2,3,4,0,t,A",       /* 9: no newline at the end */
             row70);
    open_text(&d, "bad.csv", text);
    header_ok(&d);
    next_ok(&d, 2, "1");
    next_bad(&d, 3, "3 cells, the header has 7");
    next_bad(&d, 4, "more than 64");
    next_bad(&d, 5, "text after a closing quote in cell 6");
    next_ok(&d, 6, "6");
    next_bad(&d, 7, "not closed by the end of the file; lines 8-9 are read again");
    next_ok(&d, 8, "8");
    next_ok(&d, 9, "9");
    char err[64];
    CHECK_EQ(dump_csv_next(&d, err, sizeof(err)), 0);
    dump_close(&d);
}

static void test_line_breaks(void)
{
    dump_t d;
    /* a title over two lines is one cell; a later row is numbered by its physical line */
    open_text(&d, "bm.csv",
              "beatmap_id,beatmapset_id,title\n"
              "1,2,\"Two\r\nLines\"\n"
              "3,4,t\n");
    header_ok(&d);
    next_ok(&d, 2, "1");
    CHECK_STREQ(d.cells[2], "Two\r\nLines");
    next_ok(&d, 4, "3");
    dump_close(&d);
    /* two stray quotes in one column: the right cell count, but a line break in "rank" */
    open_text(&d, "rank.csv",
              HDR "1,2,3,4,0,t,\"A\n"
                  "2,2,3,4,0,t,A\n"
                  "3,2,3,4,0,t,A\"\n"
                  "4,2,3,4,0,t,A\n");
    header_ok(&d);
    next_bad(&d, 2, "a line break in column \"rank\" of a record over lines 2-4");
    next_ok(&d, 3, "2");
    next_ok(&d, 4, "3");
    CHECK_STREQ(d.cells[6], "A\"");
    next_ok(&d, 5, "4");
    dump_close(&d);
}

static void test_record_limit(void)
{
    dump_t d;
    size_t n = DUMP_RECORD_MAX_BYTES + 4096;
    char *text = malloc(n + 200), *p = text;
    p += sprintf(p, "beatmap_id,beatmapset_id,title\n1,2,\"");
    while ((size_t)(p - text) < n)
        p += sprintf(p, "%s", "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcd\n");
    sprintf(p, "\"\n5,6,t\n");
    open_text(&d, "long.csv", text);
    free(text);
    header_ok(&d);
    next_bad(&d, 2, "still open after");
    /* the swallowed lines come back as rows of one cell each, every one reported */
    char err[256];
    int bad = 0, good = 0, rc;
    while ((rc = dump_csv_next(&d, err, sizeof(err))) != 0)
        rc == 1 ? good++ : bad++;
    CHECK_EQ(good, 1);
    CHECK(bad > 16000);
    dump_close(&d);
}

static void test_headers(void)
{
    static const struct {
        const char *header, *why;
    } cases[] = {
        {"user,beatmap_id,pp,mods,mode,update_time,user\n", "duplicate column \"user\""},
        {"user,beatmap_id,,pp,mods,mode,update_time\n", "column 3 has an empty name"},
        {"user,beatmap_id,ppx,mods,mode,update_time\n", "no column \"pp\""},
        {"score_id,aim\n", "no column \"stars\""},
        {"beatmap_id,title\n", "no column \"beatmapset_id\""},
        {"foo,bar\n", "names none of user, score_id, beatmap_id"},
        {"a,\"b\n", "cannot be read"},
    };

    for (size_t i = 0; i < ATL_ARRAY_LEN(cases); i++) {
        dump_t d;
        char err[256] = "";
        open_text(&d, "h.csv", cases[i].header);
        CHECK_EQ(dump_csv_header(&d, err, sizeof(err)), ATL_EBADEVENT);
        if (!strstr(err, cases[i].why) || strncmp(err, "1: ", 3) != 0)
            fprintf(stderr, "\"%s\" lacks \"%s\"\n", err, cases[i].why);
        CHECK(strstr(err, cases[i].why) != NULL);
        CHECK(strncmp(err, "1: ", 3) == 0);
        dump_close(&d);
    }
}

/* Cells typed as store_event_decode_fields types them. */
static void test_json(void)
{
    dump_t d;
    open_text(&d, "j.csv",
              "user,beatmap_id,pp,mods,mode,update_time,rank,score,is_classic,x\n"
              "5,\"7\",12.5,,NULL,2024-01-01 00:00:00,\"S, or so\",\\N,1e3,-0\n");
    header_ok(&d);
    next_ok(&d, 2, "5");
    char *s = dump_csv_json(&d);
    cJSON *o = cJSON_Parse(s);
    CHECK(o != NULL);
    CHECK_NEAR(cJSON_GetObjectItem(o, "user")->valuedouble, 5, 0);
    CHECK(cJSON_IsNumber(cJSON_GetObjectItem(o, "beatmap_id"))); /* quoted, still a number */
    CHECK_NEAR(cJSON_GetObjectItem(o, "pp")->valuedouble, 12.5, 0);
    CHECK(cJSON_IsNull(cJSON_GetObjectItem(o, "mods")));
    CHECK(cJSON_IsNull(cJSON_GetObjectItem(o, "mode")));
    CHECK_STREQ(cJSON_GetObjectItem(o, "update_time")->valuestring, "2024-01-01 00:00:00");
    CHECK_STREQ(cJSON_GetObjectItem(o, "rank")->valuestring, "S, or so");
    CHECK(cJSON_IsNull(cJSON_GetObjectItem(o, "score")));
    CHECK_NEAR(cJSON_GetObjectItem(o, "is_classic")->valuedouble, 1000, 0);
    CHECK(cJSON_IsNumber(cJSON_GetObjectItem(o, "x")));
    CHECK_EQ(cJSON_GetArraySize(o), 10);
    cJSON_Delete(o);
    free(s);
    dump_close(&d);
}

int main(void)
{
    CHECK(mkdtemp(dir) != NULL);
    test_detect();
    test_quoting();
    test_bad_records();
    test_line_breaks();
    test_record_limit();
    test_headers();
    test_json();
    char cmd[400];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", dir);
    fprintf(stderr, "test_dump: ok\n");
    return 0;
}
