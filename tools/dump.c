/*
 * dump.c: the one reader of dump files for `import` and `produce` (see dump.h).
 *
 * Lines come from the file through a small queue of text to read again ("again"): the format
 * check peeks at the first non-blank line and puts it back, and a CSV record that goes wrong
 * over several lines puts back the lines after its first. Reading again from the queue keeps
 * line numbers exact (d->lineno is set back to where the returned text started) and works on
 * pipes, where seeking cannot.
 *
 * A CSV record is parsed by a four-state machine fed one physical line at a time; a line that
 * ends inside a quoted field asks for the next one. Cells go back to back into one buffer and are
 * pointed to only once the record is complete, since the buffer may move while it grows.
 */
#include "tools/dump.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include <cJSON.h>

#include "algo/atl.h"
#include "store/store.h"
#include "tools/cli.h"

static const char utf8_bom[3] = {'\xEF', '\xBB', '\xBF'};

/* Append @p n bytes to the growing buffer *buf (*len used of *cap). */
static void buf_put(char **buf, size_t *len, size_t *cap, const char *s, size_t n)
{
    if (*len + n + 1 > *cap) {
        *cap = (*len + n + 1) * 2;
        *buf = xrealloc(*buf, *cap);
    }
    memcpy(*buf + *len, s, n);
    *len += n;
}

/* Read @p text (whole lines, each ending in '\n') again before the rest of the input; it starts
 * on line @p first_line. */
static void read_again(dump_t *d, const char *text, size_t len, uint64_t first_line)
{
    size_t left = d->again_len - d->again_pos, cap = len + left + 1;
    char *q = xmalloc(cap);
    memcpy(q, text, len);
    if (left)
        memcpy(q + len, d->again + d->again_pos, left);
    free(d->again);
    d->again = q;
    d->again_len = len + left;
    d->again_pos = 0;
    d->lineno = first_line - 1;
}

/* The next physical line without its '\n' (a '\r' before it stays), from the queue first.
 * @return its length, or -1 at the end of the input (ferror(d->f) tells a read error). */
static long next_line(dump_t *d, const char **line)
{
    if (d->again_pos < d->again_len) {
        char *s = d->again + d->again_pos;
        char *nl = memchr(s, '\n', d->again_len - d->again_pos);
        size_t n = nl ? (size_t)(nl - s) : d->again_len - d->again_pos;
        d->again_pos += n + (nl != NULL);
        d->lineno++;
        *line = s;
        return (long)n;
    }
    ssize_t n = getline(&d->buf, &d->buf_cap, d->f);
    if (n < 0)
        return -1;
    d->lineno++;
    if (n > 0 && d->buf[n - 1] == '\n')
        n--;
    char *s = d->buf;
    if (!d->started && n >= 3 && memcmp(s, utf8_bom, 3) == 0) { /* editors on Windows add one */
        s += 3;
        n -= 3;
    }
    d->started = 1;
    *line = s;
    return (long)n;
}

static int is_blank(const char *s, long n)
{
    return n == 0 || (n == 1 && s[0] == '\r');
}

static int has_suffix(const char *path, const char *suffix)
{
    size_t n = strlen(path), k = strlen(suffix);
    return n > k && strcmp(path + n - k, suffix) == 0;
}

/* The format of an input without a telling suffix: JSONL if its first non-blank line starts
 * with '{'. The line is put back. */
static dump_format_t sniff(dump_t *d)
{
    const char *line;
    long n;
    while ((n = next_line(d, &line)) >= 0 && is_blank(line, n))
        ;
    if (n < 0)
        return DUMP_JSONL; /* empty: no rows either way */
    long i = 0;
    while (i < n && (line[i] == ' ' || line[i] == '\t'))
        i++;
    dump_format_t fmt = i < n && line[i] == '{' ? DUMP_JSONL : DUMP_CSV;
    char *copy = xmalloc((size_t)n + 1);
    memcpy(copy, line, (size_t)n);
    copy[n] = '\n';
    read_again(d, copy, (size_t)n + 1, d->lineno);
    free(copy);
    return fmt;
}

int dump_open(dump_t *d, const char *path, char *err, size_t errlen)
{
    FILE *f = strcmp(path, "-") == 0 ? stdin : fopen(path, "r");
    if (!f) {
        int rc = -errno;
        snprintf(err, errlen, "cannot open %s: %s", path, strerror(-rc));
        return rc;
    }
    memset(d, 0, sizeof(*d));
    d->f = f;
    d->path = path;
    if (has_suffix(path, ".csv"))
        d->format = DUMP_CSV;
    else if (has_suffix(path, ".jsonl") || has_suffix(path, ".json"))
        d->format = DUMP_JSONL;
    else
        d->format = sniff(d);
    return 0;
}

void dump_close(dump_t *d)
{
    if (d->f && d->f != stdin)
        fclose(d->f);
    free(d->buf);
    free(d->again);
    free(d->rest);
    free(d->text);
    for (int i = 0; i < d->n_names; i++)
        free(d->names[i]);
    memset(d, 0, sizeof(*d));
}

int dump_line_next(dump_t *d, const char **line, size_t *len)
{
    const char *s;
    long n;
    while ((n = next_line(d, &s)) >= 0) {
        if (n > 0 && s[n - 1] == '\r')
            n--;
        if (n > 0) {
            *line = s;
            *len = (size_t)n;
            return 1;
        }
    }
    return ferror(d->f) ? -EIO : 0;
}

/* ---- CSV --------------------------------------------------------------------------------- */

enum { CELL_START, UNQUOTED, QUOTED, QUOTED_QUOTE };

typedef struct record {
    int state;
    char bad[160]; /* the first fault found in the record, "" if none */
} record_t;

static void put(dump_t *d, char c)
{
    buf_put(&d->text, &d->text_len, &d->text_cap, &c, 1);
}

static void end_cell(dump_t *d, record_t *r)
{
    put(d, '\0');
    if (++d->n_cells < DUMP_MAX_CELLS)
        d->cell_off[d->n_cells] = d->text_len;
    r->state = CELL_START;
}

static void fault(record_t *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void fault(record_t *r, const char *fmt, ...)
{
    if (r->bad[0])
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(r->bad, sizeof(r->bad), fmt, ap);
    va_end(ap);
}

/* One physical line of a record through the state machine. @return 1 when the record ends with
 * the line, 0 when a quoted field goes on to the next. */
static int feed_line(dump_t *d, record_t *r, const char *s, long n)
{
    for (long i = 0; i < n; i++) {
        char c = s[i];
        if (c == '\r' && i == n - 1 && r->state != QUOTED)
            break; /* CRLF line end */
        switch (r->state) {
        case CELL_START:
            if (c == '"') {
                r->state = QUOTED;
                break;
            }
            r->state = UNQUOTED;
            /* fall through */
        case UNQUOTED:
            if (c == ',')
                end_cell(d, r);
            else
                put(d, c);
            break;
        case QUOTED:
            if (c == '"')
                r->state = QUOTED_QUOTE;
            else
                put(d, c);
            break;
        case QUOTED_QUOTE: /* a quote in a quoted field: "" or the field's end */
            if (c == '"') {
                put(d, '"');
                r->state = QUOTED;
            } else if (c == ',') {
                end_cell(d, r);
            } else {
                fault(r, "text after a closing quote in cell %d", d->n_cells + 1);
                put(d, c);
                r->state = UNQUOTED;
            }
            break;
        }
    }
    if (r->state == QUOTED) {
        put(d, '\n');
        return 0;
    }
    end_cell(d, r);
    return 1;
}

/* The lines of a quoted field after its first, until the field closes. @return 0, or -EIO. */
static int read_continuation(dump_t *d, record_t *r)
{
    const char *line;
    long n;
    for (;;) {
        if (d->text_len > DUMP_RECORD_MAX_BYTES) {
            fault(r, "a quoted field opened on this line is still open after %u bytes",
                  DUMP_RECORD_MAX_BYTES);
            return 0;
        }
        if ((n = next_line(d, &line)) < 0) {
            if (ferror(d->f))
                return -EIO;
            fault(r, "a quoted field opened on this line is not closed by the end of the file");
            return 0;
        }
        buf_put(&d->rest, &d->rest_len, &d->rest_cap, line, (size_t)n);
        buf_put(&d->rest, &d->rest_len, &d->rest_cap, "\n", 1);
        if (feed_line(d, r, line, n))
            return 0;
    }
}

/* The fault of a complete record, if any: its own, too many cells, or another count than the
 * header's (@p want, 0: any). */
static void check_count(dump_t *d, record_t *r, int want)
{
    if (d->n_cells > DUMP_MAX_CELLS)
        fault(r, "%d cells, more than %d", d->n_cells, DUMP_MAX_CELLS);
    else if (want && d->n_cells != want && d->rest_len)
        fault(r,
              "a record over lines %" PRIu64 "-%" PRIu64 " (a quoted field with line "
              "breaks) has %d cells, the header %d",
              d->record_line, d->lineno, d->n_cells, want);
    else if (want && d->n_cells != want)
        fault(r, "%d cells, the header has %d", d->n_cells, want);
}

/*
 * The columns whose text may hold a line break: the free text of a beatmaps row (the decoder's
 * string fields). A line break anywhere else means a stray quote swallowed the lines after it,
 * even when a second stray quote in the same column closed it and the cell count came out right:
 * without this check those lines would silently become one cell of one row.
 */
static const char *const text_columns[] = {"title", "artist", "version", "creator"};

static int is_text_column(const char *name)
{
    for (size_t i = 0; i < ATL_ARRAY_LEN(text_columns); i++)
        if (strcmp(name, text_columns[i]) == 0)
            return 1;
    return 0;
}

/* A record over several lines must have its line breaks in text columns. */
static void check_breaks(dump_t *d, record_t *r)
{
    for (int i = 0; i < d->n_names && i < d->n_cells && !r->bad[0]; i++)
        if (strchr(d->text + d->cell_off[i], '\n') && !is_text_column(d->names[i]))
            fault(r,
                  "a line break in column \"%s\" of a record over lines %" PRIu64 "-%" PRIu64
                  " (a stray quote?)",
                  d->names[i], d->record_line, d->lineno);
}

/* A bad record: its message; the lines after its first are read again as rows of their own. */
static int reject_record(dump_t *d, const record_t *r, char *err, size_t errlen)
{
    if (!d->rest_len) {
        snprintf(err, errlen, "%s", r->bad);
        return ATL_EBADEVENT;
    }
    snprintf(err, errlen, "%s; lines %" PRIu64 "-%" PRIu64 " are read again as rows", r->bad,
             d->record_line + 1, d->lineno);
    read_again(d, d->rest, d->rest_len, d->record_line + 1);
    return ATL_EBADEVENT;
}

/* The next record with @p want cells (0: any). @return 1, 0 at the end, ATL_EBADEVENT, -EIO. */
static int read_record(dump_t *d, int want, char *err, size_t errlen)
{
    const char *line;
    long n;
    while ((n = next_line(d, &line)) >= 0 && is_blank(line, n))
        ;
    if (n < 0)
        return ferror(d->f) ? -EIO : 0;
    record_t r = {CELL_START, ""};
    d->record_line = d->lineno;
    d->rest_len = d->text_len = 0;
    d->n_cells = 0;
    d->cell_off[0] = 0;
    if (!feed_line(d, &r, line, n) && read_continuation(d, &r) != 0)
        return -EIO;
    check_count(d, &r, want);
    if (want && d->rest_len)
        check_breaks(d, &r);
    if (r.bad[0])
        return reject_record(d, &r, err, errlen);
    for (int i = 0; i < d->n_cells; i++)
        d->cells[i] = d->text + d->cell_off[i];
    return 1;
}

int dump_csv_next(dump_t *d, char *err, size_t errlen)
{
    return read_record(d, d->n_names, err, errlen);
}

/*
 * The columns the store's decoder requires of each kind of row (store/event.c: decode_hiscore,
 * decode_beatmap, decode_difficulty), the kind picked as it picks it: by the first of "user",
 * "score_id", "beatmap_id" present. A header without one of them would have every row rejected.
 */
static const struct {
    const char *key, *table;
    const char *required[6];
} kinds[] = {
    {"user", "hiscore_updates", {"user", "beatmap_id", "pp", "mods", "mode", "update_time"}},
    {"score_id", "difficulty", {"score_id", "stars"}},
    {"beatmap_id", "beatmaps", {"beatmap_id", "beatmapset_id", "title"}},
};

static int has_name(const dump_t *d, const char *name)
{
    for (int i = 0; i < d->n_names; i++)
        if (strcmp(d->names[i], name) == 0)
            return 1;
    return 0;
}

/* An empty or repeated column name in d->names: 0, or -1 with why. */
static int names_fault(const dump_t *d, char *why, size_t len)
{
    for (int i = 0; i < d->n_names; i++) {
        if (!d->names[i][0]) {
            snprintf(why, len, "column %d has an empty name", i + 1);
            return -1;
        }
        for (int j = 0; j < i; j++)
            if (strcmp(d->names[i], d->names[j]) == 0) {
                snprintf(why, len, "a duplicate column \"%s\"", d->names[i]);
                return -1;
            }
    }
    return 0;
}

/* A key column with a required column of its kind missing, or no key column: 0, or -1 with
 * why. */
static int kind_fault(const dump_t *d, char *why, size_t len)
{
    for (size_t k = 0; k < ATL_ARRAY_LEN(kinds); k++) {
        if (!has_name(d, kinds[k].key))
            continue;
        for (size_t c = 0; c < ATL_ARRAY_LEN(kinds[k].required) && kinds[k].required[c]; c++)
            if (!has_name(d, kinds[k].required[c])) {
                snprintf(why, len, "no column \"%s\", which a %s row needs", kinds[k].required[c],
                         kinds[k].table);
                return -1;
            }
        return 0;
    }
    snprintf(why, len,
             "it names none of user, score_id, beatmap_id (the key of a "
             "hiscore_updates, difficulty or beatmaps row)");
    return -1;
}

int dump_csv_header(dump_t *d, char *err, size_t errlen)
{
    char why[256];
    int rc = read_record(d, 0, why, sizeof(why));
    if (rc == 0 || rc == -EIO)
        return rc;
    if (rc == ATL_EBADEVENT) {
        snprintf(err, errlen, "%" PRIu64 ": the CSV header cannot be read: %s", d->record_line,
                 why);
        return rc;
    }
    for (int i = 0; i < d->n_cells; i++) {
        size_t len = strlen(d->cells[i]) + 1;
        d->names[i] = memcpy(xmalloc(len), d->cells[i], len);
    }
    d->n_names = d->n_cells;
    if (names_fault(d, why, sizeof(why)) != 0 || kind_fault(d, why, sizeof(why)) != 0) {
        snprintf(err, errlen, "%" PRIu64 ": the CSV header: %s", d->record_line, why);
        return ATL_EBADEVENT;
    }
    return 0;
}

char *dump_csv_json(const dump_t *d)
{
    cJSON *o = cJSON_CreateObject();
    if (!o)
        return NULL;
    for (int i = 0; i < d->n_names; i++) {
        cJSON *v = store_cell_value(d->cells[i]); /* typed as import types it */
        if (!v || !cJSON_AddItemToObject(o, d->names[i], v)) {
            cJSON_Delete(v);
            cJSON_Delete(o);
            return NULL;
        }
    }
    char *s = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    return s;
}
