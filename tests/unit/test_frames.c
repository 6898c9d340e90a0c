/* test_frames.c -- the frame ring: the producer never waits, a slow consumer drops frames (and says so)
 * without holding back a fast one, sequential consumers get frames in order, shutdown wakes waiters. */
#include "unit.h"
#include <pthread.h>
#include <unistd.h>

#include "core/base/base.h"
#include "drivers/frames/frames.h"

#define FRAMES 400

typedef struct {
    frame_consumer *consumer;
    useconds_t work_us;
    uint64_t last_id;
    int out_of_order;
    uint64_t taken;
    int pixels_ok;
} consumer_run;

static void *consume(void *arg)
{
    consumer_run *run = arg;
    frame *f;
    while ((f = frame_consumer_next(run->consumer, 2.0))) {
        if (f->id <= run->last_id) run->out_of_order = 1;
        run->last_id = f->id;
        /* the producer wrote the frame id into every pixel: the frame must be intact while held */
        if (run->work_us) usleep(run->work_us);
        for (int i = 0; i < f->width * f->height; i++)
            if (f->data[i] != (uint16_t)f->id) run->pixels_ok = 0;
        run->taken++;
        frame_consumer_done(run->consumer, f);
    }
    return NULL;
}

static void slow_consumer_drops_without_blocking_producer_or_others(void **state)
{
    (void)state;
    frame_ring *ring = frame_ring_create(8, 64 * 64);
    consumer_run runs[3] = {
        {.consumer = frame_ring_add_consumer(ring, "slow", FRAMES_NEWEST), .work_us = 3000, .pixels_ok = 1},
        {.consumer = frame_ring_add_consumer(ring, "fast", FRAMES_NEWEST), .pixels_ok = 1},
        {.consumer = frame_ring_add_consumer(ring, "capture", FRAMES_SEQUENTIAL), .pixels_ok = 1},
    };
    pthread_t threads[3];
    for (int i = 0; i < 3; i++) pthread_create(&threads[i], NULL, consume, &runs[i]);
    for (int k = 1; k <= FRAMES; k++) {
        frame *f = frame_ring_acquire(ring, 64, 64);
        for (int i = 0; i < 64 * 64; i++) f->data[i] = (uint16_t)k;
        f->stamp = time_wall();
        frame_ring_publish(ring, f);
        if (k % 8 == 0) usleep(200);     /* a camera at a few kHz: the fast consumers keep up */
    }
    assert_int_equal(frame_ring_published(ring), FRAMES);
    assert_null(frame_ring_add_consumer(ring, "too late", FRAMES_NEWEST));   /* the set is fixed once running */
    frame_consumer_stats listed[4];
    assert_int_equal(frame_ring_consumers(ring, listed, 4), 3);               /* in the order they were added */
    assert_string_equal(listed[0].name, "slow");
    assert_string_equal(listed[2].name, "capture");
    usleep(100000);
    frame_ring_shutdown(ring);
    for (int i = 0; i < 3; i++) pthread_join(threads[i], NULL);
    frame_consumer_stats stats[3];
    for (int i = 0; i < 3; i++) {
        frame_consumer_stats_get(runs[i].consumer, &stats[i]);
        assert_false(runs[i].out_of_order);
        assert_true(runs[i].pixels_ok);
        assert_int_equal(stats[i].processed, runs[i].taken);
        /* every published frame was either processed or counted as dropped */
        assert_int_equal(stats[i].processed + stats[i].dropped, FRAMES);
    }
    assert_true(stats[0].dropped > FRAMES / 2);          /* 3 ms per frame cannot keep up */
    assert_true(stats[1].processed > stats[0].processed);
    assert_true(stats[2].processed > stats[0].processed);
    frame_ring_destroy(ring);
}

static void *wait_forever(void *arg)
{
    return frame_consumer_next(arg, 30.0);
}

static void shutdown_wakes_waiting_consumers(void **state)
{
    (void)state;
    frame_ring *ring = frame_ring_create(2, 16);
    frame_consumer *c = frame_ring_add_consumer(ring, "waiter", FRAMES_NEWEST);
    pthread_t t;
    pthread_create(&t, NULL, wait_forever, c);
    usleep(50000);
    frame_ring_shutdown(ring);
    void *result = (void *)1;
    pthread_join(t, &result);
    assert_null(result);
    frame_ring_destroy(ring);
}

static void timeout_returns_null_and_frames_grow(void **state)
{
    (void)state;
    frame_ring *ring = frame_ring_create(2, 16);
    frame_consumer *c = frame_ring_add_consumer(ring, "c", FRAMES_NEWEST);
    assert_null(frame_consumer_next(c, 0.01));
    frame *f = frame_ring_acquire(ring, 100, 50);     /* larger than max_pixels: storage grows */
    memset(f->data, 0, 100 * 50 * sizeof(uint16_t));
    frame_ring_publish(ring, f);
    frame *g = frame_consumer_next(c, 1.0);
    assert_ptr_equal(g, f);
    assert_int_equal(g->width * g->height, 5000);
    frame_consumer_done(c, g);
    frame_ring_destroy(ring);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(slow_consumer_drops_without_blocking_producer_or_others),
        cmocka_unit_test(shutdown_wakes_waiting_consumers),
        cmocka_unit_test(timeout_returns_null_and_frames_grow),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
