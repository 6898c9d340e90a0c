/* fft_plans.c -- FFTW plans and wisdom for registration. Owns the process-wide planner lock: FFTW's planner,
 * plan destruction and wisdom functions are not thread-safe, while executing an existing plan is. Threads are
 * initialised once (fftwf_init_threads) under the same lock. */
#include "kernels/registration/registration_internal.h"

#include <pthread.h>

static pthread_mutex_t planner_lock = PTHREAD_MUTEX_INITIALIZER;
static int threads_ready;

void plans_lock(void) { pthread_mutex_lock(&planner_lock); }
void plans_unlock(void) { pthread_mutex_unlock(&planner_lock); }

static unsigned effort_flags(reg_plan_effort effort)
{
    switch (effort) {
    case REG_PLAN_MEASURE: return FFTW_MEASURE;
    case REG_PLAN_PATIENT: return FFTW_PATIENT;
    default: return FFTW_ESTIMATE;
    }
}

int plans_make(int w, int h, const reg_params *p, float *real, fftwf_complex *spec, fftwf_plan *fwd,
               fftwf_plan *inv)
{
    plans_lock();
    if (!threads_ready) threads_ready = fftwf_init_threads() ? 1 : -1;
    if (threads_ready > 0) fftwf_plan_with_nthreads(p->threads > 1 ? p->threads : 1);
    unsigned flags = effort_flags(p->effort) | FFTW_DESTROY_INPUT;
    *fwd = fftwf_plan_dft_r2c_2d(h, w, real, spec, flags);
    *inv = fftwf_plan_dft_c2r_2d(h, w, spec, real, flags);
    plans_unlock();
    if (*fwd && *inv) return 0;
    plans_destroy(*fwd);
    plans_destroy(*inv);
    *fwd = *inv = NULL;
    return -1;
}

void plans_destroy(fftwf_plan plan)
{
    if (!plan) return;
    plans_lock();
    fftwf_destroy_plan(plan);
    plans_unlock();
}

int reg_wisdom_load(const char *path)
{
    plans_lock();
    int ok = fftwf_import_wisdom_from_filename(path);
    plans_unlock();
    return ok ? 0 : -1;
}

int reg_wisdom_save(const char *path)
{
    plans_lock();
    int ok = fftwf_export_wisdom_to_filename(path);
    plans_unlock();
    return ok ? 0 : -1;
}
