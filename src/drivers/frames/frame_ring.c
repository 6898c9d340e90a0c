/* frame_ring.c -- the frame pool, the ring of newest frames and per-consumer bookkeeping (frames.h says
 * the rules). Everything here is guarded by ring->lock; see frames.h for why the producer never waits. */
#include "drivers/frames/frames.h"

#include "core/base/base.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

struct frame_consumer {
    frame_ring *ring;
    frame_consumer_stats stats;
    frames_mode mode;
    uint64_t last_id;            /* id of the last frame taken (0: none yet) */
    double rate_window_start;    /* monotonic time the rate window opened */
    uint64_t rate_window_count;
};

struct frame_ring {
    pthread_mutex_t lock;
    pthread_cond_t published_cond;
    int depth, npool, nconsumers;
    size_t max_pixels;
    frame **pool;                /* depth + nconsumers + 1 frames, each allocated on its own (never moves) */
    frame **ring;                /* ring[k % depth]: published frames, newest at (published - 1) */
    uint64_t published;          /* frames published so far = id of the newest */
    int started;                 /* a frame was acquired: the consumers are fixed */
    int shutting_down;
    frame_consumer **consumers;
};

/* [ring locked or not shared yet] One more frame in the pool. */
static void grow_pool(frame_ring *r)
{
    r->pool = xrealloc(r->pool, (size_t)(r->npool + 1) * sizeof *r->pool);
    frame *f = xcalloc(1, sizeof *f);
    f->data = xmalloc(r->max_pixels * sizeof(uint16_t));
    f->capacity = r->max_pixels;
    r->pool[r->npool++] = f;
}

frame_ring *frame_ring_create(int depth, size_t max_pixels)
{
    frame_ring *r = xcalloc(1, sizeof *r);
    pthread_mutex_init(&r->lock, NULL);
    pthread_cond_init(&r->published_cond, NULL);
    r->depth = depth < 1 ? 1 : depth;
    r->max_pixels = max_pixels;
    for (int i = 0; i < r->depth + 1; i++) grow_pool(r);
    r->ring = xcalloc((size_t)r->depth, sizeof *r->ring);
    return r;
}

void frame_ring_destroy(frame_ring *r)
{
    if (!r) return;
    for (int i = 0; i < r->npool; i++) {
        free(r->pool[i]->data);
        free(r->pool[i]);
    }
    for (int i = 0; i < r->nconsumers; i++) free(r->consumers[i]);
    free(r->pool);
    free(r->ring);
    free(r->consumers);
    pthread_cond_destroy(&r->published_cond);
    pthread_mutex_destroy(&r->lock);
    free(r);
}

frame *frame_ring_acquire(frame_ring *r, int width, int height)
{
    size_t pixels = (size_t)width * height;
    pthread_mutex_lock(&r->lock);
    r->started = 1;
    frame *f = NULL;
    for (int i = 0; i < r->npool && !f; i++)
        if (r->pool[i]->refs == 0) f = r->pool[i];
    if (!f) {   /* impossible while consumers hold at most one frame each (frames.h) */
        log_error("frames", "frame pool exhausted: a consumer holds more than one frame");
        abort();
    }
    f->refs = 1;    /* the producer's reference, handed to the ring on publish */
    f->origin_id = 0;
    pthread_mutex_unlock(&r->lock);
    if (pixels > f->capacity) {
        f->data = xrealloc(f->data, pixels * sizeof(uint16_t));
        f->capacity = pixels;
    }
    f->width = width;
    f->height = height;
    return f;
}

void frame_ring_publish(frame_ring *r, frame *f)
{
    pthread_mutex_lock(&r->lock);
    f->id = ++r->published;
    if (!f->origin_id) f->origin_id = f->id;
    frame **slot = &r->ring[f->id % (uint64_t)r->depth];
    if (*slot) (*slot)->refs--;        /* the oldest frame leaves the ring */
    *slot = f;                          /* the producer's reference becomes the ring's */
    pthread_cond_broadcast(&r->published_cond);
    pthread_mutex_unlock(&r->lock);
}

void frame_ring_discard(frame_ring *r, frame *f)
{
    pthread_mutex_lock(&r->lock);
    f->refs--;
    pthread_mutex_unlock(&r->lock);
}

uint64_t frame_ring_published(frame_ring *r)
{
    pthread_mutex_lock(&r->lock);
    uint64_t n = r->published;
    pthread_mutex_unlock(&r->lock);
    return n;
}

frame_consumer *frame_ring_add_consumer(frame_ring *r, const char *name, frames_mode mode)
{
    pthread_mutex_lock(&r->lock);
    frame_consumer *c = NULL;
    if (!r->started) {
        c = xcalloc(1, sizeof *c);
        c->ring = r;
        c->mode = mode;
        c->rate_window_start = time_monotonic();
        str_copy(c->stats.name, name, sizeof c->stats.name);
        r->consumers = xrealloc(r->consumers, (size_t)(r->nconsumers + 1) * sizeof *r->consumers);
        r->consumers[r->nconsumers++] = c;
        grow_pool(r);                  /* the frame this consumer may hold */
    }
    pthread_mutex_unlock(&r->lock);
    if (!c) log_error("frames", "consumer %s comes too late: the camera is acquiring (configure it before iocInit)",
                      name);
    return c;
}

int frame_ring_consumers(frame_ring *r, frame_consumer_stats *out, int max)
{
    pthread_mutex_lock(&r->lock);
    int n = r->nconsumers;
    for (int i = 0; i < n && i < max; i++) out[i] = r->consumers[i]->stats;
    pthread_mutex_unlock(&r->lock);
    return n;
}

/* [ring locked] The frame this consumer should take next, or NULL if none is newer than its last. */
static frame *pick(frame_consumer *c)
{
    frame_ring *r = c->ring;
    if (r->published <= c->last_id) return NULL;
    uint64_t oldest_held = r->published > (uint64_t)r->depth ? r->published - (uint64_t)r->depth + 1 : 1;
    uint64_t want = c->mode == FRAMES_NEWEST ? r->published : c->last_id + 1;
    if (want < oldest_held) want = oldest_held;
    c->stats.dropped += want - c->last_id - 1;
    c->last_id = want;
    return r->ring[want % (uint64_t)r->depth];
}

frame *frame_consumer_next(frame_consumer *c, double timeout_s)
{
    frame_ring *r = c->ring;
    struct timespec deadline = time_add(time_wall(), timeout_s);
    pthread_mutex_lock(&r->lock);
    frame *f = NULL;
    while (!r->shutting_down && !(f = pick(c)))
        if (pthread_cond_timedwait(&r->published_cond, &r->lock, &deadline) != 0) break;
    if (f && !r->shutting_down) f->refs++;
    else f = NULL;
    pthread_mutex_unlock(&r->lock);
    return f;
}

void frame_consumer_done(frame_consumer *c, frame *f)
{
    frame_ring *r = c->ring;
    struct timespec now = time_wall();
    double latency = (double)(now.tv_sec - f->stamp.tv_sec) + (double)(now.tv_nsec - f->stamp.tv_nsec) * 1e-9;
    double mono = time_monotonic();
    pthread_mutex_lock(&r->lock);
    f->refs--;
    c->stats.processed++;
    c->stats.latency_s = latency;
    c->rate_window_count++;
    double window = mono - c->rate_window_start;
    if (window >= 1.0) {
        c->stats.rate_hz = (double)c->rate_window_count / window;
        c->rate_window_count = 0;
        c->rate_window_start = mono;
    }
    pthread_mutex_unlock(&r->lock);
}

void frame_consumer_stats_get(frame_consumer *c, frame_consumer_stats *out)
{
    pthread_mutex_lock(&c->ring->lock);
    *out = c->stats;
    /* a consumer that stopped receiving frames reports its rate decaying to zero */
    double window = time_monotonic() - c->rate_window_start;
    if (window > 2.0) out->rate_hz = (double)c->rate_window_count / window;
    pthread_mutex_unlock(&c->ring->lock);
}

void frame_ring_shutdown(frame_ring *r)
{
    pthread_mutex_lock(&r->lock);
    r->shutting_down = 1;
    pthread_cond_broadcast(&r->published_cond);
    pthread_mutex_unlock(&r->lock);
}
