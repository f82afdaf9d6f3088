/* B5, the C side: times no-op-ish calls through the C ABI (include/imstls.h) on one UE.
 * Built and run by benches/ffi.rs (statically against libimstls.a and dynamically against
 * libimstls.so), which times the same Rust calls in between.
 *
 * usage: ffi_loop CALLS   prints "state_ns=<ns per call> next_timeout_ns=<ns per call>"
 */
#define _POSIX_C_SOURCE 199309L /* clock_gettime under -std=c99 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "imstls.h"

static double now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

static void check(imstls_result result, const char *what) {
    if (result != IMSTLS_OK) {
        fprintf(stderr, "%s: %s\n", what, imstls_result_str(result));
        exit(1);
    }
}

int main(int argc, char **argv) {
    long calls = argc > 1 ? atol(argv[1]) : 1000000;
    imstls_config_builder *builder = NULL;
    imstls_config *config = NULL;
    imstls_ue *ue = NULL;
    const char *impus[] = {"sip:alice@ims.test"};

    check(imstls_config_builder_new(&builder), "builder");
    check(imstls_config_builder_add_pcscf(builder, "192.0.2.1:5061"), "add_pcscf");
    check(imstls_config_builder_build(builder, &config), "build");
    check(imstls_ue_new(config, 0, &ue), "ue_new");
    /* Connecting: a state and a deadline to report, as in the Rust loop. */
    check(imstls_ue_start_registration(ue, 0, "alice@ims.test", impus, 1), "start");

    imstls_state state = IMSTLS_STATE_IDLE;
    uint64_t deadline = 0, sink = 0;
    for (long i = 0; i < calls / 10; i++) { /* warm-up */
        check(imstls_ue_state(ue, &state), "state");
        check(imstls_ue_next_timeout(ue, &deadline), "next_timeout");
    }

    double t0 = now_ns();
    for (long i = 0; i < calls; i++) {
        imstls_ue_state(ue, &state);
        sink += (uint64_t)state;
    }
    double t1 = now_ns();
    for (long i = 0; i < calls; i++) {
        imstls_ue_next_timeout(ue, &deadline);
        sink += deadline;
    }
    double t2 = now_ns();

    printf("state_ns=%.3f next_timeout_ns=%.3f sink=%llu\n", (t1 - t0) / (double)calls,
           (t2 - t1) / (double)calls, (unsigned long long)sink);
    imstls_ue_free(ue);
    imstls_config_free(config);
    imstls_config_builder_free(builder);
    return 0;
}
