/* source_files.c -- the "files" frame source: replays recorded frames in a loop, from a directory of
 * TIFF/PNG files (in name order) or from an HDF5 stack ("file.h5:/dataset", frames along the first axis).
 * A recording whose frames fit FILES_CACHE_BYTES is decoded once and then replayed from memory (decoding a
 * 2048^2 TIFF costs about as much CPU as detecting particles in it, which a replay benchmark must not
 * measure); a larger one is read one file or frame per request, so large recordings are never held in memory.
 * An unreadable or oversized frame is counted as rejected (with the reason) and skipped. The source, its cache
 * included, belongs to the camera's acquisition thread. */
#include "drivers/camera/camera_internal.h"

#include "core/base/base.h"
#include "formats/imageio/imageio.h"

#include <dirent.h>
#include <hdf5.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define FILES_CACHE_BYTES ((size_t)256 << 20)

typedef struct cached_frame {
    uint16_t *data;        /* NULL: not decoded yet (or not kept) */
    int width, height;
} cached_frame;

typedef struct files_source {
    frame_source base;
    char **paths;          /* image specs, read in turn */
    int count, next_index;
    cached_frame *cache;   /* per path */
    size_t cached_bytes;   /* kept so far */
    int cache_full;        /* the recording did not fit: frames are read per request, none kept */
} files_source;

static int by_name(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

static int is_image_name(const char *name)
{
    const char *dot = strrchr(name, '.');
    return dot && (!strcasecmp(dot, ".tif") || !strcasecmp(dot, ".tiff") || !strcasecmp(dot, ".png"));
}

static void add_path(files_source *fs, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void add_path(files_source *fs, const char *fmt, ...)
{
    char path[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(path, sizeof path, fmt, ap);
    va_end(ap);
    fs->paths = xrealloc(fs->paths, (size_t)(fs->count + 1) * sizeof *fs->paths);
    fs->paths[fs->count++] = xstrdup(path);
}

/* Keeps a decoded frame while the whole recording still fits; once it does not, frees what was kept. */
static void cache_keep(files_source *fs, int index, const frame *f)
{
    size_t bytes = sizeof(uint16_t) * (size_t)f->width * f->height;
    if (fs->cache_full) return;
    if (fs->cached_bytes + bytes > FILES_CACHE_BYTES) {
        for (int i = 0; i < fs->count; i++) {
            free(fs->cache[i].data);
            fs->cache[i].data = NULL;
        }
        fs->cache_full = 1;
        return;
    }
    cached_frame *c = &fs->cache[index];
    c->data = xmalloc(bytes);
    memcpy(c->data, f->data, bytes);
    c->width = f->width;
    c->height = f->height;
    fs->cached_bytes += bytes;
}

static int files_next(frame_source *s, frame *f, const source_request *rq, double timeout_s, char *err,
                      size_t errlen)
{
    files_source *fs = (files_source *)s;
    int index = fs->next_index;
    const char *path = fs->paths[index];
    fs->next_index = (fs->next_index + 1) % fs->count;
    const cached_frame *c = &fs->cache[index];
    if (c->data) {
        memcpy(f->data, c->data, sizeof(uint16_t) * (size_t)c->width * c->height);
        f->width = c->width;
        f->height = c->height;
        s->counters.received++;
        return 1;
    }
    image img;
    char why[512];
    if (image_read(path, &img, why, sizeof why) != 0) return source_reject(s, "%.250s", why);
    int rc = 0;
    if (img.width > s->max_width || img.height > s->max_height) {
        source_reject(s, "%.180s: %dx%d is larger than the camera's %dx%d", path, img.width, img.height,
                      s->max_width, s->max_height);
    } else {
        for (size_t i = 0; i < (size_t)img.width * img.height; i++) f->data[i] = source_clamp16(img.data[i]);
        f->width = img.width;
        f->height = img.height;
        s->counters.received++;
        cache_keep(fs, index, f);
        rc = 1;
    }
    image_free(&img);
    return rc;
}

static void files_close(frame_source *s)
{
    files_source *fs = (files_source *)s;
    for (int i = 0; i < fs->count; i++) {
        free(fs->paths[i]);
        if (fs->cache) free(fs->cache[i].data);
    }
    free(fs->paths);
    free(fs->cache);
    free(fs);
}

static const frame_source_ops files_ops = {.kind = "files", .next = files_next, .close = files_close};

/* Frames of an HDF5 stack, as "file.h5:/dataset[k]" specs. */
static int add_stack_frames(files_source *fs, const char *spec, char *err, size_t errlen)
{
    image_stack probe;
    /* reads the whole stack once to learn its length and check it; replay then reads frame by frame */
    if (image_stack_read(spec, &probe, err, errlen) != 0) return -1;
    for (int k = 0; k < probe.count; k++) add_path(fs, "%s[%d]", spec, k);
    image_stack_free(&probe);
    return 0;
}

frame_source *source_files_open(const char *path, int max_width, int max_height, char *err, size_t errlen)
{
    files_source *fs = xcalloc(1, sizeof *fs);
    fs->base.ops = &files_ops;
    fs->base.max_width = max_width;
    fs->base.max_height = max_height;
    DIR *dir = strchr(path, ':') ? NULL : opendir(path);
    if (dir) {
        struct dirent *entry;
        while ((entry = readdir(dir)))
            if (is_image_name(entry->d_name)) add_path(fs, "%s/%s", path, entry->d_name);
        closedir(dir);
        if (fs->count) qsort(fs->paths, (size_t)fs->count, sizeof *fs->paths, by_name);
    } else if (strchr(path, ':')) {
        if (add_stack_frames(fs, path, err, errlen) != 0) {
            files_close(&fs->base);
            return NULL;
        }
    } else {
        add_path(fs, "%s", path);    /* a single image file, shown over and over */
    }
    if (!fs->count) {
        snprintf(err, errlen, "files camera source: no .tif/.tiff/.png frames in %s", path);
        files_close(&fs->base);
        return NULL;
    }
    fs->cache = xcalloc((size_t)fs->count, sizeof *fs->cache);
    return &fs->base;
}
