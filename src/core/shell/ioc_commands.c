/* ioc_commands.c -- the st.cmd commands that configure and start the IOC: epicsEnvSet, epicsEnvShow, cd,
 * dbLoadRecords, dbLoadTemplate, iocInit (with the hooks modules run before and after db_init),
 * epicsThreadSleep and exit.
 * Shell thread only (see shell.c). */
#include "core/shell/shell.h"
#include "core/shell/shell_internal.h"
#include "core/base/base.h"
#include "core/db/db.h"
#include "core/dbload/dbload.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

typedef struct hook_list {
    shell_init_hook *fns;
    size_t n;
} hook_list;

static hook_list before_init, after_init;
static int iocinit_done;
static int exit_requested;

static void add_hook(hook_list *list, shell_init_hook fn)
{
    list->fns = xrealloc(list->fns, (list->n + 1) * sizeof *list->fns);
    list->fns[list->n++] = fn;
}

static int run_hooks(const hook_list *list, char *err, size_t errlen)
{
    for (size_t i = 0; i < list->n; i++)
        if (list->fns[i](err, errlen) < 0) return -1;
    return 0;
}

void shell_before_iocinit(shell_init_hook fn) { add_hook(&before_init, fn); }
void shell_after_iocinit(shell_init_hook fn) { add_hook(&after_init, fn); }

int shell_iocinit_done(void) { return iocinit_done; }
int shell_exit_requested(void) { return exit_requested; }

static int cmd_env_set(int argc, char **argv, char *err, size_t errlen)
{
    if (!argv[1][0] || strchr(argv[1], '=')) {
        snprintf(err, errlen, "epicsEnvSet: bad variable name \"%s\"", argv[1]);
        return -1;
    }
    setenv(argv[1], argc > 2 ? argv[2] : "", 1);
    return 0;
}

static int cmd_env_show(int argc, char **argv, char *err, size_t errlen)
{
    if (argc > 1) {
        const char *value = getenv(argv[1]);
        if (value) printf("%s=%s\n", argv[1], value);
        else printf("%s is not set\n", argv[1]);
        return 0;
    }
    for (char **e = environ; *e; e++) printf("%s\n", *e);
    return 0;
}

static int cmd_cd(int argc, char **argv, char *err, size_t errlen)
{
    if (chdir(argv[1]) == 0) return 0;
    snprintf(err, errlen, "cd %s: %s", argv[1], strerror(errno));
    return -1;
}

static int cmd_load_records(int argc, char **argv, char *err, size_t errlen)
{
    return dbload_records(argv[1], argc > 2 ? argv[2] : NULL, err, errlen);
}

static int cmd_load_template(int argc, char **argv, char *err, size_t errlen)
{
    return dbload_template(argv[1], argc > 2 ? argv[2] : NULL, err, errlen);
}

static int count_record(db_record *rec, void *user)
{
    (void)rec;
    (*(size_t *)user)++;
    return 0;
}

static int cmd_iocinit(int argc, char **argv, char *err, size_t errlen)
{
    if (iocinit_done) {
        snprintf(err, errlen, "iocInit already ran");
        return -1;
    }
    if (run_hooks(&before_init, err, errlen) < 0) return -1;
    if (db_init(err, errlen) != DB_OK) return -1;
    if (run_hooks(&after_init, err, errlen) < 0) return -1;
    iocinit_done = 1;
    size_t nrecords = 0;
    db_foreach_record(count_record, &nrecords);
    log_info("shell", "iocInit done: %zu records running", nrecords);
    return 0;
}

static int cmd_sleep(int argc, char **argv, char *err, size_t errlen)
{
    double seconds;
    if (shell_arg_double(argv[1], "epicsThreadSleep seconds", &seconds, err, errlen) < 0) return -1;
    if (seconds > 0) {
        struct timespec t = {.tv_sec = (time_t)seconds, .tv_nsec = (long)((seconds - (double)(time_t)seconds) * 1e9)};
        while (nanosleep(&t, &t) < 0 && errno == EINTR) continue;
    }
    return 0;
}

static int cmd_exit(int argc, char **argv, char *err, size_t errlen)
{
    exit_requested = 1;
    return 0;
}

void shell_register_ioc_commands(void)
{
    shell_register("epicsEnvSet", "epicsEnvSet NAME [VALUE]", 1, 2, cmd_env_set);
    shell_register("epicsEnvShow", "epicsEnvShow [NAME]", 0, 1, cmd_env_show);
    shell_register("cd", "cd DIRECTORY", 1, 1, cmd_cd);
    shell_register("dbLoadRecords", "dbLoadRecords \"file.db\" [\"P=..,R=..\"]", 1, 2, cmd_load_records);
    shell_register("dbLoadTemplate", "dbLoadTemplate \"file.substitutions\" [\"MACRO=..\"]", 1, 2, cmd_load_template);
    shell_register("iocInit", "iocInit", 0, 0, cmd_iocinit);
    shell_register("epicsThreadSleep", "epicsThreadSleep SECONDS", 1, 1, cmd_sleep);
    shell_register("exit", "exit (shuts the IOC down)", 0, 0, cmd_exit);
}
