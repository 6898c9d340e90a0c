/* sort.c -- an in-place heap sort for the per-frame sorts of src/kernels/detection (link candidates by distance,
 * features by mass). glibc's qsort allocates a merge buffer for arrays over 1 KB, and a live stream must
 * not allocate per frame; heap sort needs no extra memory and is O(n log n) in the worst case. */
#include <string.h>

#include "kernels/detection/detection_internal.h"

static void swap_bytes(unsigned char *a, unsigned char *b, size_t size)
{
    for (size_t i = 0; i < size; i++) {
        unsigned char t = a[i];
        a[i] = b[i];
        b[i] = t;
    }
}

/* Moves element root down until the heap below it is ordered (largest first under cmp). */
static void sift_down(unsigned char *base, size_t root, size_t n, size_t size, locate_compare cmp, void *arg)
{
    for (;;) {
        size_t child = 2 * root + 1;
        if (child >= n) return;
        if (child + 1 < n && cmp(base + child * size, base + (child + 1) * size, arg) < 0) child++;
        if (cmp(base + root * size, base + child * size, arg) >= 0) return;
        swap_bytes(base + root * size, base + child * size, size);
        root = child;
    }
}

void locate_sort(void *array, size_t n, size_t size, locate_compare cmp, void *arg)
{
    unsigned char *base = array;
    if (n < 2) return;
    for (size_t i = n / 2; i-- > 0;) sift_down(base, i, n, size, cmp, arg);
    for (size_t end = n - 1; end > 0; end--) {
        swap_bytes(base, base + end * size, size);
        sift_down(base, 0, end, size, cmp, arg);
    }
}
