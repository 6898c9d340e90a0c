/* fft_plans.c -- FFTW plans and wisdom for registration. Owns the process-wide planner lock: FFTW's planner,
 * plan destruction and wisdom functions are not thread-safe, while executing an existing plan is. Threads are
 * initialised once (fftwf_init_threads) under the same lock.
 *
 * Wisdom. Measured plans (the default, REG_PLAN_MEASURE) are up to twice as fast as estimated ones but take
 * seconds to make at 2048^2, so what FFTW measured is kept in a wisdom file: loaded before the first plan of the
 * process, and written back (to a temporary file renamed over it, so concurrent processes never see half a
 * file) whenever a plan had to be measured. The file: $RELOC_FFTW_WISDOM, else $XDG_CACHE_HOME/reloc/fftw-wisdom,
 * else $HOME/.cache/reloc/fftw-wisdom (directories made as needed). When it cannot be read or written, plans
 * are measured anew each start and nothing else changes: a missing file (the first start) is said by an info
 * line, an unreadable or corrupt one by a warning, and neither fails. reg_wisdom_load() names another file. */
#include "kernels/registration/registration_internal.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/base/base.h"

static pthread_mutex_t planner_lock = PTHREAD_MUTEX_INITIALIZER;
static int threads_ready;
/* under planner_lock: the wisdom file, and whether it was read */
static char wisdom_path[4096];
static int wisdom_read;

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

/* [planner_lock] The default wisdom file's path (see the top of the file), its directory made; "" when there is
 * no home to put it in. */
static void default_wisdom_path(void)
{
    const char *env = getenv("RELOC_FFTW_WISDOM"), *xdg = getenv("XDG_CACHE_HOME"), *home = getenv("HOME");
    char dir[4000] = "";
    if (env && *env) {
        str_copy(wisdom_path, env, sizeof wisdom_path);
        return;
    }
    if (xdg && *xdg) snprintf(dir, sizeof dir, "%s/reloc", xdg);
    else if (home && *home) snprintf(dir, sizeof dir, "%s/.cache/reloc", home);
    wisdom_path[0] = '\0';
    if (!dir[0]) return;
    /* The parent (~/.cache) may be missing too; one level above it is the home or XDG directory. */
    char parent[4000];
    str_copy(parent, dir, sizeof parent);
    char *slash = strrchr(parent, '/');
    if (slash && slash != parent) {
        *slash = '\0';
        if (mkdir(parent, 0755) != 0 && errno != EEXIST) return;
    }
    if (mkdir(dir, 0755) != 0 && errno != EEXIST) return;
    snprintf(wisdom_path, sizeof wisdom_path, "%s/fftw-wisdom", dir);
}

/* [planner_lock] Imports the wisdom in path; says in the log why it could not (missing: nothing measured yet;
 * unreadable or not FFTW wisdom: plans are measured anew and the file rewritten). Returns 1 when imported. */
static int wisdom_import(const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        if (errno == ENOENT)
            log_info("registration", "no FFTW wisdom in %s yet: plans are measured and kept there", path);
        else log_warn("registration", "FFTW wisdom %s unreadable (%s): plans are measured anew", path, strerror(errno));
        return 0;
    }
    int ok = fftwf_import_wisdom_from_file(f);
    fclose(f);
    if (!ok) log_warn("registration", "FFTW wisdom %s is corrupt or from another FFTW: plans are measured anew", path);
    return ok;
}

/* [planner_lock] Writes the process's wisdom to the wisdom file through a temporary file renamed over it. */
static int wisdom_write(const char *path)
{
    char tmp[4200];
    snprintf(tmp, sizeof tmp, "%s.%ld.tmp", path, (long)getpid());
    if (!fftwf_export_wisdom_to_filename(tmp)) return -1;
    if (rename(tmp, path) != 0) {
        unlink(tmp);
        return -1;
    }
    return 0;
}

int plans_make(int w, int h, const reg_params *p, float *real, fftwf_complex *spec, fftwf_plan *fwd,
               fftwf_plan *inv)
{
    plans_lock();
    if (!threads_ready) threads_ready = fftwf_init_threads() ? 1 : -1;
    if (threads_ready > 0) fftwf_plan_with_nthreads(p->threads > 1 ? p->threads : 1);
    int measured = p->effort != REG_PLAN_ESTIMATE;
    if (measured && !wisdom_read) {
        default_wisdom_path();
        if (wisdom_path[0]) wisdom_import(wisdom_path);
        else log_info("registration", "no cache directory for FFTW wisdom: plans are measured at every start");
        wisdom_read = 1;
    }
    /* FFTW's buffered solvers allocate their scratch at every execute of a plan that picked one; forbidding them
     * (FFTW_NO_BUFFERING) made 2048^2 registration 20 % slower (80 -> 97 ms), so they stay: the only allocation per
     * frame is theirs, the size of one plan's buffers, freed at once. */
    unsigned flags = effort_flags(p->effort) | FFTW_DESTROY_INPUT;
    /* Known plans come from wisdom at once; only a new size or thread count is measured (and then saved). */
    int known = 0;
    if (measured) {
        fftwf_plan a = fftwf_plan_dft_r2c_2d(h, w, real, spec, flags | FFTW_WISDOM_ONLY);
        fftwf_plan b = fftwf_plan_dft_c2r_2d(h, w, spec, real, flags | FFTW_WISDOM_ONLY);
        known = a && b;
        if (a) fftwf_destroy_plan(a);
        if (b) fftwf_destroy_plan(b);
    }
    *fwd = fftwf_plan_dft_r2c_2d(h, w, real, spec, flags);
    *inv = fftwf_plan_dft_c2r_2d(h, w, spec, real, flags);
    if (measured && !known && wisdom_path[0] && wisdom_write(wisdom_path) != 0)
        log_warn("registration", "cannot write FFTW wisdom to %s: plans are measured again next start", wisdom_path);
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
    str_copy(wisdom_path, path, sizeof wisdom_path);
    wisdom_read = 1;
    int ok = wisdom_import(path);
    plans_unlock();
    return ok ? 0 : -1;
}

int reg_wisdom_save(const char *path)
{
    plans_lock();
    int rc = wisdom_write(path);
    plans_unlock();
    return rc;
}

const char *reg_wisdom_path(void)
{
    plans_lock();
    if (!wisdom_read) default_wisdom_path();
    plans_unlock();
    return wisdom_path;
}
