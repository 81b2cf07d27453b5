/*
 * kafkaconf tests: a configuration with the bootstrap list and settings in order (later ones
 * win), every failure named by its key, and the keys a producer may take from the consumer's.
 */
#include <librdkafka/rdkafka.h>

#include "algo/atl.h"
#include "kafkaconf/kafkaconf.h"
#include "tests/check.h"

static void check_value(rd_kafka_conf_t *conf, const char *key, const char *want)
{
    char v[256];
    size_t len = sizeof(v);
    CHECK_EQ(rd_kafka_conf_get(conf, key, v, &len), RD_KAFKA_CONF_OK);
    CHECK_STREQ(v, want);
}

int main(void)
{
    char err[512] = "";
    rd_kafka_conf_t *conf = NULL;
    const char *const kv[] = {"client.id", "first", "client.id", "second", "log.queue", "true"};
    E(kafkaconf_new("127.0.0.1:9092", kv, ATL_ARRAY_LEN(kv), &conf, err, sizeof(err)));
    check_value(conf, "bootstrap.servers", "127.0.0.1:9092");
    check_value(conf, "client.id", "second");
    CHECK_EQ(kafkaconf_set(conf, "no.such.property", "1", err, sizeof(err)), ATL_ECONFIG);
    CHECK(strncmp(err, "kafka.no.such.property: ", 24) == 0);
    rd_kafka_conf_destroy(conf);

    const char *const bad[] = {"session.timeout.ms", "not-a-number"};
    conf = NULL;
    CHECK_EQ(kafkaconf_new("b:1", bad, ATL_ARRAY_LEN(bad), &conf, err, sizeof(err)), ATL_ECONFIG);
    CHECK(conf == NULL); /* written only on success */
    CHECK(strstr(err, "kafka.session.timeout.ms") != NULL);

    CHECK(kafkaconf_key_is_common("security.protocol"));
    CHECK(kafkaconf_key_is_common("sasl.mechanism"));
    CHECK(kafkaconf_key_is_common("ssl.ca.location"));
    CHECK(!kafkaconf_key_is_common("session.timeout.ms"));
    printf("test_kafkaconf: ok\n");
    return 0;
}
