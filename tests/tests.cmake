# Test registration (STYLE R9). Each test is its own process with a TIMEOUT; exit 77 = skipped.
function(atl_add_test name)
  cmake_parse_arguments(T "" "TIMEOUT" "SOURCES;LABELS;LIBS" ${ARGN})
  if(NOT T_TIMEOUT)
    set(T_TIMEOUT 120)
  endif()
  add_executable(${name} ${T_SOURCES})
  target_link_libraries(${name} PRIVATE ${T_LIBS})
  target_include_directories(${name} PRIVATE ${CMAKE_SOURCE_DIR})
  add_test(NAME ${name} COMMAND ${name})
  set_tests_properties(${name} PROPERTIES LABELS "${T_LABELS}" TIMEOUT "${T_TIMEOUT}"
                       SKIP_RETURN_CODE 77)
endfunction()

# A shell test with the build's binaries on PATH.
function(atl_add_script_test name script)
  cmake_parse_arguments(T "" "TIMEOUT" "LABELS" ${ARGN})
  if(NOT T_TIMEOUT)
    set(T_TIMEOUT 300)
  endif()
  add_test(NAME ${name} COMMAND bash ${CMAKE_SOURCE_DIR}/${script})
  set_tests_properties(${name} PROPERTIES LABELS "${T_LABELS}" TIMEOUT "${T_TIMEOUT}"
    SKIP_RETURN_CODE 77
    ENVIRONMENT "PATH=${CMAKE_BINARY_DIR}:$ENV{PATH};ATL_SRC=${CMAKE_SOURCE_DIR};ATL_BUILD=${CMAKE_BINARY_DIR}")
endfunction()

# Allocation-failure injection (tests/fault/fault.h; issue 10.2, 10.12, 10.15): a test given
# atl_fault_inject() has its calls to the allocator wrapped at link time, so it can fail the n-th
# one. Only test executables: nothing of it is in atlasd or atlasctl.
add_library(atl_fault STATIC tests/fault/fault.c)
target_include_directories(atl_fault PUBLIC ${CMAKE_SOURCE_DIR})
target_link_libraries(atl_fault PRIVATE PkgConfig::CJSON)
atl_warnings(atl_fault)
function(atl_fault_inject target)
  target_link_libraries(${target} PRIVATE atl_fault)
  target_link_options(${target} PRIVATE
    "-Wl,--wrap=malloc,--wrap=calloc,--wrap=realloc,--wrap=strdup,--wrap=strndup,--wrap=posix_memalign,--wrap=aligned_alloc")
endfunction()

# atlasd-faults: atlasd with fault switches for integration tests (tests/fault/daemon_faults.c:
# out of memory while decoding, failing batch commits), turned on by files in $ATL_FAULT_DIR
add_executable(atlasd-faults daemon/main.c tests/fault/daemon_faults.c)
get_target_property(_atlasd_defs atlasd COMPILE_DEFINITIONS)
get_target_property(_atlasd_libs atlasd LINK_LIBRARIES)
if(_atlasd_defs)
  target_compile_definitions(atlasd-faults PRIVATE ${_atlasd_defs})
endif()
target_include_directories(atlasd-faults PRIVATE ${CMAKE_SOURCE_DIR})
target_link_libraries(atlasd-faults PRIVATE ${_atlasd_libs})
atl_fault_inject(atlasd-faults)
target_link_options(atlasd-faults PRIVATE "-Wl,--wrap=store_event_decode,--wrap=store_batch_commit")

atl_add_test(test_atl SOURCES tests/unit/algo/test_atl.c LIBS atl_algo LABELS unit)
atl_add_test(test_item SOURCES tests/unit/algo/test_item.c LIBS atl_algo LABELS unit)
atl_add_test(test_weight SOURCES tests/unit/algo/test_weight.c LIBS atl_algo LABELS unit)
atl_add_test(test_cooc SOURCES tests/unit/algo/test_cooc.c LIBS atl_algo LABELS unit)
atl_add_test(test_event SOURCES tests/unit/store/test_event.c LIBS atl_store LABELS unit)
target_compile_definitions(test_event PRIVATE ATL_TEST_DATA="${CMAKE_SOURCE_DIR}/tests/data")
atl_add_test(test_store SOURCES tests/unit/store/test_store.c LIBS atl_store LABELS unit tsan)
# a store of another format version or another program, or cut short: refused, left as it was
atl_add_test(test_format SOURCES tests/unit/store/test_format.c LIBS atl_store ${ATL_LMDB}
             LABELS unit)
# a snapshot publish on a full filesystem (a 64 KiB tmpfs; skipped where mount is not permitted)
atl_add_test(test_snapshot_enospc SOURCES tests/unit/store/test_snapshot_enospc.c LIBS atl_store
             LABELS unit)
# the map cannot grow (no address space for it): -ENOMEM, the store works on, grows later
atl_add_test(test_map_grow SOURCES tests/unit/store/test_map_grow.c LIBS atl_store LABELS unit)
# every topic name Kafka allows (up to 249 characters) keeps its offset
atl_add_test(test_offsets SOURCES tests/unit/store/test_offsets.c LIBS atl_store LABELS unit)
atl_add_test(test_readahead SOURCES tests/unit/store/test_readahead.c LIBS atl_store LABELS unit)
# the prefetch's failing system calls (store/prefetch.c): wrapped at link time as fault.h does
target_link_options(test_readahead PRIVATE "-Wl,--wrap=mincore,--wrap=mmap,--wrap=pread")
atl_fault_inject(test_store)
atl_add_test(test_refresh SOURCES tests/unit/pipeline/test_refresh.c LIBS atl_pipeline
             LABELS unit tsan TIMEOUT 300)
atl_fault_inject(test_refresh)
atl_add_test(test_kafkaconf SOURCES tests/unit/kafkaconf/test_kafkaconf.c LIBS atl_kafkaconf
             LABELS unit)
atl_add_test(test_embed SOURCES tests/unit/pipeline/test_embed.c LIBS atl_pipeline PkgConfig::CJSON
             LABELS unit tsan) # tsan: S's CSR filled from two halves at once

atl_add_script_test(layering tests/layering.sh LABELS unit)
atl_add_script_test(format-check tests/format_check.sh LABELS unit)
atl_add_script_test(cli tests/integration/test_cli.sh LABELS integration)
# atlasctl on bad input: empty paths, CSV quoting shared by import and produce, BOMs, HTTP
# servers that never answer, non-stores, option ranges, failed writes
atl_add_script_test(cli-errors tests/integration/test_cli_errors.sh LABELS integration TIMEOUT 400)
# atlasctl's shared pieces: option values (empty, not finite, out of range), the store check,
# stdout's writes (tools/cli.c); the dump reader import and produce share (tools/dump.c)
atl_add_test(test_cli SOURCES tests/unit/tools/test_cli.c LIBS atl_tools LABELS unit)
atl_add_test(test_dump SOURCES tests/unit/tools/test_dump.c LIBS atl_tools PkgConfig::CJSON
             LABELS unit)
atl_add_test(test_knn SOURCES tests/unit/algo/test_knn.c LIBS atl_algo LABELS unit tsan) # tsan: graph_build scatters on two threads
atl_fault_inject(test_knn)
atl_add_test(test_mde SOURCES tests/unit/algo/test_mde.c LIBS atl_algo LABELS unit tsan) # tsan: the thread pool (algo/par.c)
atl_fault_inject(test_mde)
# tsan: atlasd end to end (librdkafka's C11 threads through kafkaconf/tsan_c11.c in that build)
atl_add_script_test(daemon tests/integration/test_daemon.sh LABELS integration tsan TIMEOUT 300)
# the scheduler's thread-pool handoff without Kafka: also under TSan
atl_add_test(test_sched SOURCES tests/unit/daemon/test_sched.c LIBS atl_daemon_core
             LABELS unit tsan TIMEOUT 120)
# HTTP answers 500 when memory runs out (issue 10.12): stub routes, allocation failures injected
atl_add_test(test_http SOURCES tests/unit/daemon/test_http.c LIBS atl_daemon_core LABELS unit)
atl_fault_inject(test_http)
# the reference time of the "future" check: the earlier of the message's timestamp and the clock
atl_add_test(test_ingest SOURCES tests/unit/daemon/test_ingest.c LIBS atl_daemon_core LABELS unit)
# Range and If-None-Match parsing, exact values (overlong numbers: RFC 9110 "to the end")
atl_add_test(test_httpparse SOURCES tests/unit/daemon/test_httpparse.c LIBS atl_daemon_core
             LABELS unit)
atl_add_script_test(refresh tests/integration/test_refresh.sh LABELS integration tsan TIMEOUT 400)
atl_add_script_test(crash tests/integration/test_crash.sh LABELS integration TIMEOUT 400)
atl_add_script_test(group tests/integration/test_group.sh LABELS integration TIMEOUT 400)
atl_add_script_test(dlq tests/integration/test_dlq.sh LABELS integration TIMEOUT 300)
atl_add_script_test(loop tests/integration/test_loop.sh LABELS integration TIMEOUT 300)
# atlasd-faults: out of memory while decoding (10.2), a revoke whose flush fails (10.10)
atl_add_script_test(ingest-oom tests/integration/test_ingest_oom.sh LABELS integration TIMEOUT 300)
# a full disk (a 3 MiB tmpfs; skipped where mount is not permitted): stall, say so, resume exactly
atl_add_script_test(disk-full tests/integration/test_disk_full.sh LABELS integration TIMEOUT 300)
# a refresh failing for a lasting reason waits longer each time, and publishes once it can
atl_add_script_test(refresh-backoff tests/integration/test_refresh_backoff.sh LABELS integration TIMEOUT 180)
# the log file's disk full: the lines lost are counted and said once there is space again
atl_add_script_test(log-full tests/integration/test_log_full.sh LABELS integration TIMEOUT 120)
atl_add_script_test(ingest-races tests/integration/test_ingest_races.sh LABELS integration tsan TIMEOUT 300)
atl_add_script_test(topic-kinds tests/integration/test_topic_kinds.sh LABELS integration TIMEOUT 300)
atl_add_script_test(offset-unreadable tests/integration/test_offset_unreadable.sh LABELS integration
                    TIMEOUT 300)
atl_add_script_test(bulk-interrupted tests/integration/test_bulk_interrupted.sh LABELS integration
                    TIMEOUT 120)
# a newer version's store, another program's LMDB file, a cut data.mdb: refused, unchanged
atl_add_script_test(store-compat tests/integration/test_store_compat.sh LABELS integration
                    TIMEOUT 180)
# a store on a read-only mount: reading commands work, writing ones say why (77 without mount)
atl_add_script_test(store-readonly tests/integration/test_store_readonly.sh LABELS integration
                    TIMEOUT 180)
atl_add_script_test(dlq-revoke tests/integration/test_dlq_revoke.sh LABELS integration
                    TIMEOUT 300)
# dead letters of messages over 1 MB, a topic refusing the size, failures in /metrics (10.9)
atl_add_script_test(dlq-size tests/integration/test_dlq_size.sh LABELS integration TIMEOUT 300)
atl_add_script_test(deploy tests/deploy_check.sh LABELS unit)
# configuration mistakes at start-up: exit 2 naming the setting; secrets not logged
atl_add_script_test(config tests/config_check.sh LABELS unit TIMEOUT 120)
# SIGHUP/SIGTERM/SIGINT during start-up, SIGHUP log reopen, repeated stop signals
atl_add_script_test(signals tests/integration/test_signals.sh LABELS integration TIMEOUT 120)
# snapshots over HTTP: write timeout, shutdown with a stalled client, big manifests, cache headers
atl_add_script_test(http-serve tests/integration/test_http_serve.sh LABELS integration TIMEOUT 300)
atl_add_script_test(deploy-live tests/integration/test_deploy_live.sh LABELS integration TIMEOUT 300)

# Fuzz targets (STYLE R10, issue 10.21): libFuzzer with clang under -DATL_FUZZ=ON; otherwise a
# replay of each seed corpus (tests/fuzz/corpus/<target>/) runs in the normal test suite.
function(atl_add_fuzz target lib)
  if(ATL_FUZZ)
    add_executable(fuzz_${target} tests/fuzz/fuzz_${target}.c)
    target_compile_options(fuzz_${target} PRIVATE -fsanitize=fuzzer)
    target_link_options(fuzz_${target} PRIVATE -fsanitize=fuzzer)
  else()
    add_executable(fuzz_${target} tests/fuzz/fuzz_${target}.c tests/fuzz/replay.c)
    add_test(NAME fuzz_${target} COMMAND fuzz_${target}
             ${CMAKE_SOURCE_DIR}/tests/fuzz/corpus/${target})
    set_tests_properties(fuzz_${target} PROPERTIES LABELS "unit;fuzz" TIMEOUT 60)
  endif()
  target_link_libraries(fuzz_${target} PRIVATE ${lib})
  target_include_directories(fuzz_${target} PRIVATE ${CMAKE_SOURCE_DIR})
endfunction()
atl_add_fuzz(event atl_store)
atl_add_fuzz(time atl_store)
atl_add_fuzz(corpus atl_algo)
atl_add_fuzz(config atl_daemon_core)
atl_add_fuzz(http atl_daemon_core)
atl_add_test(test_frame SOURCES tests/unit/algo/test_frame.c LIBS atl_algo LABELS unit)
atl_add_test(test_layout SOURCES tests/unit/algo/test_layout.c LIBS atl_algo LABELS unit tsan TIMEOUT 300)
atl_fault_inject(test_layout)
add_executable(test_corpus tests/unit/algo/test_corpus.c)
target_link_libraries(test_corpus PRIVATE atl_algo)
target_include_directories(test_corpus PRIVATE ${CMAKE_SOURCE_DIR})
add_test(NAME test_corpus COMMAND test_corpus ${CMAKE_SOURCE_DIR}/tests/data/corpus_two_rows.hex)
set_tests_properties(test_corpus PROPERTIES LABELS unit TIMEOUT 60)
atl_add_script_test(viewer tests/integration/test_viewer.sh LABELS integration TIMEOUT 400)
atl_add_test(test_gen_fields SOURCES tests/integration/test_gen_fields.c LIBS PkgConfig::CJSON m
             LABELS integration)
target_compile_definitions(test_gen_fields PRIVATE ATL_ATLASCTL="$<TARGET_FILE:atlasctl>")
add_dependencies(test_gen_fields atlasctl)
atl_add_script_test(map-frame tests/integration/test_map_frame.sh LABELS integration TIMEOUT 600)
atl_add_script_test(demo tests/integration/test_demo.sh LABELS demo TIMEOUT 600)

# Each static library links on its own (STYLE R1): every object pulled in, only the declared
# dependencies on the link line. An undefined reference into another layer fails the build.
foreach(lib atl_algo atl_store atl_pipeline atl_kafkaconf atl_daemon_core atl_tools)
  add_executable(link_${lib} tests/link/main.c)
  target_link_libraries(link_${lib} PRIVATE -Wl,--whole-archive ${lib} -Wl,--no-whole-archive)
  add_test(NAME link-${lib} COMMAND link_${lib})
  set_tests_properties(link-${lib} PROPERTIES LABELS unit TIMEOUT 30)
endforeach()

# The same tests against a real Apache Kafka (KRaft, from Maven Central's jars; tests/kafka/),
# label `kafka`. One broker, started by the fixture test below, is shared by the tests that do
# not stop brokers (each uses topics and a group of its own); the others start their own.
set(ATL_KAFKA_FIXTURE ${CMAKE_BINARY_DIR}/kafka-fixture)
add_test(NAME kafka-broker-start COMMAND bash -c
         "rm -rf '${ATL_KAFKA_FIXTURE}' && exec '${CMAKE_SOURCE_DIR}/tests/kafka/start.sh' '${ATL_KAFKA_FIXTURE}' --max-seconds 1800")
add_test(NAME kafka-broker-stop COMMAND ${CMAKE_SOURCE_DIR}/tests/kafka/stop.sh ${ATL_KAFKA_FIXTURE})
set_tests_properties(kafka-broker-start PROPERTIES FIXTURES_SETUP kafka_broker LABELS kafka
                     TIMEOUT 300)
set_tests_properties(kafka-broker-stop PROPERTIES FIXTURES_CLEANUP kafka_broker LABELS kafka
                     TIMEOUT 60)
function(atl_add_kafka_test name script)
  cmake_parse_arguments(T "" "TIMEOUT" "LABELS" ${ARGN})
  atl_add_script_test(${name} ${script} LABELS ${T_LABELS} TIMEOUT ${T_TIMEOUT})
  set_property(TEST ${name} APPEND PROPERTY ENVIRONMENT "ATL_BROKER=kafka;ATL_KAFKA_DIR=${ATL_KAFKA_FIXTURE}")
  set_property(TEST ${name} PROPERTY FIXTURES_REQUIRED kafka_broker)
endfunction()
atl_add_kafka_test(kafka-daemon tests/integration/test_daemon.sh LABELS kafka TIMEOUT 400)
atl_add_kafka_test(kafka-crash tests/integration/test_crash.sh LABELS kafka TIMEOUT 400)
atl_add_kafka_test(kafka-group tests/integration/test_group.sh LABELS kafka TIMEOUT 400)
atl_add_kafka_test(kafka-dlq tests/integration/test_dlq.sh LABELS kafka TIMEOUT 300)
atl_add_kafka_test(kafka-dlq-size tests/integration/test_dlq_size.sh LABELS kafka TIMEOUT 300)
# 90 MB of dead letters: the real broker only (the mock keeps ~5 MB a partition)
atl_add_kafka_test(kafka-dlq-flood tests/integration/test_dlq_flood.sh LABELS kafka TIMEOUT 300)
atl_add_kafka_test(kafka-replicas tests/integration/test_kafka_replicas.sh LABELS kafka TIMEOUT 400)
# real-broker only: missing topics and offsets out of range (own broker, auto-creation off), a
# 3-node cluster losing the leader mid-stream; the rolling restart is `kafka-slow`
# (ctest -L kafka-slow), outside the default run
atl_add_kafka_test(kafka-topics tests/integration/test_kafka_topics.sh LABELS kafka TIMEOUT 300)
atl_add_kafka_test(kafka-cluster tests/integration/test_kafka_cluster.sh LABELS kafka TIMEOUT 400)
add_test(NAME kafka-rolling COMMAND bash ${CMAKE_SOURCE_DIR}/tests/integration/test_kafka_cluster.sh rolling)
set_tests_properties(kafka-rolling PROPERTIES LABELS kafka-slow TIMEOUT 400 SKIP_RETURN_CODE 77
  ENVIRONMENT "PATH=${CMAKE_BINARY_DIR}:$ENV{PATH};ATL_SRC=${CMAKE_SOURCE_DIR};ATL_BUILD=${CMAKE_BINARY_DIR};ATL_BROKER=kafka")
# osu!track's database -> Kafka -> atlasd: MariaDB + Kafka Connect/Debezium + a real broker
# (label cdc; see README "CDC" for the command and its timing)
atl_add_kafka_test(cdc tests/integration/test_cdc.sh LABELS cdc TIMEOUT 600)
