/* tool_xrfcorr.c -- reloc-xrfcorr: self-absorption correction of XRF maps from the command line.
 *
 *   reloc-xrfcorr MAP.h5 --config CFG.json [--out OUT.h5] [--threads 1|2]
 *                                                             batch: /raw/<El> and /I0 in, corrected file out (on
 *                                                             two cores unless --threads 1)
 *   reloc-xrfcorr --config CFG.json --listen ENDPOINT [--pub ENDPOINT] [--out-dir DIR] [--scans N]
 *                                                             streaming: chunks over ZeroMQ PULL until N scans end
 *                                                             (default 1; 0: until SIGINT/SIGTERM)
 *   reloc-xrfcorr --config CFG.json --coefficients            the prepared configuration (xraylib values) as JSON
 */
#include "kernels/xrf/xrf.h"

#include "core/base/base.h"
#include "core/toolargs/toolargs.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static volatile sig_atomic_t stop_requested;

static void on_signal(int sig) { stop_requested = sig; }

static void usage(void)
{
    fprintf(stderr,
            "usage: reloc-xrfcorr MAP.h5 --config CFG.json [--out OUT.h5] [--threads 1|2]\n"
            "       reloc-xrfcorr --config CFG.json --listen ENDPOINT [--pub ENDPOINT] [--out-dir DIR] [--scans N]\n"
            "                     (--scans: exit after N complete scans, default 1; 0: run until SIGINT/SIGTERM)\n"
            "       reloc-xrfcorr --config CFG.json --coefficients\n");
}

static int run_batch(const xrf_config *cfg, const char *in, const char *out, int threads)
{
    char err[512];
    int width, height;
    xrf_maps raw, corrected, fractions;
    double *i0;
    if (xrf_h5_read_raw(in, cfg, &width, &height, &raw, &i0, err, sizeof err) < 0) {
        log_error("xrfcorr", "%s", err);
        return 1;
    }
    /* CPU time of all threads: the work done, whatever else runs on the machine */
    double t0 = time_monotonic(), cpu0 = time_process_cpu();
    int iterations = xrf_correct_batch(cfg, width, height, (const double *const *)raw.map, i0, threads, &corrected,
                                       &fractions, err, sizeof err);
    int rc = 1;
    if (iterations < 0) {
        log_error("xrfcorr", "%s: %s", in, err);
    } else {
        double seconds = time_monotonic() - t0, cpu_seconds = time_process_cpu() - cpu0;
        log_info("xrfcorr", "%s: %dx%d, %d elements corrected in %.3f s (%d iterations, %.3g pixels/s)", in, width,
                 height, cfg->n_elements, seconds, iterations, width * (double)height / seconds);
        xrf_h5 *h = xrf_h5_create(out, cfg, width, height, 0, err, sizeof err);
        if (h && xrf_h5_write_maps(h, (const double *const *)raw.map, i0, &corrected, &fractions, iterations, err,
                                   sizeof err) == 0 &&
            xrf_h5_close(h, err, sizeof err) == 0) {
            printf("{\"output\": \"%s\", \"width\": %d, \"height\": %d, \"iterations\": %d, \"threads_asked\": %d, "
                   "\"seconds\": %.6f, \"cpu_seconds\": %.6f}\n", out, width, height, iterations, threads, seconds,
                   cpu_seconds);
            rc = 0;
        } else {
            log_error("xrfcorr", "%s", err);
        }
        xrf_maps_free(&corrected);
        xrf_maps_free(&fractions);
    }
    xrf_maps_free(&raw);
    free(i0);
    return rc;
}

static int run_listen(const xrf_config *cfg, const char *pull, const char *pub, const char *out_dir, int scans)
{
    char err[512];
    xrf_ingest *ing = xrf_ingest_new(cfg, pull, pub, out_dir, err, sizeof err);
    if (!ing) {
        log_error("xrfcorr", "%s", err);
        return 1;
    }
    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);
    log_info("xrfcorr", "listening on %s%s%s", pull, pub ? ", publishing on " : "", pub ? pub : "");
    while (!stop_requested && (scans <= 0 || xrf_ingest_scans_done(ing) < scans)) xrf_ingest_poll(ing, 200);
    log_info("xrfcorr", "%d scans done, exiting", xrf_ingest_scans_done(ing));
    xrf_ingest_free(ing);
    return 0;
}

int main(int argc, char **argv)
{
    const char *config = NULL, *in = NULL, *out = NULL, *listen = NULL, *pub = NULL, *out_dir = NULL;
    int scans = 1, coefficients = 0, threads = 2;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        int has_value = i + 1 < argc;
        if (!strcmp(a, "--config") && has_value) config = argv[++i];
        else if (!strcmp(a, "--out") && has_value) out = argv[++i];
        else if (!strcmp(a, "--listen") && has_value) listen = argv[++i];
        else if (!strcmp(a, "--pub") && has_value) pub = argv[++i];
        else if (!strcmp(a, "--out-dir") && has_value) out_dir = argv[++i];
        else if (!strcmp(a, "--scans") && has_value) scans = atoi(argv[++i]);
        else if (!strcmp(a, "--threads") && has_value) {
            if (toolargs_int(argv[++i], 1, 2, &threads) != 0) {
                fprintf(stderr, "reloc-xrfcorr: --threads must be 1 or 2, not '%s'\n", argv[i]);
                return 2;
            }
        }
        else if (!strcmp(a, "--coefficients")) coefficients = 1;
        else if (!strcmp(a, "-h") || !strcmp(a, "--help")) { usage(); return 0; }
        else if (a[0] != '-' && !in) in = a;
        else { fprintf(stderr, "reloc-xrfcorr: unexpected argument '%s'\n", a); usage(); return 2; }
    }
    if (!config || (!in && !listen && !coefficients)) { usage(); return 2; }
    xrf_config cfg;
    char err[512];
    if (xrf_config_load(&cfg, config, err, sizeof err) < 0) {
        log_error("xrfcorr", "%s", err);
        return 1;
    }
    if (coefficients) {
        char *json = xrf_config_to_json(&cfg);
        printf("%s\n", json);
        free(json);
        return 0;
    }
    if (listen) return run_listen(&cfg, listen, pub, out_dir, scans);
    char default_out[4096];
    if (!out) {
        snprintf(default_out, sizeof default_out, "%.*s_corrected.h5",
                 (int)(strlen(in) > 3 && !strcmp(in + strlen(in) - 3, ".h5") ? strlen(in) - 3 : strlen(in)), in);
        out = default_out;
    }
    return run_batch(&cfg, in, out, threads);
}
