/*
 * cli.c: option tables, help text, allocation and progress for atlasctl. See cli.h.
 */
#include "tools/cli.h"

#include <assert.h>
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "algo/atl.h"
#include "store/store.h"

void *xmalloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (!p) {
        fprintf(stderr, "atlasctl: out of memory allocating %zu bytes\n", n);
        abort();
    }
    return p;
}

void *xcalloc(size_t n, size_t size)
{
    void *p = calloc(n ? n : 1, size ? size : 1);
    if (!p) {
        fprintf(stderr, "atlasctl: out of memory allocating %zu x %zu bytes\n", n, size);
        abort();
    }
    return p;
}

void *xrealloc(void *p, size_t n)
{
    void *q = realloc(p, n ? n : 1);
    if (!q) {
        fprintf(stderr, "atlasctl: out of memory allocating %zu bytes\n", n);
        abort();
    }
    return q;
}

int cli_mkdir_p(const char *path)
{
    char buf[4096];
    size_t n = strlen(path);
    if (n == 0)
        return -EINVAL;
    if (n >= sizeof(buf))
        return -ENAMETOOLONG;
    memcpy(buf, path, n + 1);
    for (char *p = buf + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        if (mkdir(buf, 0755) != 0 && errno != EEXIST)
            return -errno;
        *p = '/';
    }
    if (mkdir(buf, 0755) != 0 && errno != EEXIST)
        return -errno;
    return 0;
}

int cli_store_check(const char *cmd, const char *db)
{
    char path[4096];
    struct stat st;
    int rc = 0;
    if (stat(db, &st) != 0)
        rc = -errno;
    else if (!S_ISDIR(st.st_mode))
        rc = -ENOTDIR;
    else if ((size_t)snprintf(path, sizeof(path), "%s/data.mdb", db) >= sizeof(path))
        rc = -ENAMETOOLONG;
    else if (stat(path, &st) != 0)
        rc = errno == ENOENT ? ATL_ENOTFOUND : -errno;
    if (rc == ATL_ENOTFOUND)
        fprintf(stderr, "atlasctl %s: %s is not a store (no data.mdb in it)\n", cmd, db);
    else if (rc != 0)
        fprintf(stderr, "atlasctl %s: cannot open store %s: %s\n", cmd, db, atl_strerror(rc));
    return rc;
}

int cli_store_open(const char *cmd, const char *db, int read_only, store_t **out)
{
    int rc = cli_store_check(cmd, db);
    if (rc != 0)
        return rc;
    store_opts_t so;
    store_opts_default(&so);
    so.read_only = read_only;
    if ((rc = store_open(db, &so, out)) != 0) {
        char why[512]; /* another version's or program's file: say whose, and what to run */
        store_open_strerror(db, rc, why, sizeof(why));
        fprintf(stderr, "atlasctl %s: cannot open store %s: %s\n", cmd, db, why);
    }
    return rc;
}

uint8_t *cli_read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    size_t cap = 1 << 16, n = 0, r;
    uint8_t *buf = xmalloc(cap + 1);
    while ((r = fread(buf + n, 1, cap - n, f)) > 0) {
        n += r;
        if (n == cap)
            buf = xrealloc(buf, (cap *= 2) + 1);
    }
    int bad = ferror(f);
    fclose(f);
    if (bad) {
        free(buf);
        errno = EIO;
        return NULL;
    }
    *len = n;
    return buf;
}

static const cli_range_t *range_of(const cli_cmd_t *cmd, const cli_opt_t *o)
{
    for (size_t i = 0; i < cmd->n_ranges; i++)
        if (strcmp(cmd->ranges[i].name, o->name) == 0)
            return &cmd->ranges[i];
    return NULL;
}

void cli_help(const cli_cmd_t *cmd, FILE *f)
{
    fprintf(f, "usage: atlasctl %s %s\n\n%s\n", cmd->name, cmd->usage, cmd->summary);
    if (cmd->n_opts)
        fprintf(f, "\noptions:\n");
    for (size_t i = 0; i < cmd->n_opts; i++) {
        const cli_opt_t *o = &cmd->opts[i];
        char left[64];
        snprintf(left, sizeof(left), "--%s%s%s", o->name, o->arg ? " " : "", o->arg ? o->arg : "");
        const cli_range_t *r = range_of(cmd, o);
        fprintf(f, "  %-26s %s%s", left, o->help, o->type == CLI_NEED ? " (required)" : "");
        if (r)
            fprintf(f, " [%.15g..%.15g]", r->min, r->max);
        fputc('\n', f);
    }
    fprintf(f, "  %-26s %s\n", "--help", "show this help");
    fprintf(f, "\nexit codes: 0 ok, 1 failure, 2 usage error\n");
}

int cli_f64_parse(const char *s, double *out)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    /* ERANGE on underflow still leaves a usable (tiny) value; overflow gives +-HUGE_VAL */
    if (end == s || *end || !isfinite(v))
        return -EINVAL;
    *out = v;
    return 0;
}

/* All of @p s as a decimal unsigned integer: digits only (strtoull alone would take " 7", "+7"
 * and "-1", the last as 2^64 - 1). */
static int parse_u64(const char *s, uint64_t *out)
{
    char *end;
    if (!isdigit((unsigned char)*s))
        return -EINVAL;
    errno = 0;
    uint64_t v = strtoull(s, &end, 10);
    if (errno || *end)
        return -EINVAL;
    *out = v;
    return 0;
}

/* A CLI_U64 or CLI_F64 value: parsed, checked against the command's range, then stored. */
static int set_number(const cli_cmd_t *cmd, const cli_opt_t *o, const char *val)
{
    uint64_t u = 0;
    double v = 0;
    if (o->type == CLI_F64 ? cli_f64_parse(val, &v) != 0 : parse_u64(val, &u) != 0) {
        fprintf(stderr, "atlasctl %s: invalid value for --%s: \"%s\" (%s)\n", cmd->name, o->name,
                val, o->type == CLI_U64 ? "an unsigned integer" : "a finite number");
        return ATL_ECONFIG;
    }
    if (o->type == CLI_U64)
        v = (double)u; /* exact up to 2^53, and every range bound is below that */
    const cli_range_t *r = range_of(cmd, o);
    if (r && (v < r->min || v > r->max)) {
        fprintf(stderr, "atlasctl %s: --%s must be %.15g..%.15g, not %s\n", cmd->name, o->name,
                r->min, r->max, val);
        return ATL_ECONFIG;
    }
    if (o->type == CLI_F64)
        *(double *)o->dst = v;
    else
        *(uint64_t *)o->dst = u;
    return 0;
}

static int set_value(const cli_cmd_t *cmd, const cli_opt_t *o, const char *val)
{
    switch (o->type) {
    case CLI_FLAG:
        *(int *)o->dst = 1;
        return 0;
    case CLI_STR:
    case CLI_NEED:
        if (!*val) {
            fprintf(stderr, "atlasctl %s: --%s needs a value, not an empty string\n", cmd->name,
                    o->name);
            return ATL_ECONFIG;
        }
        *(const char **)o->dst = val;
        return 0;
    case CLI_U64:
    case CLI_F64:
        break;
    }
    return set_number(cmd, o, val);
}

/* The option @p name ("name" or "name=value") names, or NULL; *len is the name's length. */
static const cli_opt_t *find_opt(const cli_cmd_t *cmd, const char *name, size_t *len)
{
    const char *eq = strchr(name, '=');
    *len = eq ? (size_t)(eq - name) : strlen(name);
    for (size_t j = 0; j < cmd->n_opts; j++)
        if (strlen(cmd->opts[j].name) == *len && memcmp(cmd->opts[j].name, name, *len) == 0)
            return &cmd->opts[j];
    return NULL;
}

#ifndef NDEBUG
/* Every range names a numeric option of the table, and its bounds are in order (assert). */
static int ranges_check(const cli_cmd_t *cmd)
{
    for (size_t i = 0; i < cmd->n_ranges; i++) {
        size_t len;
        const cli_opt_t *o = find_opt(cmd, cmd->ranges[i].name, &len);
        if (!o || (o->type != CLI_U64 && o->type != CLI_F64) ||
            !(cmd->ranges[i].min <= cmd->ranges[i].max))
            return 0;
    }
    return 1;
}
#endif

/* The first CLI_NEED option the command line did not give, or NULL. */
static const cli_opt_t *first_missing(const cli_cmd_t *cmd)
{
    for (size_t i = 0; i < cmd->n_opts; i++) {
        const cli_opt_t *o = &cmd->opts[i];
        if (o->type == CLI_NEED && !*(const char **)o->dst)
            return o;
    }
    return NULL;
}

int cli_parse(const cli_cmd_t *cmd, int argc, char **argv, const char ***rest, size_t *n_rest)
{
    assert(ranges_check(cmd));
    const char **r = xcalloc((size_t)argc + 1, sizeof(*r));
    size_t nr = 0;
    int only_args = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (only_args || a[0] != '-' || a[1] != '-' || a[2] == '\0') {
            if (!only_args && strcmp(a, "--") == 0) {
                only_args = 1;
                continue;
            }
            if (!*a) {
                fprintf(stderr,
                        "atlasctl %s: an empty argument (a path or an id cannot be empty)\n",
                        cmd->name);
                free(r);
                return ATL_ECONFIG;
            }
            r[nr++] = a;
            continue;
        }
        if (strcmp(a, "--help") == 0) {
            cli_help(cmd, stdout);
            free(r);
            return CLI_PARSE_HELP;
        }
        const char *name = a + 2, *eq = strchr(name, '=');
        size_t len;
        const cli_opt_t *o = find_opt(cmd, name, &len);
        if (!o) {
            fprintf(stderr, "atlasctl %s: unknown option --%.*s (see --help)\n", cmd->name,
                    (int)len, name);
            free(r);
            return ATL_ECONFIG;
        }
        const char *val = eq ? eq + 1 : NULL;
        if (o->type != CLI_FLAG && !val) {
            if (i + 1 >= argc) {
                fprintf(stderr, "atlasctl %s: --%s needs a value\n", cmd->name, o->name);
                free(r);
                return ATL_ECONFIG;
            }
            val = argv[++i];
        } else if (o->type == CLI_FLAG && val) {
            fprintf(stderr, "atlasctl %s: --%s takes no value\n", cmd->name, o->name);
            free(r);
            return ATL_ECONFIG;
        }
        if (set_value(cmd, o, val) != 0) {
            free(r);
            return ATL_ECONFIG;
        }
    }
    const cli_opt_t *missing = first_missing(cmd);
    if (missing) {
        fprintf(stderr, "atlasctl %s: --%s is required (see --help)\n", cmd->name, missing->name);
        free(r);
        return ATL_ECONFIG;
    }
    if (rest) {
        *rest = r;
        *n_rest = nr;
    } else {
        if (nr) {
            fprintf(stderr, "atlasctl %s: unexpected argument \"%s\" (see --help)\n", cmd->name,
                    r[0]);
            free(r);
            return ATL_ECONFIG;
        }
        free(r);
    }
    return CLI_EXIT_OK;
}

void cli_progress_init(cli_progress_t *p, const char *what)
{
    p->what = what;
    p->start = p->last = pipeline_now();
    p->tty = isatty(STDERR_FILENO);
    p->open = 0;
}

void cli_progress_update(cli_progress_t *p, int force, const char *fmt, ...)
{
    double now = pipeline_now();
    if (!force && now - p->last < (p->tty ? 0.2 : 5.0))
        return;
    p->last = now;
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, p->tty ? "\r\033[K%s: " : "%s: ", p->what);
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, " (%.1f s)%s", now - p->start, p->tty ? "" : "\n");
    p->open = p->tty;
    va_end(ap);
    fflush(stderr);
}

void cli_progress_done(cli_progress_t *p)
{
    if (p->open)
        fputc('\n', stderr);
    p->open = 0;
}

int cli_progress_cb(void *ud, const char *stage, double frac)
{
    cli_progress_t *p = ud;
    if (frac < 0)
        frac = 0;
    if (frac > 1)
        frac = 1;
    if (p->tty) { /* a bar on a terminal: [########------------] */
        char bar[21];
        int full = (int)(frac * 20.0 + 0.5);
        for (int i = 0; i < 20; i++)
            bar[i] = i < full ? '#' : '-';
        bar[20] = '\0';
        cli_progress_update(p, frac >= 1.0, "%-8s [%s] %5.1f%%", stage, bar, frac * 100.0);
    } else {
        cli_progress_update(p, frac >= 1.0, "%s %5.1f%%", stage, frac * 100.0);
    }
    return 0;
}

/* cli_progress_cb, but the line that says the read is done only ends a line begun before it:
 * a store read ahead in less than the update interval (a warm one: a few pages) prints none */
static int prefetch_progress_cb(void *ud, const char *stage, double frac)
{
    cli_progress_t *p = ud;
    return frac >= 1 && !p->open ? 0 : cli_progress_cb(ud, stage, frac);
}

double cli_store_prefetch(const char *cmd, struct store *s, cli_progress_t *prog,
                          struct store_prefetch_result *r)
{
    cli_progress_t own;
    store_prefetch_result_t res;
    if (!prog)
        cli_progress_init(&own, cmd), prog = &own;
    if (!r)
        r = &res;
    double t0 = pipeline_now();
    store_prefetch_opts_t o;
    store_prefetch_opts_default(&o);
    o.progress = prefetch_progress_cb, o.progress_ud = prog;
    int rc = store_prefetch(s, &o, r);
    double secs = pipeline_now() - t0;
    cli_progress_done(prog);
    if (rc != 0 || r->read_error)
        fprintf(stderr, "atlasctl %s: reading the store ahead stopped: %s (going on without)\n",
                cmd, atl_strerror(rc ? rc : r->read_error));
    else if (r->skipped)
        fprintf(stderr,
                "atlasctl %s: %.1f GB of the store are not in the page cache, more than the "
                "memory available: not read ahead (the walk reads them at random)\n",
                cmd, (double)r->missing_bytes / 1e9);
    else if (r->read_bytes >= (64u << 20)) /* not the few pages a warm store misses */
        fprintf(stderr, "atlasctl %s: read %.1f GB of the store ahead in %.1f s\n", cmd,
                (double)r->read_bytes / 1e9, secs);
    return secs;
}

int cli_stdout_close(const char *cmd, int code)
{
    int e = fflush(stdout) != 0 ? errno : (ferror(stdout) ? EIO : 0);
    if (e == 0 || code != CLI_EXIT_OK)
        return code; /* a command that failed has said why (gen checks its own stdout) */
    fprintf(stderr, "atlasctl %s: cannot write to stdout: %s\n", cmd, strerror(e));
    return CLI_EXIT_FAIL;
}

int cli_exit(int rc)
{
    if (rc == 0 || rc == CLI_PARSE_HELP)
        return CLI_EXIT_OK;
    return rc == ATL_ECONFIG ? CLI_EXIT_USAGE : CLI_EXIT_FAIL;
}
