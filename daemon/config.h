/*
 * config.h: atlasd's settings (STYLE R6). One table lists every option with its type, range,
 * default and help; it drives the `key = value` config file, `--key=value` flags, --help and
 * the example file in deploy/. `kafka.*` keys pass through to librdkafka unchanged.
 * Precedence: defaults < --config file < command-line flags. Immutable after start.
 */
#ifndef ATL_CONFIG_H
#define ATL_CONFIG_H

#include <netinet/in.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#define CONFIG_MAX_KAFKA 64

typedef struct atl_config {
    char *db;                /* state directory (LMDB store) */
    char *brokers;           /* Kafka bootstrap list */
    char *group;             /* consumer group id */
    char *group_instance_id; /* static membership ("": per store, "none": off) */
    char *http;              /* IPV4:PORT of the HTTP server (checked when set) */
    char *topic_hiscores, *topic_beatmaps, *topic_dlq;
    int64_t batch_max_events;
    int64_t batch_max_ms;
    int64_t batch_backlog_events; /* a batch's events while the previous one commits, at most */
    int64_t max_message_bytes;
    double min_pp;
    int64_t max_future_s; /* update_time tolerance past the broker timestamp / wall clock */
    int64_t map_size_mb;
    int64_t durable; /* fsync every batch commit */
    int64_t stats_interval_s;
    int64_t shutdown_timeout_ms;
    int64_t http_write_timeout_ms; /* an HTTP response without progress this long is cut */
    char *snapshots, *cors_origin, *viewer;
    int64_t refresh_interval_s;      /* timed refresh period (0: off) */
    int64_t refresh_dirty_threshold; /* refresh as soon as this many items are dirty (0: off) */
    int64_t snapshots_keep;
    int64_t seed;
    char *admin_token; /* bearer token for admin calls from other hosts ("" : loopback only) */
    char *log_level;
    char *log_file;
    /* kafka.* pass-through, in the order given */
    char *kafka_keys[CONFIG_MAX_KAFKA], *kafka_values[CONFIG_MAX_KAFKA];
    size_t n_kafka;
} atl_config_t;

/** Fill defaults (strings are heap copies). */
void config_init(atl_config_t *c);

/** Free the strings. */
void config_destroy(atl_config_t *c);

/** config_parse_args(): --help or --print-config was printed; exit 0 (a success, not an error). */
#define CONFIG_PARSE_DONE 1

/**
 * Apply a config file then argv (argv[0] skipped). `--help` prints help and `--print-config`
 * the example config; both return CONFIG_PARSE_DONE.
 * @return 0 to run, CONFIG_PARSE_DONE, or ATL_ECONFIG with a message in errbuf naming the
 *         file:line or the flag.
 */
int config_parse_args(atl_config_t *c, int argc, char **argv, char *errbuf, size_t errlen);

/**
 * Apply `key = value` lines read from @p f (the config file parser; @p path names it in
 * messages). Used by config_parse_args() for --config, and by the fuzzer.
 * @return 0 or ATL_ECONFIG with "path:line: ..." in errbuf.
 */
int config_load_stream(atl_config_t *c, FILE *f, const char *path, char *errbuf, size_t errlen);

/**
 * Parse an HTTP listen address `IPV4:PORT` (the `http` setting): a dotted-quad IPv4 address or
 * nothing (every interface), a colon, and a port 0-65535 in digits (0: ephemeral). Host names and
 * IPv6 are refused, at parse time, so a bad address is a configuration error (exit 2), not a
 * failure after the store is locked and the Kafka group joined. The HTTP server binds with the
 * same function.
 * @return 0 and *out, or ATL_ECONFIG (*out untouched).
 */
int config_http_addr_parse(const char *addr, struct sockaddr_in *out);

/** Write a documented example config (every key, its default, its help) to @p f. */
void config_print_example(FILE *f);

/** Write the effective config on one logfmt line (for the startup log). */
void config_log(const atl_config_t *c, char *buf, size_t len);

#endif
