/*
 * kafkaconf.c: librdkafka configuration shared by the daemon and atlasctl (see kafkaconf.h).
 * Every error names the property it is about, the way config errors name file:line (STYLE R3).
 */
#include "kafkaconf/kafkaconf.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "algo/atl.h"

int kafkaconf_set(rd_kafka_conf_t *conf, const char *key, const char *value, char *errbuf,
                  size_t errlen)
{
    char e[512];
    if (rd_kafka_conf_set(conf, key, value, e, sizeof(e)) == RD_KAFKA_CONF_OK)
        return 0;
    snprintf(errbuf, errlen, "kafka.%s: %s", key, e);
    return ATL_ECONFIG;
}

int kafkaconf_new(const char *brokers, const char *const *kv, size_t n_kv, rd_kafka_conf_t **out,
                  char *errbuf, size_t errlen)
{
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    int rc;
    if (!conf)
        return -ENOMEM;
    if ((rc = kafkaconf_set(conf, "bootstrap.servers", brokers, errbuf, errlen)) != 0)
        goto out;
    for (size_t i = 0; i + 1 < n_kv; i += 2)
        if ((rc = kafkaconf_set(conf, kv[i], kv[i + 1], errbuf, errlen)) != 0)
            goto out;
    *out = conf;
    return 0;
out:
    rd_kafka_conf_destroy(conf);
    return rc;
}

int kafkaconf_key_is_common(const char *key)
{
    return !strncmp(key, "security.", 9) || !strncmp(key, "sasl.", 5) || !strncmp(key, "ssl.", 4);
}
