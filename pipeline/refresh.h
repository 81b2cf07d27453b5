/*
 * refresh.h: from the store to a published snapshot (DESIGN §1, §5): retained graph T -> kNN ->
 * MDE (3-D) -> UMAP (2-D) -> export frame -> corpus -> atomic snapshot, then the new coordinates
 * and the consumed dirty marks in one store transaction.
 *
 * Incremental when it can be: a refresh_state_t kept between runs (the daemon keeps one) holds
 * the pruned rows of T and the kNN result, so a refresh re-reads only the rows of dirty items and
 * recomputes only the kNN rows that can have changed (see refresh.c). Warm starts come from the
 * coordinates stored in the store, so a restarted daemon or an offline rebuild continues from the
 * last published map. Runs on any thread; it touches nothing of the event loop.
 */
#ifndef ATL_PIPELINE_REFRESH_H
#define ATL_PIPELINE_REFRESH_H

#include <stddef.h>
#include <stdint.h>

#include "algo/atl.h"
#include "algo/frame.h"
#include "store/store.h"

typedef struct refresh_opts {
    const char *snapdir; /* where snapshots are published */
    unsigned keep;       /* snapshots to keep */
    uint64_t seed;
    int full;            /* forced rebuild: re-read every row and recompute every kNN row */
    int verify;          /* forced rebuild: recompute S from the profiles first, repair any drift */
    int cold;            /* ignore stored coordinates: random MDE start, PCA layout start */
    int if_dirty;        /* do nothing (ATL_ENOTFOUND) when no item is dirty and a map exists */
    double max_distance; /* kNN bound for a full kNN (<= 0: DESIGN §5 rule from T) */
    uint32_t top;    /* entries kept per row of T (0: GRAPH_TOP_DEFAULT, DESIGN §3); one value per
                      * state (tests use a small one, to make rows drop entries other rows keep) */
    int check_graph; /* testing aid: also build T from scratch; ATL_EDIFF if they differ */
    size_t verify_mem_bytes;  /* memory budget of the S recomputation (0: default) */
    int64_t lag_origin;       /* unix time of the oldest ingested change not yet published (0) */
    atl_progress_cb progress; /* stage names: verify, read, knn, mde, layout, publish */
    void *progress_ud;
} refresh_opts_t;

void refresh_opts_default(refresh_opts_t *o);

typedef struct refresh_result {
    char id[48]; /* the published snapshot */
    int full;    /* a forced rebuild (kind "rebuild"), else a refresh */
    uint32_t items;
    int incremental;        /* rows read and kNN rows recomputed selectively */
    uint32_t dirty;         /* dirty items consumed */
    uint64_t seq;           /* batch sequence the refresh reflects (at least) */
    uint64_t marks_cleared; /* dirty marks cleared */
    uint32_t rows_read;     /* rows of S read */
    uint32_t graph_rows;    /* rows of T rebuilt (the others carried over) */
    uint32_t knn_rows;      /* kNN rows recomputed */
    uint32_t mde_iterations;
    uint32_t layout_movable; /* items the 2-D layout moved (0: all) */
    double max_distance;     /* the kNN bound used */
    int warm;                /* started from stored coordinates */
    uint64_t events_applied;
    int64_t newest_update_time;
    double stability_median, stability_p95; /* unchanged-kNN items' movement / width; -1 */
    uint32_t stability_items;
    frame_t frame;         /* layout -> corpus coordinates of this map (algo/frame.h) */
    frame_extent_t extent; /* its 1st-99th percentile box in the frontend's default view */
    int reframed;          /* 1: a new frame (cold map, or the old one no longer fit) */
    int prefetched;        /* the store's file was read ahead (a whole-store walk) */
    store_prefetch_result_t prefetch; /* and how: store_prefetch() */
    double t_prefetch, t_verify, t_read, t_graph, t_knn, t_mde, t_layout, t_publish,
        t_total;     /* seconds */
    int verified;    /* verify holds an S verification */
    int verify_only; /* it only compared: differences were not repaired */
    store_rebuild_result_t verify;
} refresh_result_t;

/** In-memory state carried from one refresh to the next; opaque. */
typedef struct refresh_state refresh_state_t;

/** @return a new empty state, or NULL on OOM. */
refresh_state_t *refresh_state_new(void);

void refresh_state_free(refresh_state_t *st);

/**
 * One refresh. @p st may be NULL (everything is recomputed; warm starts still come from the
 * store). The store must be writable.
 * @return 0 and *r; ATL_ENOTFOUND with if_dirty when there was nothing to do; ATL_ECANCELED when
 *         the progress callback asked to stop; or an error with a message in @p err. On any
 *         failure the previous snapshot stays `latest` and no dirty mark is cleared.
 */
int refresh_run(store_t *s, refresh_state_t *st, const refresh_opts_t *o, refresh_result_t *r,
                char *err, size_t errlen);

/** refresh_result_json() flags */
enum refresh_json_flags {
    REFRESH_JSON_MANIFEST = 1, /* before publishing: no snapshot id, publish or total seconds */
};

/**
 * The one serialisation of a refresh_result_t, as a JSON object: kind, snapshot, items,
 * incremental, warm, dirty_items, rows_read, graph_rows, knn_rows, mde_iterations,
 * layout_movable, max_distance, batch_seq, events_applied, stability {unchanged_knn_items,
 * median, p95}, seconds {prefetch, verify, read, graph, knn, mde, layout, publish, total};
 * after a run that walked the whole store, prefetch {file_bytes, missing_bytes, read_bytes,
 * skipped, error}; after an S verification, verify {s_entries, s_diffs, stats_items,
 * stats_diffs, passes, repaired, first_diff}. The snapshot manifest's `refresh`, the daemon's
 * /status `last` and `last_rebuild`, and `atlasctl rebuild --offline --json` all print it.
 * @param[out] buf  at least REFRESH_JSON_MAX bytes.
 * @return the length written (< cap), or -ENOSPC.
 */
int refresh_result_json(const refresh_result_t *r, unsigned flags, char *buf, size_t cap);

#define REFRESH_JSON_MAX 2048

#endif
