/*
 * event.c: strict decoding of osu!track rows (DESIGN §2) into store_event_t.
 *
 * Three kinds of JSON object arrive: a `hiscore_updates` row (has "user"), a difficulty record
 * (has "score_id"), and a `beatmaps` row (has "beatmap_id", no "user"). The caller says which
 * topic a message came from (store_topic_t), and the topic, not the keys present, decides the
 * kind: on the hiscore topic every message is a hiscore row, and on the beatmaps topic a row
 * with "user" is refused. Only file import (STORE_TOPIC_ANY) guesses from the keys. A beatmap row
 * replaces the whole stored record, so it must carry beatmapset_id and title on every topic.
 *
 * Validation happens before anything reaches the store, and every failure names the field and
 * the value, so a dead-letter header tells an operator exactly what was wrong. The raw bytes are
 * checked for size, UTF-8 and escaped NULs before cJSON sees them (cJSON validates neither, and
 * turns \u0000 into a NUL that truncates the string); duplicate known keys, in the row and in a
 * CDC envelope, are rejected because "last one wins" and "first one wins" readers would disagree
 * about the event. CSV rows (atlasctl import) go through the same validator: each cell becomes
 * a JSON value.
 */
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cJSON.h>

#include "algo/item.h"
#include "store/internal.h"
#include "store/store.h"

#define ID_MAX 2147483647.0

static const char *const reject_names[STORE_REJECT_COUNT] = {
    [STORE_REJECT_NONE] = "none",
    [STORE_REJECT_OVERSIZE] = "oversize",
    [STORE_REJECT_BAD_UTF8] = "bad_utf8",
    [STORE_REJECT_NOT_JSON] = "not_json",
    [STORE_REJECT_NOT_OBJECT] = "not_object",
    [STORE_REJECT_UNKNOWN_KIND] = "unknown_kind",
    [STORE_REJECT_MISSING_FIELD] = "missing_field",
    [STORE_REJECT_WRONG_TYPE] = "wrong_type",
    [STORE_REJECT_BAD_VALUE] = "bad_value",
    [STORE_REJECT_DUPLICATE_KEY] = "duplicate_key",
    [STORE_REJECT_BAD_TIME] = "bad_time",
};

const char *store_reject_name(store_reject_t r)
{
    if ((int)r < 0 || r >= STORE_REJECT_COUNT)
        return "unknown";
    return reject_names[r];
}

/*
 * Out of memory is not a bad event. cJSON returns NULL both for a syntax error and for a failed
 * allocation, so the decoder installs allocation hooks that note a failure in a thread-local
 * flag: a NULL parse with the flag set is -ENOMEM (the caller stalls and retries the message),
 * never not_json (which would dead-letter a valid event and advance its offset).
 */
static _Thread_local int json_oom;
static void *(*json_alloc_fn)(size_t) = malloc;
static pthread_once_t hooks_once = PTHREAD_ONCE_INIT;

static void *json_malloc(size_t n)
{
    void *p = json_alloc_fn(n);
    if (!p)
        json_oom = 1;
    return p;
}

static void hooks_install(void)
{
    cJSON_Hooks h = {json_malloc, free};
    cJSON_InitHooks(&h);
}

void store__json_alloc_set(void *(*fn)(size_t))
{
    pthread_once(&hooks_once, hooks_install);
    json_alloc_fn = fn ? fn : malloc;
}

void store_decode_opts_default(store_decode_opts_t *o)
{
    pthread_once(&hooks_once, hooks_install); /* before any thread decodes */
    o->topic = STORE_TOPIC_ANY;
    o->max_bytes = 65536;
    o->min_pp = 75.0;
    o->max_future_s = 86400;
    o->now_s = 0;
}

typedef struct decode_ctx {
    store_reject_t why;
    char *errbuf;
    size_t errlen;
} decode_ctx_t;

static int fail(decode_ctx_t *c, store_reject_t why, const char *fmt, ...)
{
    c->why = why;
    if (c->errbuf && c->errlen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(c->errbuf, c->errlen, fmt, ap);
        va_end(ap);
    }
    return ATL_EBADEVENT;
}

/* Length of the valid UTF-8 sequence at p, or 0 (RFC 3629: no overlongs, no surrogates). */
static size_t utf8_seq_len(const unsigned char *p, size_t left)
{
    unsigned c = p[0];
    size_t n;
    unsigned min;
    if (c < 0x80)
        return 1;
    if (c >= 0xc2 && c <= 0xdf)
        n = 2, min = 0x80;
    else if (c >= 0xe0 && c <= 0xef)
        n = 3, min = 0x800;
    else if (c >= 0xf0 && c <= 0xf4)
        n = 4, min = 0x10000;
    else
        return 0;
    if (left < n)
        return 0;
    unsigned cp = c & (0x7f >> n);
    for (size_t i = 1; i < n; i++) {
        if ((p[i] & 0xc0) != 0x80)
            return 0;
        cp = (cp << 6) | (p[i] & 0x3f);
    }
    if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
        return 0;
    return n;
}

/** @return the offset of the first invalid byte, or len when all of buf is valid UTF-8. */
static size_t utf8_invalid_at(const void *buf, size_t len)
{
    const unsigned char *p = buf;
    size_t i = 0;
    while (i < len) {
        size_t n = utf8_seq_len(p + i, len - i);
        if (n == 0)
            return i;
        i += n;
    }
    return len;
}

/*
 * The offset of the first escaped NUL (\u0000) inside a JSON string (value or key), or len if
 * there is none. cJSON decodes it into a NUL byte, and every reader of the decoded text (strlen,
 * the time parser, item_key_parse) stops there, so "856861_DT\u0000junk" would pass as
 * 856861_DT with the rest silently dropped. No osu!track column holds a NUL: such a message is
 * bad, not truncated. Escapes are skipped whole, so an escaped backslash followed by "u0000" (the
 * text \\u0000) is not a NUL. A backslash outside a string is not JSON; cJSON reports that.
 */
static size_t escaped_nul_at(const char *p, size_t len)
{
    int in_string = 0;
    for (size_t i = 0; i < len; i++) {
        if (!in_string) {
            in_string = p[i] == '"';
        } else if (p[i] == '"') {
            in_string = 0;
        } else if (p[i] == '\\') {
            if (len - i >= 6 && memcmp(p + i + 1, "u0000", 5) == 0)
                return i;
            i++; /* the escaped character: \\ and \" neither escape nor end anything */
        }
    }
    return len;
}

/* ---- field access -------------------------------------------------------------------- */

static const cJSON *field(const cJSON *obj, const char *name)
{
    const cJSON *f = cJSON_GetObjectItemCaseSensitive(obj, name);
    return (f && cJSON_IsNull(f)) ? NULL : f;
}

static int need_number(decode_ctx_t *c, const cJSON *obj, const char *name, int required, double lo,
                       double hi, int integral, double *out, int *present)
{
    const cJSON *f = field(obj, name);
    if (present)
        *present = f != NULL;
    if (!f) {
        if (required)
            return fail(c, STORE_REJECT_MISSING_FIELD, "field \"%s\" is missing", name);
        return 0;
    }
    if (!cJSON_IsNumber(f))
        return fail(c, STORE_REJECT_WRONG_TYPE, "field \"%s\" must be a number", name);
    double v = f->valuedouble;
    if (!isfinite(v))
        return fail(c, STORE_REJECT_BAD_VALUE, "field \"%s\" is not finite", name);
    if (integral && v != floor(v))
        return fail(c, STORE_REJECT_BAD_VALUE, "field \"%s\": %.17g is not an integer", name, v);
    if (v < lo || v > hi)
        return fail(c, STORE_REJECT_BAD_VALUE, "field \"%s\": %.17g is out of range [%g, %g]", name,
                    v, lo, hi);
    *out = v;
    return 0;
}

static int days_in_month(int y, int m)
{
    static const int d[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    int leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    return d[m - 1] + (m == 2 && leap);
}

/* Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant, "days_from_civil"). */
static int64_t days_from_civil(int64_t y, unsigned m, unsigned d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    unsigned yoe = (unsigned)(y - era * 400);
    unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + (int64_t)doe - 719468;
}

static int digits(const char *s, int n, int *out)
{
    int v = 0;
    for (int i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -EINVAL;
        v = v * 10 + (s[i] - '0');
    }
    *out = v;
    return 0;
}

int store_time_parse(const char *s, int64_t *out)
{
    int y, mo, d, h, mi, se;
    size_t len = strlen(s);
    if (len < 19 || digits(s, 4, &y) || s[4] != '-' || digits(s + 5, 2, &mo) || s[7] != '-' ||
        digits(s + 8, 2, &d) || (s[10] != 'T' && s[10] != ' ') || digits(s + 11, 2, &h) ||
        s[13] != ':' || digits(s + 14, 2, &mi) || s[16] != ':' || digits(s + 17, 2, &se))
        return -EINVAL;
    if (y < 1970 || y > 9999 || mo < 1 || mo > 12 || d < 1 || d > days_in_month(y, mo) || h > 23 ||
        mi > 59 || se > 60)
        return -EINVAL;
    const char *p = s + 19;
    if (*p == '.') { /* fractional seconds: truncated */
        p++;
        if (*p < '0' || *p > '9')
            return -EINVAL;
        while (*p >= '0' && *p <= '9')
            p++;
    }
    int64_t offset_s = 0;
    if (*p == 'Z') {
        p++;
    } else if (*p == '+' || *p == '-') {
        int oh, om;
        if (digits(p + 1, 2, &oh) || p[3] != ':' || digits(p + 4, 2, &om) || oh > 23 || om > 59)
            return -EINVAL;
        offset_s = (oh * 3600 + om * 60) * (*p == '-' ? -1 : 1);
        p += 6;
    }
    if (*p != '\0')
        return -EINVAL;
    int64_t t = days_from_civil(y, (unsigned)mo, (unsigned)d) * 86400 + h * 3600 + mi * 60 + se;
    *out = t - offset_s;
    return 0;
}

static int need_time(decode_ctx_t *c, const cJSON *obj, const char *name, int required,
                     int64_t *out)
{
    const cJSON *f = field(obj, name);
    if (!f) {
        if (required)
            return fail(c, STORE_REJECT_MISSING_FIELD, "field \"%s\" is missing", name);
        *out = 0;
        return 0;
    }
    if (cJSON_IsNumber(f)) {
        /* epoch milliseconds: what Debezium writes for a DATETIME column (time.precision.mode
         * connect, or adaptive for DATETIME(0..3)); whole milliseconds, years 1970..9999 */
        double ms = f->valuedouble;
        if (!(ms >= 0 && ms <= 253402300799999.0) || ms != floor(ms))
            return fail(c, STORE_REJECT_BAD_TIME,
                        "field \"%s\": %.17g is not a time in epoch milliseconds", name, ms);
        *out = (int64_t)(ms / 1000);
        return 0;
    }
    if (!cJSON_IsString(f))
        return fail(c, STORE_REJECT_WRONG_TYPE,
                    "field \"%s\" must be a time string or epoch milliseconds", name);
    if (store_time_parse(f->valuestring, out) != 0)
        return fail(c, STORE_REJECT_BAD_TIME,
                    "field \"%s\": \"%.40s\" is not an ISO 8601 or MySQL DATETIME time", name,
                    f->valuestring);
    return 0;
}

/* Copy a string field into the event's string pool (an absent optional one is empty). */
static int need_string(decode_ctx_t *c, const cJSON *obj, const char *name, int required,
                       store_event_t *ev, store_str_t *out)
{
    const cJSON *f = field(obj, name);
    out->off = out->len = 0;
    if (!f) {
        if (required)
            return fail(c, STORE_REJECT_MISSING_FIELD, "field \"%s\" is missing", name);
        return 0;
    }
    if (!cJSON_IsString(f))
        return fail(c, STORE_REJECT_WRONG_TYPE, "field \"%s\" must be a string", name);
    size_t n = strlen(f->valuestring);
    if (n > sizeof(ev->strings) - ev->strings_used)
        return fail(c, STORE_REJECT_OVERSIZE, "field \"%s\": %zu bytes is too long", name, n);
    memcpy(ev->strings + ev->strings_used, f->valuestring, n);
    out->off = (uint16_t)ev->strings_used;
    out->len = (uint16_t)n;
    ev->strings_used += n;
    return 0;
}

/* Reject an object in which any of @p names occurs more than once; @p what names the keys
 * ("field", "envelope key") in the error. */
static int check_duplicates(decode_ctx_t *c, const cJSON *obj, const char *what,
                            const char *const *names, size_t n_names)
{
    for (size_t i = 0; i < n_names; i++) {
        int seen = 0;
        for (const cJSON *ch = obj->child; ch; ch = ch->next)
            if (ch->string && strcmp(ch->string, names[i]) == 0 && ++seen > 1)
                return fail(c, STORE_REJECT_DUPLICATE_KEY, "%s \"%s\" appears twice", what,
                            names[i]);
    }
    return 0;
}

static const char *const hiscore_fields[] = {"user", "beatmap_id", "score",      "pp",
                                             "mods", "rank",       "score_time", "update_time",
                                             "mode", "is_classic"};

static int decode_hiscore(decode_ctx_t *c, const cJSON *o, const store_decode_opts_t *opt,
                          store_event_t *ev)
{
    double user, beatmap, pp, mods, mode;
    int rc;
    if ((rc = check_duplicates(c, o, "field", hiscore_fields, ATL_ARRAY_LEN(hiscore_fields))) ||
        (rc = need_number(c, o, "user", 1, 1, ID_MAX, 1, &user, NULL)) ||
        (rc = need_number(c, o, "beatmap_id", 1, 1, ID_MAX, 1, &beatmap, NULL)) ||
        (rc = need_number(c, o, "pp", 1, 0, 1e5, 0, &pp, NULL)) ||
        (rc = need_number(c, o, "mods", 1, 0, ID_MAX, 1, &mods, NULL)) ||
        (rc = need_number(c, o, "mode", 1, 0, 3, 1, &mode, NULL)) ||
        (rc = need_time(c, o, "update_time", 1, &ev->u.hiscore.update_time)))
        return rc;
    int64_t now = opt->now_s ? opt->now_s : (int64_t)time(NULL);
    if (opt->max_future_s >= 0 && ev->u.hiscore.update_time > now + opt->max_future_s)
        return fail(c, STORE_REJECT_BAD_TIME,
                    "field \"update_time\" is %lld s in the future (tolerance %lld s)",
                    (long long)(ev->u.hiscore.update_time - now), (long long)opt->max_future_s);
    ev->kind = STORE_EVENT_HISCORE;
    ev->u.hiscore.user = (uint32_t)user;
    ev->u.hiscore.beatmap_id = (uint32_t)beatmap;
    ev->u.hiscore.mods_legacy = (uint32_t)mods;
    ev->u.hiscore.mode = (int)mode;
    ev->u.hiscore.pp = (float)pp;
    ev->skip = STORE_SKIP_NONE;
    if (mode != 0)
        ev->skip = STORE_SKIP_MODE;
    else if (pp < opt->min_pp)
        ev->skip = STORE_SKIP_LOW_PP;
    return 0;
}

static const char *const beatmap_fields[] = {
    "beatmap_id",   "beatmapset_id", "title",        "artist",           "version",
    "creator",      "bpm",           "total_length", "hit_length",       "diff_size",
    "diff_overall", "diff_approach", "diff_drain",   "difficultyrating", "approved_date",
    "last_update",  "mode"};

/* Applying a beatmap row replaces the whole stored record (store_batch_commit), so the fields
 * the corpus cannot do without, beatmapset_id and title, are required: a row without them would
 * wipe what is stored. The others are often absent in osu!track's table and default to 0/"". */
static int decode_beatmap(decode_ctx_t *c, const cJSON *o, store_event_t *ev)
{
    store_beatmap_t *b = &ev->u.beatmap;
    double id, set = 0, bpm = 0, total = 0, hit = 0, cs = 0, od = 0, ar = 0, hp = 0, sr = 0,
               mode = 0;
    int rc;
    if ((rc = check_duplicates(c, o, "field", beatmap_fields, ATL_ARRAY_LEN(beatmap_fields))) ||
        (rc = need_number(c, o, "beatmap_id", 1, 1, ID_MAX, 1, &id, NULL)) ||
        (rc = need_number(c, o, "beatmapset_id", 1, 0, ID_MAX, 1, &set, NULL)) ||
        (rc = need_number(c, o, "bpm", 0, 0, 1e6, 0, &bpm, NULL)) ||
        (rc = need_number(c, o, "total_length", 0, 0, ID_MAX, 0, &total, NULL)) ||
        (rc = need_number(c, o, "hit_length", 0, 0, ID_MAX, 0, &hit, NULL)) ||
        (rc = need_number(c, o, "diff_size", 0, 0, 20, 0, &cs, NULL)) ||
        (rc = need_number(c, o, "diff_overall", 0, 0, 20, 0, &od, NULL)) ||
        (rc = need_number(c, o, "diff_approach", 0, 0, 20, 0, &ar, NULL)) ||
        (rc = need_number(c, o, "diff_drain", 0, 0, 20, 0, &hp, NULL)) ||
        (rc = need_number(c, o, "difficultyrating", 0, 0, 1e4, 0, &sr, NULL)) ||
        (rc = need_number(c, o, "mode", 0, 0, 3, 1, &mode, NULL)) ||
        (rc = need_time(c, o, "approved_date", 0, &b->approved_date)) ||
        (rc = need_time(c, o, "last_update", 0, &b->last_update)) ||
        (rc = need_string(c, o, "title", 1, ev, &b->title)) ||
        (rc = need_string(c, o, "artist", 0, ev, &b->artist)) ||
        (rc = need_string(c, o, "version", 0, ev, &b->version)) ||
        (rc = need_string(c, o, "creator", 0, ev, &b->creator)))
        return rc;
    ev->kind = STORE_EVENT_BEATMAP;
    b->beatmap_id = (uint32_t)id;
    b->beatmapset_id = (uint32_t)set;
    b->bpm = (float)bpm;
    b->total_length = (uint32_t)total;
    b->hit_length = (uint32_t)hit;
    b->cs = (float)cs;
    b->od = (float)od;
    b->ar = (float)ar;
    b->hp = (float)hp;
    b->stars = (float)sr;
    b->mode = (int)mode;
    return 0;
}

static const char *const difficulty_fields[] = {"score_id", "stars", "aim", "speed"};

static int decode_difficulty(decode_ctx_t *c, const cJSON *o, store_event_t *ev)
{
    double stars, aim = 0, speed = 0;
    int rc;
    if ((rc = check_duplicates(c, o, "field", difficulty_fields, ATL_ARRAY_LEN(difficulty_fields))))
        return rc;
    const cJSON *sid = field(o, "score_id");
    if (!cJSON_IsString(sid))
        return fail(c, STORE_REJECT_WRONG_TYPE, "field \"score_id\" must be a string");
    if (item_key_parse(sid->valuestring, strlen(sid->valuestring), &ev->u.difficulty.item) != 0 ||
        item_key_beatmap(ev->u.difficulty.item) == 0 ||
        item_key_beatmap(ev->u.difficulty.item) > ID_MAX)
        return fail(c, STORE_REJECT_BAD_VALUE, "field \"score_id\": \"%.40s\" is not an item id",
                    sid->valuestring);
    if ((rc = need_number(c, o, "stars", 1, 0, 1e4, 0, &stars, NULL)) ||
        (rc = need_number(c, o, "aim", 0, 0, 1e4, 0, &aim, NULL)) ||
        (rc = need_number(c, o, "speed", 0, 0, 1e4, 0, &speed, NULL)))
        return rc;
    ev->kind = STORE_EVENT_DIFFICULTY;
    ev->u.difficulty.stars = (float)stars;
    ev->u.difficulty.aim = (float)aim;
    ev->u.difficulty.speed = (float)speed;
    return 0;
}

/* A key's value, null included: unlike field(), whose null is an absent value, this asks
 * whether the key is there at all, which is what picks the kind of a row. */
static const cJSON *key(const cJSON *obj, const char *name)
{
    return cJSON_GetObjectItemCaseSensitive(obj, name);
}

/* The keys that decide which object of a CDC message is the row (see cdc_row). */
static const char *const wrapper_keys[] = {"schema", "payload"};
static const char *const envelope_keys[] = {"before", "after", "source", "op"};

/*
 * Change-data-capture wrappers (README "CDC"): Kafka Connect's JSON converter with schemas on
 * wraps the value as {"schema": ..., "payload": ...}; a Debezium change event that was not
 * unwrapped by ExtractNewRecordState is an envelope {"before", "after", "source", "op", ...}.
 * The row is "after" for a create, update or snapshot read, and "before" for a delete: a
 * profile is the maximum over every row ever seen, so a deleted row is applied as what it is,
 * a replay of a row already applied (it changes nothing). These keys pick the row, so like the
 * row's own keys they must be unique: with "op" given as "c" then "d", or "after" twice, a
 * first-wins and a last-wins reader would apply different rows.
 * @return 0 and the row (@p o itself when it is not wrapped) in *row, or ATL_EBADEVENT.
 */
static int cdc_row(decode_ctx_t *c, const cJSON *o, const cJSON **row)
{
    int rc;
    if ((rc = check_duplicates(c, o, "envelope key", wrapper_keys, ATL_ARRAY_LEN(wrapper_keys))))
        return rc;
    const cJSON *payload = key(o, "payload");
    if (cJSON_IsObject(payload) && key(o, "schema"))
        o = payload;
    if ((rc = check_duplicates(c, o, "envelope key", envelope_keys, ATL_ARRAY_LEN(envelope_keys))))
        return rc;
    const cJSON *op = key(o, "op");
    if (cJSON_IsString(op) && key(o, "source")) {
        o = key(o, strcmp(op->valuestring, "d") == 0 ? "before" : "after");
        if (!cJSON_IsObject(o))
            return fail(c, STORE_REJECT_UNKNOWN_KIND, "Debezium change event without a row image");
    }
    *row = o;
    return 0;
}

/* A row of the beatmaps topic, or one from a file without "user": difficulty or beatmap row. */
static int decode_metadata(decode_ctx_t *c, const cJSON *o, const store_decode_opts_t *opt,
                           store_event_t *ev)
{
    if (key(o, "score_id"))
        return decode_difficulty(c, o, ev);
    if (key(o, "beatmap_id"))
        return decode_beatmap(c, o, ev);
    if (opt->topic == STORE_TOPIC_BEATMAPS)
        return fail(c, STORE_REJECT_UNKNOWN_KIND,
                    "object on the beatmaps topic has neither \"score_id\" nor \"beatmap_id\"");
    return fail(c, STORE_REJECT_UNKNOWN_KIND,
                "object has none of \"user\", \"score_id\", \"beatmap_id\"");
}

/* The row's kind comes from its topic; only STORE_TOPIC_ANY (file import) looks at its keys. */
static int decode_row(decode_ctx_t *c, const cJSON *o, const store_decode_opts_t *opt,
                      store_event_t *ev)
{
    int has_user = key(o, "user") != NULL;
    if (opt->topic == STORE_TOPIC_HISCORES || (opt->topic == STORE_TOPIC_ANY && has_user))
        return decode_hiscore(c, o, opt, ev);
    if (has_user)
        return fail(c, STORE_REJECT_UNKNOWN_KIND,
                    "object has \"user\": a hiscore row on the beatmaps topic");
    return decode_metadata(c, o, opt, ev);
}

static int decode_object(decode_ctx_t *c, const cJSON *o, const store_decode_opts_t *opt,
                         store_event_t *tmp)
{
    int rc;
    if (!cJSON_IsObject(o))
        return fail(c, STORE_REJECT_NOT_OBJECT, "message is JSON but not an object");
    if ((rc = cdc_row(c, o, &o)))
        return rc;
    return decode_row(c, o, opt, tmp);
}

/* A topic outside the enum is the caller's bug, not a bad message: -EINVAL, never a reject. */
static int topic_check(const store_decode_opts_t *opt, char *errbuf, size_t errlen)
{
    if (opt->topic == STORE_TOPIC_ANY || opt->topic == STORE_TOPIC_HISCORES ||
        opt->topic == STORE_TOPIC_BEATMAPS)
        return 0;
    if (errbuf && errlen)
        snprintf(errbuf, errlen, "decode option topic %d is not a store_topic_t", (int)opt->topic);
    return -EINVAL;
}

int store_event_decode(const void *buf, size_t len, const store_decode_opts_t *opt,
                       store_event_t *out, store_reject_t *why, char *errbuf, size_t errlen)
{
    decode_ctx_t c = {STORE_REJECT_NONE, errbuf, errlen};
    store_event_t tmp;
    cJSON *root = NULL;
    int rc;
    memset(&tmp, 0, sizeof(tmp));
    pthread_once(&hooks_once, hooks_install);
    json_oom = 0;
    if ((rc = topic_check(opt, errbuf, errlen)) != 0)
        goto out;
    if (len > opt->max_bytes) {
        rc = fail(&c, STORE_REJECT_OVERSIZE, "message of %zu bytes exceeds the limit of %zu", len,
                  opt->max_bytes);
        goto out;
    }
    size_t bad = utf8_invalid_at(buf, len);
    if (bad < len) {
        rc = fail(&c, STORE_REJECT_BAD_UTF8, "invalid UTF-8 at byte %zu", bad);
        goto out;
    }
    const char *nul = memchr(buf, '\0', len);
    if (nul) { /* cJSON would skip it as whitespace; JSON has no NUL outside escapes */
        rc = fail(&c, STORE_REJECT_NOT_JSON, "not JSON (NUL byte at %td)", nul - (const char *)buf);
        goto out;
    }
    if ((bad = escaped_nul_at(buf, len)) < len) {
        rc = fail(&c, STORE_REJECT_BAD_VALUE, "escaped NUL (\\u0000) in a string at byte %zu", bad);
        goto out;
    }
    const char *end = NULL;
    root = cJSON_ParseWithLengthOpts(buf, len, &end, 0);
    if (!root && json_oom) {
        if (errbuf && errlen)
            snprintf(errbuf, errlen, "out of memory decoding the message");
        rc = -ENOMEM;
        goto out;
    }
    if (!root) {
        rc = fail(&c, STORE_REJECT_NOT_JSON, "not JSON (error near byte %td)",
                  cJSON_GetErrorPtr() ? cJSON_GetErrorPtr() - (const char *)buf : (ptrdiff_t)0);
        goto out;
    }
    while (end && end < (const char *)buf + len && strchr(" \t\r\n", *end) && *end)
        end++;
    if (end && end < (const char *)buf + len) {
        rc = fail(&c, STORE_REJECT_NOT_JSON, "trailing data after the JSON value at byte %td",
                  end - (const char *)buf);
        goto out;
    }
    if ((rc = decode_object(&c, root, opt, &tmp)) != 0)
        goto out;
    *out = tmp;
out:
    cJSON_Delete(root);
    if (rc == ATL_EBADEVENT && why)
        *why = c.why;
    return rc;
}

struct cJSON *store_cell_value(const char *s)
{
    if (*s == '\0' || strcmp(s, "NULL") == 0 || strcmp(s, "\\N") == 0)
        return cJSON_CreateNull();
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (*end == '\0' && errno == 0 && end != s)
        return cJSON_CreateNumber(v);
    return cJSON_CreateString(s);
}

int store_event_decode_fields(const char *const *names, const char *const *values, size_t n,
                              const store_decode_opts_t *opt, store_event_t *out,
                              store_reject_t *why, char *errbuf, size_t errlen)
{
    decode_ctx_t c = {STORE_REJECT_NONE, errbuf, errlen};
    store_event_t tmp;
    int rc;
    if ((rc = topic_check(opt, errbuf, errlen)) != 0)
        return rc;
    cJSON *o = cJSON_CreateObject();
    memset(&tmp, 0, sizeof(tmp));
    if (!o)
        return -ENOMEM;
    for (size_t i = 0; i < n; i++) {
        size_t vlen = strlen(values[i]);
        if (utf8_invalid_at(values[i], vlen) < vlen) {
            rc = fail(&c, STORE_REJECT_BAD_UTF8, "column \"%s\": invalid UTF-8", names[i]);
            goto out;
        }
        cJSON *v = store_cell_value(values[i]);
        if (!v) {
            rc = -ENOMEM;
            goto out;
        }
        if (!cJSON_AddItemToObject(o, names[i], v)) {
            cJSON_Delete(v);
            rc = -ENOMEM;
            goto out;
        }
    }
    if ((rc = decode_object(&c, o, opt, &tmp)) != 0)
        goto out;
    *out = tmp;
out:
    cJSON_Delete(o);
    if (rc == ATL_EBADEVENT && why)
        *why = c.why;
    return rc;
}
