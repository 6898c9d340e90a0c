/* test_shell.c -- unit tests of the st.cmd shell: iocsh word splitting and quoting, environment macros,
 * argument count and type checks, scripts stopping at the first failing line with file:line, includes. */
#include "unit.h"
#include <unistd.h>

#include "core/shell/shell.h"

static char err[1024];
static char seen[8][128];   /* arguments of the last call of "probe" */
static int seen_argc, probe_calls;

static int probe(int argc, char **argv, char *e, size_t elen)
{
    seen_argc = argc;
    probe_calls++;
    for (int i = 0; i < argc && i < 8; i++) snprintf(seen[i], sizeof seen[i], "%s", argv[i]);
    if (argc > 1 && !strcmp(argv[1], "fail")) {
        snprintf(e, elen, "probe was told to fail");
        return -1;
    }
    return 0;
}

static int numeric(int argc, char **argv, char *e, size_t elen)
{
    long n;
    double d;
    if (shell_arg_long(argv[1], "count", &n, e, elen) < 0) return -1;
    return shell_arg_double(argv[2], "rate", &d, e, elen);
}

static int setup(void **state)
{
    (void)state;
    shell_register_builtins();
    shell_register("probe", "probe [ARGS...]", 0, 6, probe);
    shell_register("numeric", "numeric COUNT RATE", 2, 2, numeric);
    return 0;
}

static void run_ok(const char *line)
{
    if (shell_run_line(line, err, sizeof err)) fail_msg("\"%s\" failed: %s", line, err);
}

static void run_fails(const char *line, const char *what)
{
    err[0] = '\0';
    if (shell_run_line(line, err, sizeof err) == 0) fail_msg("\"%s\" should fail", line);
    if (!strstr(err, what)) fail_msg("error \"%s\" does not mention \"%s\"", err, what);
}

static void words_quotes_and_parentheses(void **state)
{
    (void)state;
    run_ok("probe(\"a b\", 2, 'c,d')");
    assert_int_equal(seen_argc, 4);
    assert_string_equal(seen[1], "a b");
    assert_string_equal(seen[2], "2");
    assert_string_equal(seen[3], "c,d");
    run_ok("   probe  x\\ y \"\" \"q\\\"uote\"  ");
    assert_string_equal(seen[1], "x y");
    assert_string_equal(seen[2], "");
    assert_string_equal(seen[3], "q\"uote");
    int calls = probe_calls;
    run_ok("# a comment");
    run_ok("   ");
    assert_int_equal(probe_calls, calls);
}

static void environment_macros(void **state)
{
    (void)state;
    run_ok("epicsEnvSet(\"RELOC_SHELL_T\", \"v1\")");
    assert_string_equal(getenv("RELOC_SHELL_T"), "v1");
    run_ok("probe $(RELOC_SHELL_T) ${RELOC_SHELL_T}x $(RELOC_SHELL_NONE=dflt)");
    assert_string_equal(seen[1], "v1");
    assert_string_equal(seen[2], "v1x");
    assert_string_equal(seen[3], "dflt");
    run_ok("epicsEnvSet RELOC_SHELL_T \"$(RELOC_SHELL_T=other)\"");   /* keeps a value already set */
    assert_string_equal(getenv("RELOC_SHELL_T"), "v1");
    run_fails("probe $(RELOC_SHELL_NONE)", "undefined macro $(RELOC_SHELL_NONE)");
}

static void argument_checks(void **state)
{
    (void)state;
    run_fails("nosuchcommand 1", "unknown command \"nosuchcommand\"");
    run_fails("numeric 1", "wrong number of arguments (1)");
    run_fails("numeric 1 2 3", "wrong number of arguments (3)");
    run_fails("numeric x 2", "count: \"x\" is not an integer");
    run_fails("numeric 1 2.5x", "rate: \"2.5x\" is not a number");
    run_ok("numeric 0x10 -2.5e3");
    run_fails("probe \"open", "unterminated \" quote");
    run_fails("probe fail", "probe was told to fail");
    run_fails("help nosuchcommand", "no command");
}

static void scripts_stop_at_first_failure_with_file_and_line(void **state)
{
    (void)state;
    char dir[] = "/tmp/test_shell.XXXXXX";
    assert_non_null(mkdtemp(dir));
    char main_path[64], inc_path[64];
    snprintf(main_path, sizeof main_path, "%s/st.cmd", dir);
    snprintf(inc_path, sizeof inc_path, "%s/inc.cmd", dir);
    FILE *f = fopen(inc_path, "w");
    fputs("probe included\n\nprobe fail\nprobe never\n", f);
    fclose(f);
    f = fopen(main_path, "w");
    fprintf(f, "# start\nprobe first\n< %s\nprobe after\n", inc_path);
    fclose(f);
    probe_calls = 0;
    assert_int_equal(shell_run_file(main_path), -1);
    assert_int_equal(probe_calls, 3);                  /* first, included, fail; nothing after */
    /* The message names the innermost file and line; shell_run_line reports it the same way. */
    char line[128];
    snprintf(line, sizeof line, "< %s", inc_path);
    run_fails(line, "inc.cmd:3: probe was told to fail");
    snprintf(line, sizeof line, "rm -rf %s", dir);
    assert_int_equal(system(line), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(words_quotes_and_parentheses),
        cmocka_unit_test(environment_macros),
        cmocka_unit_test(argument_checks),
        cmocka_unit_test(scripts_stop_at_first_failure_with_file_and_line),
    };
    return cmocka_run_group_tests(tests, setup, NULL);
}
