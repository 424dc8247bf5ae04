#ifndef CRDKAFKA_SHIM_H
#define CRDKAFKA_SHIM_H

// Debian's librdkafka-dev installs its headers under /usr/include/librdkafka.
#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>
#include <sys/prctl.h>

// rd_kafka_producev() is variadic and cannot be called from Swift; this is the one place
// where the variadic form is spelled out. `headers` is owned by librdkafka on success only.
static inline rd_kafka_resp_err_t crdkafka_produce(rd_kafka_t *rk, const char *topic, int32_t partition,
                                                   const void *key, size_t key_len, const void *value,
                                                   size_t value_len, rd_kafka_headers_t *headers,
                                                   void *opaque) {
    return rd_kafka_producev(rk, RD_KAFKA_V_TOPIC(topic), RD_KAFKA_V_PARTITION(partition),
                             RD_KAFKA_V_KEY(key, key_len), RD_KAFKA_V_VALUE((void *)value, value_len),
                             RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_HEADERS(headers),
                             RD_KAFKA_V_OPAQUE(opaque), RD_KAFKA_V_END);
}

// prctl() is variadic too. Names the calling thread for the kernel (`top -H`, `perf`,
// /proc/…/task/…/comm), which keeps the first 15 bytes.
static inline int crdkafka_name_current_thread(const char *name) {
    return prctl(PR_SET_NAME, (unsigned long)name, 0UL, 0UL, 0UL);
}

#endif
