/*
 * kafkaconf.h: the librdkafka client set-up that atlasd (its consumer and dead-letter producer,
 * daemon/ingest.c) and atlasctl's Kafka commands (produce, consume, tools/kafka_cli.c) share:
 * a configuration with the bootstrap list and key/value settings, each failure named by its key.
 *
 * A library of its own so that neither side depends on the other (STYLE R1): it links only
 * librdkafka and algo/ (for the error codes). Thread-safety: reentrant; no globals.
 */
#ifndef ATL_KAFKACONF_H
#define ATL_KAFKACONF_H

#include <stddef.h>

#include <librdkafka/rdkafka.h>

/**
 * Set one librdkafka property.
 * @return 0, or ATL_ECONFIG with "kafka.KEY: librdkafka's reason" in @p errbuf.
 */
int kafkaconf_set(rd_kafka_conf_t *conf, const char *key, const char *value, char *errbuf,
                  size_t errlen);

/**
 * A new configuration with `bootstrap.servers` = @p brokers, then the @p n_kv / 2 pairs
 * kv[0] = kv[1], kv[2] = kv[3], ... in order (later settings override earlier ones).
 * @param[out] out the configuration, owned by the caller (rd_kafka_new() consumes it on success,
 *                 rd_kafka_conf_destroy() otherwise); written only on success.
 * @return 0, ATL_ECONFIG (message in @p errbuf), or -ENOMEM.
 */
int kafkaconf_new(const char *brokers, const char *const *kv, size_t n_kv, rd_kafka_conf_t **out,
                  char *errbuf, size_t errlen);

/**
 * Whether a `kafka.*` passthrough key applies to every client type (security.*, sasl.*, ssl.*):
 * consumer-only properties would make a producer fail, so a producer takes only these.
 */
int kafkaconf_key_is_common(const char *key);

#endif
