/* test_xrf.c -- unit tests of src/kernels/xrf through its C interface (the one the IOC uses): the correction inverts the
 * forward model exactly for every numerical choice when the composition is uniform along the beam; the streaming
 * engine fed in chunks of any size, in either direction, ends with the batch map, never changes a row it published
 * as final, and a rejected chunk changes nothing. */
#include "unit.h"
#include <math.h>

#include "kernels/xrf/xrf.h"

#define W 23
#define H 17

static const char *const variants[] = {
    "{\"elements\":[{\"symbol\":\"Zr\",\"line\":\"LA\"},{\"symbol\":\"Hf\",\"line\":\"LA\",\"sensitivity\":3}],"
    "\"thickness_um\":2,\"depth_voxels\":40,\"pixel_um\":0.05}",
    "{\"elements\":[{\"symbol\":\"Fe\"},{\"symbol\":\"Ni\"},{\"symbol\":\"Cu\"}],"
    "\"matrix\":[{\"symbol\":\"Si\",\"fraction\":0.2}],\"pixel_um\":0.2,"
    "\"detector\":{\"half_angle_x_deg\":30,\"half_angle_z_deg\":5,\"tilt_xy_deg\":-20,\"tilt_z_deg\":15},"
    "\"numerics\":{\"n_theta\":6,\"n_phi\":2,\"averaging\":\"exp_mean\",\"source_voxel\":\"half\"}}",
    "{\"elements\":[{\"symbol\":\"Fe\"},{\"symbol\":\"Ni\"}],\"density_g_cm3\":8,\"pixel_um\":0.1,"
    "\"numerics\":{\"n_theta\":1,\"n_phi\":1,\"path_factor\":\"normal\",\"source_voxel\":\"half\"}}",
    "{\"elements\":[{\"symbol\":\"Zr\",\"line\":\"LA\"},{\"symbol\":\"Hf\",\"line\":\"LA\"}],"
    "\"thickness_um\":0.6,\"depth_voxels\":12,\"pixel_um\":0.05,\"detector\":{\"half_angle_z_deg\":25,\"tilt_z_deg\":5},"
    "\"numerics\":{\"n_theta\":3,\"n_phi\":4,\"face_escape\":\"escape\"}}",
    "{\"elements\":[{\"symbol\":\"Fe\"},{\"symbol\":\"Ni\"},{\"symbol\":\"Cu\"}],\"thickness_um\":1,\"depth_voxels\":10,"
    "\"detector\":{\"half_angle_x_deg\":30,\"half_angle_z_deg\":20,\"tilt_xy_deg\":-20},"
    "\"numerics\":{\"averaging\":\"exp_mean\",\"source_voxel\":\"half\",\"face_escape\":\"escape\"}}",
};

static void load(xrf_config *cfg, const char *json)
{
    char err[256];
    int rc = xrf_config_from_json(cfg, json, err, sizeof err);
    if (rc) fprintf(stderr, "config: %s\n", err);
    assert_int_equal(rc, 0);
}

/* A smooth composition, uniform along the beam, and its detected counts. */
static void render(const xrf_config *cfg, double **w, double *i0, xrf_maps *detected)
{
    int n = cfg->n_elements;
    for (int p = 0; p < W * H; p++) {
        double x = p % W, y = p / W, total = 0, share[XRF_MAX_ELEMENTS];
        for (int c = 0; c < n; c++) total += share[c] = 1.2 + sin(0.3 * x * (c + 1) + 0.2 * y * (2 - c));
        for (int c = 0; c < n; c++) w[c][p] = (1 - cfg->matrix_total) * share[c] / total;
        i0[p] = 1e5 * (1 + 0.1 * cos(x + y));
    }
    char err[256];
    assert_int_equal(xrf_forward(cfg, W, H, 1, (const double *const *)w, i0, detected, err, sizeof err), 0);
}

static void correction_inverts_forward_model(void **state)
{
    (void)state;
    for (size_t v = 0; v < sizeof variants / sizeof variants[0]; v++) {
        xrf_config cfg;
        load(&cfg, variants[v]);
        double *w[XRF_MAX_ELEMENTS], *i0 = malloc(W * H * sizeof *i0);
        for (int c = 0; c < cfg.n_elements; c++) w[c] = malloc(W * H * sizeof(double));
        xrf_maps detected, corrected, fractions;
        render(&cfg, w, i0, &detected);
        char err[256];
        assert_int_equal(xrf_correct_batch(&cfg, W, H, (const double *const *)detected.map, i0, 2, &corrected,
                                           &fractions, err, sizeof err), 1);
        double attenuated = 0;
        for (int c = 0; c < cfg.n_elements; c++)
            for (int p = 0; p < W * H; p++) {
                double truth = i0[p] * cfg.element[c].sensitivity * w[c][p];
                attenuated = fmax(attenuated, 1 - detected.map[c][p] / truth);
                assert_true(fabs(corrected.map[c][p] / truth - 1) < 1e-9);
                assert_true(fabs(fractions.map[c][p] - w[c][p]) < 1e-9);
            }
        assert_true(attenuated > 0.01);   /* there was something to correct */
        for (int c = 0; c < cfg.n_elements; c++) free(w[c]);
        free(i0);
        xrf_maps_free(&detected);
        xrf_maps_free(&corrected);
        xrf_maps_free(&fractions);
    }
}

/* What the callback saw: which pixels were published final, with their values then. */
typedef struct seen {
    int n;
    unsigned char final[W * H];
    double first_final[XRF_MAX_ELEMENTS][W * H];
    int changed_after_final;
} seen;

static void on_span(void *user, int y, int x0, int x1, xrf_row_state st, const double *const *corrected,
                    const double *const *fractions, int width)
{
    seen *s = user;
    for (int x = x0; x < x1; x++) {
        if (s->final[y * width + x]) s->changed_after_final = 1;
        if (st != XRF_ROW_FINAL) continue;
        s->final[y * width + x] = 1;
        for (int c = 0; c < s->n; c++) s->first_final[c][y * width + x] = corrected[c][x];
    }
}

/* A chunk of lines [line, line + lines): rows point into the maps; columns are gathered into `buffer`. */
static xrf_chunk make_chunk(const xrf_maps *m, const double *i0, uint64_t scan, uint32_t seq, int columns, int line,
                            int lines, double *buffer)
{
    xrf_chunk ch = {.scan_id = scan, .seq = seq, .columns = columns, .line = line, .lines = lines,
                    .length = columns ? H : W, .n_elements = m->n_elements};
    for (int c = 0; c <= m->n_elements; c++) {
        const double *map = c < m->n_elements ? m->map[c] : i0;
        const double *part = map + line * W;
        if (columns) {
            double *out = buffer + (size_t)c * W * H;
            for (int l = 0; l < lines; l++)
                for (int y = 0; y < H; y++) out[l * H + y] = map[y * W + line + l];
            part = out;
        }
        if (c < m->n_elements) ch.counts[c] = part;
        else ch.i0 = part;
    }
    return ch;
}

static void stream_equals_batch_and_rejects_cleanly(void **state)
{
    xrf_config cfg;
    load(&cfg, variants[*(int *)*state]);
    double *w[XRF_MAX_ELEMENTS], *i0 = malloc(W * H * sizeof *i0);
    double *buffer = malloc((XRF_MAX_ELEMENTS + 1) * W * H * sizeof *buffer);
    double *scratch = malloc((XRF_MAX_ELEMENTS + 1) * W * H * sizeof *scratch);
    for (int c = 0; c < cfg.n_elements; c++) w[c] = malloc(W * H * sizeof(double));
    xrf_maps detected, batch, batch_fractions;
    render(&cfg, w, i0, &detected);
    char err[256];
    assert_int_equal(xrf_correct_batch(&cfg, W, H, (const double *const *)detected.map, i0, 2, &batch,
                                       &batch_fractions, err, sizeof err), 1);
    static const int chunk_sizes[] = {1, 2, 5, 3};
    static const xrf_scan_direction dirs[] = {XRF_SCAN_Y_DESCENDING, XRF_SCAN_Y_ASCENDING, XRF_SCAN_X_ASCENDING,
                                              XRF_SCAN_X_DESCENDING};
    xrf_stream *s = xrf_stream_new(&cfg);
    for (int d = 0; d < 4; d++) {
        int columns = dirs[d] == XRF_SCAN_X_ASCENDING || dirs[d] == XRF_SCAN_X_DESCENDING;
        int up = dirs[d] == XRF_SCAN_Y_ASCENDING || dirs[d] == XRF_SCAN_X_ASCENDING;
        int n_lines = columns ? W : H;
        seen *saw = calloc(1, sizeof *saw);
        saw->n = cfg.n_elements;
        xrf_stream_set_callback(s, on_span, saw);
        assert_int_equal(xrf_stream_begin(s, 10 + d, W, H, dirs[d], err, sizeof err), XRF_OK);
        int done = 0, final_before_end = 0;
        for (uint32_t seq = 0; done < n_lines; seq++) {
            int lines = chunk_sizes[seq % 4] < n_lines - done ? chunk_sizes[seq % 4] : n_lines - done;
            int line = up ? done : n_lines - done - lines;
            if (done > 0) {
                /* A duplicate of the last line, one from the future and one of the other axis change nothing. */
                double *before = malloc(W * H * sizeof *before);
                memcpy(before, xrf_stream_corrected(s, 0), W * H * sizeof *before);
                xrf_chunk bad = make_chunk(&detected, i0, 10 + d, seq - 1, columns, up ? done - 1 : n_lines - done, 1,
                                           scratch);
                assert_int_equal(xrf_stream_push(s, &bad, err, sizeof err), XRF_ERR_DUPLICATE);
                bad = make_chunk(&detected, i0, 10 + d, seq + 1, columns, line, lines, scratch);
                assert_int_equal(xrf_stream_push(s, &bad, err, sizeof err), XRF_ERR_OUT_OF_ORDER);
                bad = make_chunk(&detected, i0, 10 + d, seq, !columns, 0, 1, scratch);
                assert_int_equal(xrf_stream_push(s, &bad, err, sizeof err), XRF_ERR_SHAPE);
                assert_memory_equal(before, xrf_stream_corrected(s, 0), W * H * sizeof *before);
                free(before);
                assert_int_equal(xrf_stream_end(s, err, sizeof err), XRF_ERR_INCOMPLETE);
            }
            xrf_chunk ch = make_chunk(&detected, i0, 10 + d, seq, columns, line, lines, buffer);
            assert_int_equal(xrf_stream_push(s, &ch, err, sizeof err), XRF_OK);
            done += lines;
            if (done < n_lines)
                for (int p = 0; p < W * H; p++) final_before_end += saw->final[p];
        }
        assert_int_equal(xrf_stream_end(s, err, sizeof err), XRF_OK);
        xrf_stream_info info;
        xrf_stream_get_info(s, &info);
        assert_int_equal(info.rows_final, H);
        assert_false(saw->changed_after_final);
        /* The ascending row scan waits for its last chunk before anything is final, and so do column scans with
         * face escape; the others publish final pixels along the way. */
        if (dirs[d] == XRF_SCAN_Y_ASCENDING || (columns && cfg.num.faces == XRF_FACES_ESCAPE))
            assert_int_equal(final_before_end, 0);
        else
            assert_true(final_before_end > 0);
        for (int y = 0; y < H; y++) assert_int_equal(xrf_stream_row_state(s, y), XRF_ROW_FINAL);
        for (int p = 0; p < W * H; p++) assert_true(saw->final[p]);
        for (int c = 0; c < cfg.n_elements; c++) {
            assert_memory_equal(xrf_stream_corrected(s, c), batch.map[c], W * H * sizeof(double));
            assert_memory_equal(xrf_stream_fractions(s, c), batch_fractions.map[c], W * H * sizeof(double));
            assert_memory_equal(saw->first_final[c], batch.map[c], W * H * sizeof(double));
        }
        xrf_stream_set_callback(s, NULL, NULL);
        free(saw);
    }
    /* Abort, then a new scan of another shape on the same stream. */
    assert_int_equal(xrf_stream_begin(s, 20, W, H, XRF_SCAN_Y_ASCENDING, err, sizeof err), XRF_OK);
    xrf_chunk ch = make_chunk(&detected, i0, 20, 0, 0, 0, 2, buffer);
    assert_int_equal(xrf_stream_push(s, &ch, err, sizeof err), XRF_OK);
    assert_int_equal(xrf_stream_row_state(s, 0), XRF_ROW_PROVISIONAL);
    assert_int_equal(xrf_stream_pixel_state(s, 3, 1), XRF_ROW_PROVISIONAL);
    assert_int_equal(xrf_stream_row_state(s, 2), XRF_ROW_MISSING);
    xrf_stream_abort(s);
    assert_int_equal(xrf_stream_push(s, &ch, err, sizeof err), XRF_ERR_NO_SCAN);
    assert_int_equal(xrf_stream_begin(s, 21, W, 1, XRF_SCAN_Y_DESCENDING, err, sizeof err), XRF_OK);
    ch = make_chunk(&detected, i0, 21, 0, 0, 0, 1, buffer);
    assert_int_equal(xrf_stream_push(s, &ch, err, sizeof err), XRF_OK);
    assert_int_equal(xrf_stream_end(s, err, sizeof err), XRF_OK);
    assert_int_equal(xrf_stream_begin(s, 22, 0, H, XRF_SCAN_Y_DESCENDING, err, sizeof err), XRF_ERR_SHAPE);
    xrf_stream_free(s);
    for (int c = 0; c < cfg.n_elements; c++) free(w[c]);
    free(i0);
    free(buffer);
    free(scratch);
    xrf_maps_free(&detected);
    xrf_maps_free(&batch);
    xrf_maps_free(&batch_fractions);
}

int main(void)
{
    static int planar = 1, escape = 4;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(correction_inverts_forward_model),
        cmocka_unit_test_prestate(stream_equals_batch_and_rejects_cleanly, &planar),
        cmocka_unit_test_prestate(stream_equals_batch_and_rejects_cleanly, &escape),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
