/* phasecorr.c -- phase correlation of two real arrays of one size: the filtered, whitened cross-power
 * spectrum, its inverse FFT (integer-pixel peak, peak-to-side-lobe ratio), and subpixel refinement by the
 * matrix-multiply DFT of Guizar-Sicairos et al. (2008) evaluated only around the peak.
 *
 * The refinement climbs in levels: each level evaluates a (2r+1)^2 grid at step 1/f around the previous level's
 * maximum (r/f a little over half the previous step), with f growing by REFINE_RATIO up to the requested upsampling
 * factor, instead of one 1.5-pixel grid at the final step. Every level costs O(N * (2r+1)) for an N-pixel frame,
 * so upsample 100 costs about 4 x 7 rows instead of 150. The final grid is the same 1/upsample lattice that the
 * single-level method searches. Rows and columns outside the band filter's support (zero in the cross spectrum)
 * are skipped. */
#include "kernels/registration/registration_internal.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#ifdef __SSE2__
#include <emmintrin.h>
#endif

#include "core/base/base.h"

/* Floats of each refinement sum handled together in stage 1 of dft_region: 2 REFINE_MAX of them fit in L1. */
#define REFINE_CHUNK 256

/* Half-width of the box around the peak left out of the side-lobe statistics. */
#define PSR_EXCLUDE 5

int pc_init(pc_core *pc, int w, int h, const reg_params *p, int use_band, char *err, size_t errlen)
{
    memset(pc, 0, sizeof *pc);
    pc->w = w;
    pc->h = h;
    pc->hw = w / 2 + 1;
    pc->n = (size_t)w * h;
    pc->nspec = (size_t)h * pc->hw;
    pc->p = p;
    pc->real = fftwf_alloc_real(pc->n);
    pc->spec_ref = fftwf_alloc_complex(pc->nspec);
    pc->spec = fftwf_alloc_complex(pc->nspec);
    pc->cross = fftwf_alloc_complex(pc->nspec);
    pc->scratch = fftwf_alloc_complex(pc->nspec);
    pc->ey = xmalloc(sizeof(float complex) * (size_t)h * REFINE_MAX);
    pc->ex = xmalloc(sizeof(float complex) * (size_t)pc->hw * REFINE_MAX);
    pc->acc = xmalloc(sizeof(float) * 4 * (size_t)pc->hw * REFINE_MAX);
    pc->region = xmalloc(sizeof(double) * REFINE_MAX * REFINE_MAX);
    pc->row_cols = xmalloc(sizeof(int) * (size_t)h);
    if (!pc->real || !pc->spec_ref || !pc->spec || !pc->cross || !pc->scratch) {
        snprintf(err, errlen, "out of memory for %dx%d FFT buffers", w, h);
        pc_free(pc);
        return -1;
    }
    memset(pc->spec_ref, 0, sizeof(fftwf_complex) * pc->nspec);
    if (use_band) {
        pc->band = xmalloc(sizeof(float) * pc->nspec);
        if (!band_filter(w, h, p->band_low, p->band_high, pc->band)) {
            free(pc->band);
            pc->band = NULL;
        }
    }
    band_support(pc, pc->band);
    if (plans_make(w, h, p, pc->real, pc->scratch, &pc->fwd, &pc->inv) != 0) {
        snprintf(err, errlen, "FFTW could not plan a %dx%d transform", w, h);
        pc_free(pc);
        return -1;
    }
    return 0;
}

void band_support(pc_core *pc, const float *band)
{
    pc->band_rows = pc->h;
    pc->band_cols = pc->hw;
    for (int k = 0; k < pc->h; k++) pc->row_cols[k] = pc->hw;
    if (!band) return;
    int rows = 0, cols = 0;
    for (int k = 0; k < pc->h; k++) {
        int kk = k < (pc->h + 1) / 2 ? k : k - pc->h;
        pc->row_cols[k] = 0;
        for (int l = 0; l < pc->hw; l++) {
            if (band[(size_t)k * pc->hw + l] == 0) continue;
            if (abs(kk) + 1 > rows) rows = abs(kk) + 1;
            if (l + 1 > cols) cols = l + 1;
            pc->row_cols[k] = l + 1;
        }
    }
    pc->band_rows = rows;
    pc->band_cols = cols;
}

void pc_free(pc_core *pc)
{
    plans_destroy(pc->fwd);
    plans_destroy(pc->inv);
    fftwf_free(pc->real);
    fftwf_free(pc->spec_ref);
    fftwf_free(pc->spec);
    fftwf_free(pc->cross);
    fftwf_free(pc->scratch);
    free(pc->band);
    free(pc->ey);
    free(pc->ex);
    free(pc->acc);
    free(pc->region);
    free(pc->row_cols);
    memset(pc, 0, sizeof *pc);
}

/* Sum of the squares of v[0..n-1]: float running sums in eight lanes (vectorized), added up in double. */
static double sum_squares(const float *restrict v, size_t n)
{
    float lanes[8] = {0};
    double sum = 0;
    size_t i = 0;
    for (; i + 8 <= n; i += 8)
        for (int j = 0; j < 8; j++) lanes[j] += v[i + j] * v[i + j];
    for (; i < n; i++) sum += (double)v[i] * v[i];
    for (int j = 0; j < 8; j++) sum += lanes[j];
    return sum;
}

/* Energy over the full spectrum from the half spectrum: every column twice, less once column 0 and, for even w,
 * column w/2 (they appear once; see half_weight). */
static double spectrum_energy(const pc_core *pc, const fftwf_complex *s)
{
    double e = 0;
    for (int k = 0; k < pc->h; k++) {
        const float *row = (const float *)(s + (size_t)k * pc->hw);
        e += 2 * sum_squares(row, 2 * (size_t)pc->hw) - sum_squares(row, 2);
        if (pc->w % 2 == 0) e -= sum_squares(row + 2 * (pc->hw - 1), 2);
    }
    return e;
}

/* real -> out, and the correlation's scratch -> real, each charged to the core in CPU seconds of the calling
 * thread: a core is used by one thread at a time (FFTW's own worker threads, with params.threads > 1, are not
 * counted). */
static void forward(pc_core *pc, fftwf_complex *out)
{
    double t0 = time_thread_cpu();
    fftwf_execute_dft_r2c(pc->fwd, pc->real, out);
    pc->fft_seconds += time_thread_cpu() - t0;
}

static void inverse(pc_core *pc)
{
    double t0 = time_thread_cpu();
    fftwf_execute_dft_c2r(pc->inv, pc->scratch, pc->real);
    pc->fft_seconds += time_thread_cpu() - t0;
}

void pc_transform(pc_core *pc, int reference)
{
    if (reference) pc_transform_into(pc, pc->spec_ref, &pc->ref_energy);
    else forward(pc, pc->spec);
}

void pc_transform_into(pc_core *pc, fftwf_complex *out, double *energy)
{
    forward(pc, out);
    *energy = spectrum_energy(pc, out);
}

/* One element of the cross spectrum: c = band * g conj(f) / |g f|^p (0 where the product vanishes). Returns its
 * share of the perfect peak's height, |c|. Real arithmetic: C's complex multiply carries a NaN-recovery branch. */
static inline float cross_element(const float *g, const float *f, float *c, float p, float band)
{
    float re = g[0] * f[0] + g[1] * f[1], im = g[1] * f[0] - g[0] * f[1];
    float mag2 = re * re + im * im, scale;
    if (p == 0) scale = 1;
    else if (!(mag2 > 1e-30f)) scale = 0;
    else if (p == 1) scale = 1 / sqrtf(mag2);
    else if (p == 0.5f) scale = 1 / sqrtf(sqrtf(mag2));
    else scale = powf(mag2, -p / 2);
    scale *= band;
    c[0] = re * scale;
    c[1] = im * scale;
    return scale * sqrtf(mag2);
}

#ifdef __SSE2__
/* re + i im = g conj(f) for the four complex numbers at g and f (interleaved): cross_element's first step. */
static inline void product_sse(const float *g, const float *f, __m128 *re, __m128 *im)
{
    __m128 g0 = _mm_loadu_ps(g), g1 = _mm_loadu_ps(g + 4), f0 = _mm_loadu_ps(f), f1 = _mm_loadu_ps(f + 4);
    __m128 gr = _mm_shuffle_ps(g0, g1, _MM_SHUFFLE(2, 0, 2, 0)), gi = _mm_shuffle_ps(g0, g1, _MM_SHUFFLE(3, 1, 3, 1));
    __m128 fr = _mm_shuffle_ps(f0, f1, _MM_SHUFFLE(2, 0, 2, 0)), fi = _mm_shuffle_ps(f0, f1, _MM_SHUFFLE(3, 1, 3, 1));
    *re = _mm_add_ps(_mm_mul_ps(gr, fr), _mm_mul_ps(gi, fi));
    *im = _mm_sub_ps(_mm_mul_ps(gi, fr), _mm_mul_ps(gr, fi));
}

/* cross_element on four elements at a time from column l while l + 4 <= end, for p = 1 or 0.5 (the same IEEE
 * operations in the same order, so the same values). Adds sum |c| to *norm; returns the first column left. */
static int cross_run_sse(const float *g, const float *f, float *c, const float *band, float p, int l, int end,
                         double *norm)
{
    const __m128 tiny = _mm_set1_ps(1e-30f), one = _mm_set1_ps(1.0f);
    __m128 acc = _mm_setzero_ps();
    for (; l + 4 <= end; l += 4) {
        __m128 re, im;
        product_sse(g + 2 * l, f + 2 * l, &re, &im);
        __m128 mag2 = _mm_add_ps(_mm_mul_ps(re, re), _mm_mul_ps(im, im)), mag = _mm_sqrt_ps(mag2);
        __m128 scale = _mm_div_ps(one, p == 1 ? mag : _mm_sqrt_ps(mag));
        scale = _mm_and_ps(_mm_cmpgt_ps(mag2, tiny), scale);
        if (band) scale = _mm_mul_ps(scale, _mm_loadu_ps(band + l));
        __m128 cr = _mm_mul_ps(re, scale), ci = _mm_mul_ps(im, scale);
        _mm_storeu_ps(c + 2 * l, _mm_unpacklo_ps(cr, ci));
        _mm_storeu_ps(c + 2 * l + 4, _mm_unpackhi_ps(cr, ci));
        acc = _mm_add_ps(acc, _mm_mul_ps(scale, mag));
    }
    float lanes[4];
    _mm_storeu_ps(lanes, acc);
    *norm += (double)lanes[0] + lanes[1] + lanes[2] + lanes[3];
    return l;
}
#endif

/* cross = band * G conj(F) / |G F|^whitening, so that the correlation peaks at the moving image's displacement.
 * Returns the sum of |cross| over the full spectrum, the height of a perfect correlation peak. Columns 0 and w/2
 * (w even) count once, the others twice (half_weight): the middle ones run four at a time where SSE2 is there.
 * Only the columns below row_cols[k] of row k are made (the band filter is zero beyond them, and the refinement
 * reads no further); copy, unless NULL, receives the whole spectrum, zero beyond them, for the inverse FFT
 * (which destroys its input): written while each row is in the cache, instead of a copy of the whole cross. */
static double cross_power(pc_core *pc, const fftwf_complex *ref, fftwf_complex *copy)
{
    const float *f = (const float *)ref, *g = (const float *)pc->spec;
    float *c = (float *)pc->cross, p = (float)pc->p->whitening;
    int hw = pc->hw, inner_end = pc->w % 2 == 0 ? hw - 1 : hw;
    double norm = 0;
    for (int k = 0; k < pc->h; k++) {
        const float *band = pc->band ? pc->band + (size_t)k * hw : NULL;
        size_t at = 2 * (size_t)k * hw;
        int cols = pc->row_cols[k], l = 1;
        double inner = 0;
        if (cols > 0) {
#ifdef __SSE2__
            /* The blocks of four as over the whole row, up to the one holding the band's last column: the
             * columns past it add zeros, so the sums are the same. */
            int blocks_end = 1 + (cols + 2) / 4 * 4;
            if (p == 1 || p == 0.5f)
                l = cross_run_sse(g + at, f + at, c + at, band, p, l, blocks_end < inner_end ? blocks_end : inner_end,
                                  &inner);
#endif
            for (; l < cols; l++) {
                float share = cross_element(g + at + 2 * l, f + at + 2 * l, c + at + 2 * l, p, band ? band[l] : 1);
                inner += l < inner_end ? share : share / 2;   /* column w/2 counts once */
            }
            norm += 2 * inner + cross_element(g + at, f + at, c + at, p, band ? band[0] : 1);
        }
        if (copy) {
            size_t made = 2 * (size_t)(cols > l ? cols : cols > 0 ? l : 0);
            float *out = (float *)(copy + (size_t)k * hw);
            memcpy(out, c + at, sizeof(float) * made);
            memset(out + made, 0, sizeof(float) * (2 * (size_t)hw - made));
        }
    }
    return norm;
}

/* y += a x, in blocks of 16 that the compiler turns into vector instructions of any width at -O2. */
static inline void axpy(float *restrict y, float a, const float *restrict x, size_t n)
{
    size_t i = 0;
    for (; i + 16 <= n; i += 16)
        for (int j = 0; j < 16; j++) y[i + j] += a * x[i + j];
    for (; i < n; i++) y[i] += a * x[i];
}

/* y += a0 x0, then a1 x1, a2 x2 and a3 x3: the sums of four axpy calls bit for bit (the Makefile keeps the
 * compiler from fusing multiply and add here), but y is loaded and stored once for the four rows instead of four
 * times, which bounded the refinement. */
static inline void axpy4(float *restrict y, const float *a, const float *restrict x0, const float *restrict x1,
                         const float *restrict x2, const float *restrict x3, size_t n)
{
    float a0 = a[0], a1 = a[1], a2 = a[2], a3 = a[3];
    size_t i = 0;
    for (; i + 16 <= n; i += 16)
        for (int j = 0; j < 16; j++)
            y[i + j] = y[i + j] + a0 * x0[i + j] + a1 * x1[i + j] + a2 * x2[i + j] + a3 * x3[i + j];
    for (; i < n; i++) y[i] = y[i] + a0 * x0[i] + a1 * x1[i] + a2 * x2[i] + a3 * x3[i];
}

/* Rows of the spectrum that add to one chunk of the refinement sums, with their twiddle rows and lengths. */
typedef struct row_group {
    const float *row[4];
    const float complex *e[4];   /* ey + k * n of each row k */
    size_t len[4];               /* floats of each row in the chunk */
    int count;
} row_group;

/* Adds the group's rows to the sums acc_re/acc_im (n of them, stride floats apart, from the chunk's start): the
 * columns all rows share four rows at a time, then the longer rows' ends one row at a time, so that every sum
 * still takes its rows in order. */
RELOC_AVX512_AVX2_CLONES static void add_group(const row_group *g, float *acc_re, float *acc_im, int n,
                                               size_t stride)
{
    size_t shared = g->len[0];
    for (int j = 1; j < g->count; j++) shared = g->len[j] < shared ? g->len[j] : shared;
    if (g->count == 4) {
        for (int i = 0; i < n; i++) {
            float re[4], im[4];
            for (int j = 0; j < 4; j++) {
                re[j] = crealf(g->e[j][i]);
                im[j] = cimagf(g->e[j][i]);
            }
            axpy4(acc_re + i * stride, re, g->row[0], g->row[1], g->row[2], g->row[3], shared);
            axpy4(acc_im + i * stride, im, g->row[0], g->row[1], g->row[2], g->row[3], shared);
        }
    } else {
        shared = 0;   /* fewer rows (the last of a chunk): one at a time throughout */
    }
    for (int j = 0; j < g->count; j++) {
        if (g->len[j] <= shared) continue;
        for (int i = 0; i < n; i++) {
            axpy(acc_re + i * stride + shared, crealf(g->e[j][i]), g->row[j] + shared, g->len[j] - shared);
            axpy(acc_im + i * stride + shared, cimagf(g->e[j][i]), g->row[j] + shared, g->len[j] - shared);
        }
    }
}

/* prod = g conj(f) over n interleaved floats (n even): the unwhitened cross-power product, four complex numbers
 * at a time where SSE2 is there (the compiler's own vectors of it fuse multiply and add in the AVX clones). */
static void product(float *restrict prod, const float *restrict g, const float *restrict f, size_t n)
{
    size_t i = 0;
#ifdef __SSE2__
    for (; i + 8 <= n; i += 8) {
        __m128 re, im;
        product_sse(g + i, f + i, &re, &im);
        _mm_storeu_ps(prod + i, _mm_unpacklo_ps(re, im));
        _mm_storeu_ps(prod + i + 4, _mm_unpackhi_ps(re, im));
    }
#endif
    for (; i < n; i += 2) {
        prod[i] = g[i] * f[i] + g[i + 1] * f[i + 1];
        prod[i + 1] = g[i + 1] * f[i] - g[i] * f[i + 1];
    }
}

/* Stage 1 of dft_region (see there): acc_re/acc_im[i * len + c] = sum over the rows k in -neg .. pos-1 of re/im
 * (ey[k * n + i]) * s_k[c], each row up to its last column inside the band when band != 0; with t, of the product
 * s_k conj(t_k) instead, made a chunk of four rows at a time in the cache and never stored whole. The columns go
 * in chunks whose 2n sums stay in the L1 cache while every row adds to them. */
static void sum_rows(const pc_core *pc, const fftwf_complex *s, const fftwf_complex *t, int n, size_t len, int neg,
                     int pos, int band)
{
    float *acc_re = pc->acc, *acc_im = pc->acc + (size_t)n * len, prod[4][REFINE_CHUNK];
    memset(pc->acc, 0, sizeof(float) * 2 * n * len);
    for (size_t c0 = 0; c0 < len; c0 += REFINE_CHUNK) {
        row_group g = {.count = 0};
        for (int kk = -neg; kk < pos; kk++) {
            int k = kk < 0 ? kk + pc->h : kk;
            size_t row_len = band ? 2 * (size_t)pc->row_cols[k] : len;
            if (row_len <= c0) continue;
            size_t chunk = row_len - c0 < REFINE_CHUNK ? row_len - c0 : REFINE_CHUNK;
            const float *row = (const float *)(s + (size_t)k * pc->hw) + c0;
            if (t) {
                product(prod[g.count], row, (const float *)(t + (size_t)k * pc->hw) + c0, chunk);
                row = prod[g.count];
            }
            g.len[g.count] = chunk;
            g.row[g.count] = row;
            g.e[g.count++] = pc->ey + (size_t)k * n;
            if (g.count == 4) {
                add_group(&g, acc_re + c0, acc_im + c0, n, len);
                g.count = 0;
            }
        }
        if (g.count) add_group(&g, acc_re + c0, acc_im + c0, n, len);
    }
}

/* Fills e[m * stride] = weight(m) * exp(2 pi i m x / period) for m = 0 .. count-1 by recurrence (double
 * precision: after thousands of steps the phase error stays near 1e-13). */
static void twiddles(float complex *e, size_t stride, int count, double x, double period, int sign, int weighted,
                     int w)
{
    double complex step = cexp(sign * 2 * M_PI * I * (x / period - floor(x / period))), val = 1;
    for (int m = 0; m < count; m++, val *= step)
        e[m * stride] = (weighted ? half_weight(m, w) : 1) * (float complex)val;
}

/* Evaluates the real correlation from spectrum s (half spectrum, full-spectrum sum), or from the product
 * s conj(t) when t != NULL, on the grid (y0 + (i - r) / f, x0 + (j - r) / f), i, j in [0, 2r], into
 * pc->region[i * (2r+1) + j]. With band != 0 only the rows and columns inside the band filter's support are
 * visited (the rest of s is zero). */
static void dft_region(pc_core *pc, const fftwf_complex *s, const fftwf_complex *t, double y0, double x0, double f,
                       int r, int band)
{
    int n = 2 * r + 1, h = pc->h, w = pc->w, hw = pc->hw;
    /* Rows with centred frequency |kk| < rows (Nyquist negative, as numpy's fftfreq), columns below cols. */
    int rows = band ? pc->band_rows : h, cols = band ? pc->band_cols : hw;
    int pos = rows < (h + 1) / 2 ? rows : (h + 1) / 2, neg = rows - 1 < h - pos ? rows - 1 : h - pos;
    for (int i = 0; i < n; i++) {
        double y = y0 + (i - r) / f;
        twiddles(pc->ey + i, n, pos, y, h, 1, 0, w);
        /* rows h-1, h-2, ... hold frequencies -1, -2, ... */
        float complex *e = pc->ey + (size_t)(h - 1) * n + i;
        double complex step = cexp(-2 * M_PI * I * (y / h - floor(y / h))), val = step;
        for (int m = 0; m < neg; m++, val *= step) *(e - (size_t)m * n) = (float complex)val;
    }
    for (int j = 0; j < n; j++) twiddles(pc->ex + (size_t)j * hw, 1, cols, x0 + (j - r) / f, w, 1, 1, w);
    /* Stage 1 (the O(N n) part): sum over the rows of the spectrum for each wanted y. The complex product
     * e * row is kept as two real sums, re(e) * row and im(e) * row over the interleaved floats, recombined in
     * stage 2: plain multiply-adds over contiguous floats, which the compiler vectorizes; each row only up to its
     * last column inside the band (a disc, not the rectangle around it). */
    size_t len = 2 * (size_t)cols;
    float *acc_re = pc->acc, *acc_im = pc->acc + (size_t)n * len;
    sum_rows(pc, s, t, n, len, neg, pos, band);
    /* Stage 2: a = sum_k e_k row_k = (acc_re[2l] - acc_im[2l+1]) + i (acc_re[2l+1] + acc_im[2l]); the real part of
     * the sum over columns of a * ex for each wanted x. */
    for (int i = 0; i < n; i++) {
        const float *ar = acc_re + i * len, *ai = acc_im + i * len;
        for (int j = 0; j < n; j++) {
            const float complex *e = pc->ex + (size_t)j * hw;
            double sum = 0;
            for (int l = 0; l < cols; l++)
                sum += (ar[2 * l] - ai[2 * l + 1]) * crealf(e[l]) - (ar[2 * l + 1] + ai[2 * l]) * cimagf(e[l]);
            pc->region[i * n + j] = sum;
        }
    }
}

static double peak_score(const pc_core *pc, double v) { return pc->p->contrast_invariant ? fabs(v) : v; }

/* One pass over v[0..n-1]: the first index of the largest score (v, or |v| when absolute), and the sum and sum of
 * squares of v. Float running maxima and sums in eight lanes (vectorized) over blocks short enough for float,
 * added up in double; the block holding the maximum is scanned again for its first index. */
static size_t peak_and_sums(const float *restrict v, size_t n, int absolute, double *sum, double *sum2)
{
    const size_t block = 4096;
    const float flip = absolute ? -1.0f : 1.0f;   /* max(x, flip x) is |x| or x */
    float best = -INFINITY;
    size_t best_start = 0;
    *sum = *sum2 = 0;
    for (size_t start = 0; start < n; start += block) {
        size_t end = start + block < n ? start + block : n, i = start;
        float s[8] = {0}, q[8] = {0}, m[8];
        for (int j = 0; j < 8; j++) m[j] = -INFINITY;
        for (; i + 8 <= end; i += 8)
            for (int j = 0; j < 8; j++) {
                float x = v[i + j], y = flip * x, score = y > x ? y : x;
                m[j] = score > m[j] ? score : m[j];
                s[j] += x;
                q[j] += x * x;
            }
        for (; i < end; i++) {
            float x = v[i], y = flip * x;
            m[0] = fmaxf(m[0], fmaxf(x, y));
            *sum += x;
            *sum2 += (double)x * x;
        }
        float block_best = m[0];
        for (int j = 0; j < 8; j++) {
            *sum += s[j];
            *sum2 += q[j];
            block_best = m[j] > block_best ? m[j] : block_best;
        }
        if (block_best > best) {
            best = block_best;
            best_start = start;
        }
    }
    size_t at = best_start;
    while (at + 1 < n && (absolute ? fabsf(v[at]) : v[at]) != best) at++;
    return at;
}

/* Integer-pixel peak of the correlation surface in pc->real and its peak-to-side-lobe ratio. */
static void coarse_peak(pc_core *pc, int *py, int *px, double *value, double *psr)
{
    double sum, sum2;
    size_t best = peak_and_sums(pc->real, pc->n, pc->p->contrast_invariant, &sum, &sum2);
    *py = (int)(best / pc->w);
    *px = (int)(best % pc->w);
    *value = pc->real[best];
    /* The box is clipped to the frame so that no pixel is removed twice. */
    int ey = PSR_EXCLUDE < (pc->h - 1) / 2 ? PSR_EXCLUDE : (pc->h - 1) / 2;
    int ex = PSR_EXCLUDE < (pc->w - 1) / 2 ? PSR_EXCLUDE : (pc->w - 1) / 2;
    size_t count = pc->n;
    for (int dy = -ey; dy <= ey; dy++) {
        int y = ((*py + dy) % pc->h + pc->h) % pc->h;
        for (int dx = -ex; dx <= ex; dx++) {
            int x = ((*px + dx) % pc->w + pc->w) % pc->w;
            double v = pc->real[(size_t)y * pc->w + x];
            sum -= v;
            sum2 -= v * v;
            count--;
        }
    }
    double mean = count ? sum / count : 0, var = count ? sum2 / count - mean * mean : 0;
    /* Identical images leave side lobes at rounding level: bound the ratio instead of dividing by ~0. */
    double sd = fmax(sqrt(fmax(var, 0)), 1e-6 * fabs(*value));
    *psr = sd > 0 ? (peak_score(pc, *value) - peak_score(pc, mean)) / sd : 0;
}

static int signed_index(int i, int n) { return i > n / 2 ? i - n : i; }

void pc_correlate(pc_core *pc, pc_peak *out)
{
    pc_correlate_against(pc, pc->spec_ref, pc->p->upsample, out);
    pc_match_quality(pc, pc->spec_ref, pc->ref_energy, out);
}

void pc_correlate_against(pc_core *pc, const fftwf_complex *ref, int upsample, pc_peak *out)
{
    double norm = cross_power(pc, ref, pc->scratch);
    inverse(pc);
    int py, px;
    coarse_peak(pc, &py, &px, &out->value, &out->psr);
    out->norm = norm;
    out->dy = pc->h > 1 ? signed_index(py, pc->h) : 0;
    out->dx = pc->w > 1 ? signed_index(px, pc->w) : 0;
    out->level = 1;
    pc_refine(pc, upsample, out);
}

void pc_refine_against(pc_core *pc, const fftwf_complex *ref, int upsample, pc_peak *out)
{
    out->norm = cross_power(pc, ref, NULL);
    /* Continue from the level the first pass reached, or start again when it already reached upsample. */
    if (out->level >= upsample) out->level = 1;
    if (upsample <= 1) {   /* no level runs: the peak's height from this cross spectrum, at the integer peak */
        dft_region(pc, pc->cross, NULL, out->dy, out->dx, 1, 0, 1);
        out->value = pc->region[0];
    }
    pc_refine(pc, upsample, out);
}

void pc_refine(pc_core *pc, int upsample, pc_peak *out)
{
    double y = out->dy, x = out->dx, value = out->value;
    for (int f_prev = out->level, f = f_prev; f < upsample; f_prev = f) {
        f = f * REFINE_RATIO < upsample ? f * REFINE_RATIO : upsample;
        /* The previous maximum is within half its step of the peak: the grid spans a bit more than that (the
         * re-centring below catches a peak beyond it). */
        int r = (f + 2 * f_prev - 1) / (2 * f_prev) + 1, n = 2 * r + 1;
        y = round(y * f) / f;
        x = round(x * f) / f;
        /* Re-centre (a few times at most) while the maximum sits on the edge of the evaluated grid. */
        for (int tries = 0; tries < 4; tries++) {
            dft_region(pc, pc->cross, NULL, y, x, f, r, 1);
            int bi = 0;
            for (int i = 1; i < n * n; i++)
                if (peak_score(pc, pc->region[i]) > peak_score(pc, pc->region[bi])) bi = i;
            y += (bi / n - r) / (double)f;
            x += (bi % n - r) / (double)f;
            value = pc->region[bi];
            if (bi / n != 0 && bi / n != n - 1 && bi % n != 0 && bi % n != n - 1) break;
        }
        out->level = f;
    }
    /* One-pixel-wide frames have no shift along that axis. */
    out->dy = pc->h > 1 ? y : 0;
    out->dx = pc->w > 1 ? x : 0;
    out->value = value;
    out->peak = out->norm > 0 ? fmax(-1, fmin(1, value / out->norm)) : 0;
    out->phasediff = value < 0 ? M_PI : 0;
}

void pc_match_quality(pc_core *pc, const fftwf_complex *ref, double ref_energy, pc_peak *out)
{
    /* The unwhitened, unfiltered correlation at the peak. */
    dft_region(pc, pc->spec, ref, out->dy, out->dx, 1, 0, 0);
    double r_fg = pc->region[0], e_g = spectrum_energy(pc, pc->spec);
    double rho = ref_energy > 0 && e_g > 0 ? r_fg / sqrt(ref_energy * e_g) : 0;
    out->correlation = fmax(-1, fmin(1, rho));
    out->error = sqrt(1 - out->correlation * out->correlation);
}
