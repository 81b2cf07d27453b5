/*
 * cli.c: option tables, help text, allocation and progress for atlasctl. See cli.h.
 */
#include "tools/cli.h"

#include <errno.h>
#include <inttypes.h>
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
    if (n == 0 || n >= sizeof(buf))
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

int cli_store_open(const char *cmd, const char *db, int read_only, store_t **out)
{
    store_opts_t so;
    store_opts_default(&so);
    so.read_only = read_only;
    int rc = store_open(db, &so, out);
    if (rc != 0)
        fprintf(stderr, "atlasctl %s: cannot open store %s: %s\n", cmd, db, atl_strerror(rc));
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

double cli_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
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
        fprintf(f, "  %-26s %s\n", left, o->help);
    }
    fprintf(f, "  %-26s %s\n", "--help", "show this help");
    fprintf(f, "\nexit codes: 0 ok, 1 failure, 2 usage error\n");
}

static int set_value(const cli_cmd_t *cmd, const cli_opt_t *o, const char *val)
{
    char *end;
    errno = 0;
    switch (o->type) {
    case CLI_FLAG:
        *(int *)o->dst = 1;
        return 0;
    case CLI_STR:
        *(const char **)o->dst = val;
        return 0;
    case CLI_U64: {
        if (*val == '-')
            break;
        uint64_t v = strtoull(val, &end, 10);
        if (errno || end == val || *end)
            break;
        *(uint64_t *)o->dst = v;
        return 0;
    }
    case CLI_F64: {
        double v = strtod(val, &end);
        if (errno || end == val || *end)
            break;
        *(double *)o->dst = v;
        return 0;
    }
    }
    fprintf(stderr, "atlasctl %s: invalid value for --%s: \"%s\"\n", cmd->name, o->name, val);
    return CLI_EXIT_USAGE;
}

int cli_parse(const cli_cmd_t *cmd, int argc, char **argv, const char ***rest, size_t *n_rest)
{
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
            r[nr++] = a;
            continue;
        }
        if (strcmp(a, "--help") == 0) {
            cli_help(cmd, stdout);
            free(r);
            return CLI_PARSE_HELP;
        }
        const char *name = a + 2, *eq = strchr(name, '=');
        size_t len = eq ? (size_t)(eq - name) : strlen(name);
        const cli_opt_t *o = NULL;
        for (size_t j = 0; j < cmd->n_opts; j++)
            if (strlen(cmd->opts[j].name) == len && memcmp(cmd->opts[j].name, name, len) == 0)
                o = &cmd->opts[j];
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
    p->start = p->last = cli_now();
    p->tty = isatty(STDERR_FILENO);
}

void cli_progress_update(cli_progress_t *p, int force, const char *fmt, ...)
{
    double now = cli_now();
    if (!force && now - p->last < (p->tty ? 0.2 : 5.0))
        return;
    p->last = now;
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, p->tty ? "\r\033[K%s: " : "%s: ", p->what);
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, " (%.1f s)%s", now - p->start, p->tty ? "" : "\n");
    va_end(ap);
    fflush(stderr);
}

void cli_progress_done(cli_progress_t *p)
{
    if (p->tty)
        fputc('\n', stderr);
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

int cli_exit(int rc)
{
    if (rc == 0 || rc == CLI_PARSE_HELP)
        return CLI_EXIT_OK;
    return rc == ATL_ECONFIG ? CLI_EXIT_USAGE : CLI_EXIT_FAIL;
}
