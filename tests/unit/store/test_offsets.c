/*
 * Kafka offsets of long topic names. Kafka allows topic names of up to 249 characters; the store
 * took 199, so a configured topic of 200-249 characters made store_batch_set_offset fail with
 * -EINVAL, on which the daemon aborted at the first message (and its partition table cut names
 * at 127 characters). Every legal name must round-trip; one past Kafka's limit is refused.
 */
#include <errno.h>
#include <string.h>

#include "store/store.h"
#include "tests/check.h"

int main(void)
{
    char *dir = check_tmpdir("offsets");
    store_opts_t o;
    store_opts_default(&o);
    o.no_sync = 1;
    store_t *s;
    E(store_open(dir, &o, &s));
    char topic[STORE_TOPIC_NAME_MAX + 2];
    memset(topic, 't', sizeof(topic) - 1);
    topic[STORE_TOPIC_NAME_MAX] = '\0'; /* 249 characters */
    store_batch_t *b;
    E(store_batch_new(&b));
    E(store_batch_set_offset(b, topic, 7, 1234));
    E(store_batch_set_offset(b, "osutrack.hiscore_updates", 0, 99));
    E(store_batch_commit(s, b));
    int64_t off = -1;
    E(store_offset_get(s, topic, 7, &off));
    CHECK_EQ(off, 1234);
    E(store_offset_get(s, "osutrack.hiscore_updates", 0, &off));
    CHECK_EQ(off, 99);
    CHECK_EQ(store_offset_get(s, topic, 8, &off), ATL_ENOTFOUND);
    char *json = NULL;
    E(store_offsets_json(s, &json));
    CHECK(strstr(json, topic) != NULL); /* the manifest's kafka_offsets list it */
    free(json);
    store_batch_clear(b);
    topic[STORE_TOPIC_NAME_MAX] = 't'; /* 250: longer than Kafka allows */
    CHECK_EQ(store_batch_set_offset(b, topic, 7, 1), -EINVAL);
    CHECK_EQ(store_offset_get(s, topic, 7, &off), -EINVAL);
    store_batch_free(b);
    store_close(s);
    check_rmdir(dir);
    fprintf(stderr, "offsets: a %d-character topic round-trips\n", STORE_TOPIC_NAME_MAX);
    return 0;
}
