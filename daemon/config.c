/*
 * config.c: the option table and its parsers. See config.h.
 */
#include "daemon/config.h"

#include <arpa/inet.h>
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <librdkafka/rdkafka.h>

#include "algo/atl.h"
#include "daemon/log.h"

/* OPT_ADDR: a string that must be a listen address (config_http_addr_parse); OPT_LEVEL: one
 * that must be a log level (log_level_parse) */
typedef enum opt_type { OPT_STR, OPT_INT, OPT_DBL, OPT_BOOL, OPT_ADDR, OPT_LEVEL } opt_type_t;

/* opt_t.flags */
#define OPTF_NONEMPTY 1 /* a string that may not be empty: "" would fail only later, unnamed */

typedef struct opt {
    const char *name;
    opt_type_t type;
    size_t offset;
    double min, max;
    const char *def;
    const char *help;
    unsigned flags;
} opt_t;

#define OFF(f) offsetof(atl_config_t, f)

static const opt_t opts[] = {
    {"db", OPT_STR, OFF(db), 0, 0, "state", "state directory: the LMDB store (one per daemon)",
     OPTF_NONEMPTY},
    {"brokers", OPT_STR, OFF(brokers), 0, 0, "", "Kafka bootstrap servers, host:port,...", 0},
    {"group", OPT_STR, OFF(group), 0, 0, "atlasd", "Kafka consumer group id", OPTF_NONEMPTY},
    {"group-instance-id", OPT_STR, OFF(group_instance_id), 0, 0, "",
     "Kafka static membership id (empty: one stable per store, kept in DB/instance-id; none: off)",
     0},
    {"http", OPT_ADDR, OFF(http), 0, 0, "127.0.0.1:8477",
     "HTTP listen address IPV4:PORT (port 0: ephemeral; no IPV4: every interface)", 0},
    {"http-write-timeout-ms", OPT_INT, OFF(http_write_timeout_ms), 100, 3600000, "30000",
     "close an HTTP connection whose response makes no progress this long (a client that stopped "
     "reading)",
     0},
    {"topic-hiscores", OPT_STR, OFF(topic_hiscores), 0, 0, "osutrack.hiscore_updates",
     "topic of hiscore rows", OPTF_NONEMPTY},
    {"topic-beatmaps", OPT_STR, OFF(topic_beatmaps), 0, 0, "osutrack.beatmaps",
     "topic of beatmap and difficulty rows", OPTF_NONEMPTY},
    {"topic-dlq", OPT_STR, OFF(topic_dlq), 0, 0, "atlasd.dlq",
     "dead-letter topic for invalid messages (empty: none)", 0},
    {"batch-max-events", OPT_INT, OFF(batch_max_events), 1, 1000000, "5000",
     "events per LMDB transaction at most", 0},
    {"batch-max-ms", OPT_INT, OFF(batch_max_ms), 1, 60000, "200",
     "commit a batch at most this long after its first event", 0},
    {"batch-backlog-events", OPT_INT, OFF(batch_backlog_events), 0, 1000000, "0",
     "while a commit runs, the next batch may grow to this many events (a backlog drains in "
     "fewer, larger commits; a stop or rebalance then waits for two such commits; 0 or at most "
     "batch-max-events: off)",
     0},
    {"max-message-bytes", OPT_INT, OFF(max_message_bytes), 64, 16777216, "65536",
     "larger messages are rejected", 0},
    {"max-future-seconds", OPT_INT, OFF(max_future_s), 0, 315360000, "86400",
     "hiscores dated further past the broker timestamp / wall clock are rejected (bad_time)", 0},
    {"min-pp", OPT_DBL, OFF(min_pp), 0, 100000, "75", "hiscores below this pp are skipped", 0},
    {"map-size-mb", OPT_INT, OFF(map_size_mb), 1, 16777216, "1024",
     "initial LMDB map size; it doubles when full", 0},
    {"durable", OPT_BOOL, OFF(durable), 0, 1, "1", "fsync each batch commit (0: OS decides)", 0},
    {"stats-interval", OPT_INT, OFF(stats_interval_s), 0, 86400, "60",
     "seconds between stats log lines (0: never)", 0},
    {"shutdown-timeout-ms", OPT_INT, OFF(shutdown_timeout_ms), 100, 600000, "10000",
     "longest graceful shutdown before forcing exit", 0},
    {"snapshots", OPT_STR, OFF(snapshots), 0, 0, "",
     "snapshot directory served under /snapshots (empty: DB/snapshots)", 0},
    {"refresh-interval", OPT_INT, OFF(refresh_interval_s), 0, 86400 * 7, "60",
     "seconds between refreshes of the map when items are dirty (0: only by threshold/admin, and "
     "the first map)",
     0},
    {"refresh-dirty-threshold", OPT_INT, OFF(refresh_dirty_threshold), 0, 1000000000, "0",
     "also refresh as soon as this many items are dirty (0: off)", 0},
    {"snapshots-keep", OPT_INT, OFF(snapshots_keep), 1, 100000, "10", "snapshots to keep", 0},
    {"seed", OPT_INT, OFF(seed), 0, INT64_MAX, "42", "random seed of MDE and the 2-D layout", 0},
    {"admin-token", OPT_STR, OFF(admin_token), 0, 0, "",
     "bearer token admitting admin calls (POST /admin/rebuild) from other hosts; loopback needs "
     "none",
     0},
    {"cors-origin", OPT_STR, OFF(cors_origin), 0, 0, "*",
     "Access-Control-Allow-Origin of snapshot downloads (the map is on another origin)", 0},
    {"viewer", OPT_STR, OFF(viewer), 0, 0, "",
     "directory of the map viewer served at / (empty: the one of this build; none: off)", 0},
    {"log-level", OPT_LEVEL, OFF(log_level), 0, 0, "info", "error | warn | info | debug",
     OPTF_NONEMPTY},
    {"log-file", OPT_STR, OFF(log_file), 0, 0, "", "log file (empty: stderr); SIGHUP reopens it",
     0},
};

#define LINE_MAX_BYTES 4095

/* @p s (at most @p n bytes) for an error message: printable ASCII as is, anything else as \xNN,
 * cut at 60 bytes; garbage in a config file is never echoed raw to a terminal or a log. */
static const char *printable(const char *s, size_t n, char out[256])
{
    size_t o = 0;
    for (size_t i = 0; i < n && s[i] && o + 8 < 256; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (i == 60) {
            o += (size_t)snprintf(out + o, 256 - o, "...");
            break;
        }
        if (ch >= 0x20 && ch < 0x7f)
            out[o++] = (char)ch;
        else
            o += (size_t)snprintf(out + o, 256 - o, "\\x%02x", ch);
    }
    out[o] = '\0';
    return out;
}

static char **str_field(atl_config_t *c, const opt_t *o)
{
    return (char **)((char *)c + o->offset);
}

static int is_str(const opt_t *o)
{
    return o->type == OPT_STR || o->type == OPT_ADDR || o->type == OPT_LEVEL;
}

int config_http_addr_parse(const char *addr, struct sockaddr_in *out)
{
    char host[INET_ADDRSTRLEN];
    const char *colon = strrchr(addr, ':'), *p;
    long port = 0;
    if (!colon || (size_t)(colon - addr) >= sizeof(host) || !colon[1] || strlen(colon + 1) > 5)
        return ATL_ECONFIG;
    for (p = colon + 1; *p; p++) { /* digits only: no sign, no space */
        if (*p < '0' || *p > '9')
            return ATL_ECONFIG;
        port = port * 10 + (*p - '0');
    }
    if (port > 65535)
        return ATL_ECONFIG;
    memcpy(host, addr, (size_t)(colon - addr));
    host[colon - addr] = '\0';
    struct sockaddr_in sa;
    memset(&sa, 0, sizeof(sa)); /* an empty host: INADDR_ANY */
    sa.sin_family = AF_INET;
    sa.sin_port = htons((uint16_t)port);
    if (host[0] && inet_pton(AF_INET, host, &sa.sin_addr) != 1)
        return ATL_ECONFIG; /* a name, IPv6, a short or padded dotted quad */
    *out = sa;
    return 0;
}

static int set_opt(atl_config_t *c, const opt_t *o, const char *val, const char *where,
                   char *errbuf, size_t errlen)
{
    char *end;
    double v;
    long long iv = 0;
    struct sockaddr_in sa;
    if (o->type == OPT_ADDR && config_http_addr_parse(val, &sa) != 0) {
        char pv[256];
        snprintf(errbuf, errlen,
                 "%s: %s = \"%s\" is not an IPv4 HOST:PORT (port 0-65535, 0: ephemeral)", where,
                 o->name, printable(val, strlen(val), pv));
        return ATL_ECONFIG;
    }
    if ((o->flags & OPTF_NONEMPTY) && !val[0]) {
        snprintf(errbuf, errlen, "%s: %s must not be empty", where, o->name);
        return ATL_ECONFIG;
    }
    log_level_t lvl;
    if (o->type == OPT_LEVEL && log_level_parse(val, &lvl) != 0) {
        char pv[256];
        snprintf(errbuf, errlen, "%s: %s = \"%s\" is not one of error|warn|info|debug", where,
                 o->name, printable(val, strlen(val), pv));
        return ATL_ECONFIG;
    }
    switch (o->type) {
    case OPT_STR:
    case OPT_ADDR:
    case OPT_LEVEL:
        free(*str_field(c, o));
        *str_field(c, o) = strdup(val);
        return 0;
    case OPT_BOOL:
        if (strcmp(val, "1") == 0 || strcmp(val, "true") == 0 || strcmp(val, "yes") == 0)
            v = 1;
        else if (strcmp(val, "0") == 0 || strcmp(val, "false") == 0 || strcmp(val, "no") == 0)
            v = 0;
        else
            goto bad;
        *(int64_t *)((char *)c + o->offset) = (int64_t)v;
        return 0;
    case OPT_INT:
    case OPT_DBL:
        errno = 0;
        if (o->type == OPT_INT) {
            /* decimal digits, read exactly: through a double, 2^53 + 1 became 2^53 and
             * 9223372036854775807 became 2^63, which passed the range check and turned
             * negative when stored */
            const char *p = val + (val[0] == '-' || val[0] == '+');
            if (*p < '0' || *p > '9')
                goto bad;
            iv = strtoll(val, &end, 10);
            if (errno || *end)
                goto bad;
            v = (double)iv;
        } else {
            v = strtod(val, &end);
            if (errno || end == val || *end || !isfinite(v))
                goto bad;
        }
        if (v < o->min || v > o->max) {
            char pr[256]; /* strtod skipped leading white space such as \r: never echo it raw */
            snprintf(errbuf, errlen, "%s: %s = %s is out of range [%g, %g]", where, o->name,
                     printable(val, strlen(val), pr), o->min, o->max);
            return ATL_ECONFIG;
        }
        if (o->type == OPT_INT)
            *(int64_t *)((char *)c + o->offset) = (int64_t)iv;
        else
            *(double *)((char *)c + o->offset) = v;
        return 0;
    }
bad:;
    char pv[256];
    snprintf(errbuf, errlen, "%s: invalid value for %s: \"%s\"", where, o->name,
             printable(val, strlen(val), pv));
    return ATL_ECONFIG;
}

/* The librdkafka properties atlasd sets from settings of its own: a kafka.* copy is refused. */
static const char *kafka_own_setting(const char *prop)
{
    static const char *const own[][2] = {
        {"bootstrap.servers", "brokers"},
        {"metadata.broker.list", "brokers"},
        {"group.id", "group"},
        {"group.instance.id", "group-instance-id"},
    };
    for (size_t i = 0; i < sizeof(own) / sizeof(own[0]); i++)
        if (strcmp(prop, own[i][0]) == 0)
            return own[i][1];
    return NULL;
}

/* Whether a librdkafka property holds a secret (logged as <set>): passwords, the OAUTHBEARER
 * client secret and unsecured-JWT config, private keys given inline. */
static int kafka_secret(const char *prop)
{
    return strstr(prop, "password") || strstr(prop, "secret") || strstr(prop, ".pem") ||
           strstr(prop, "oauthbearer.config") || strstr(prop, "jaas");
}

static int set_key(atl_config_t *c, const char *key, const char *val, const char *where,
                   char *errbuf, size_t errlen)
{
    char pk[256];
    if (strncmp(key, "kafka.", 6) == 0 && key[6]) {
        /* checked now, so a bad property is a configuration error naming its line (exit 2),
         * not a start-up failure of the Kafka client */
        char e[512];
        const char *own = kafka_own_setting(key + 6);
        if (own) { /* it would silently override the setting, and the log would still show it */
            snprintf(errbuf, errlen, "%s: %s is atlasd's setting %s: set that instead", where, key,
                     own);
            return ATL_ECONFIG;
        }
        rd_kafka_conf_t *probe = rd_kafka_conf_new();
        rd_kafka_conf_res_t res = rd_kafka_conf_set(probe, key + 6, val, e, sizeof(e));
        rd_kafka_conf_destroy(probe);
        if (res != RD_KAFKA_CONF_OK) {
            char pe[256];
            snprintf(errbuf, errlen, "%s: %s: %s", where, printable(key, strlen(key), pk),
                     printable(e, strlen(e), pe));
            return ATL_ECONFIG;
        }
        for (size_t i = 0; i < c->n_kafka; i++) {
            if (strcmp(c->kafka_keys[i], key + 6) == 0) {
                free(c->kafka_values[i]);
                c->kafka_values[i] = strdup(val);
                return 0;
            }
        }
        if (c->n_kafka == CONFIG_MAX_KAFKA) {
            snprintf(errbuf, errlen, "%s: too many kafka.* keys", where);
            return ATL_ECONFIG;
        }
        c->kafka_keys[c->n_kafka] = strdup(key + 6);
        c->kafka_values[c->n_kafka++] = strdup(val);
        return 0;
    }
    for (size_t i = 0; i < sizeof(opts) / sizeof(opts[0]); i++)
        if (strcmp(opts[i].name, key) == 0)
            return set_opt(c, &opts[i], val, where, errbuf, errlen);
    snprintf(errbuf, errlen, "%s: unknown setting \"%s\" (see atlasd --help)", where,
             printable(key, strlen(key), pk));
    return ATL_ECONFIG;
}

void config_init(atl_config_t *c)
{
    char err[64];
    memset(c, 0, sizeof(*c));
    for (size_t i = 0; i < sizeof(opts) / sizeof(opts[0]); i++)
        set_opt(c, &opts[i], opts[i].def, "default", err, sizeof(err));
}

void config_destroy(atl_config_t *c)
{
    for (size_t i = 0; i < sizeof(opts) / sizeof(opts[0]); i++)
        if (is_str(&opts[i]))
            free(*str_field(c, &opts[i]));
    for (size_t i = 0; i < c->n_kafka; i++) {
        free(c->kafka_keys[i]);
        free(c->kafka_values[i]);
    }
    memset(c, 0, sizeof(*c));
}

static char *trim(char *s)
{
    while (*s == ' ' || *s == '\t')
        s++;
    char *e = s + strlen(s);
    while (e > s && (e[-1] == ' ' || e[-1] == '\t' || e[-1] == '\n' || e[-1] == '\r'))
        *--e = '\0';
    return s;
}

static int load_file(atl_config_t *c, const char *path, char *errbuf, size_t errlen)
{
    FILE *f = fopen(path, "r");
    struct stat st;
    if (!f) {
        snprintf(errbuf, errlen, "cannot open config %s: %s", path, strerror(errno));
        return ATL_ECONFIG;
    }
    if (fstat(fileno(f), &st) != 0 || !S_ISREG(st.st_mode)) { /* a directory reads as empty */
        snprintf(errbuf, errlen, "config %s is not a regular file", path);
        fclose(f);
        return ATL_ECONFIG;
    }
    int rc = config_load_stream(c, f, path, errbuf, errlen);
    fclose(f);
    return rc;
}

/* The keys of one config file so far, with their lines: a key given twice is an error (which
 * one wins is a guess the reader of the file should not have to make). */
typedef struct seen {
    char **keys;
    int *lines;
    size_t n, cap;
} seen_t;

static int seen_add(seen_t *s, const char *key, int lineno, const char *where, char *errbuf,
                    size_t errlen)
{
    for (size_t i = 0; i < s->n; i++) {
        if (strcmp(s->keys[i], key) == 0) {
            char pk[256];
            snprintf(errbuf, errlen, "%s: %s is already set on line %d", where,
                     printable(key, strlen(key), pk), s->lines[i]);
            return ATL_ECONFIG;
        }
    }
    if (s->n == s->cap) {
        size_t cap = s->cap ? s->cap * 2 : 32;
        char **k = realloc(s->keys, cap * sizeof(*k));
        if (k)
            s->keys = k;
        int *l = realloc(s->lines, cap * sizeof(*l));
        if (!k || !l)
            abort();
        s->lines = l;
        s->cap = cap;
    }
    if (!(s->keys[s->n] = strdup(key)))
        abort();
    s->lines[s->n++] = lineno;
    return 0;
}

int config_load_stream(atl_config_t *c, FILE *f, const char *path, char *errbuf, size_t errlen)
{
    char *line = NULL, where[4200];
    seen_t seen = {NULL, NULL, 0, 0};
    size_t cap = 0;
    ssize_t len;
    int lineno = 0, rc = 0;
    while (rc == 0 && (len = getline(&line, &cap, f)) >= 0) {
        lineno++;
        snprintf(where, sizeof(where), "%s:%d", path, lineno);
        if (len > LINE_MAX_BYTES + 1 || (len == LINE_MAX_BYTES + 1 && line[len - 1] != '\n')) {
            snprintf(errbuf, errlen, "%s: line of %zd bytes is longer than %d", where, len,
                     LINE_MAX_BYTES);
            rc = ATL_ECONFIG;
            break;
        }
        if (memchr(line, '\0', (size_t)len)) {
            snprintf(errbuf, errlen, "%s: NUL byte (not a text file?)", where);
            rc = ATL_ECONFIG;
            break;
        }
        char *s = trim(line);
        if (*s == '\0' || *s == '#')
            continue;
        char *eq = strchr(s, '=');
        if (!eq) {
            char pl[256];
            snprintf(errbuf, errlen, "%s: expected key = value, not \"%s\"", where,
                     printable(s, strlen(s), pl));
            rc = ATL_ECONFIG;
            break;
        }
        *eq = '\0';
        char *key = trim(s), *val = trim(eq + 1);
        size_t vl = strlen(val);
        if (vl >= 2 && (val[0] == '"' || val[0] == '\'') && val[vl - 1] == val[0]) {
            /* values are taken as written: quotes would become part of a broker list, a topic
             * or a group id and fail only later, as an unreachable broker or a missing topic */
            char pv[256];
            snprintf(errbuf, errlen,
                     "%s: %s = %s: quotes would be part of the value; write it "
                     "without them",
                     where, printable(key, strlen(key), pv), val[0] == '"' ? "\"...\"" : "'...'");
            rc = ATL_ECONFIG;
            break;
        }
        if ((rc = seen_add(&seen, key, lineno, where, errbuf, errlen)) == 0)
            rc = set_key(c, key, val, where, errbuf, errlen);
    }
    for (size_t i = 0; i < seen.n; i++)
        free(seen.keys[i]);
    free(seen.keys);
    free(seen.lines);
    if (rc == 0 && ferror(f)) {
        snprintf(errbuf, errlen, "reading config %s: %s", path, strerror(errno));
        rc = ATL_ECONFIG;
    }
    free(line);
    return rc;
}

static void print_help(void)
{
    printf("usage: atlasd [--config FILE] [--db DIR] [--brokers LIST] [--http HOST:PORT]\n"
           "              [--group ID] [--KEY=VALUE ...] [--kafka.PROPERTY=VALUE ...]\n\n"
           "The osu! atlas streaming daemon: consumes hiscore updates from Kafka into an LMDB\n"
           "store exactly once, and serves /healthz, /status and /metrics over HTTP.\n\n"
           "settings (file: `key = value`; flags: --key=value or --key value):\n");
    for (size_t i = 0; i < sizeof(opts) / sizeof(opts[0]); i++)
        printf("  --%-22s %s (default \"%s\")\n", opts[i].name, opts[i].help, opts[i].def);
    printf("  --%-22s %s\n", "config FILE", "read settings from FILE first");
    printf("  --%-22s %s\n", "kafka.PROPERTY",
           "passed to librdkafka (e.g. kafka.security.protocol)");
    printf("  --%-22s %s\n", "print-config", "print a documented example config and exit");
    printf("\nsignals: SIGTERM/SIGINT finish the batch and exit 0; SIGHUP reopens the log file\n"
           "exit codes: 0 clean stop, 1 runtime failure (or shutdown-timeout-ms passed),\n"
           "            2 bad configuration (a setting, a path, a kafka.* property; named)\n");
}

void config_print_example(FILE *f)
{
    fprintf(f, "# atlasd configuration: `key = value`; generated by `atlasd --print-config`.\n"
               "# Command-line flags --key=value override this file.\n\n");
    for (size_t i = 0; i < sizeof(opts) / sizeof(opts[0]); i++)
        fprintf(f, "# %s\n%s = %s\n\n", opts[i].help, opts[i].name, opts[i].def);
    fprintf(f, "# librdkafka properties pass through with a kafka. prefix, for example:\n"
               "# kafka.security.protocol = SASL_SSL\n"
               "# kafka.session.timeout.ms = 10000\n");
}

int config_parse_args(atl_config_t *c, int argc, char **argv, char *errbuf, size_t errlen)
{
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            print_help();
            return CONFIG_PARSE_DONE;
        }
        if (strcmp(argv[i], "--print-config") == 0) {
            config_print_example(stdout);
            return CONFIG_PARSE_DONE;
        }
    }
    for (int i = 1; i < argc; i++) { /* the file first, so flags override it */
        const char *val = NULL;
        if (strncmp(argv[i], "--config=", 9) == 0)
            val = argv[i] + 9;
        else if (strcmp(argv[i], "--config") == 0 && i + 1 < argc)
            val = argv[i + 1];
        if (val && load_file(c, val, errbuf, errlen) != 0)
            return ATL_ECONFIG;
    }
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strncmp(a, "--", 2) != 0 || a[2] == '\0') {
            snprintf(errbuf, errlen, "unexpected argument \"%s\" (see --help)", a);
            return ATL_ECONFIG;
        }
        char key[256];
        const char *eq = strchr(a + 2, '='), *val;
        size_t kl = eq ? (size_t)(eq - a - 2) : strlen(a + 2);
        if (kl >= sizeof(key)) {
            snprintf(errbuf, errlen, "option too long: %.40s...", a);
            return ATL_ECONFIG;
        }
        memcpy(key, a + 2, kl);
        key[kl] = '\0';
        if (eq) {
            val = eq + 1;
        } else if (i + 1 < argc) {
            val = argv[++i];
        } else {
            snprintf(errbuf, errlen, "--%s needs a value", key);
            return ATL_ECONFIG;
        }
        if (strcmp(key, "config") == 0)
            continue;
        char where[300];
        snprintf(where, sizeof(where), "flag --%s", key);
        if (set_key(c, key, val, where, errbuf, errlen) != 0)
            return ATL_ECONFIG;
    }
    if (!c->brokers[0]) { /* a configuration error (exit 2), not a start-up failure */
        snprintf(errbuf, errlen, "no Kafka brokers configured (--brokers)");
        return ATL_ECONFIG;
    }
    return 0;
}

void config_log(const atl_config_t *c, char *buf, size_t len)
{
    size_t n = 0;
    for (size_t i = 0; i < sizeof(opts) / sizeof(opts[0]) && n < len; i++) {
        const opt_t *o = &opts[i];
        const char *sep = i ? " " : "";
        if (is_str(o)) {
            const char *v = *(char *const *)((const char *)c + o->offset);
            int secret = strstr(o->name, "token") && v[0];
            n += (size_t)snprintf(buf + n, len - n, "%s%s=\"%s\"", sep, o->name,
                                  secret ? "<set>" : v);
        } else if (o->type == OPT_DBL) {
            n += (size_t)snprintf(buf + n, len - n, "%s%s=%g", sep, o->name,
                                  *(const double *)((const char *)c + o->offset));
        } else {
            n += (size_t)snprintf(buf + n, len - n, "%s%s=%lld", sep, o->name,
                                  (long long)*(const int64_t *)((const char *)c + o->offset));
        }
    }
    for (size_t i = 0; i < c->n_kafka && n < len; i++)
        n += (size_t)snprintf(buf + n, len - n, " kafka.%s=\"%s\"", c->kafka_keys[i],
                              kafka_secret(c->kafka_keys[i]) ? "<set>" : c->kafka_values[i]);
}
