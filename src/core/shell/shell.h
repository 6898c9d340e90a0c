/* shell.h -- the st.cmd shell: reads startup scripts and, after iocInit, an interactive terminal.
 *
 * Every concern registers its own commands (e.g. the CA server "casr", the motor driver its controller
 * configuration) through shell_register() from its module's register function, before any script runs.
 * Syntax as the EPICS iocsh: `cmd arg1 arg2`, or `cmd("arg1", 2, "arg3")`; quotes, backslash escapes,
 * `#` comments, `$(VAR)`/`${VAR}` environment expansion, `< file` to include a script, `cd dir`.
 * Commands run on the shell's thread; a command that fails reports through its err buffer and the shell
 * names file and line. In a script before iocInit any failure stops the IOC from starting; after iocInit it is
 * logged and the script goes on.
 */
#ifndef RELOC_SHELL_H
#define RELOC_SHELL_H

#include <stddef.h>

/* argv[0] is the command name; argv[1..argc-1] its arguments as written (quotes removed, macros expanded).
 * Return 0 on success, or -1 with a message in err. */
typedef int (*shell_fn)(int argc, char **argv, char *err, size_t errlen);

/* min_args/max_args count arguments after the name; max_args < 0 means no limit. usage is shown by help. */
int shell_register(const char *name, const char *usage, int min_args, int max_args, shell_fn fn);

/* Argument helpers for commands: parse an integer / a double / a boolean ("1","0","YES","NO","true"...);
 * return 0, or -1 with a message naming the argument in err. */
int shell_arg_long(const char *text, const char *what, long *out, char *err, size_t errlen);
int shell_arg_double(const char *text, const char *what, double *out, char *err, size_t errlen);

/* Runs a script file: 0 when every line succeeded; on the first failure before iocInit (or of iocInit itself)
 * logs "file:line: message" and returns -1 (the caller refuses to start). After iocInit, a failing line is
 * logged the same way and skipped, since the IOC already serves clients. */
int shell_run_file(const char *path);
/* Runs one line as if typed (interactive use and tests); 0 or -1 with err. */
int shell_run_line(const char *line, char *err, size_t errlen);
/* Interactive loop on stdin until EOF or "exit" (used after iocInit when stdin is a terminal). */
void shell_interactive(void);
/* The same, but also returns when stop_fd (e.g. a signalfd) becomes readable; stop_fd < 0: none.
 * Returns 1 when stop_fd fired, 0 on EOF or exit. */
int shell_interactive_until(int stop_fd);

/* A file descriptor that becomes readable when the IOC is asked to stop (main's signalfd): a script checks
 * it before each line and stops with "interrupted by a signal", so Ctrl-C works during start-up too. */
void shell_set_interrupt_fd(int fd);

/* The shell's own commands: epicsEnvSet, epicsEnvShow, cd, dbLoadRecords, dbLoadTemplate, iocInit, dbl,
 * dbpr, dbpf, dbgf, help, exit. Called once from main's module list, before any script runs. */
void shell_register_builtins(void);

/* Work that iocInit does before db_init (e.g. autosave restores saved values into the records); a hook
 * returning -1 (message in err) stops iocInit. Hooks run in registration order. */
typedef int (*shell_init_hook)(char *err, size_t errlen);
void shell_before_iocinit(shell_init_hook fn);
/* Work that iocInit does after db_init succeeded (e.g. autosave subscribes to the fields it saves); runs on
 * the shell's thread without the db lock, so hooks may call any db function. A failure stops iocInit. */
void shell_after_iocinit(shell_init_hook fn);
/* 1 once iocInit has completed. */
int shell_iocinit_done(void);
/* 1 once "exit" ran (in a script or interactively): the IOC should shut down. */
int shell_exit_requested(void);

#endif
