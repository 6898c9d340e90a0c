/* queue.c -- the ordered list of accepted scan macros: append, remove, reorder, clear, export to a file. */
#include "core/base/base.h"
#include "kernels/scanmacro/scanmacro.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int check_index(const macro_queue *q, int index, char *err, size_t errlen)
{
    if (index < 0 || index >= q->count)
        return error_set(err, errlen, "no macro %d in the queue (it holds %d)", index, q->count);
    return 0;
}

int macro_queue_append(macro_queue *q, const char *text, char *err, size_t errlen)
{
    if (q->count == MACRO_QUEUE_MAX) return error_set(err, errlen, "the macro queue is full (%d)", MACRO_QUEUE_MAX);
    q->entry[q->count++] = xstrdup(text);
    return 0;
}

int macro_queue_remove(macro_queue *q, int index, char *err, size_t errlen)
{
    if (check_index(q, index, err, errlen)) return -1;
    free(q->entry[index]);
    memmove(&q->entry[index], &q->entry[index + 1], (size_t)(q->count - index - 1) * sizeof q->entry[0]);
    q->count--;
    return 0;
}

int macro_queue_move(macro_queue *q, int index, int delta, int *new_index, char *err, size_t errlen)
{
    if (check_index(q, index, err, errlen)) return -1;
    int to = index + delta;
    if (to < 0 || to >= q->count)
        return error_set(err, errlen, "macro %d cannot move %s", index, delta < 0 ? "up" : "down");
    char *moving = q->entry[index];
    int step = delta < 0 ? -1 : 1;
    for (int i = index; i != to; i += step) q->entry[i] = q->entry[i + step];
    q->entry[to] = moving;
    *new_index = to;
    return 0;
}

void macro_queue_clear(macro_queue *q)
{
    for (int i = 0; i < q->count; i++) free(q->entry[i]);
    q->count = 0;
}

int macro_queue_export(const macro_queue *q, const char *path, char *err, size_t errlen)
{
    char tmp[4096];
    if ((size_t)snprintf(tmp, sizeof tmp, "%s.tmp", path) >= sizeof tmp)
        return error_set(err, errlen, "export path too long");
    FILE *fp = fopen(tmp, "w");
    if (!fp) return error_set(err, errlen, "cannot write %s: %s", tmp, strerror(errno));
    for (int i = 0; i < q->count; i++) fputs(q->entry[i], fp);
    if (fclose(fp) != 0 || rename(tmp, path) != 0) {
        int saved = errno;
        remove(tmp);
        return error_set(err, errlen, "cannot write %s: %s", path, strerror(saved));
    }
    return 0;
}
