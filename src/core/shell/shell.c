/* shell.c -- the st.cmd interpreter: command registry, iocsh line syntax, scripts with file:line errors and
 * the interactive loop (see shell.h).
 *
 * Threads: everything here runs on one thread, the main thread (scripts, then the interactive loop);
 * commands are registered before any script runs. So the registry and the flags need no lock.
 */
#include "core/shell/shell.h"
#include "core/shell/shell_internal.h"
#include "core/base/base.h"
#include "core/macsub/macsub.h"

#include <errno.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define SHELL_MAX_ARGS 64
#define SHELL_MAX_SCRIPT_DEPTH 16

typedef struct shell_command {
    char *name;
    char *usage;
    int min_args, max_args;
    shell_fn fn;
} shell_command;

static shell_command *commands;
static size_t ncommands;
static int script_depth;
static int interrupt_fd = -1;

void shell_set_interrupt_fd(int fd) { interrupt_fd = fd; }

/* Whether the interrupt fd is readable (a SIGINT/SIGTERM is pending); it is not consumed. */
static int interrupted(void)
{
    struct pollfd pfd = {.fd = interrupt_fd, .events = POLLIN};
    return interrupt_fd >= 0 && poll(&pfd, 1, 0) > 0 && (pfd.revents & POLLIN);
}

int shell_register(const char *name, const char *usage, int min_args, int max_args, shell_fn fn)
{
    for (size_t i = 0; i < ncommands; i++) {
        if (!strcmp(commands[i].name, name)) {
            log_error("shell", "command %s registered twice", name);
            return -1;
        }
    }
    commands = xrealloc(commands, (ncommands + 1) * sizeof *commands);
    commands[ncommands++] = (shell_command){xstrdup(name), xstrdup(usage ? usage : name), min_args, max_args, fn};
    return 0;
}

static const shell_command *find_command(const char *name)
{
    for (size_t i = 0; i < ncommands; i++)
        if (!strcmp(commands[i].name, name)) return &commands[i];
    return NULL;
}

static int by_command_name(const void *a, const void *b)
{
    return strcmp(((const shell_command *)a)->name, ((const shell_command *)b)->name);
}

/* help [command]: usage of one command, or the sorted list of all. */
static int cmd_help(int argc, char **argv, char *err, size_t errlen)
{
    if (argc > 1) {
        const shell_command *c = find_command(argv[1]);
        if (!c) {
            snprintf(err, errlen, "help: no command \"%s\"", argv[1]);
            return -1;
        }
        printf("%s\n", c->usage);
        return 0;
    }
    qsort(commands, ncommands, sizeof *commands, by_command_name);
    for (size_t i = 0; i < ncommands; i++) printf("  %s\n", commands[i].usage);
    return 0;
}

static int fail(char *err, size_t errlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int fail(char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
    return -1;
}

int shell_arg_long(const char *text, const char *what, long *out, char *err, size_t errlen)
{
    char *end;
    errno = 0;
    long v = strtol(text, &end, 0);
    if (!*text || *end || errno) return fail(err, errlen, "%s: \"%s\" is not an integer", what, text);
    *out = v;
    return 0;
}

int shell_arg_double(const char *text, const char *what, double *out, char *err, size_t errlen)
{
    char *end;
    errno = 0;
    double v = strtod(text, &end);
    if (!*text || *end || errno) return fail(err, errlen, "%s: \"%s\" is not a number", what, text);
    *out = v;
    return 0;
}

/* Splits an expanded line into words as iocsh does: blanks, '(' ')' and ',' separate words outside quotes;
 * "..." and '...' quote (an empty pair is an empty word); a backslash outside single quotes takes the next
 * character literally. Words are written into buf; returns the count or -1. */
static int split_words(const char *line, char *buf, char **argv, char *err, size_t errlen)
{
    int argc = 0, in_word = 0;
    char quote = 0;
    char *out = buf;
    for (const char *p = line;; p++) {
        char c = *p;
        if (c == '\0' || (!quote && strchr(" \t\r\n(),", c))) {
            if (quote) return fail(err, errlen, "unterminated %c quote", quote);
            if (in_word) {
                *out++ = '\0';
                in_word = 0;
            }
            if (c == '\0') break;
            continue;
        }
        if (!in_word) {
            if (argc == SHELL_MAX_ARGS) return fail(err, errlen, "more than %d arguments", SHELL_MAX_ARGS);
            argv[argc++] = out;
            in_word = 1;
        }
        if (quote && c == quote) quote = 0;
        else if (!quote && (c == '"' || c == '\'')) quote = c;
        else if (c == '\\' && quote != '\'' && p[1]) *out++ = *++p;
        else *out++ = c;
    }
    return argc;
}

static int run_script(const char *path, char *err, size_t errlen);

/* Runs one line; on failure err holds the message (without file:line). *located is set when err already
 * names a file and line (a failure inside an included script). */
static int run_line(const char *line, char *err, size_t errlen, int *located)
{
    *located = 0;
    const char *p = line + strspn(line, " \t\r");
    if (!*p || *p == '#' || *p == '\n') return 0;
    static macsub_table *environment;    /* no definitions of its own: $(VAR) reads the environment */
    if (!environment) environment = macsub_create(NULL, 1);
    char *expanded = macsub_expand(environment, p, err, errlen);
    if (!expanded) return -1;
    int rc;
    if (expanded[0] == '<') {
        char *file = expanded + 1 + strspn(expanded + 1, " \t");
        file[strcspn(file, " \t\r\n")] = '\0';
        rc = *file ? run_script(file, err, errlen) : fail(err, errlen, "'<' needs a file name");
        *located = rc < 0 && *file;
    } else {
        char *buf = xmalloc(strlen(expanded) + 1);
        char *argv[SHELL_MAX_ARGS + 1];
        int argc = split_words(expanded, buf, argv, err, errlen);
        const shell_command *c = argc > 0 ? find_command(argv[0]) : NULL;
        if (argc < 0) rc = -1;
        else if (argc == 0) rc = 0;
        else if (!c) rc = fail(err, errlen, "unknown command \"%s\" (try help)", argv[0]);
        else if (argc - 1 < c->min_args || (c->max_args >= 0 && argc - 1 > c->max_args))
            rc = fail(err, errlen, "%s: wrong number of arguments (%d); usage: %s", argv[0], argc - 1, c->usage);
        else {
            argv[argc] = NULL;
            err[0] = '\0';
            rc = c->fn(argc, argv, err, errlen) == 0 ? 0 : -1;
            if (rc < 0 && !err[0]) snprintf(err, errlen, "%s failed", argv[0]);
        }
        free(buf);
    }
    free(expanded);
    return rc;
}

int shell_run_line(const char *line, char *err, size_t errlen)
{
    int located;
    return run_line(line, err, errlen, &located);
}

/* Runs a script; stops at the first failing line with "path:line: message" in err, or at exit. */
static int run_script(const char *path, char *err, size_t errlen)
{
    if (script_depth >= SHELL_MAX_SCRIPT_DEPTH)
        return fail(err, errlen, "scripts nested too deeply at \"%s\" (recursive '<'?)", path);
    FILE *f = fopen(path, "r");
    if (!f) return fail(err, errlen, "cannot open script %s: %s", path, strerror(errno));
    script_depth++;
    char *line = NULL;
    size_t cap = 0;
    int lineno = 0, rc = 0;
    while (rc == 0 && !shell_exit_requested() && getline(&line, &cap, f) >= 0) {
        lineno++;
        if (interrupted()) {
            snprintf(err, errlen, "%s:%d: interrupted by a signal", path, lineno);
            rc = -1;
            break;
        }
        line[strcspn(line, "\r\n")] = '\0';
        const char *text = line + strspn(line, " \t");
        if (*text && *text != '#') printf("%s\n", line);   /* echo, as iocsh does */
        char msg[1024];
        int located;
        int before_init = !shell_iocinit_done();
        if (run_line(line, msg, sizeof msg, &located) < 0) {
            if (located) str_copy(err, msg, errlen);
            else snprintf(err, errlen, "%s:%d: %s", path, lineno, msg);
            /* Once the IOC serves, a bad line is reported and skipped: stopping would drop every client. */
            if (before_init || !shell_iocinit_done()) rc = -1;
            else log_error("shell", "%s", err);
        }
    }
    free(line);
    fclose(f);
    script_depth--;
    return rc;
}

int shell_run_file(const char *path)
{
    char err[1200];
    if (run_script(path, err, sizeof err) == 0) return 0;
    log_error("shell", "%s", err);
    return -1;
}

/* Runs every complete line in buf[0..*len) and keeps the incomplete tail. */
static void run_typed_lines(char *buf, size_t *len)
{
    size_t start = 0;
    for (size_t i = 0; i < *len && !shell_exit_requested(); i++) {
        if (buf[i] != '\n') continue;
        buf[i] = '\0';
        char err[1024];
        if (shell_run_line(buf + start, err, sizeof err) < 0) fprintf(stdout, "error: %s\n", err);
        start = i + 1;
    }
    memmove(buf, buf + start, *len - start);
    *len -= start;
}

int shell_interactive_until(int stop_fd)
{
    char buf[4096];
    size_t len = 0;
    int tty = isatty(STDIN_FILENO);
    while (!shell_exit_requested()) {
        if (tty && len == 0) {
            printf("reloc> ");
            fflush(stdout);
        }
        struct pollfd fds[2] = {{.fd = STDIN_FILENO, .events = POLLIN}, {.fd = stop_fd, .events = POLLIN}};
        if (poll(fds, stop_fd >= 0 ? 2 : 1, -1) < 0) {
            if (errno == EINTR) continue;
            log_error("shell", "poll: %s", strerror(errno));
            return 0;
        }
        if (stop_fd >= 0 && (fds[1].revents & POLLIN)) return 1;
        if (!(fds[0].revents & (POLLIN | POLLHUP | POLLERR))) continue;
        ssize_t n = read(STDIN_FILENO, buf + len, sizeof buf - 1 - len);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) {
            if (len) { buf[len++] = '\n'; run_typed_lines(buf, &len); }
            return 0;
        }
        len += (size_t)n;
        run_typed_lines(buf, &len);
        if (len == sizeof buf - 1) {
            printf("error: line longer than %zu characters ignored\n", sizeof buf - 2);
            len = 0;
        }
    }
    return 0;
}

void shell_interactive(void) { shell_interactive_until(-1); }

void shell_register_builtins(void)
{
    shell_register("help", "help [command]", 0, 1, cmd_help);
    shell_register_ioc_commands();
    shell_register_db_commands();
}
