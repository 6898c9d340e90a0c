/* aravis_floor.c -- Aravis alone, for bench_aravis.py: opens a GigE Vision camera by address, streams Mono8 frames
 * of the given size at the given rate for the given seconds through an ArvStream of 16 buffers (as the "aravis"
 * camera source does), and prints "fps <frames/s> lost <n> latency_ms <median>", the latency being the buffer's
 * arrival time stamp -> popped by the application. Not part of libreloc.
 * Usage: aravis_floor ADDRESS SIZE RATE SECONDS */
#include <arv.h>
#include <stdio.h>
#include <stdlib.h>

static int by_value(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

int main(int argc, char **argv)
{
    if (argc != 5) {
        fprintf(stderr, "usage: %s ADDRESS SIZE RATE SECONDS\n", argv[0]);
        return 2;
    }
    int size = atoi(argv[2]);
    double rate = atof(argv[3]), seconds = atof(argv[4]);
    GError *error = NULL;
    ArvDevice *device = arv_interface_open_device(arv_gv_interface_get_instance(), argv[1], &error);
    ArvCamera *camera = device ? arv_camera_new_with_device(device, &error) : NULL;
    if (!camera) {
        fprintf(stderr, "%s: %s\n", argv[1], error ? error->message : "no camera");
        return 1;
    }
    g_object_unref(device);
    arv_camera_set_pixel_format_from_string(camera, "Mono8", NULL);
    arv_camera_set_region(camera, 0, 0, size, size, NULL);
    arv_camera_set_exposure_time(camera, 1000, NULL);
    arv_camera_set_frame_rate(camera, rate, NULL);
    ArvStream *stream = arv_camera_create_stream(camera, NULL, NULL, &error);
    if (!stream) {
        fprintf(stderr, "stream: %s\n", error->message);
        return 1;
    }
    guint payload = arv_camera_get_payload(camera, NULL);
    for (int i = 0; i < 16; i++) arv_stream_push_buffer(stream, arv_buffer_new_allocate(payload));
    size_t max = (size_t)(rate * seconds * 2 + 16), n = 0;
    double *latency = calloc(max, sizeof *latency);
    unsigned long lost = 0;
    arv_camera_start_acquisition(camera, NULL);
    gint64 start = 0, end = 0;
    while (!start || g_get_monotonic_time() - start < (gint64)(seconds * 1e6)) {
        ArvBuffer *buffer = arv_stream_timeout_pop_buffer(stream, 200000);
        if (!buffer) continue;
        if (arv_buffer_get_status(buffer) == ARV_BUFFER_STATUS_SUCCESS) {
            if (!start) start = g_get_monotonic_time();    /* from the first frame on */
            else if (n < max) latency[n++] = (double)(g_get_real_time() * 1000 - (gint64)arv_buffer_get_system_timestamp(buffer)) * 1e-6;
            end = g_get_monotonic_time();
        } else {
            lost++;
        }
        arv_stream_push_buffer(stream, buffer);
    }
    arv_camera_stop_acquisition(camera, NULL);
    qsort(latency, n, sizeof *latency, by_value);
    printf("fps %.1f lost %lu latency_ms %.3f\n", n / ((end - start) * 1e-6), lost, n ? latency[n / 2] : 0.0);
    free(latency);
    g_object_unref(stream);
    g_object_unref(camera);
    return 0;
}
