/*
 * kafka_cli.c: the atlasctl commands that speak Kafka: `kafka-mock` (librdkafka's in-process
 * mock cluster as a process of its own), `produce` (replay a JSONL/CSV dump into Kafka) and
 * `consume` (print a topic, e.g. the dead-letter topic, as JSON lines). `produce` reads its files
 * with the reader `import` uses (tools/dump.h), so both see the same rows.
 *
 * The client set-up they share with the daemon's consumer (bootstrap list, settings named in
 * errors) is kafkaconf/, a small library both link (STYLE R1).
 */
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cJSON.h>
#include <librdkafka/rdkafka.h>
/* rdkafka_mock.h must follow rdkafka.h */
#include <librdkafka/rdkafka_mock.h>

#include "algo/atl.h"
#include "kafkaconf/kafkaconf.h"
#include "tools/cli.h"
#include "tools/dump.h"

#define DEFAULT_TOPICS            "osutrack.hiscore_updates,osutrack.beatmaps,atlasd.dlq"
#define PRODUCE_TIMEOUT_DEFAULT_S 30

/* set by the SIGTERM/SIGINT handler: a signal handler can reach nothing but file-scope state */
static volatile sig_atomic_t stop_requested;

static void on_stop_signal(int sig)
{
    (void)sig;
    stop_requested = 1;
}

static void install_stop_signals(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_stop_signal;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
}

/* ---- kafka-mock -------------------------------------------------------------------------- */

#define MOCK_MAX_ERRORS 100000 /* COUNT of one `error` command */

/* All of @p s as a decimal integer in [lo, hi] (sscanf's %d has no range: "-1" became a
 * count of SIZE_MAX). @return 0 or -1. */
static int parse_int(const char *s, long lo, long hi, int *out)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (end == s || *end || errno || v < lo || v > hi)
        return -1;
    *out = (int)v;
    return 0;
}

/* `error APIKEY COUNT CODE`: the next COUNT requests of APIKEY fail with CODE. @return NULL, or
 * what is wrong with the words. */
static const char *mock_error(rd_kafka_mock_cluster_t *mc, char *const *w, int n)
{
    int api, count, code;
    if (n != 4)
        return "expected error APIKEY COUNT CODE";
    if (parse_int(w[1], 0, INT16_MAX, &api) != 0)
        return "APIKEY must be 0..32767";
    if (parse_int(w[2], 1, MOCK_MAX_ERRORS, &count) != 0)
        return "COUNT must be 1..100000";
    if (parse_int(w[3], INT_MIN, INT_MAX, &code) != 0)
        return "CODE must be an integer (a Kafka error code)";
    rd_kafka_resp_err_t *errs = xcalloc((size_t)count, sizeof(*errs));
    for (int i = 0; i < count; i++)
        errs[i] = (rd_kafka_resp_err_t)code;
    rd_kafka_mock_push_request_errors_array(mc, (int16_t)api, (size_t)count, errs);
    free(errs);
    return NULL;
}

/* `down ID` or `up ID`. @return NULL, or what is wrong. */
static const char *mock_broker(rd_kafka_mock_cluster_t *mc, char *const *w, int n)
{
    int id;
    if (n != 2 || parse_int(w[1], 0, INT32_MAX, &id) != 0)
        return "expected down ID or up ID (a broker id)";
    rd_kafka_resp_err_t err = strcmp(w[0], "down") == 0 ? rd_kafka_mock_broker_set_down(mc, id)
                                                        : rd_kafka_mock_broker_set_up(mc, id);
    return err ? rd_kafka_err2str(err) : NULL;
}

/* Fault injection on stdin, one command per line: down ID | up ID | error APIKEY COUNT CODE.
 * A bad line is reported and skipped: the cluster serves on. */
static void mock_command(rd_kafka_mock_cluster_t *mc, const char *line)
{
    char copy[4096], *w[5], *save = NULL;
    int n = 0;
    snprintf(copy, sizeof(copy), "%s", line);
    for (char *t = strtok_r(copy, " \t\r", &save); t && n < 5; t = strtok_r(NULL, " \t\r", &save))
        w[n++] = t;
    if (n == 0)
        return;
    const char *why = "unknown command (down ID, up ID, error APIKEY COUNT CODE)";
    if (strcmp(w[0], "error") == 0)
        why = mock_error(mc, w, n);
    else if (strcmp(w[0], "down") == 0 || strcmp(w[0], "up") == 0)
        why = mock_broker(mc, w, n);
    if (why)
        fprintf(stderr, "kafka-mock: bad command \"%s\": %s\n", line, why);
    else
        fprintf(stderr, "kafka-mock: done: %s\n", line);
}

/* Fault-injection commands from stdin, one per line, until SIGTERM/SIGINT; after EOF the cluster
 * keeps serving. */
static void serve_commands(rd_kafka_mock_cluster_t *mc)
{
    /* read(2), not stdio: poll() cannot see lines already buffered inside a FILE */
    char buf[4096];
    size_t used = 0;
    int stdin_open = 1;
    while (!stop_requested) {
        struct pollfd p = {STDIN_FILENO, POLLIN, 0};
        if (!stdin_open || poll(&p, 1, 200) <= 0) {
            if (!stdin_open)
                nanosleep(&(struct timespec){0, 200000000}, NULL);
            continue;
        }
        ssize_t n = read(STDIN_FILENO, buf + used, sizeof(buf) - 1 - used);
        if (n <= 0) {
            stdin_open = 0; /* EOF: keep serving until a signal */
            continue;
        }
        used += (size_t)n;
        buf[used] = '\0';
        char *line = buf, *nl;
        while ((nl = strchr(line, '\n'))) {
            nl[0] = '\0';
            mock_command(mc, line);
            line = nl + 1;
        }
        used = strlen(line);
        memmove(buf, line, used + 1);
        if (used == sizeof(buf) - 1)
            used = 0; /* an absurdly long line: drop it */
    }
}

int cmd_kafka_mock(int argc, char **argv)
{
    uint64_t brokers = 3, partitions = 4;
    const char *topics = DEFAULT_TOPICS;
    const cli_opt_t opts[] = {
        {"brokers", CLI_U64, &brokers, "N", "number of brokers (default 3)"},
        {"partitions", CLI_U64, &partitions, "P", "partitions per topic (default 4)"},
        {"topics", CLI_STR, &topics, "a,b", "topics to create (default " DEFAULT_TOPICS ")"},
    };
    const cli_range_t ranges[] = {{"brokers", 1, 16}, {"partitions", 1, 256}};
    const cli_cmd_t cmd = {
        "kafka-mock",
        "[--brokers N] [--partitions P] [--topics a,b]",
        "Run librdkafka's mock Kafka cluster on loopback until SIGTERM. The first line of stdout\n"
        "is the bootstrap list. Lines on stdin inject faults: `down ID`, `up ID`,\n"
        "`error APIKEY COUNT ERRCODE` (COUNT 1..100000; a bad line is reported and skipped).\n"
        "In memory only: about 5 MiB per partition is retained.",
        opts,
        ATL_ARRAY_LEN(opts),
        ranges,
        ATL_ARRAY_LEN(ranges)};
    int rc = cli_parse(&cmd, argc, argv, NULL, NULL);
    if (rc != 0)
        return cli_exit(rc);
    char errstr[512];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof(errstr));
    if (!rk) {
        fprintf(stderr, "atlasctl kafka-mock: %s\n", errstr);
        return CLI_EXIT_FAIL;
    }
    rd_kafka_mock_cluster_t *mc = rd_kafka_mock_cluster_new(rk, (int)brokers);
    if (!mc) {
        fprintf(stderr, "atlasctl kafka-mock: could not start the mock cluster\n");
        rd_kafka_destroy(rk);
        return CLI_EXIT_FAIL;
    }
    char *list = strdup(topics), *save = NULL;
    for (char *t = strtok_r(list, ",", &save); t; t = strtok_r(NULL, ",", &save))
        rd_kafka_mock_topic_create(mc, t, (int)partitions, 1);
    free(list);
    printf("%s\n", rd_kafka_mock_cluster_bootstraps(mc));
    fflush(stdout);
    install_stop_signals();
    serve_commands(mc);
    rd_kafka_mock_cluster_destroy(mc);
    rd_kafka_destroy(rk);
    return CLI_EXIT_OK;
}

/* ---- produce ----------------------------------------------------------------------------- */

#define PRODUCE_MAX_REPORTED 10 /* CSV records that cannot be read, reported one by one */

typedef struct producer {
    rd_kafka_t *rk;
    const char *topic; /* NULL: route by kind */
    const char *topic_hiscores, *topic_beatmaps;
    uint64_t timeout_s; /* message.timeout.ms / 1000 */
    uint64_t sent, delivered, failed, unreadable;
    char first_error[256];
} producer_t;

static void on_delivery(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
    (void)rk;
    producer_t *p = opaque;
    if (!m->err) {
        p->delivered++;
        return;
    }
    if (p->failed++ > 0)
        return; /* the first failure says why */
    if (m->err == RD_KAFKA_RESP_ERR__MSG_TIMED_OUT)
        snprintf(p->first_error, sizeof(p->first_error),
                 "not acknowledged within %" PRIu64 " s (--timeout; are the brokers reachable?)",
                 p->timeout_s);
    else
        snprintf(p->first_error, sizeof(p->first_error), "%s", rd_kafka_err2str(m->err));
}

/* Key (user id, beatmap id or score id as text) and topic of one JSON row. */
static const char *route(const producer_t *p, const cJSON *o, char *key, size_t keylen)
{
    const cJSON *u = cJSON_GetObjectItemCaseSensitive(o, "user");
    const cJSON *s = cJSON_GetObjectItemCaseSensitive(o, "score_id");
    const cJSON *b = cJSON_GetObjectItemCaseSensitive(o, "beatmap_id");
    key[0] = '\0';
    if (cJSON_IsNumber(u))
        snprintf(key, keylen, "%.0f", u->valuedouble);
    else if (cJSON_IsString(s))
        snprintf(key, keylen, "%s", s->valuestring);
    else if (cJSON_IsNumber(b))
        snprintf(key, keylen, "%.0f", b->valuedouble);
    if (p->topic)
        return p->topic;
    return cJSON_IsNumber(u) || !cJSON_IsObject(o) ? p->topic_hiscores : p->topic_beatmaps;
}

static int produce_one(producer_t *p, const char *topic, const char *key, const void *val,
                       size_t len)
{
    for (;;) {
        rd_kafka_resp_err_t err =
            rd_kafka_producev(p->rk, RD_KAFKA_V_TOPIC(topic), RD_KAFKA_V_KEY(key, strlen(key)),
                              RD_KAFKA_V_VALUE((void *)val, len),
                              RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_END);
        if (err == RD_KAFKA_RESP_ERR__QUEUE_FULL) {
            rd_kafka_poll(p->rk, 50);
            continue;
        }
        if (err) {
            fprintf(stderr, "atlasctl produce: %s\n", rd_kafka_err2str(err));
            return -EIO;
        }
        p->sent++;
        rd_kafka_poll(p->rk, 0);
        return 0;
    }
}

/* One row (JSON text) to its topic, keyed by its user, score or beatmap id. */
static int produce_row(producer_t *p, const char *val, size_t len, cli_progress_t *prog)
{
    char key[64];
    cJSON *o = cJSON_ParseWithLength(val, len); /* for routing only: bad rows go as they are */
    const char *topic = route(p, o, key, sizeof(key));
    cJSON_Delete(o);
    int rc = produce_one(p, topic, key, val, len);
    cli_progress_update(prog, 0, "%" PRIu64 " sent, %" PRIu64 " acknowledged", p->sent,
                        p->delivered);
    return rc;
}

/* JSON lines as they are. */
static int produce_jsonl(producer_t *p, dump_t *d, cli_progress_t *prog)
{
    const char *line;
    size_t len;
    int rc;
    while ((rc = dump_line_next(d, &line, &len)) == 1)
        if ((rc = produce_row(p, line, len, prog)) != 0)
            return rc;
    return rc;
}

/* CSV rows as JSON objects, typed as `import` types them (one reader: tools/dump.h). A record
 * the reader cannot take is reported by its line and counted, and not sent. */
static int produce_csv(producer_t *p, dump_t *d, cli_progress_t *prog)
{
    char err[512];
    int rc = dump_csv_header(d, err, sizeof(err));
    if (rc == ATL_EBADEVENT)
        fprintf(stderr, "%s:%s\n", d->path, err);
    while (rc == 0 && d->n_names > 0) {
        int got = dump_csv_next(d, err, sizeof(err));
        if (got == 0 || got == -EIO)
            return got;
        if (got == ATL_EBADEVENT) {
            if (p->unreadable++ < PRODUCE_MAX_REPORTED)
                fprintf(stderr, "%s:%" PRIu64 ": not sent: %s\n", d->path, d->record_line, err);
            continue;
        }
        char *json = dump_csv_json(d);
        if (!json)
            return -ENOMEM;
        rc = produce_row(p, json, strlen(json), prog);
        free(json);
    }
    return rc;
}

static int produce_file(producer_t *p, const char *path, cli_progress_t *prog)
{
    dump_t d;
    char err[512];
    int rc = dump_open(&d, path, err, sizeof(err));
    if (rc != 0) {
        fprintf(stderr, "atlasctl produce: %s\n", err);
        return rc;
    }
    rc = d.format == DUMP_CSV ? produce_csv(p, &d, prog) : produce_jsonl(p, &d, prog);
    if (rc == -EIO)
        fprintf(stderr, "atlasctl produce: read error on %s\n", path);
    dump_close(&d);
    return rc;
}

static rd_kafka_t *new_client(rd_kafka_type_t type, const char *brokers, void *opaque,
                              const char *const *kv, size_t n_kv)
{
    char errstr[512];
    rd_kafka_conf_t *conf;
    if (kafkaconf_new(brokers, kv, n_kv, &conf, errstr, sizeof(errstr)) != 0)
        goto bad;
    if (type == RD_KAFKA_PRODUCER)
        rd_kafka_conf_set_dr_msg_cb(conf, on_delivery);
    rd_kafka_conf_set_opaque(conf, opaque);
    rd_kafka_t *rk = rd_kafka_new(type, conf, errstr, sizeof(errstr));
    if (rk)
        return rk;
    rd_kafka_conf_destroy(conf);
bad:
    fprintf(stderr, "atlasctl: %s\n", errstr);
    return NULL;
}

/* The end of a produce run: its failures, each said once. @return the exit code. */
static int produce_report(producer_t *p, int rc, const char **files)
{
    int outstanding = rd_kafka_outq_len(p->rk);
    rd_kafka_destroy(p->rk);
    free(files);
    if (p->failed)
        fprintf(stderr, "atlasctl produce: %" PRIu64 " messages failed: %s\n", p->failed,
                p->first_error);
    if (outstanding > 0)
        fprintf(stderr, "atlasctl produce: %d messages or requests still unacknowledged\n",
                outstanding);
    if (p->unreadable)
        fprintf(stderr, "atlasctl produce: %" PRIu64 " CSV records could not be read (not sent)\n",
                p->unreadable);
    return rc == 0 && !p->failed && outstanding <= 0 && !p->unreadable ? CLI_EXIT_OK
                                                                       : CLI_EXIT_FAIL;
}

int cmd_produce(int argc, char **argv)
{
    producer_t p = {.topic_hiscores = "osutrack.hiscore_updates",
                    .topic_beatmaps = "osutrack.beatmaps",
                    .timeout_s = PRODUCE_TIMEOUT_DEFAULT_S};
    const char *brokers = NULL;
    const cli_opt_t opts[] = {
        {"brokers", CLI_NEED, &brokers, "LIST", "bootstrap servers"},
        {"topic", CLI_STR, &p.topic, "T",
         "topic for every row (default: hiscore rows to osutrack.hiscore_updates, others to "
         "osutrack.beatmaps)"},
        {"topic-hiscores", CLI_STR, &p.topic_hiscores, "T",
         "topic of hiscore rows (default osutrack.hiscore_updates)"},
        {"topic-beatmaps", CLI_STR, &p.topic_beatmaps, "T",
         "topic of beatmap and difficulty rows (default osutrack.beatmaps)"},
        {"timeout", CLI_U64, &p.timeout_s, "S",
         "fail a message not acknowledged within S seconds, e.g. with the brokers unreachable "
         "(default 30)"},
    };
    const cli_range_t ranges[] = {{"timeout", 1, 86400}};
    const cli_cmd_t cmd = {"produce",
                           "--brokers LIST [--topic T | --topic-hiscores T --topic-beatmaps T] "
                           "[--timeout S] FILE... (JSONL or CSV; - stdin)",
                           "Replay a dump into Kafka, keyed by user (beatmap rows by beatmap id);\n"
                           "exits once every message is acknowledged, or 1 if one is not.",
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
        fprintf(stderr, "atlasctl produce: no input files (see --help)\n");
        free(files);
        return CLI_EXIT_USAGE;
    }
    /* message.max.bytes: a row as big as the broker's topic takes (librdkafka's 1 MB default
     * would refuse it locally; the dead-letter test sends 2 MB). message.timeout.ms: --timeout
     * (librdkafka's 300 s made a run against unreachable brokers take five minutes to fail). */
    char timeout_ms[32];
    snprintf(timeout_ms, sizeof(timeout_ms), "%" PRIu64, p.timeout_s * 1000);
    const char *kv[] = {"linger.ms",
                        "20",
                        "queue.buffering.max.messages",
                        "500000",
                        "enable.idempotence",
                        "true",
                        "message.max.bytes",
                        "16777216",
                        "message.timeout.ms",
                        timeout_ms};
    if (!(p.rk = new_client(RD_KAFKA_PRODUCER, brokers, &p, kv, ATL_ARRAY_LEN(kv)))) {
        free(files);
        return CLI_EXIT_FAIL;
    }
    cli_progress_t prog;
    cli_progress_init(&prog, "produce");
    for (size_t i = 0; i < n_files && rc == 0; i++)
        rc = produce_file(&p, files[i], &prog);
    /* every message is acknowledged or has failed by its timeout: flush cannot take longer */
    rd_kafka_flush(p.rk, (int)(p.timeout_s * 1000 + 5000));
    cli_progress_update(&prog, 1, "%" PRIu64 " sent, %" PRIu64 " acknowledged", p.sent,
                        p.delivered);
    cli_progress_done(&prog);
    return produce_report(&p, rc, files);
}

/* ---- consume ----------------------------------------------------------------------------- */

static void print_message(const rd_kafka_message_t *m)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "partition", m->partition);
    cJSON_AddNumberToObject(o, "offset", (double)m->offset);
    char *k = strndup(m->key ? m->key : "", m->key_len);
    char *v = strndup(m->payload ? m->payload : "", m->len);
    cJSON_AddStringToObject(o, "key", k);
    cJSON_AddStringToObject(o, "value", v);
    free(k);
    free(v);
    rd_kafka_headers_t *hdrs = NULL;
    cJSON *h = cJSON_AddObjectToObject(o, "headers");
    if (rd_kafka_message_headers(m, &hdrs) == 0) {
        const char *name;
        const void *val;
        size_t len;
        for (size_t i = 0; rd_kafka_header_get_all(hdrs, i, &name, &val, &len) == 0; i++) {
            char *s = strndup(val ? val : "", len);
            cJSON_AddStringToObject(h, name, s);
            free(s);
        }
    }
    char *s = cJSON_PrintUnformatted(o);
    printf("%s\n", s);
    free(s);
    cJSON_Delete(o);
}

/* Print messages until @p count (0: no limit), @p timeout_ms without one, or a signal. */
static void print_messages(rd_kafka_t *rk, uint64_t count, uint64_t timeout_ms)
{
    uint64_t got = 0;
    double last = pipeline_now();
    install_stop_signals();
    while (!stop_requested && (count == 0 || got < count) &&
           (pipeline_now() - last) * 1000 < (double)timeout_ms) {
        rd_kafka_message_t *m = rd_kafka_consumer_poll(rk, 100);
        if (!m)
            continue;
        if (!m->err) {
            print_message(m);
            got++;
            last = pipeline_now();
        }
        rd_kafka_message_destroy(m);
    }
    fflush(stdout);
}

int cmd_consume(int argc, char **argv)
{
    const char *brokers = NULL, *topic = NULL;
    uint64_t count = 0, timeout_ms = 10000;
    const cli_opt_t opts[] = {
        {"brokers", CLI_NEED, &brokers, "LIST", "bootstrap servers"},
        {"topic", CLI_NEED, &topic, "T", "topic to read from the beginning"},
        {"count", CLI_U64, &count, "N", "stop after N messages (default: at the timeout)"},
        {"timeout-ms", CLI_U64, &timeout_ms, "MS", "stop after this long without a message"},
    };
    const cli_cmd_t cmd = {
        "consume",
        "--brokers LIST --topic T [--count N]",
        "Print a topic's messages as JSON lines (partition, offset, key, value,\n"
        "headers), e.g. the dead-letter topic. No consumer group is used.",
        opts,
        ATL_ARRAY_LEN(opts),
        NULL,
        0};
    int rc = cli_parse(&cmd, argc, argv, NULL, NULL);
    if (rc != 0)
        return cli_exit(rc);
    const char *kv[] = {"group.id", "atlasctl-consume", "enable.auto.commit", "false"};
    rd_kafka_t *rk = new_client(RD_KAFKA_CONSUMER, brokers, NULL, kv, ATL_ARRAY_LEN(kv));
    if (!rk)
        return CLI_EXIT_FAIL;
    const rd_kafka_metadata_t *md = NULL;
    rd_kafka_topic_t *rkt = rd_kafka_topic_new(rk, topic, NULL);
    rd_kafka_resp_err_t err = rd_kafka_metadata(rk, 0, rkt, &md, 10000);
    if (err || md->topic_cnt != 1 || md->topics[0].err) {
        fprintf(stderr, "atlasctl consume: no metadata for %s: %s\n", topic,
                rd_kafka_err2str(err ? err : md->topics[0].err));
        rc = CLI_EXIT_FAIL;
        goto out;
    }
    rd_kafka_topic_partition_list_t *parts = rd_kafka_topic_partition_list_new(8);
    for (int i = 0; i < md->topics[0].partition_cnt; i++)
        rd_kafka_topic_partition_list_add(parts, topic, md->topics[0].partitions[i].id)->offset =
            RD_KAFKA_OFFSET_BEGINNING;
    rd_kafka_assign(rk, parts);
    rd_kafka_topic_partition_list_destroy(parts);
    print_messages(rk, count, timeout_ms);
    rd_kafka_consumer_close(rk);
out:
    if (md)
        rd_kafka_metadata_destroy(md);
    rd_kafka_topic_destroy(rkt);
    rd_kafka_destroy(rk);
    return rc;
}
