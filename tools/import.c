/*
 * import.c: `atlasctl import`, backfill of hiscore/beatmap dumps straight into the store.
 *
 * Files are JSONL (one object per line) or CSV with a header naming the table's columns, read
 * by the reader `produce` shares (tools/dump.h: format detection, BOM, RFC 4180 quoting, header
 * checks, bad records by line). Every row goes through the daemon's own decoder. Into an empty
 * store the hiscore rows are bulk loaded (store_bulk_*: folded in memory, S computed from the final
 * profiles and appended in key order); otherwise, or with --no-bulk, rows are applied in large
 * batches (one write transaction each, no fsync until the end). Either way an import and a Kafka
 * consumer of the same rows reach the same state (digest-equal; a test). Metadata rows, skips and
 * rejects always go through ordinary batches.
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store/store.h"
#include "tools/cli.h"
#include "tools/dump.h"

#define MAX_REPORTED 10

typedef struct import {
    store_t *store;
    store_batch_t *batch;
    store_bulk_t *bulk; /* NULL: incremental batches */
    store_decode_opts_t dopts;
    uint64_t batch_size;
    unsigned threads; /* JSONL decoding threads besides the reader */
    uint64_t rows, valid, skipped, rejected, by_reason[STORE_REJECT_COUNT];
    unsigned reported;
    cli_progress_t prog;
    store_event_t ev;
} import_t;

static int flush(import_t *im)
{
    if (store_batch_len(im->batch) == 0 && im->rows == 0)
        return 0;
    int rc = store_batch_commit(im->store, im->batch);
    if (rc != 0) {
        fprintf(stderr, "atlasctl import: commit failed: %s\n", atl_strerror(rc));
        return rc;
    }
    store_batch_clear(im->batch);
    return 0;
}

static void reject(import_t *im, const char *file, uint64_t line, store_reject_t why,
                   const char *msg)
{
    im->rejected++;
    im->by_reason[why]++;
    store_batch_count_reject(im->batch, why);
    if (im->reported++ < MAX_REPORTED)
        fprintf(stderr, "%s:%" PRIu64 ": rejected (%s): %s\n", file, line, store_reject_name(why),
                msg);
}

static int accept_event(import_t *im)
{
    if (im->ev.kind == STORE_EVENT_HISCORE && im->ev.skip != STORE_SKIP_NONE)
        im->skipped++;
    else
        im->valid++;
    if (im->bulk && im->ev.kind == STORE_EVENT_HISCORE && im->ev.skip == STORE_SKIP_NONE)
        return store_bulk_add(im->bulk, &im->ev);
    if (store_batch_add(im->batch, &im->ev) != 0)
        return -ENOMEM;
    if (store_batch_len(im->batch) >= im->batch_size)
        return flush(im);
    return 0;
}

static int row_done(import_t *im, int rc, const char *file, uint64_t line, store_reject_t why,
                    const char *err)
{
    im->rows++;
    if (rc == ATL_EBADEVENT)
        reject(im, file, line, why, err);
    else if (rc != 0)
        return rc;
    else if ((rc = accept_event(im)) != 0)
        return rc;
    cli_progress_update(&im->prog, 0, "%" PRIu64 " rows, %.0f rows/s", im->rows,
                        (double)im->rows / (pipeline_now() - im->prog.start + 1e-9));
    return 0;
}

/*
 * JSONL is decoded on worker threads (the decoder is most of an import's CPU: ~25k instructions
 * a row through cJSON). The reader cuts the file into blocks of lines in a ring of NBLOCKS,
 * workers decode whichever block is ready, and the reader consumes the blocks in file order, so
 * rows are applied in exactly the order of the serial loop.
 */
#define BLOCK_LINES 4096
#define NBLOCKS     8

typedef struct dblock {
    char *text;
    size_t len, cap;
    size_t off[BLOCK_LINES];
    uint64_t lineno[BLOCK_LINES];
    int rc[BLOCK_LINES];
    store_reject_t why[BLOCK_LINES];
    char (*err)[256];
    store_event_t *ev;
    size_t n;
    int state; /* 0 free, 1 to decode, 3 decoding, 2 decoded */
} dblock_t;

typedef struct decoder {
    import_t *im;
    dblock_t blocks[NBLOCKS];
    pthread_mutex_t mu;
    pthread_cond_t cv;
    unsigned n_workers;
    int stop;
} decoder_t;

static void decode_block(decoder_t *d, dblock_t *b)
{
    for (size_t i = 0; i < b->n; i++) {
        size_t end = i + 1 < b->n ? b->off[i + 1] : b->len;
        b->why[i] = STORE_REJECT_NONE;
        b->rc[i] = store_event_decode(b->text + b->off[i], end - b->off[i], &d->im->dopts,
                                      &b->ev[i], &b->why[i], b->err[i], sizeof(b->err[i]));
    }
}

static void *decode_worker(void *arg)
{
    decoder_t *d = arg;
    pthread_mutex_lock(&d->mu);
    for (unsigned j = 0;;) {
        unsigned k = 0;
        while (k < NBLOCKS && d->blocks[(j + k) % NBLOCKS].state != 1)
            k++;
        if (k == NBLOCKS) {
            if (d->stop)
                break;
            pthread_cond_wait(&d->cv, &d->mu);
            continue;
        }
        j = (j + k) % NBLOCKS;
        d->blocks[j].state = 3; /* taken */
        pthread_mutex_unlock(&d->mu);
        decode_block(d, &d->blocks[j]);
        pthread_mutex_lock(&d->mu);
        d->blocks[j].state = 2;
        pthread_cond_broadcast(&d->cv);
    }
    pthread_mutex_unlock(&d->mu);
    return NULL;
}

/* Wait until block @p b is not being decoded. @return its state then (0 or 2). */
static int wait_block(decoder_t *d, dblock_t *b)
{
    pthread_mutex_lock(&d->mu);
    while (b->state == 1 || b->state == 3)
        pthread_cond_wait(&d->cv, &d->mu);
    int state = b->state;
    pthread_mutex_unlock(&d->mu);
    return state;
}

/* Block @p b's state to @p state, under the lock: the workers read every block's state under
 * it while they look for work (a write without it was a data race, found by TSan) */
static void set_state(decoder_t *d, dblock_t *b, int state)
{
    pthread_mutex_lock(&d->mu);
    b->state = state;
    if (state == 1)
        pthread_cond_broadcast(&d->cv);
    pthread_mutex_unlock(&d->mu);
}

/* Read up to BLOCK_LINES non-empty lines into @p b. @return 0 or -EIO. */
static int fill_block(dblock_t *b, dump_t *d)
{
    const char *line;
    size_t len;
    int rc = 0;
    b->n = 0;
    b->len = 0;
    while (b->n < BLOCK_LINES && (rc = dump_line_next(d, &line, &len)) == 1) {
        if (b->len + len > b->cap) {
            b->cap = (b->len + len) * 2;
            b->text = xrealloc(b->text, b->cap);
        }
        memcpy(b->text + b->len, line, len);
        b->off[b->n] = b->len;
        b->lineno[b->n++] = d->lineno;
        b->len += len;
    }
    return rc < 0 ? rc : 0;
}

static int consume_block(import_t *im, dblock_t *b, const char *file)
{
    int rc = 0;
    for (size_t i = 0; i < b->n && rc == 0; i++) {
        im->ev = b->ev[i]; /* accept_event() reads im->ev */
        rc = row_done(im, b->rc[i], file, b->lineno[i], b->why[i], b->err[i]);
    }
    return rc;
}

static int import_jsonl(import_t *im, dump_t *in)
{
    decoder_t d = {.im = im, .n_workers = im->threads};
    pthread_t th[NBLOCKS];
    const char *file = in->path;
    unsigned started = 0;
    int read_rc = 0;
    int rc = 0;
    pthread_mutex_init(&d.mu, NULL);
    pthread_cond_init(&d.cv, NULL);
    for (int j = 0; j < NBLOCKS; j++) {
        d.blocks[j].ev = xmalloc(BLOCK_LINES * sizeof(store_event_t));
        d.blocks[j].err = xmalloc(BLOCK_LINES * sizeof(*d.blocks[j].err));
    }
    for (; started < d.n_workers; started++) {
        if (pthread_create(&th[started], NULL, decode_worker, &d) != 0)
            break;
    }
    d.n_workers = started; /* 0: decode on this thread */
    for (unsigned j = 0; rc == 0; j = (j + 1) % NBLOCKS) {
        dblock_t *b = &d.blocks[j];
        if (wait_block(&d, b) == 2 && (rc = consume_block(im, b, file)) != 0)
            break;
        set_state(&d, b, 0);
        if ((read_rc = fill_block(b, in)) != 0)
            b->n = 0; /* a read error ends the file like its end: the blocks read are applied */
        if (b->n == 0) {
            /* drain: consume the blocks still in flight, in order */
            for (unsigned k = (j + 1) % NBLOCKS; rc == 0 && k != j; k = (k + 1) % NBLOCKS) {
                dblock_t *c = &d.blocks[k];
                if (wait_block(&d, c) == 2)
                    rc = consume_block(im, c, file);
                set_state(&d, c, 0);
            }
            break;
        }
        if (d.n_workers == 0) {
            decode_block(&d, b);
            b->state = 2; /* no worker reads it */
            continue;
        }
        set_state(&d, b, 1);
    }
    pthread_mutex_lock(&d.mu);
    d.stop = 1;
    pthread_cond_broadcast(&d.cv);
    pthread_mutex_unlock(&d.mu);
    for (unsigned i = 0; i < started; i++)
        pthread_join(th[i], NULL);
    for (int j = 0; j < NBLOCKS; j++) {
        free(d.blocks[j].text);
        free(d.blocks[j].ev);
        free(d.blocks[j].err);
    }
    pthread_mutex_destroy(&d.mu);
    pthread_cond_destroy(&d.cv);
    return rc != 0 ? rc : read_rc;
}

/* A CSV file through the shared reader (tools/dump.h): the header, then every record; a record
 * the reader cannot take is a rejected row like any other, by its line. */
static int import_csv(import_t *im, dump_t *d)
{
    char err[512];
    int rc = dump_csv_header(d, err, sizeof(err));
    if (rc == ATL_EBADEVENT)
        fprintf(stderr, "%s:%s\n", d->path, err);
    if (rc != 0 || d->n_names == 0)
        return rc; /* an error, or an empty file */
    while (rc == 0) {
        int got = dump_csv_next(d, err, sizeof(err));
        store_reject_t why = STORE_REJECT_NOT_OBJECT;
        int drc = got;
        if (got == 0 || got == -EIO)
            return got;
        if (got == 1)
            drc = store_event_decode_fields((const char *const *)d->names,
                                            (const char *const *)d->cells, (size_t)d->n_names,
                                            &im->dopts, &im->ev, &why, err, sizeof(err));
        rc = row_done(im, drc, d->path, d->record_line, why, err);
    }
    return rc;
}

static int import_file(import_t *im, const char *path)
{
    dump_t d;
    char err[512];
    int rc = dump_open(&d, path, err, sizeof(err));
    if (rc != 0) {
        fprintf(stderr, "atlasctl import: %s\n", err);
        return rc;
    }
    rc = d.format == DUMP_CSV ? import_csv(im, &d) : import_jsonl(im, &d);
    if (rc == -EIO)
        fprintf(stderr, "atlasctl import: read error on %s\n", path);
    dump_close(&d);
    return rc;
}

static void print_summary(const import_t *im, const store_counters_t *before,
                          const store_counters_t *after, const store_stats_t *st, double secs,
                          int json)
{
    uint64_t applied = after->events_applied - before->events_applied;
    uint64_t changed = after->events_changed - before->events_changed;
    uint64_t mode =
        after->events_skipped[STORE_SKIP_MODE] - before->events_skipped[STORE_SKIP_MODE];
    uint64_t lowpp =
        after->events_skipped[STORE_SKIP_LOW_PP] - before->events_skipped[STORE_SKIP_LOW_PP];
    uint64_t meta = after->metadata_applied - before->metadata_applied;
    if (json) {
        printf("{\"rows\":%" PRIu64 ",\"applied\":%" PRIu64 ",\"changed\":%" PRIu64
               ",\"skipped\":%" PRIu64 ",\"rejected\":%" PRIu64 ",\"metadata\":%" PRIu64
               ",\"seconds\":%.3f,\"rows_per_s\":%.0f,\"bytes\":%" PRIu64 ",\"rejected_by\":{",
               im->rows, applied, changed, im->skipped, im->rejected, meta, secs,
               (double)im->rows / (secs > 0 ? secs : 1), st->bytes);
        int first = 1;
        for (int i = 1; i < STORE_REJECT_COUNT; i++)
            if (im->by_reason[i]) {
                printf("%s\"%s\":%" PRIu64, first ? "" : ",", store_reject_name(i),
                       im->by_reason[i]);
                first = 0;
            }
        printf("}}\n");
        return;
    }
    printf("rows read      %" PRIu64 "\n", im->rows);
    printf("applied        %" PRIu64 " (changed a profile: %" PRIu64 ")\n", applied, changed);
    printf("metadata       %" PRIu64 "\n", meta);
    printf("skipped        %" PRIu64 " (mode != 0: %" PRIu64 ", pp below minimum: %" PRIu64 ")\n",
           im->skipped, mode, lowpp);
    printf("rejected       %" PRIu64 "\n", im->rejected);
    for (int i = 1; i < STORE_REJECT_COUNT; i++)
        if (im->by_reason[i])
            printf("  %-13s %" PRIu64 "\n", store_reject_name(i), im->by_reason[i]);
    printf("time           %.2f s (%.0f rows/s)\n", secs, (double)im->rows / (secs > 0 ? secs : 1));
    printf("store          %" PRIu64 " users, %" PRIu64 " items, %" PRIu64 " pairs, %.1f MiB\n",
           st->users, st->items, st->pairs, (double)st->bytes / 1048576.0);
}

/* Lock the store (a running daemon consumes into it: its offsets and ours would collide) and
 * open it for a bulk load (no sync per transaction: one store_sync() at the end). Prints why
 * not. */
static int open_store(const char *db, int *lock, store_t **out)
{
    store_opts_t so;
    store_opts_default(&so);
    so.no_sync = 1;
    char lerr[1024];
    int rc;
    /* no store without its lock: a directory that cannot be made is an error, not a skip */
    if ((rc = cli_mkdir_p(db)) != 0) {
        fprintf(stderr, "atlasctl import: cannot create %s: %s\n", db, atl_strerror(rc));
        return rc;
    }
    if ((rc = store_lock(db, lock, lerr, sizeof(lerr))) != 0) {
        fprintf(stderr, "atlasctl import: %s\n", lerr);
        return rc;
    }
    if ((rc = store_open(db, &so, out)) != 0) {
        char why[512];
        store_open_strerror(db, rc, why, sizeof(why));
        fprintf(stderr, "atlasctl import: cannot open store %s: %s\n", db, why);
        store_unlock(*lock);
        *lock = -1;
    }
    return rc;
}

int cmd_import(int argc, char **argv)
{
    const char *db = NULL;
    uint64_t batch_size = 200000, threads = 2, max_future = 86400;
    double min_pp = 75;
    int json = 0, no_bulk = 0;
    const cli_opt_t opts[] = {
        {"db", CLI_NEED, &db, "DIR", "store directory (created if missing)"},
        {"batch", CLI_U64, &batch_size, "N", "events per write transaction (default 200000)"},
        {"min-pp", CLI_F64, &min_pp, "PP", "skip hiscores below this pp (default 75)"},
        {"max-future-seconds", CLI_U64, &max_future, "S",
         "hiscores dated further past the wall clock are rejected (bad_time), as atlasd does "
         "(default 86400)"},
        {"json", CLI_FLAG, &json, NULL, "print the summary as JSON"},
        {"no-bulk", CLI_FLAG, &no_bulk, NULL,
         "apply hiscores in batches even into an empty store (default: bulk load it)"},
        {"threads", CLI_U64, &threads, "N",
         "threads decoding JSONL and computing S in a bulk load (default 2; 0: none)"},
    };
    /* min-pp: the decoder's pp range is 0..1e5 */
    /* max-future-seconds: atlasd's range (daemon/config.c) */
    const cli_range_t ranges[] = {{"batch", 1, 1e9},
                                  {"min-pp", 0, 1e5},
                                  {"max-future-seconds", 0, 315360000},
                                  {"threads", 0, 64}};
    const cli_cmd_t cmd = {"import",
                           "--db DIR FILE... (JSONL or CSV; - for stdin)",
                           "Backfill hiscore and beatmap rows from dumps straight into the store.",
                           opts,
                           ATL_ARRAY_LEN(opts),
                           ranges,
                           ATL_ARRAY_LEN(ranges)};
    const char **files;
    size_t n_files;
    int rc = cli_parse(&cmd, argc, argv, &files, &n_files);
    if (rc != 0)
        return cli_exit(rc);
    if (n_files == 0) {
        fprintf(stderr, "atlasctl import: no input files (see --help)\n");
        free(files);
        return CLI_EXIT_USAGE;
    }
    import_t im = {.batch_size = batch_size,
                   .threads = threads > NBLOCKS ? NBLOCKS : (unsigned)threads};
    store_decode_opts_default(&im.dopts);
    im.dopts.min_pp = min_pp;
    im.dopts.max_future_s = (int64_t)max_future;
    int lock = -1;
    if ((rc = open_store(db, &lock, &im.store)) != 0) {
        free(files);
        return CLI_EXIT_FAIL;
    }
    store_counters_t before, after;
    store_stats_t st;
    int empty = 0;
    if ((rc = store_batch_new(&im.batch)) != 0 || (rc = store_counters_get(im.store, &before)))
        goto out;
    if ((rc = store_bulk_empty(im.store, &empty)) == ATL_ECORRUPT)
        fprintf(stderr,
                "atlasctl import: %s holds S rows but no items: a bulk import was "
                "interrupted; delete the store and import again\n",
                db);
    if (rc != 0)
        goto out;
    if (empty && !no_bulk && (rc = store_bulk_new(&im.bulk)) != 0)
        goto out;
    cli_progress_init(&im.prog, "import");
    for (size_t i = 0; i < n_files && rc == 0; i++)
        rc = import_file(&im, files[i]);
    if (rc == 0)
        rc = flush(&im);
    if (rc == 0 && im.bulk) {
        store_bulk_opts_t bo;
        store_bulk_opts_default(&bo);
        bo.n_threads = threads < 1 ? 1 : (unsigned)threads;
        bo.progress = cli_progress_cb;
        bo.progress_ud = &im.prog;
        cli_progress_update(&im.prog, 1, "%" PRIu64 " rows read in %.1f s; bulk load", im.rows,
                            pipeline_now() - im.prog.start);
        rc = store_bulk_commit(im.store, im.bulk, &bo, NULL);
    }
    if (rc == 0 && (rc = store_sync(im.store)) == 0 &&
        (rc = store_counters_get(im.store, &after)) == 0 &&
        (rc = store_stats_get(im.store, 0, &st)) == 0) {
        cli_progress_done(&im.prog);
        print_summary(&im, &before, &after, &st, pipeline_now() - im.prog.start, json);
    }
out:
    if (rc != 0) /* a file that cannot be imported (a CSV header) has said why already */
        fprintf(stderr, "atlasctl import: failed: %s\n",
                rc == ATL_EBADEVENT ? "a file cannot be imported" : atl_strerror(rc));
    store_batch_free(im.batch);
    store_bulk_free(im.bulk);
    store_close(im.store);
    store_unlock(lock);
    free(files);
    return rc == 0 ? CLI_EXIT_OK : CLI_EXIT_FAIL;
}
