/* test_preview.c -- the JPEG preview: a subscriber receives decodable JPEGs of the newest frames with the
 * header a screen needs (frame id, shapes, binning, levels, stage position, pixel size, posted results). */
#include "unit.h"
#include <cjson/cJSON.h>
#include <turbojpeg.h>
#include <unistd.h>
#include <zmq.h>

#include "core/base/base.h"
#include "drivers/frames/frames.h"
#include "drivers/preview/preview.h"

static void publish_gradient(frame_ring *ring, int w, int h)
{
    frame *f = frame_ring_acquire(ring, w, h);
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) f->data[y * w + x] = (uint16_t)(1000 + 50 * x);
    f->stamp = time_wall();
    f->stage_x = 12.5;
    f->stage_y = -3.0;
    f->pixel_size = 0.5;
    frame_ring_publish(ring, f);
}

static void subscriber_receives_decodable_jpeg_with_header(void **state)
{
    (void)state;
    frame_ring *ring = frame_ring_create(4, 256 * 128);
    preview_config cfg;
    preview_config_defaults(&cfg);
    str_copy(cfg.endpoint, "tcp://127.0.0.1:*", sizeof cfg.endpoint);
    cfg.max_width = 128;              /* 256-wide frames are binned by 2 */
    cfg.max_rate_hz = 0;
    char err[256];
    preview *p = preview_start(frame_ring_add_consumer(ring, "preview", FRAMES_NEWEST), &cfg, err, sizeof err);
    assert_non_null(p);
    preview_set_result(p, "registration", "{\"dx\": 1.5, \"ok\": true}");
    preview_set_result(p, "detection", "{\"count\": 3}");
    preview_set_result(p, "detection", NULL);

    void *ctx = zmq_ctx_new(), *sub = zmq_socket(ctx, ZMQ_SUB);
    zmq_setsockopt(sub, ZMQ_SUBSCRIBE, "", 0);
    int timeout_ms = 200;
    zmq_setsockopt(sub, ZMQ_RCVTIMEO, &timeout_ms, sizeof timeout_ms);
    assert_int_equal(zmq_connect(sub, preview_endpoint(p)), 0);

    char header[4096];
    unsigned char jpeg[65536];
    int got = 0, header_len = 0, jpeg_len = 0;
    for (int attempt = 0; attempt < 50 && !got; attempt++) {   /* PUB drops until the SUB has joined */
        publish_gradient(ring, 256, 128);
        header_len = zmq_recv(sub, header, sizeof header - 1, 0);
        if (header_len > 0) {
            jpeg_len = zmq_recv(sub, jpeg, sizeof jpeg, 0);
            got = jpeg_len > 0;
        }
    }
    assert_true(got);
    header[header_len] = '\0';
    cJSON *h = cJSON_Parse(header);
    assert_non_null(h);
    assert_string_equal(cJSON_GetObjectItem(h, "htype")->valuestring, "reloc-preview-1.0");
    assert_int_equal(cJSON_GetArrayItem(cJSON_GetObjectItem(h, "shape"), 0)->valueint, 64);
    assert_int_equal(cJSON_GetArrayItem(cJSON_GetObjectItem(h, "shape"), 1)->valueint, 128);
    assert_int_equal(cJSON_GetArrayItem(cJSON_GetObjectItem(h, "source_shape"), 1)->valueint, 256);
    assert_int_equal(cJSON_GetObjectItem(h, "binning")->valueint, 2);
    assert_true(cJSON_GetObjectItem(h, "pixel_size")->valuedouble == 1.0);
    assert_true(cJSON_GetObjectItem(cJSON_GetObjectItem(h, "stage"), "x")->valuedouble == 12.5);
    assert_true(cJSON_GetObjectItem(h, "frame")->valuedouble >= 1);
    assert_true(cJSON_GetObjectItem(cJSON_GetObjectItem(h, "registration"), "dx")->valuedouble == 1.5);
    assert_null(cJSON_GetObjectItem(h, "detection"));
    cJSON_Delete(h);

    tjhandle tj = tjInitDecompress();
    int w, hgt, subsamp, colorspace;
    assert_int_equal(tjDecompressHeader3(tj, jpeg, (unsigned long)jpeg_len, &w, &hgt, &subsamp, &colorspace), 0);
    assert_int_equal(w, 128);
    assert_int_equal(hgt, 64);
    unsigned char pixels[128 * 64];
    assert_int_equal(tjDecompress2(tj, jpeg, (unsigned long)jpeg_len, pixels, 128, 0, 64, TJPF_GRAY, 0), 0);
    /* the gradient runs dark to bright left to right */
    assert_true(pixels[32 * 128 + 2] < 20 && pixels[32 * 128 + 125] > 235);
    tjDestroy(tj);

    zmq_close(sub);
    zmq_ctx_term(ctx);
    frame_ring_shutdown(ring);
    preview_stop(p);
    frame_ring_destroy(ring);
}

static void unbindable_endpoint_is_refused_with_a_message(void **state)
{
    (void)state;
    frame_ring *ring = frame_ring_create(2, 16);
    preview_config cfg;
    preview_config_defaults(&cfg);
    str_copy(cfg.endpoint, "tcp://not an address", sizeof cfg.endpoint);
    char err[256] = "";
    assert_null(preview_start(frame_ring_add_consumer(ring, "preview", FRAMES_NEWEST), &cfg, err, sizeof err));
    assert_non_null(strstr(err, "cannot bind"));
    frame_ring_destroy(ring);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(subscriber_receives_decodable_jpeg_with_header),
        cmocka_unit_test(unbindable_endpoint_is_refused_with_a_message),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
