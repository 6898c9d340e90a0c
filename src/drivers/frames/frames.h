/* frames.h -- camera frames and the bounded ring that hands them from one producer (the acquisition thread)
 * to many consumers (image PV, JPEG preview, registration, detection, HDF5 capture).
 *
 * Rules that make "acquisition never waits for a consumer" true:
 *   - Frames live in a pool allocated before acquisition starts: depth + 1 frames at frame_ring_create and one
 *     more for every consumer added. A frame is shared by reference counting; a consumer holds at most one
 *     frame at a time, so a pool of depth + consumers + 1 frames always has a free frame for the producer:
 *     frame_ring_acquire() never blocks.
 *   - Consumers are added at configuration (st.cmd, before iocInit), as many as are configured; once the
 *     producer has acquired its first frame the set is fixed and frame_ring_add_consumer refuses (logged).
 *   - The ring keeps the `depth` newest published frames. A consumer in FRAMES_NEWEST mode takes the newest
 *     frame when it is ready for one and counts the frames it skipped as dropped; in FRAMES_SEQUENTIAL mode
 *     (capture) it takes the next frame in order while the ring still holds it, otherwise it also counts drops.
 *   - Statistics per consumer (processed, dropped, rate, latency) are kept by the ring and read by anyone.
 *
 * Threads and locks: one mutex per ring guards the ring, the pool's reference counts and the statistics;
 * consumers wait on the ring's condition variable. Pixel data of a frame are written only by the producer
 * between acquire and publish, and only read afterwards, so reading pixels needs no lock.
 */
#ifndef RELOC_FRAMES_H
#define RELOC_FRAMES_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

typedef struct frame {
    uint64_t id;                 /* unique, increasing (areaDetector UniqueId) */
    uint64_t origin_id;          /* the uniqueId at the camera that took it (a zmq source: the publisher's
                                  * "frame"); the ring sets it to id when the source left it 0 */
    struct timespec stamp;       /* exposure time stamp */
    int width, height;           /* pixels; data holds width * height uint16 samples, x fastest */
    double stage_x, stage_y, stage_z;   /* sample stage position at exposure (um) */
    double pixel_size;           /* um per pixel at exposure */
    uint16_t *data;
    /* private to the ring */
    int refs;
    size_t capacity;             /* samples allocated */
} frame;

typedef struct frame_ring frame_ring;
typedef struct frame_consumer frame_consumer;

typedef enum { FRAMES_NEWEST, FRAMES_SEQUENTIAL } frames_mode;

typedef struct frame_consumer_stats {
    char name[32];
    uint64_t processed;
    uint64_t dropped;
    double rate_hz;              /* processed frames per second over the last second(s) */
    double latency_s;            /* exposure -> done, last frame */
} frame_consumer_stats;

/* depth: frames kept in the ring; max_pixels: largest frame. */
frame_ring *frame_ring_create(int depth, size_t max_pixels);
/* Wakes every waiting consumer with NULL, then frees everything; no consumer may still be using the ring. */
void frame_ring_destroy(frame_ring *ring);

/* Producer: a free frame to fill (never NULL, never blocks), then publish it. */
frame *frame_ring_acquire(frame_ring *ring, int width, int height);
void frame_ring_publish(frame_ring *ring, frame *f);
/* Gives back an acquired frame that will not be published (the source had nothing, or failed). */
void frame_ring_discard(frame_ring *ring, frame *f);
uint64_t frame_ring_published(frame_ring *ring);

/* Consumers. NULL (logged) once the producer has started. */
frame_consumer *frame_ring_add_consumer(frame_ring *ring, const char *name, frames_mode mode);
/* The consumers' statistics in the order they were added (at most max); returns how many there are. */
int frame_ring_consumers(frame_ring *ring, frame_consumer_stats *out, int max);
/* Waits up to timeout_s for a frame newer than the last one taken; NULL on timeout or when the ring is
 * shutting down. The frame must be given back with frame_consumer_done. */
frame *frame_consumer_next(frame_consumer *c, double timeout_s);
void frame_consumer_done(frame_consumer *c, frame *f);
void frame_consumer_stats_get(frame_consumer *c, frame_consumer_stats *out);
/* Makes every frame_consumer_next return NULL from now on (consumers exit their loops). */
void frame_ring_shutdown(frame_ring *ring);

#endif
