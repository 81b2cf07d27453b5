/*
 * embed.c: `atlasctl embed` (the algorithms on any graph, for side-by-side comparisons with
 * PyMDE on identical input) and `atlasctl export-graph` (a store's retained S as that input).
 *
 * Input S.tsv: `i<TAB>j<TAB>s`, each unordered pair once. Every item named in the file (or in
 * --retained) is a node; nodes are ordered by item key when every name is an item id (like the
 * daemon), else by name. Pruning (top 700 per row, S > 2, distance 1/ln S) is the daemon's;
 * --no-prune reads `i j distance` as T itself.
 */
#include "pipeline/embed.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>

#include "algo/frame.h"
#include "algo/graph.h"
#include "algo/item.h"
#include "algo/knn.h"
#include "algo/layout.h"
#include "algo/mde.h"
#include "algo/par.h"
#include "algo/quality.h"
#include "store/store.h"
#include "tools/cli.h"

#define XXH_INLINE_ALL /* names are short: the call would cost more than the hash */
#include <xxhash.h>

typedef struct embed_args {
    const char *edges, *db, *retained, *init, *out, *knn_out, *labels, *layout_out;
    uint64_t k, dim, max_iter, seed, threads, top, layout_epochs, kernel_evals;
    double ftol;
    int no_prune, json;
} embed_args_t;

/* ---- names ------------------------------------------------------------------------------- */

typedef struct name_table {
    char **names;
    uint32_t *lens; /* strlen of each name */
    uint32_t n, cap;
    /* open-addressing hash: slot -> index + 1 */
    uint32_t *slots;
    size_t n_slots;
} name_table_t;

static uint64_t hash_name(const char *s, size_t len)
{
    return XXH3_64bits(s, len);
}

static void names_grow(name_table_t *t)
{
    size_t ns = t->n_slots ? t->n_slots * 2 : 1024;
    uint32_t *sl = xcalloc(ns, sizeof(*sl));
    for (uint32_t i = 0; i < t->n; i++) {
        size_t h = hash_name(t->names[i], t->lens[i]) & (ns - 1);
        while (sl[h])
            h = (h + 1) & (ns - 1);
        sl[h] = i + 1;
    }
    free(t->slots);
    t->slots = sl;
    t->n_slots = ns;
}

/* The slot of the name s[0 .. len): where it is, or the empty slot where it would go. */
static size_t names_slot(const name_table_t *t, const char *s, size_t len)
{
    size_t h = hash_name(s, len) & (t->n_slots - 1);
    while (t->slots[h]) {
        uint32_t id = t->slots[h] - 1;
        if (t->lens[id] == len && memcmp(t->names[id], s, len) == 0)
            break;
        h = (h + 1) & (t->n_slots - 1);
    }
    return h;
}

/* The id of the name @p s, or UINT32_MAX when the table does not hold it (nothing added). */
static uint32_t names_find(const name_table_t *t, const char *s)
{
    return t->n_slots ? t->slots[names_slot(t, s, strlen(s))] - 1 : UINT32_MAX;
}

/* The id of the name s[0 .. len) (no NUL needed), added if new. */
static uint32_t names_intern_n(name_table_t *t, const char *s, size_t len)
{
    if ((size_t)t->n * 2 >= t->n_slots)
        names_grow(t);
    size_t h = names_slot(t, s, len);
    if (t->slots[h])
        return t->slots[h] - 1;
    if (t->n == t->cap) {
        t->cap = t->cap ? t->cap * 2 : 1024;
        t->names = xrealloc(t->names, t->cap * sizeof(*t->names));
        t->lens = xrealloc(t->lens, t->cap * sizeof(*t->lens));
    }
    char *copy = xmalloc(len + 1);
    memcpy(copy, s, len);
    copy[len] = '\0';
    t->names[t->n] = copy;
    t->lens[t->n] = (uint32_t)len;
    t->slots[h] = t->n + 1;
    return t->n++;
}

static uint32_t names_intern(name_table_t *t, const char *s)
{
    return names_intern_n(t, s, strlen(s));
}

static void names_free(name_table_t *t)
{
    for (uint32_t i = 0; i < t->n; i++)
        free(t->names[i]);
    free(t->names);
    free(t->lens);
    free(t->slots);
}

/* Canonical order of names: by item key if all parse, else by strcmp. perm[rank] = id. The
 * comparators see everything they need in the sorted records: no context in globals. */
typedef struct name_rank {
    uint64_t key;
    const char *name;
    uint32_t id;
} name_rank_t;

static int cmp_by_key(const void *a, const void *b)
{
    uint64_t x = ((const name_rank_t *)a)->key, y = ((const name_rank_t *)b)->key;
    return (x > y) - (x < y);
}

static int cmp_by_name(const void *a, const void *b)
{
    return strcmp(((const name_rank_t *)a)->name, ((const name_rank_t *)b)->name);
}

static uint32_t *names_order(const name_table_t *t, uint64_t **keys_out)
{
    uint32_t *perm = xmalloc(((size_t)t->n + 1) * sizeof(*perm));
    uint64_t *keys = xmalloc(((size_t)t->n + 1) * sizeof(*keys));
    name_rank_t *nr = xmalloc(((size_t)t->n + 1) * sizeof(*nr));
    int all_items = 1;
    for (uint32_t i = 0; i < t->n; i++) {
        if (item_key_parse(t->names[i], t->lens[i], &keys[i]) != 0) {
            all_items = 0;
            keys[i] = hash_name(t->names[i], t->lens[i]);
        }
        nr[i] = (name_rank_t){keys[i], t->names[i], i};
    }
    qsort(nr, t->n, sizeof(*nr), all_items ? cmp_by_key : cmp_by_name);
    for (uint32_t r = 0; r < t->n; r++)
        perm[r] = nr[r].id;
    free(nr);
    *keys_out = keys;
    return perm;
}

static FILE *open_input(const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        int e = errno;
        fprintf(stderr, "atlasctl embed: cannot open %s: %s\n", path, strerror(e));
        errno = e; /* callers return -errno */
    }
    return f;
}

/* ---- reading the edge file --------------------------------------------------------------- */

typedef struct tsv_edges {
    uint32_t *i, *j;
    double *v;
    size_t m, cap;
} tsv_edges_t;

/*
 * Lines in large blocks: getline, strtok and strtod took most of the 0.58 s spent reading the
 * 3.4M lines of the small-scale S.tsv (the whole 3-D process was 1.6 s).
 */
typedef struct line_reader {
    FILE *f;
    char *buf;
    size_t cap, len, pos;
    long limit; /* bytes left to read; -1: to the end of the file */
    int eof;
} line_reader_t;

#define LINE_BLOCK (1u << 20)

/* The next line, without its '\n', in *line (len bytes; valid until the next call). */
static int next_line(line_reader_t *r, const char **line, size_t *len)
{
    for (;;) {
        char *at = r->buf + r->pos, *nl = memchr(at, '\n', r->len - r->pos);
        if (nl) {
            *line = at;
            *len = (size_t)(nl - at);
            r->pos += *len + 1;
            return 1;
        }
        if (r->eof) {
            if (r->pos == r->len)
                return 0;
            *line = at; /* the last line has no '\n' */
            *len = r->len - r->pos;
            r->pos = r->len;
            return 1;
        }
        memmove(r->buf, at, r->len - r->pos);
        r->len -= r->pos;
        r->pos = 0;
        if (r->cap - r->len < LINE_BLOCK) {
            r->cap = r->cap * 2 > r->len + LINE_BLOCK ? r->cap * 2 : r->len + LINE_BLOCK;
            r->buf = xrealloc(r->buf, r->cap + 1);
        }
        size_t want = r->cap - r->len;
        if (r->limit >= 0 && (size_t)r->limit < want)
            want = (size_t)r->limit;
        size_t got = want ? fread(r->buf + r->len, 1, want, r->f) : 0;
        r->len += got;
        if (r->limit >= 0)
            r->limit -= (long)got;
        if (got == 0)
            r->eof = 1;
    }
}

/* The fields of a line split at runs of tabs (as strtok(line, "\t") would): at most n. */
static int split_tabs(const char *line, size_t len, const char *field[], size_t flen[], int n)
{
    int k = 0;
    size_t i = 0;
    while (k < n) {
        while (i < len && line[i] == '\t')
            i++;
        if (i == len)
            break;
        size_t start = i;
        while (i < len && line[i] != '\t')
            i++;
        field[k] = line + start;
        flen[k++] = i - start;
    }
    return k;
}

/* One byte range of the edge file, read by one thread into its own name table and edges. */
typedef struct edge_part {
    const char *path;
    long begin, end; /* [begin, end): begin at a line's start; end -1: to the end */
    name_table_t *names;
    tsv_edges_t e;
    uint64_t lines, bad; /* lines read; the first bad one (1-based in the part), 0: none */
} edge_part_t;

static void edges_push(tsv_edges_t *e, uint32_t i, uint32_t j, double v)
{
    if (e->m == e->cap) {
        e->cap = e->cap ? e->cap * 2 : 1 << 16;
        e->i = xrealloc(e->i, e->cap * sizeof(*e->i));
        e->j = xrealloc(e->j, e->cap * sizeof(*e->j));
        e->v = xrealloc(e->v, e->cap * sizeof(*e->v));
    }
    e->i[e->m] = i, e->j[e->m] = j, e->v[e->m] = v;
    e->m++;
}

static int read_part(edge_part_t *p)
{
    line_reader_t r = {.f = fopen(p->path, "r")};
    if (!r.f)
        return -errno;
    if (p->begin > 0 && fseek(r.f, p->begin, SEEK_SET) != 0) {
        int rc = -errno;
        fclose(r.f);
        return rc;
    }
    r.limit = p->end < 0 ? -1 : p->end - p->begin;
    r.buf = xmalloc(LINE_BLOCK + 1); /* never NULL: memchr and memmove take no NULL */
    r.cap = LINE_BLOCK;
    const char *line, *prev = NULL; /* the last first-column name: rows come in runs */
    size_t len, prev_len = 0;
    uint32_t prev_id = 0;
    while (next_line(&r, &line, &len)) {
        p->lines++;
        if (len > 0 && line[len - 1] == '\r') /* a file written with CRLF line ends */
            len--;
        const char *f[3];
        size_t fl[3];
        int k = split_tabs(line, len, f, fl, 3);
        if (k == 0 || f[0][0] == '#')
            continue;
        double v = NAN;
        if (k < 3 || atl_parse_double(f[2], fl[2], &v) != 0 || !isfinite(v) || v < 0) {
            p->bad = p->lines;
            break;
        }
        if (!prev || fl[0] != prev_len || memcmp(f[0], prev, prev_len) != 0) {
            prev_id = names_intern_n(p->names, f[0], fl[0]);
            prev = p->names->names[prev_id];
            prev_len = fl[0];
        }
        edges_push(&p->e, prev_id, names_intern_n(p->names, f[1], fl[1]), v);
    }
    int rc = ferror(r.f) ? -EIO : 0;
    free(r.buf);
    fclose(r.f);
    return rc;
}

static int read_part_cb(void *ud, unsigned tid, size_t begin, size_t end)
{
    (void)tid;
    edge_part_t *parts = ud;
    for (size_t q = begin; q < end; q++) {
        int rc = read_part(&parts[q]);
        if (rc != 0)
            return rc;
    }
    return 0;
}

/* Where the second half of a regular file of at least 64 KiB starts (after the first '\n' past
 * its middle); -1: read it whole on one thread (a pipe, a small file, no newline near there). */
static long second_half(FILE *f)
{
    struct stat st;
    if (fstat(fileno(f), &st) != 0 || !S_ISREG(st.st_mode) || st.st_size < (64l << 10))
        return -1;
    long mid = (long)(st.st_size / 2);
    char buf[4096];
    for (long at = mid; at < mid + (1l << 20) && fseek(f, at, SEEK_SET) == 0;) {
        size_t got = fread(buf, 1, sizeof(buf), f);
        char *nl = got ? memchr(buf, '\n', got) : NULL;
        if (nl)
            return at + (nl - buf) + 1 < st.st_size ? at + (nl - buf) + 1 : -1;
        if (got < sizeof(buf))
            return -1;
        at += (long)got;
    }
    return -1;
}

/*
 * The edge file in two halves on two threads (unless @p threads is 1). The second half's names get
 * their ids after the first half's, in the order they first appear, and its edges follow: the ids
 * and edges are those of reading the file in one pass.
 */
static int read_edges(const char *path, unsigned threads, name_table_t *names, tsv_edges_t *e)
{
    FILE *f = open_input(path);
    if (!f)
        return -errno;
    long mid = threads > 1 ? second_half(f) : -1;
    fclose(f);
    name_table_t local = {0};
    edge_part_t parts[2] = {{path, 0, mid, names, {0}, 0, 0}, {path, mid, -1, &local, {0}, 0, 0}};
    int n_parts = mid > 0 ? 2 : 1;
    int rc = par_for((size_t)n_parts, 1, (unsigned)n_parts, read_part_cb, parts);
    uint64_t bad = parts[0].bad ? parts[0].bad : parts[1].bad ? parts[0].lines + parts[1].bad : 0;
    if (rc == 0 && bad) {
        fprintf(stderr, "%s:%" PRIu64 ": expected i<TAB>j<TAB>value (finite, >= 0)\n", path, bad);
        rc = -EINVAL;
    } else if (rc != 0) {
        fprintf(stderr, "atlasctl embed: reading %s: %s\n", path, atl_strerror(rc));
    }
    *e = parts[0].e;
    if (rc == 0 && n_parts == 2) {
        uint32_t *id = xmalloc(((size_t)local.n + 1) * sizeof(*id));
        for (uint32_t k = 0; k < local.n; k++)
            id[k] = names_intern_n(names, local.names[k], local.lens[k]);
        const tsv_edges_t *e1 = &parts[1].e;
        for (size_t x = 0; x < e1->m; x++)
            edges_push(e, id[e1->i[x]], id[e1->j[x]], e1->v[x]);
        free(id);
    }
    free(parts[1].e.i), free(parts[1].e.j), free(parts[1].e.v);
    names_free(&local);
    return rc;
}

static int read_retained(const char *path, name_table_t *names)
{
    FILE *f = open_input(path);
    if (!f)
        return -errno;
    char *line = NULL;
    size_t cap = 0;
    while (getline(&line, &cap, f) >= 0) {
        char *a = strtok(line, "\t\n ");
        if (a && a[0] != '#')
            names_intern(names, a);
    }
    free(line);
    fclose(f);
    return 0;
}

/* Labels file `item<TAB>group`: label index per rank, -1 for items without a label (and items
 * not in the graph are skipped). */
static int32_t *read_labels(const char *path, const name_table_t *names, const uint32_t *rank,
                            uint32_t n)
{
    FILE *f = open_input(path);
    if (!f)
        return NULL;
    int32_t *lab = xmalloc(((size_t)n + 1) * sizeof(*lab));
    for (uint32_t i = 0; i < n; i++)
        lab[i] = -1;
    name_table_t groups = {0};
    char *line = NULL;
    size_t cap = 0;
    while (getline(&line, &cap, f) >= 0) {
        char *item = strtok(line, "\t\n"), *group = strtok(NULL, "\t\n");
        if (!item || !group)
            continue;
        uint32_t id = names_find(names, item);
        if (id >= n)
            continue;
        lab[rank[id]] = (int32_t)names_intern(&groups, group);
    }
    free(line);
    fclose(f);
    names_free(&groups);
    return lab;
}

/* ---- input ------------------------------------------------------------------------------- */

/* The graph to embed, with its node names: by rank (canonical order), perm[rank] = name id. */
typedef struct embed_input {
    name_table_t names;
    uint64_t *keys; /* by rank */
    uint32_t *perm, *rank;
    uint32_t n;
    graph_t t;
    double t_load, t_prune; /* seconds */
} embed_input_t;

static void input_destroy(embed_input_t *in)
{
    names_free(&in->names);
    free(in->keys);
    free(in->perm);
    free(in->rank);
    graph_destroy(&in->t);
}

/* Straight from a store: retained rows pruned as they stream out of LMDB. */
static int load_store(const embed_args_t *a, embed_input_t *in)
{
    store_t *s;
    double t0 = pipeline_now();
    int rc = cli_store_open("embed", a->db, 1, &s);
    if (rc != 0)
        return rc;
    cli_store_prefetch("embed", s, NULL, NULL);
    rc = embed_graph_from_store(s, (uint32_t)a->top, (unsigned)a->threads, &in->keys, &in->n,
                                &in->t);
    store_close(s);
    in->t_load = pipeline_now() - t0;
    if (rc == ATL_ENOTFOUND)
        fprintf(stderr, "atlasctl embed: the store has fewer than 2 retained items\n");
    else if (rc != 0)
        fprintf(stderr, "atlasctl embed: %s\n", atl_strerror(rc));
    if (rc != 0)
        return rc;
    char id[ITEM_ID_MAX];
    in->perm = xmalloc(((size_t)in->n + 1) * sizeof(*in->perm));
    in->rank = xmalloc(((size_t)in->n + 1) * sizeof(*in->rank));
    for (uint32_t r = 0; r < in->n; r++) {
        names_intern(&in->names, item_key_format(in->keys[r], id));
        in->perm[r] = in->rank[r] = r;
    }
    return 0;
}

/* From S.tsv (and --retained): names in canonical order, then T by rank. */
static int load_edges(const embed_args_t *a, embed_input_t *in)
{
    tsv_edges_t e = {0};
    double t0 = pipeline_now();
    int rc = 0;
    if ((a->retained && (rc = read_retained(a->retained, &in->names)) != 0) ||
        (rc = read_edges(a->edges, (unsigned)a->threads, &in->names, &e)) != 0)
        goto out;
    if ((in->n = in->names.n) < 2) {
        fprintf(stderr, "atlasctl embed: the graph has fewer than 2 items\n");
        rc = -EINVAL;
        goto out;
    }
    uint64_t *by_id;
    in->perm = names_order(&in->names, &by_id);
    in->rank = xmalloc(((size_t)in->n + 1) * sizeof(*in->rank));
    in->keys = xmalloc(((size_t)in->n + 1) * sizeof(*in->keys));
    for (uint32_t r = 0; r < in->n; r++) {
        in->rank[in->perm[r]] = r;
        in->keys[r] = by_id[in->perm[r]];
    }
    free(by_id);
    in->t_load = pipeline_now() - t0;
    t0 = pipeline_now();
    embed_edges_t ee = {e.i, e.j, e.v, e.m};
    if ((rc = embed_graph_from_edges(&ee, in->rank, in->n, (uint32_t)a->top, a->no_prune,
                                     (unsigned)a->threads, &in->t)) != 0)
        fprintf(stderr, "atlasctl embed: building T: %s\n", atl_strerror(rc));
    in->t_prune = pipeline_now() - t0;
out:
    free(e.i);
    free(e.j);
    free(e.v);
    return rc;
}

/* --init FILE: rows `item x y z`; returns the placed mask. Names that are not nodes of the graph
 * (ids n and up would index past rank[] and x) are skipped, however often they appear. */
static uint8_t *read_init(const char *path, const name_table_t *names, const uint32_t *rank,
                          uint32_t n, uint32_t dim, double *x)
{
    FILE *f = open_input(path);
    if (!f)
        return NULL;
    uint8_t *placed = xcalloc(n + 1, 1);
    char *line = NULL;
    size_t cap = 0;
    while (getline(&line, &cap, f) >= 0) {
        char *name = strtok(line, "\t\n ");
        if (!name || name[0] == '#')
            continue;
        uint32_t id = names_find(names, name);
        if (id >= n)
            continue; /* not a node of this graph */
        uint32_t r = rank[id];
        int ok = 1;
        for (uint32_t c = 0; c < dim && ok; c++) {
            char *tok = strtok(NULL, "\t\n "), *end = NULL;
            x[(size_t)r * dim + c] = tok ? strtod(tok, &end) : NAN;
            ok = tok && !*end && isfinite(x[(size_t)r * dim + c]);
        }
        placed[r] = (uint8_t)ok;
    }
    free(line);
    fclose(f);
    return placed;
}

static double peak_rss_mb(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_maxrss / 1024.0;
}

/* fopen(@p path, "w"), or NULL after printing why (errno kept for -errno). */
static FILE *open_output(const char *cmd, const char *path)
{
    FILE *f = fopen(path, "w");
    if (!f) {
        int e = errno;
        fprintf(stderr, "atlasctl %s: cannot write %s: %s\n", cmd, path, strerror(e));
        errno = e;
    }
    return f;
}

/* fclose() an output written in full, printing the failure of any write to it (a full disk
 * fails the buffered writes only at the end). @return 0 or -errno. */
static int close_output(const char *cmd, FILE *f, const char *path)
{
    int bad = ferror(f); /* an earlier write failed: its errno is long gone */
    errno = 0;
    if (fclose(f) == 0 && !bad)
        return 0;
    int e = errno ? errno : EIO;
    fprintf(stderr, "atlasctl %s: writing %s failed: %s\n", cmd, path, strerror(e));
    return -e;
}

static int write_outputs(const embed_args_t *a, const name_table_t *names, const uint32_t *perm,
                         uint32_t n, const double *x, const knn_t *knn)
{
    FILE *f = open_output("embed", a->out);
    if (!f)
        return -errno;
    for (uint32_t r = 0; r < n; r++) {
        fputs(names->names[perm[r]], f);
        for (uint32_t c = 0; c < a->dim; c++)
            fprintf(f, "\t%.9g", x[(size_t)r * a->dim + c]);
        fputc('\n', f);
    }
    int rc = close_output("embed", f, a->out);
    if (rc != 0 || !a->knn_out)
        return rc;
    if (!(f = open_output("embed", a->knn_out)))
        return -errno;
    for (uint32_t r = 0; r < n; r++)
        for (uint32_t q = 0; q < knn->count[r]; q++)
            fprintf(f, "%s\t%s\t%.9g\n", names->names[perm[r]],
                    names->names[perm[knn->nbr[(size_t)r * knn->k + q]]],
                    (double)knn->dist[(size_t)r * knn->k + q]);
    return close_output("embed", f, a->knn_out);
}

/* The 2-D map of the 3-D coordinates (UMAP, cold), framed as the atlas exports it. */
static int run_layout(const embed_args_t *a, embed_input_t *in, const double *x, double *seconds,
                      double *purity_2d)
{
    uint32_t n = in->n;
    double t0 = pipeline_now(), *y = xmalloc(((size_t)n * 2 + 1) * sizeof(*y));
    cli_progress_t prog;
    cli_progress_init(&prog, "layout");
    int rc = embed_layout(x, n, (uint32_t)a->dim, a->seed, (uint32_t)a->layout_epochs,
                          (unsigned)a->threads, cli_progress_cb, &prog, y);
    cli_progress_done(&prog);
    *seconds = pipeline_now() - t0;
    if (rc == 0 && a->labels) {
        int32_t *lab = read_labels(a->labels, &in->names, in->rank, n);
        if (lab)
            quality_label_purity(y, n, 2, lab, 10, 2000, 1, purity_2d);
        free(lab);
    }
    frame_view_t view;
    frame_t frame;
    frame_view_default(&view);
    if (rc == 0)
        rc = frame_fit(y, n, &view, NULL, &frame);
    if (rc != 0) {
        fprintf(stderr, "atlasctl embed: layout: %s\n", atl_strerror(rc));
        free(y);
        return rc;
    }
    frame_apply(&frame, y, n, y);
    FILE *f = open_output("embed", a->layout_out);
    if (!f)
        rc = -errno;
    for (uint32_t r = 0; f && r < n; r++)
        fprintf(f, "%s\t%.6f\t%.6f\n", in->names.names[in->perm[r]], y[2 * (size_t)r],
                y[2 * (size_t)r + 1]);
    if (f)
        rc = close_output("embed", f, a->layout_out);
    free(y);
    return rc;
}

/* ---- figures ----------------------------------------------------------------------------- */

typedef struct embed_figures {
    double purity, purity_2d, moved_med, moved_p95, t_layout;
    double kernel_ms[3]; /* --kernel-evals: attractive, repulsive, both */
} embed_figures_t;

/* Warm start: how far the items that had coordinates moved, as a fraction of the width. */
static void moved_figures(const double *x0, const double *x, const uint8_t *placed, uint32_t n,
                          uint32_t dim, embed_figures_t *f)
{
    double width = 0;
    for (uint32_t c = 0; c < dim; c++) {
        double lo = INFINITY, hi = -INFINITY;
        for (uint32_t r = 0; r < n; r++) {
            lo = fmin(lo, x[(size_t)r * dim + c]);
            hi = fmax(hi, x[(size_t)r * dim + c]);
        }
        width = fmax(width, hi - lo);
    }
    quality_displacement(x0, x, n, dim, placed, width, &f->moved_med, &f->moved_p95);
}

/* @p v with @p fmt, or null when it is not finite; @return @p buf. */
static const char *json_num(char buf[32], double v, const char *fmt)
{
    if (!isfinite(v))
        return "null";
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wformat-nonliteral"
    snprintf(buf, 32, fmt, v);
#pragma GCC diagnostic pop
    return buf;
}

/* milliseconds a call of a pass, 0 if it never ran */
static double ms_per(double seconds, uint32_t calls)
{
    return calls ? seconds * 1e3 / calls : 0;
}

/* mde_result_t.passes: "mde_passes" in --json */
static void print_passes_json(const mde_passes_t *p)
{
    printf(",\"mde_passes\":{\"eval\":{\"calls\":%u,\"seconds\":%.6f,\"ms\":%.4f,"
           "\"wait_ms\":%.4f},\"reduce\":{\"calls\":%u,\"seconds\":%.6f,\"ms\":%.4f},"
           "\"exact\":{\"calls\":%u,\"seconds\":%.6f,\"ms\":%.4f},"
           "\"pair\":{\"calls\":%u,\"seconds\":%.6f,\"ms\":%.4f},"
           "\"dir\":{\"calls\":%u,\"seconds\":%.6f,\"ms\":%.4f}}",
           p->n_eval, p->eval_s, ms_per(p->eval_s, p->n_eval), ms_per(p->wait_s, p->n_eval),
           p->n_reduce, p->reduce_s, ms_per(p->reduce_s, p->n_reduce), p->n_exact, p->exact_s,
           ms_per(p->exact_s, p->n_exact), p->n_pair, p->pair_s, ms_per(p->pair_s, p->n_pair),
           p->n_dir, p->dir_s, ms_per(p->dir_s, p->n_dir));
}

/* the text line: single-precision evaluations (3-D), then the passes every run has */
static void print_passes_text(const mde_passes_t *p)
{
    printf("mde passes:");
    if (p->n_eval)
        printf(" evaluation %.3f s (%u, %.4g ms each; threads' ends %.4g ms apart), reduction "
               "%.3f s,",
               p->eval_s, p->n_eval, ms_per(p->eval_s, p->n_eval), ms_per(p->wait_s, p->n_eval),
               p->reduce_s);
    printf(" double-precision evaluation %.3f s (%u), L-BFGS pair %.3f s, direction %.3f s\n",
           p->exact_s, p->n_exact, p->pair_s, p->dir_s);
}

static void print_figures(const embed_args_t *a, const embed_input_t *in, const embed_result_t *r,
                          const embed_figures_t *f)
{
    size_t short_rows = knn_short_rows(&r->knn), t_edges = graph_n_edges(&in->t);
    const mde_result_t *m = &r->mde;
    if (a->json) {
        /* JSON has no inf or nan (a start with coincident points has infinite distortion) */
        char j[7][32];
        printf("{\"items\":%u,\"moved_median\":%s,\"moved_p95\":%s,\"purity\":%s,\"t_edges\":"
               "%zu,\"max_distance\":%s,\"knn_edges\":%zu,"
               "\"short_rows\":%zu,\"repulsive_edges\":%zu,\"iterations\":%u,\"evaluations\":%u,"
               "\"distortion\":%s,\"grad_norm\":%s,\"threads\":%" PRIu64 ",\"seconds\":{"
               "\"load\":%.3f,\"prune\":%.3f,\"knn\":%.3f,\"mde\":%.3f,\"layout\":%.3f},"
               "\"purity_2d\":%s,\"peak_rss_mb\":%.1f",
               in->n, json_num(j[0], f->moved_med, "%.5f"), json_num(j[1], f->moved_p95, "%.5f"),
               json_num(j[2], f->purity, "%.4f"), t_edges,
               json_num(j[3], r->knn.max_distance, "%.6g"), r->knn_edges.m, short_rows,
               m->n_repulsive, m->iterations, m->evaluations, json_num(j[4], m->distortion, "%.6f"),
               json_num(j[5], m->grad_norm, "%.3g"), a->threads, in->t_load, in->t_prune, r->t_knn,
               r->t_mde, f->t_layout, json_num(j[6], f->purity_2d, "%.4f"), peak_rss_mb());
        print_passes_json(&m->passes);
        if (a->kernel_evals)
            printf(",\"kernel\":{\"evals\":%" PRIu64 ",\"attractive_ms\":%.4f,"
                   "\"repulsive_ms\":%.4f,\"both_ms\":%.4f}",
                   a->kernel_evals, f->kernel_ms[0], f->kernel_ms[1], f->kernel_ms[2]);
        printf("}\n");
    } else {
        /* figures not computed (no --labels, no --layout) are left out, not shown as -1 */
        printf("items %u, T edges %zu, kNN edges %zu (%zu rows short of k), distortion %.4f "
               "after %u iterations",
               in->n, t_edges, r->knn_edges.m, short_rows, m->distortion, m->iterations);
        if (f->purity >= 0)
            printf(", label purity %.3f", f->purity);
        if (f->purity_2d >= 0)
            printf(", 2-D label purity %.3f", f->purity_2d);
        printf("\nload %.2f s, prune %.2f s, knn %.2f s, mde %.2f s", in->t_load, in->t_prune,
               r->t_knn, r->t_mde);
        if (a->layout_out)
            printf(", layout %.2f s", f->t_layout);
        printf(", peak %.0f MiB\n", peak_rss_mb());
        print_passes_text(&m->passes);
        if (a->kernel_evals)
            printf("kernel alone, %" PRIu64 " evaluations: attractive %.4g ms, repulsive %.4g ms, "
                   "both %.4g ms an evaluation\n",
                   a->kernel_evals, f->kernel_ms[0], f->kernel_ms[1], f->kernel_ms[2]);
    }
}

/*
 * --kernel-evals: the 3-D evaluation kernel alone, at the final coordinates, on the MDE's own
 * edges (the same repulsive sample and order) and threads: the attractive edges, the repulsive
 * ones, then both, each after one evaluation not counted. What an evaluation costs without the
 * L-BFGS passes that run between evaluations in mde_run() and stream through the same caches.
 */
static int time_kernel(const embed_args_t *a, const embed_input_t *in, const embed_result_t *r,
                       double ms[3])
{
    static const int sets[3] = {MDE_KERNEL_ATTRACTIVE, MDE_KERNEL_REPULSIVE,
                                MDE_KERNEL_ATTRACTIVE | MDE_KERNEL_REPULSIVE};
    mde_opts_t mo;
    mde_t m;
    mde_opts_default(&mo);
    mo.dim = 3, mo.seed = a->seed, mo.n_threads = (unsigned)a->threads;
    int rc = mde_init(&m, &mo, in->n, &r->knn_edges, in->keys);
    if (rc != 0)
        return rc;
    if ((rc = mde_kernel_load(&m, r->x)) == 0) {
        for (int s = 0; s < 3; s++) {
            mde_kernel_eval(&m, sets[s]);
            double t0 = pipeline_now();
            for (uint64_t e = 0; e < a->kernel_evals; e++)
                mde_kernel_eval(&m, sets[s]);
            ms[s] = (pipeline_now() - t0) * 1e3 / (double)a->kernel_evals;
        }
    }
    mde_destroy(&m);
    return rc;
}

/* ---- the command ------------------------------------------------------------------------- */

/* Parse the input, run the pipeline's embedding stages (pipeline/embed.h), write and print. */
static int run_embed(const embed_args_t *a)
{
    embed_input_t in = {0};
    embed_result_t r = {0};
    embed_figures_t fig = {-1, -1, -1, -1, 0, {0, 0, 0}};
    embed_opts_t eo;
    double *x0 = NULL;
    uint8_t *placed = NULL;
    cli_progress_t prog;
    int rc = a->db ? load_store(a, &in) : load_edges(a, &in);
    if (rc != 0)
        goto out;
    embed_opts_default(&eo);
    eo.k = (uint32_t)a->k, eo.n_threads = (unsigned)a->threads;
    eo.mde.dim = (uint32_t)a->dim, eo.mde.max_iter = (uint32_t)a->max_iter;
    eo.mde.seed = a->seed, eo.mde.ftol = a->ftol;
    eo.mde.clock = pipeline_now; /* where the MDE's time went (print_figures) */
    if (a->init && strcmp(a->init, "random") != 0) {
        x0 = xcalloc((size_t)in.n * a->dim + 1, sizeof(*x0));
        if (!(placed = read_init(a->init, &in.names, in.rank, in.n, (uint32_t)a->dim, x0))) {
            rc = -ENOENT;
            goto out;
        }
        eo.init = x0, eo.placed = placed;
    }
    cli_progress_init(&prog, "embed");
    eo.progress = cli_progress_cb, eo.progress_ud = &prog;
    rc = embed_run(&in.t, in.keys, &eo, &r);
    cli_progress_done(&prog);
    if (rc != 0) {
        fprintf(stderr, "atlasctl embed: %s\n", atl_strerror(rc));
        goto out;
    }
    if ((rc = write_outputs(a, &in.names, in.perm, in.n, r.x, &r.knn)) != 0)
        goto out;
    if (a->layout_out && (rc = run_layout(a, &in, r.x, &fig.t_layout, &fig.purity_2d)) != 0)
        goto out;
    if (a->labels) {
        int32_t *lab = read_labels(a->labels, &in.names, in.rank, in.n);
        rc = lab ? quality_label_purity(r.x, in.n, (uint32_t)a->dim, lab, 10, 2000, 1, &fig.purity)
                 : -ENOENT;
        free(lab);
        if (rc != 0)
            goto out;
    }
    if (x0)
        moved_figures(x0, r.x, placed, in.n, (uint32_t)a->dim, &fig);
    if (a->kernel_evals && (rc = time_kernel(a, &in, &r, fig.kernel_ms)) != 0) {
        fprintf(stderr, "atlasctl embed: --kernel-evals: %s\n", atl_strerror(rc));
        goto out;
    }
    print_figures(a, &in, &r, &fig);
out:
    embed_result_destroy(&r);
    input_destroy(&in);
    free(x0);
    free(placed);
    return rc;
}

int cmd_embed(int argc, char **argv)
{
    embed_args_t a = {
        .k = 10, .dim = 3, .max_iter = 2000, .seed = 42, .threads = 2, .top = GRAPH_TOP_DEFAULT};
    const cli_opt_t opts[] = {
        {"edges", CLI_STR, &a.edges, "S.tsv", "i<TAB>j<TAB>s, each pair once (or --db)"},
        {"db", CLI_STR, &a.db, "DIR", "read the retained graph from a store instead"},
        {"retained", CLI_STR, &a.retained, "ITEMS.tsv", "also include these items (first column)"},
        {"k", CLI_U64, &a.k, "N", "neighbours per item (default 10)"},
        {"dim", CLI_U64, &a.dim, "N", "embedding dimension (default 3)"},
        {"max-iter", CLI_U64, &a.max_iter, "N", "MDE iterations (default 2000)"},
        {"ftol", CLI_F64, &a.ftol, "X",
         "stop when F falls < X*F over 10 iterations, or (X >= 1e-6) a float line search fails "
         "or needs more than 5 evaluations (default 0: off)"},
        {"seed", CLI_U64, &a.seed, "N", "random seed (default 42)"},
        {"threads", CLI_U64, &a.threads, "N", "threads (default 2)"},
        {"top", CLI_U64, &a.top, "N", "T keeps this many largest S per row (default 700)"},
        {"init", CLI_STR, &a.init, "random|FILE",
         "start point: random (default) or item x y z rows"},
        {"no-prune", CLI_FLAG, &a.no_prune, NULL, "the file is T itself: i j distance"},
        {"out", CLI_NEED, &a.out, "COORDS.tsv", "item<TAB>x<TAB>y<TAB>z"},
        {"knn-out", CLI_STR, &a.knn_out, "KNN.tsv", "write item<TAB>neighbour<TAB>distance"},
        {"labels", CLI_STR, &a.labels, "FILE", "item<TAB>group: report 10-NN label purity"},
        {"layout", CLI_STR, &a.layout_out, "FILE", "also run the 2-D layout (UMAP): item x y"},
        {"layout-epochs", CLI_U64, &a.layout_epochs, "N",
         "layout SGD epochs (default 0: 500 up to 10,000 items, else 200)"},
        {"json", CLI_FLAG, &a.json, NULL, "print figures as JSON"},
        {"kernel-evals", CLI_U64, &a.kernel_evals, "N",
         "then time the 3-D evaluation kernel alone, N evaluations each of the attractive, the "
         "repulsive and all edges (a benchmark; default 0: off)"},
    };
    /* counts land in uint32_t fields: above UINT32_MAX they would wrap (2^32 iterations were 0) */
    const cli_range_t ranges[] = {
        {"k", 1, KNN_MAX_K},          {"dim", 1, MDE_MAX_DIM},
        {"max-iter", 0, UINT32_MAX},  {"ftol", 0, 1},
        {"threads", 1, 64},           {"top", 1, UINT32_MAX},
        {"layout-epochs", 0, 100000}, {"kernel-evals", 0, 1000000},
    };
    const cli_cmd_t cmd = {"embed",
                           "--edges S.tsv --out COORDS.tsv [options]",
                           "Prune a co-occurrence graph, find exact shortest-path kNN and run MDE.",
                           opts,
                           ATL_ARRAY_LEN(opts),
                           ranges,
                           ATL_ARRAY_LEN(ranges)};
    int rc = cli_parse(&cmd, argc, argv, NULL, NULL);
    if (rc != 0)
        return cli_exit(rc);
    if (!a.edges == !a.db) {
        fprintf(stderr, "atlasctl embed: give exactly one of --edges and --db (see --help)\n");
        return CLI_EXIT_USAGE;
    }
    if (a.kernel_evals && a.dim != 3) {
        fprintf(stderr, "atlasctl embed: --kernel-evals times the 3-D kernel: it needs --dim 3\n");
        return CLI_EXIT_USAGE;
    }
    return run_embed(&a) == 0 ? CLI_EXIT_OK : CLI_EXIT_FAIL;
}

/* ---- export-graph ------------------------------------------------------------------------ */

typedef struct export_ctx {
    FILE *f;
    uint64_t pairs;
    uint32_t *pi, *pj;
    double *ps;
    size_t n, cap;
} export_ctx_t;

static int export_row(void *ud, uint32_t row, const uint32_t *cols, const double *s, size_t n)
{
    export_ctx_t *x = ud;
    for (size_t i = 0; i < n; i++) {
        if (cols[i] <= row)
            continue; /* each unordered pair once */
        if (x->n == x->cap) {
            x->cap = x->cap ? x->cap * 2 : 1 << 16;
            x->pi = xrealloc(x->pi, x->cap * sizeof(*x->pi));
            x->pj = xrealloc(x->pj, x->cap * sizeof(*x->pj));
            x->ps = xrealloc(x->ps, x->cap * sizeof(*x->ps));
        }
        x->pi[x->n] = row;
        x->pj[x->n] = cols[i];
        x->ps[x->n] = s[i];
        x->n++;
    }
    return 0;
}

/* S.tsv (@p path, "-": stdout, whose writes main() checks). @return 0 or -errno, printed. */
static int write_pairs(const char *path, const export_ctx_t *x, const uint64_t *keys)
{
    int to_stdout = strcmp(path, "-") == 0;
    FILE *f = to_stdout ? stdout : open_output("export-graph", path);
    if (!f)
        return -errno;
    char a[ITEM_ID_MAX], b[ITEM_ID_MAX];
    for (size_t i = 0; i < x->n; i++)
        fprintf(f, "%s\t%s\t%.6f\n", item_key_format(keys[x->pi[i]], a),
                item_key_format(keys[x->pj[i]], b), x->ps[i]);
    return to_stdout ? 0 : close_output("export-graph", f, path);
}

static int write_retained(const char *path, const uint64_t *keys, uint32_t n)
{
    FILE *f = open_output("export-graph", path);
    if (!f)
        return -errno;
    char a[ITEM_ID_MAX];
    for (uint32_t i = 0; i < n; i++)
        fprintf(f, "%s\n", item_key_format(keys[i], a));
    return close_output("export-graph", f, path);
}

int cmd_export_graph(int argc, char **argv)
{
    const char *db = NULL, *out = NULL, *retained = NULL;
    const cli_opt_t opts[] = {
        {"db", CLI_NEED, &db, "DIR", "store directory"},
        {"out", CLI_NEED, &out, "S.tsv", "i<TAB>j<TAB>s for retained pairs (- stdout)"},
        {"retained", CLI_STR, &retained, "ITEMS.tsv", "also write the retained item ids"},
    };
    const cli_cmd_t cmd = {"export-graph",
                           "--db DIR --out S.tsv",
                           "Dump S among retained items, each pair once, for `embed` or PyMDE.",
                           opts,
                           ATL_ARRAY_LEN(opts),
                           NULL,
                           0};
    int rc = cli_parse(&cmd, argc, argv, NULL, NULL);
    if (rc != 0)
        return cli_exit(rc);
    store_t *s;
    if (cli_store_open("export-graph", db, 1, &s) != 0)
        return CLI_EXIT_FAIL;
    cli_store_prefetch("export-graph", s, NULL, NULL);
    export_ctx_t x = {0};
    uint64_t *keys = NULL;
    uint32_t n = 0;
    rc = store_retained_rows(s, 0, export_row, &x, &keys, &n);
    store_close(s);
    if (rc != 0) {
        fprintf(stderr, "atlasctl export-graph: %s\n", atl_strerror(rc));
        return CLI_EXIT_FAIL;
    }
    rc = write_pairs(out, &x, keys);
    if (rc == 0 && retained)
        rc = write_retained(retained, keys, n);
    if (rc == 0)
        fprintf(stderr, "export-graph: %u retained items, %zu pairs\n", n, x.n);
    free(x.pi);
    free(x.pj);
    free(x.ps);
    free(keys);
    return rc == 0 ? CLI_EXIT_OK : CLI_EXIT_FAIL;
}
