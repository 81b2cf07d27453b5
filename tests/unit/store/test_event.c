/* Event decoding: the valid forms of DESIGN §2 and one test per rejection class. */
#include <errno.h>

#include "algo/item.h"
#include "store/internal.h"
#include "store/store.h"
#include "tests/check.h"

static store_decode_opts_t opts;

static store_event_t decode_ok(const char *json)
{
    store_event_t ev;
    char err[256] = "";
    int rc = store_event_decode(json, strlen(json), &opts, &ev, NULL, err, sizeof(err));
    if (rc != 0)
        fprintf(stderr, "unexpected rejection of %s: %s\n", json, err);
    CHECK_EQ(rc, 0);
    return ev;
}

static void rejects(const char *json, size_t len, store_reject_t want, const char *needle)
{
    store_event_t ev;
    store_reject_t why = STORE_REJECT_NONE;
    char err[256] = "";
    CHECK_EQ(store_event_decode(json, len, &opts, &ev, &why, err, sizeof(err)), ATL_EBADEVENT);
    if (why != want || !strstr(err, needle)) {
        fprintf(stderr, "input %.*s: reason %s (%s), wanted %s containing \"%s\"\n", (int)len, json,
                store_reject_name(why), err, store_reject_name(want), needle);
        abort();
    }
}

#define REJECTS(json, want, needle) rejects(json, strlen(json), want, needle)

/* Line @p n (0-based) of a file of captured messages in tests/data; static buffer. */
static const char *data_line(const char *file, int n)
{
    static char line[8192];
    char path[1024];
    snprintf(path, sizeof(path), "%s/%s", ATL_TEST_DATA, file);
    FILE *f = fopen(path, "r");
    if (!f) {
        fprintf(stderr, "cannot open %s\n", path);
        abort();
    }
    for (int i = 0; i <= n; i++)
        if (!fgets(line, sizeof(line), f)) {
            fprintf(stderr, "%s has no line %d\n", path, n + 1);
            abort();
        }
    fclose(f);
    line[strcspn(line, "\n")] = '\0';
    return line;
}

/*
 * What the CDC path really emits (README "CDC"), captured from MariaDB 10.11 -> Debezium 3.6.1
 * MySQL connector -> Kafka Connect 4.1.1 JsonConverter (schemas off) -> Kafka:
 * cdc_unwrapped.jsonl after ExtractNewRecordState (an INSERT, the same row after ON DUPLICATE
 * KEY UPDATE, a snapshot row); cdc_envelope.jsonl without it (create, update, delete).
 */
static void test_cdc_messages(void)
{
    store_event_t ev = decode_ok(data_line("cdc_unwrapped.jsonl", 0));
    CHECK_EQ(ev.kind, STORE_EVENT_HISCORE);
    CHECK_EQ(ev.u.hiscore.user, 2);
    CHECK_EQ(ev.u.hiscore.beatmap_id, 856861);
    CHECK_EQ(ev.u.hiscore.mods_legacy, 72);
    CHECK(ev.u.hiscore.pp == 312.5f);
    CHECK_EQ(ev.u.hiscore.update_time, 1796167220); /* DATETIME as epoch ms, UTC */
    ev = decode_ok(data_line("cdc_unwrapped.jsonl", 1));
    CHECK(ev.u.hiscore.pp == 320.25f);
    CHECK_EQ(ev.u.hiscore.update_time, 1796167222);
    ev = decode_ok(data_line("cdc_unwrapped.jsonl", 2));
    CHECK(ev.u.hiscore.pp == 32.605f);
    CHECK_EQ(ev.skip, STORE_SKIP_LOW_PP);
    /* Debezium envelopes: the row is "after" (create, update), "before" for a delete */
    ev = decode_ok(data_line("cdc_envelope.jsonl", 0));
    CHECK_EQ(ev.u.hiscore.user, 3);
    CHECK(ev.u.hiscore.pp == 150.75f);
    CHECK_EQ(ev.u.hiscore.update_time, 1796167265);
    ev = decode_ok(data_line("cdc_envelope.jsonl", 1));
    CHECK(ev.u.hiscore.pp == 160.5f);
    CHECK_EQ(ev.u.hiscore.update_time, 1796167267);
    ev = decode_ok(data_line("cdc_envelope.jsonl", 2));
    CHECK(ev.u.hiscore.pp == 160.5f);
    CHECK_EQ(ev.u.hiscore.update_time, 1796167267);
    /* the JsonConverter's schema wrapper around a row */
    char wrapped[9000];
    snprintf(wrapped, sizeof(wrapped), "{\"schema\": {\"type\": \"struct\"}, \"payload\": %s}",
             data_line("cdc_unwrapped.jsonl", 1));
    ev = decode_ok(wrapped);
    CHECK(ev.u.hiscore.pp == 320.25f);
    REJECTS("{\"before\": null, \"after\": null, \"source\": {}, \"op\": \"d\"}",
            STORE_REJECT_UNKNOWN_KIND, "without a row image");
    REJECTS("{\"user\":2,\"beatmap_id\":1,\"pp\":100,\"mods\":0,\"mode\":0,\"update_time\":-1000}",
            STORE_REJECT_BAD_TIME, "epoch milliseconds");
    REJECTS("{\"user\":2,\"beatmap_id\":1,\"pp\":100,\"mods\":0,\"mode\":0,\"update_time\":1.5}",
            STORE_REJECT_BAD_TIME, "epoch milliseconds");
    REJECTS("{\"user\":2,\"beatmap_id\":1,\"pp\":100,\"mods\":0,\"mode\":0,\"update_time\":true}",
            STORE_REJECT_WRONG_TYPE, "time string or epoch milliseconds");
}

/* An allocator for the decoder's cJSON hooks that fails from the n-th call on. */
static long alloc_left;

static void *failing_malloc(size_t n)
{
    return alloc_left-- > 0 ? malloc(n) : NULL;
}

/* Out of memory while decoding a valid event is -ENOMEM at every allocation (the caller stalls),
 * never a rejection (issue 10.2: it was not_json, dead-lettered, its offset advanced). */
static void test_oom(void)
{
    const char *json = "{\"user\": 2, \"beatmap_id\": 856861, \"pp\": 312.5, \"mods\": 72,"
                       " \"rank\": \"SH\", \"update_time\": \"2024-05-01T12:03:10Z\", \"mode\": 0}";
    int failures = 0;
    for (long n = 0;; n++) {
        store_event_t ev;
        store_reject_t why = STORE_REJECT_NONE;
        char err[256] = "";
        alloc_left = n;
        store__json_alloc_set(failing_malloc);
        int rc = store_event_decode(json, strlen(json), &opts, &ev, &why, err, sizeof(err));
        store__json_alloc_set(NULL);
        if (rc == 0)
            break;
        if (rc != -ENOMEM)
            fprintf(stderr, "allocation %ld failed: rc %d reason %s (%s)\n", n, rc,
                    store_reject_name(why), err);
        CHECK_EQ(rc, -ENOMEM);
        CHECK_EQ(why, STORE_REJECT_NONE);
        failures++;
    }
    CHECK(failures > 3);
    /* a real syntax error is still not_json with the hooks in place */
    store_event_t ev;
    store_reject_t why;
    CHECK_EQ(store_event_decode("{\"user\":", 8, &opts, &ev, &why, NULL, 0), ATL_EBADEVENT);
    CHECK_EQ(why, STORE_REJECT_NOT_JSON);
}

/* A far-future update_time would pin its profile entry forever (issue 10.3). */
static void test_future(void)
{
    REJECTS("{\"user\": 2, \"beatmap_id\": 1, \"pp\": 300, \"mods\": 0, \"mode\": 0,"
            " \"update_time\": \"9999-12-31 23:59:59\"}",
            STORE_REJECT_BAD_TIME, "in the future");
    store_decode_opts_t saved = opts;
    opts.now_s = 1714564990; /* 2024-05-01T12:03:10Z: the broker's timestamp */
    REJECTS("{\"user\": 2, \"beatmap_id\": 1, \"pp\": 300, \"mods\": 0, \"mode\": 0,"
            " \"update_time\": \"2024-05-02T12:03:11Z\"}",
            STORE_REJECT_BAD_TIME, "in the future (tolerance 86400 s)");
    store_event_t ev;
    const char *ok = "{\"user\": 2, \"beatmap_id\": 1, \"pp\": 300, \"mods\": 0, \"mode\": 0,"
                     " \"update_time\": \"2024-05-02T12:03:10Z\"}";
    E(store_event_decode(ok, strlen(ok), &opts, &ev, NULL, NULL, 0)); /* exactly 1 day: kept */
    opts.max_future_s = 3600;
    CHECK_EQ(store_event_decode(ok, strlen(ok), &opts, &ev, NULL, NULL, 0), ATL_EBADEVENT);
    opts = saved;
}

/* Rows of each kind as osu!track writes them, for the tests below. */
#define HISCORE_ROW                                                                                \
    "{\"user\":2,\"beatmap_id\":856861,\"pp\":312.5,\"mods\":72,\"mode\":0,"                       \
    "\"update_time\":\"2024-05-01 12:03:10\"}"
#define BEATMAP_ROW                                                                                \
    "{\"beatmap_id\":129891,\"beatmapset_id\":39804,\"title\":\"FREEDOM DiVE\",\"artist\":\"xi\"," \
    "\"version\":\"FOUR DIMENSIONS\",\"creator\":\"Nakagawa-Kanon\",\"difficultyrating\":7.05,"    \
    "\"mode\":0}"
#define DIFFICULTY_ROW "{\"score_id\":\"856861_DT\",\"stars\":6.81,\"aim\":3.2,\"speed\":2.9}"

/*
 * The source topic decides the kind, not the keys present: a hiscore row without "user" was
 * decoded as a beatmap row and overwrote that beatmap's stored metadata with empty fields, and
 * any object with "user" on the beatmaps topic was applied as a play.
 */
static void test_topic(void)
{
    const char *no_user = "{\"user_id\":5,\"beatmap_id\":856861,\"pp\":300.5,\"mods\":64,"
                          "\"mode\":0,\"update_time\":\"2024-01-02 00:00:00\"}";
    store_decode_opts_t saved = opts;
    CHECK_EQ(opts.topic, STORE_TOPIC_ANY); /* the default: file import, kinds mix */

    opts.topic = STORE_TOPIC_HISCORES;
    REJECTS(no_user, STORE_REJECT_MISSING_FIELD, "\"user\" is missing");
    REJECTS(BEATMAP_ROW, STORE_REJECT_MISSING_FIELD, "\"user\" is missing");
    REJECTS(DIFFICULTY_ROW, STORE_REJECT_MISSING_FIELD, "\"user\" is missing");
    CHECK_EQ(decode_ok(HISCORE_ROW).kind, STORE_EVENT_HISCORE);
    /* the row inside a Debezium envelope is held to the same rule */
    REJECTS("{\"before\":null,\"after\":" BEATMAP_ROW ",\"source\":{},\"op\":\"c\"}",
            STORE_REJECT_MISSING_FIELD, "\"user\" is missing");

    opts.topic = STORE_TOPIC_BEATMAPS;
    REJECTS(HISCORE_ROW, STORE_REJECT_UNKNOWN_KIND, "hiscore row on the beatmaps topic");
    REJECTS("{\"user\":2,\"beatmap_id\":1}", STORE_REJECT_UNKNOWN_KIND,
            "hiscore row on the beatmaps topic");
    REJECTS("{\"before\":null,\"after\":" HISCORE_ROW ",\"source\":{},\"op\":\"c\"}",
            STORE_REJECT_UNKNOWN_KIND, "hiscore row on the beatmaps topic");
    REJECTS(no_user, STORE_REJECT_MISSING_FIELD, "\"beatmapset_id\" is missing");
    REJECTS("{\"hello\":1}", STORE_REJECT_UNKNOWN_KIND, "neither");
    CHECK_EQ(decode_ok(BEATMAP_ROW).kind, STORE_EVENT_BEATMAP);
    CHECK_EQ(decode_ok(DIFFICULTY_ROW).kind, STORE_EVENT_DIFFICULTY);

    /* CSV cells: the same rules */
    const char *names[] = {"beatmap_id", "beatmapset_id", "title"};
    const char *vals[] = {"129891", "39804", "FREEDOM DiVE"};
    store_event_t ev;
    store_reject_t why = STORE_REJECT_NONE;
    opts.topic = STORE_TOPIC_HISCORES;
    CHECK_EQ(store_event_decode_fields(names, vals, 3, &opts, &ev, &why, NULL, 0), ATL_EBADEVENT);
    CHECK_EQ(why, STORE_REJECT_MISSING_FIELD);

    /* a topic that is none of the enum is the caller's bug, not a bad message */
    opts.topic = (store_topic_t)7;
    CHECK_EQ(store_event_decode(HISCORE_ROW, strlen(HISCORE_ROW), &opts, &ev, NULL, NULL, 0),
             -EINVAL);
    opts = saved;
}

/*
 * Applying a beatmap row replaces the whole stored record, so on every topic a row must carry
 * beatmapset_id and title: one without them would wipe them (and a stray hiscore row without
 * "user" is such a row when the topic does not tell).
 */
static void test_beatmap_required(void)
{
    REJECTS("{\"user_id\":5,\"beatmap_id\":856861,\"pp\":300.5,\"mods\":64,\"mode\":0,"
            "\"update_time\":\"2024-01-02 00:00:00\"}",
            STORE_REJECT_MISSING_FIELD, "\"beatmapset_id\" is missing");
    REJECTS("{\"beatmap_id\":129891,\"title\":\"FREEDOM DiVE\"}", STORE_REJECT_MISSING_FIELD,
            "\"beatmapset_id\" is missing");
    REJECTS("{\"beatmap_id\":129891,\"beatmapset_id\":39804}", STORE_REJECT_MISSING_FIELD,
            "\"title\" is missing");
    REJECTS("{\"beatmap_id\":129891,\"beatmapset_id\":39804,\"title\":null}",
            STORE_REJECT_MISSING_FIELD, "\"title\" is missing");
    const char *names[] = {"beatmap_id", "beatmapset_id", "title"};
    const char *vals[] = {"129891", "\\N", "FREEDOM DiVE"};
    store_event_t ev;
    store_reject_t why = STORE_REJECT_NONE;
    CHECK_EQ(store_event_decode_fields(names, vals, 3, &opts, &ev, &why, NULL, 0), ATL_EBADEVENT);
    CHECK_EQ(why, STORE_REJECT_MISSING_FIELD);
    ev = decode_ok("{\"beatmap_id\":129891,\"beatmapset_id\":39804,\"title\":\"FREEDOM DiVE\"}");
    CHECK_EQ(ev.kind, STORE_EVENT_BEATMAP);
    CHECK_EQ(ev.u.beatmap.beatmapset_id, 39804);
}

/*
 * The keys of a change-data-capture wrapper or envelope decide which object is the row, so like
 * the row's own keys they must be unique: first-wins and last-wins readers would apply
 * different rows ("after" twice), or a delete as a create ("op" as "c" and then "d").
 */
static void test_cdc_duplicates(void)
{
#define ROW2                                                                                       \
    "{\"user\":3,\"beatmap_id\":1,\"pp\":150,\"mods\":0,\"mode\":0,"                               \
    "\"update_time\":\"2024-05-01 12:03:10\"}"
    REJECTS("{\"before\":null,\"after\":" HISCORE_ROW ",\"after\":" ROW2
            ",\"source\":{},\"op\":\"c\"}",
            STORE_REJECT_DUPLICATE_KEY, "\"after\" appears twice");
    REJECTS("{\"before\":" HISCORE_ROW ",\"after\":" ROW2 ",\"source\":{},\"op\":\"c\","
            "\"op\":\"d\"}",
            STORE_REJECT_DUPLICATE_KEY, "\"op\" appears twice");
    REJECTS("{\"before\":" HISCORE_ROW ",\"before\":" ROW2 ",\"after\":null,\"source\":{},"
            "\"op\":\"d\"}",
            STORE_REJECT_DUPLICATE_KEY, "\"before\" appears twice");
    REJECTS("{\"before\":null,\"after\":" HISCORE_ROW ",\"source\":{},\"source\":{},"
            "\"op\":\"c\"}",
            STORE_REJECT_DUPLICATE_KEY, "\"source\" appears twice");
    REJECTS("{\"schema\":{},\"payload\":" HISCORE_ROW ",\"payload\":" ROW2 "}",
            STORE_REJECT_DUPLICATE_KEY, "\"payload\" appears twice");
    REJECTS("{\"schema\":{},\"schema\":{},\"payload\":" HISCORE_ROW "}", STORE_REJECT_DUPLICATE_KEY,
            "\"schema\" appears twice");
    /* an envelope inside the schema wrapper */
    REJECTS("{\"schema\":{},\"payload\":{\"before\":" HISCORE_ROW ",\"after\":" ROW2
            ",\"source\":{},\"op\":\"c\",\"op\":\"d\"}}",
            STORE_REJECT_DUPLICATE_KEY, "\"op\" appears twice");
    /* each key once: still fine */
    CHECK_EQ(decode_ok("{\"schema\":{},\"payload\":{\"before\":" HISCORE_ROW ",\"after\":" ROW2
                       ",\"source\":{},\"op\":\"d\"}}")
                 .u.hiscore.user,
             2);
#undef ROW2
}

/*
 * cJSON decodes \u0000 into a NUL byte and everything after it was lost to strlen, so a value
 * with junk after an escaped NUL passed as the value before it. Keys are strings too. An escaped
 * backslash followed by "u0000" is the six characters \u0000, not a NUL.
 */
static void test_escaped_nul(void)
{
    REJECTS("{\"score_id\":\"856861_DT\\u0000junk\",\"stars\":6.81}", STORE_REJECT_BAD_VALUE,
            "\\u0000");
    REJECTS("{\"user\":1,\"beatmap_id\":5,\"pp\":100,\"mods\":0,\"mode\":0,"
            "\"update_time\":\"2024-01-01 00:00:00\\u0000garbage\"}",
            STORE_REJECT_BAD_VALUE, "\\u0000");
    REJECTS("{\"user\\u0000x\":1,\"beatmap_id\":5,\"pp\":100,\"mods\":0,\"mode\":0,"
            "\"update_time\":\"2024-01-01 00:00:00\"}",
            STORE_REJECT_BAD_VALUE, "\\u0000");
    REJECTS("{\"beatmap_id\":1,\"beatmapset_id\":2,\"title\":\"\\u0000\"}", STORE_REJECT_BAD_VALUE,
            "byte 43");
    REJECTS("{\"beatmap_id\":1,\"beatmapset_id\":2,\"title\":\"a\\\\\\u0000\"}",
            STORE_REJECT_BAD_VALUE, "\\u0000"); /* \\ then \u0000 */
    /* \\u0000 is a backslash and "u0000"; "\"" inside a string does not end it */
    store_event_t ev = decode_ok("{\"beatmap_id\":1,\"beatmapset_id\":2,"
                                 "\"title\":\"a\\\\u0000b\",\"artist\":\"\\\"\\\\u0000\"}");
    CHECK_EQ(ev.u.beatmap.title.len, 8);
    CHECK(memcmp(ev.strings + ev.u.beatmap.title.off, "a\\u0000b", 8) == 0);
    CHECK_EQ(ev.u.beatmap.artist.len, 7);
    /* other escapes still decode */
    ev = decode_ok("{\"beatmap_id\":1,\"beatmapset_id\":2,\"title\":\"\\u0041\\u00e9\"}");
    CHECK_EQ(ev.u.beatmap.title.len, 3);
    /* outside a string it is no string's NUL: cJSON says what it is */
    REJECTS("{\"beatmap_id\":1,\"beatmapset_id\":2,\"title\":\"t\"}\\u0000", STORE_REJECT_NOT_JSON,
            "trailing");
}

int main(void)
{
    store_decode_opts_default(&opts);
    test_oom();
    test_future();
    int64_t t;
    test_cdc_messages();
    test_topic();
    test_beatmap_required();
    test_cdc_duplicates();
    test_escaped_nul();

    store_event_t ev = decode_ok(
        "{\"user\": 2, \"beatmap_id\": 856861, \"score\": 12345678, \"pp\": 312.5, \"mods\": 72,"
        " \"rank\": \"SH\", \"score_time\": \"2024-05-01T12:00:00Z\","
        " \"update_time\": \"2024-05-01T12:03:10Z\", \"mode\": 0, \"is_classic\": 1}");
    CHECK_EQ(ev.kind, STORE_EVENT_HISCORE);
    CHECK_EQ(ev.skip, STORE_SKIP_NONE);
    CHECK_EQ(ev.u.hiscore.user, 2);
    CHECK_EQ(ev.u.hiscore.beatmap_id, 856861);
    CHECK_EQ(item_mods_from_legacy(ev.u.hiscore.mods_legacy), ITEM_MOD_DT);
    CHECK_EQ(ev.u.hiscore.update_time, 1714564990);
    CHECK(ev.u.hiscore.pp == 312.5f);

    E(store_time_parse("2024-05-01 12:03:10", &t)); /* MySQL DATETIME, UTC */
    CHECK_EQ(t, 1714564990);
    E(store_time_parse("2024-05-01T14:03:10.250+02:00", &t));
    CHECK_EQ(t, 1714564990);
    E(store_time_parse("2024-02-29T00:00:00Z", &t));
    CHECK(store_time_parse("2023-02-29T00:00:00Z", &t) != 0);
    CHECK(store_time_parse("2024-05-01T12:03", &t) != 0);
    CHECK(store_time_parse("2024-05-01T12:03:10Zjunk", &t) != 0);

    /* valid but skipped: other modes and low pp; unknown fields ignored */
    ev = decode_ok("{\"user\":1,\"beatmap_id\":5,\"pp\":300,\"mods\":0,\"mode\":3,"
                   "\"update_time\":\"2024-01-01 00:00:00\",\"extra\":[1,2]}");
    CHECK_EQ(ev.skip, STORE_SKIP_MODE);
    ev = decode_ok("{\"user\":1,\"beatmap_id\":5,\"pp\":74.9,\"mods\":0,\"mode\":0,"
                   "\"update_time\":\"2024-01-01 00:00:00\"}");
    CHECK_EQ(ev.skip, STORE_SKIP_LOW_PP);

    ev = decode_ok(
        "{\"beatmap_id\":129891,\"beatmapset_id\":39804,\"title\":\"FREEDOM DiVE\","
        "\"artist\":\"xi\",\"version\":\"FOUR DIMENSIONS\",\"creator\":\"Nakagawa-Kanon\","
        "\"bpm\":222,\"total_length\":267,\"hit_length\":257,\"diff_size\":4,"
        "\"diff_overall\":8,\"diff_approach\":9,\"diff_drain\":6,"
        "\"difficultyrating\":7.05,\"approved_date\":\"2012-08-21 14:31:45\","
        "\"last_update\":null,\"mode\":0}");
    CHECK_EQ(ev.kind, STORE_EVENT_BEATMAP);
    CHECK_EQ(ev.u.beatmap.title.len, 12);
    CHECK(memcmp(ev.strings + ev.u.beatmap.title.off, "FREEDOM DiVE", 12) == 0);
    CHECK_EQ(ev.u.beatmap.last_update, 0);

    ev = decode_ok("{\"score_id\": \"856861_DT\", \"stars\": 6.81, \"aim\": 3.2, \"speed\": 2.9}");
    CHECK_EQ(ev.kind, STORE_EVENT_DIFFICULTY);
    CHECK_EQ(ev.u.difficulty.item, item_key_make(856861, ITEM_MOD_DT));

    const char *ok_tail = ",\"mods\":0,\"mode\":0,\"update_time\":\"2024-01-01 00:00:00\"}";
    char buf[70000];

    REJECTS("this is not json", STORE_REJECT_NOT_JSON, "not JSON");
    REJECTS("{\"user\":1,", STORE_REJECT_NOT_JSON, "not JSON");
    REJECTS("{\"user\":1} {}", STORE_REJECT_NOT_JSON, "trailing");
    REJECTS("[1,2,3]", STORE_REJECT_NOT_OBJECT, "not an object");
    REJECTS("{\"hello\":1}", STORE_REJECT_UNKNOWN_KIND, "none of");
    REJECTS("{\"user\":1,\"pp\":100,\"mods\":0,\"mode\":0,\"update_time\":\"2024-01-01 00:00:00\"}",
            STORE_REJECT_MISSING_FIELD, "\"beatmap_id\" is missing");
    REJECTS("{\"user\":1,\"beatmap_id\":5,\"mods\":0,\"mode\":0,\"update_time\":\"2024-01-01\"}",
            STORE_REJECT_MISSING_FIELD, "\"pp\"");
    snprintf(buf, sizeof(buf), "{\"user\":\"1\",\"beatmap_id\":5,\"pp\":100%s", ok_tail);
    REJECTS(buf, STORE_REJECT_WRONG_TYPE, "\"user\" must be a number");
    snprintf(buf, sizeof(buf), "{\"user\":1,\"beatmap_id\":5,\"pp\":\"100\"%s", ok_tail);
    REJECTS(buf, STORE_REJECT_WRONG_TYPE, "\"pp\"");
    snprintf(buf, sizeof(buf), "{\"user\":1,\"beatmap_id\":5,\"pp\":-3%s", ok_tail);
    REJECTS(buf, STORE_REJECT_BAD_VALUE, "\"pp\": -3");
    snprintf(buf, sizeof(buf), "{\"user\":1,\"beatmap_id\":5,\"pp\":1e400%s", ok_tail);
    REJECTS(buf, STORE_REJECT_BAD_VALUE, "not finite");
    snprintf(buf, sizeof(buf), "{\"user\":1,\"beatmap_id\":5,\"pp\":1e9%s", ok_tail);
    REJECTS(buf, STORE_REJECT_BAD_VALUE, "out of range");
    snprintf(buf, sizeof(buf), "{\"user\":0,\"beatmap_id\":5,\"pp\":100%s", ok_tail);
    REJECTS(buf, STORE_REJECT_BAD_VALUE, "\"user\": 0");
    snprintf(buf, sizeof(buf), "{\"user\":1,\"beatmap_id\":3000000000,\"pp\":100%s", ok_tail);
    REJECTS(buf, STORE_REJECT_BAD_VALUE, "\"beatmap_id\": 3000000000");
    snprintf(buf, sizeof(buf), "{\"user\":1.5,\"beatmap_id\":5,\"pp\":100%s", ok_tail);
    REJECTS(buf, STORE_REJECT_BAD_VALUE, "not an integer");
    REJECTS("{\"user\":1,\"beatmap_id\":5,\"pp\":100,\"mods\":0,\"mode\":0,"
            "\"update_time\":\"yesterday\"}",
            STORE_REJECT_BAD_TIME, "\"update_time\"");
    REJECTS("{\"user\":1,\"beatmap_id\":5,\"pp\":100,\"mods\":0,\"mode\":7,"
            "\"update_time\":\"2024-01-01 00:00:00\"}",
            STORE_REJECT_BAD_VALUE, "\"mode\"");
    snprintf(buf, sizeof(buf), "{\"user\":1,\"user\":2,\"beatmap_id\":5,\"pp\":100%s", ok_tail);
    REJECTS(buf, STORE_REJECT_DUPLICATE_KEY, "\"user\" appears twice");
    REJECTS("{\"beatmap_id\":1,\"title\":\"a\",\"title\":\"b\"}", STORE_REJECT_DUPLICATE_KEY,
            "\"title\"");
    REJECTS("{\"beatmap_id\":1,\"title\":\"bad \xc3\x28 utf8\"}", STORE_REJECT_BAD_UTF8, "byte 29");
    REJECTS("{\"beatmap_id\":1,\"title\":\"overlong \xc0\xaf\"}", STORE_REJECT_BAD_UTF8, "UTF-8");
    REJECTS("{\"beatmap_id\":1,\"title\":\"surrogate \xed\xa0\x80\"}", STORE_REJECT_BAD_UTF8,
            "UTF-8");
    REJECTS("{\"beatmap_id\":1,\"beatmapset_id\":1,\"title\":7}", STORE_REJECT_WRONG_TYPE,
            "\"title\" must be a string");
    REJECTS("{\"score_id\":\"12_XY\",\"stars\":5}", STORE_REJECT_BAD_VALUE, "not an item id");
    REJECTS("{\"score_id\":\"12_DT\"}", STORE_REJECT_MISSING_FIELD, "\"stars\"");
    memset(buf, ' ', sizeof(buf));
    memcpy(buf, "{\"beatmap_id\":1}", 16);
    rejects(buf, sizeof(buf), STORE_REJECT_OVERSIZE, "exceeds the limit of 65536");
    rejects("{\"user\":1\0}", 11, STORE_REJECT_NOT_JSON, "");

    /* CSV cells go through the same validator */
    const char *names[] = {"user", "beatmap_id", "pp", "mods", "update_time", "mode", "rank"};
    const char *vals[] = {"7", "949011", "150.25", "0", "2020-03-04 05:06:07", "0", "A"};
    E(store_event_decode_fields(names, vals, 7, &opts, &ev, NULL, NULL, 0));
    CHECK_EQ(ev.u.hiscore.user, 7);
    CHECK(ev.u.hiscore.pp == 150.25f);
    const char *bad_vals[] = {"7", "949011", "NULL", "0", "2020-03-04 05:06:07", "0", "A"};
    store_reject_t why;
    CHECK_EQ(store_event_decode_fields(names, bad_vals, 7, &opts, &ev, &why, NULL, 0),
             ATL_EBADEVENT);
    CHECK_EQ(why, STORE_REJECT_MISSING_FIELD);
    return 0;
}
