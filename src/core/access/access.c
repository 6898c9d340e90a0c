/* access.c -- access security: parses ACF files (UAG, HAG, ASG, RULE, INPx, CALC) into a rule set and answers
 * "what may this user on this host do with this group"; the st.cmd commands asSetFilename and asInit. The
 * installed rule set is owned by this file and guarded by rules_lock; a reload builds a complete new set and
 * swaps it in, so a bad file changes nothing. */
#include "core/access/access.h"

#include <ctype.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/base/base.h"
#include "core/access/access_internal.h"
#include "core/db/db.h"
#include "core/shell/shell.h"

#define NAME_MAX_LEN 64
#define ACCESS_INPUTS 12            /* INPA..INPL */

typedef struct name_list {          /* a UAG or HAG */
    char name[NAME_MAX_LEN];
    char **members;
    int nmembers;
} name_list;

typedef struct rule {
    int level;
    unsigned access;                /* 0, ACCESS_READ, ACCESS_READ|ACCESS_WRITE */
    int *uags, nuags;               /* indexes into the rule set's uags; none = any user */
    int *hags, nhags;
    char *calc;                     /* NULL = always */
    void *calc_program;             /* compiled CALC (access_internal.h) */
} rule;

typedef struct group {
    char name[NAME_MAX_LEN];
    char inputs[ACCESS_INPUTS][NAME_MAX_LEN];   /* INPA..INPL record names ("" = unused) */
    db_addr input_addr[ACCESS_INPUTS];           /* resolved when the file is loaded */
    int input_resolved[ACCESS_INPUTS];
    double values[ACCESS_INPUTS];
    int input_ok[ACCESS_INPUTS];
    rule *rules;
    int nrules;
} group;

typedef struct rule_set {
    name_list *uags, *hags;
    int nuags, nhags;
    group *groups;
    int ngroups;
} rule_set;

static pthread_mutex_t rules_lock = PTHREAD_MUTEX_INITIALIZER;
static rule_set *rules;             /* NULL: no ACF, everybody reads and writes */
static char acf_path[1024];
static unsigned long generation;

/* ---------------------------------------------------------------------------------------------------
 * Freeing
 */
static void free_rule_set(rule_set *rs)
{
    if (!rs)
        return;
    for (int i = 0; i < rs->nuags + rs->nhags; i++) {
        name_list *nl = i < rs->nuags ? &rs->uags[i] : &rs->hags[i - rs->nuags];
        for (int m = 0; m < nl->nmembers; m++)
            free(nl->members[m]);
        free(nl->members);
    }
    for (int g = 0; g < rs->ngroups; g++) {
        for (int r = 0; r < rs->groups[g].nrules; r++) {
            rule *ru = &rs->groups[g].rules[r];
            free(ru->uags);
            free(ru->hags);
            free(ru->calc);
            access_calc_free(ru->calc_program);
        }
        free(rs->groups[g].rules);
    }
    free(rs->uags);
    free(rs->hags);
    free(rs->groups);
    free(rs);
}

/* ---------------------------------------------------------------------------------------------------
 * Tokenizer
 */
typedef struct parser {
    const char *p;
    const char *origin;
    int line;
    char tok[256];                  /* current token text */
    int kind;                       /* 'w' word/number, 's' string, punctuation char, 0 end */
    char *err;
    size_t errlen;
    int failed;
} parser;

static void fail(parser *ps, const char *what)
{
    if (!ps->failed)
        snprintf(ps->err, ps->errlen, "%s:%d: %s (near '%s')", ps->origin, ps->line, what, ps->tok);
    ps->failed = 1;
}

static void next(parser *ps)
{
    ps->p = skip_blanks_and_comments(ps->p, &ps->line);
    size_t n = 0;
    ps->tok[0] = 0;
    if (!*ps->p) {
        ps->kind = 0;
        return;
    }
    if (*ps->p == '"') {
        ps->p++;
        while (*ps->p && *ps->p != '"' && *ps->p != '\n') {
            if (n + 1 < sizeof ps->tok)
                ps->tok[n++] = *ps->p;
            ps->p++;
        }
        ps->tok[n] = 0;
        if (*ps->p != '"') {
            fail(ps, "unterminated string");
            ps->kind = 0;
            return;
        }
        ps->p++;
        ps->kind = 's';
        return;
    }
    if (isalnum((unsigned char)*ps->p) || strchr("_-+:.;[]<>$/", *ps->p)) {
        while (*ps->p && (isalnum((unsigned char)*ps->p) || strchr("_-+:.[]<>$/", *ps->p))) {
            if (n + 1 < sizeof ps->tok)
                ps->tok[n++] = *ps->p;
            ps->p++;
        }
        if (n == 0) {                   /* a lone ';' */
            ps->tok[n++] = *ps->p++;
        }
        ps->tok[n] = 0;
        ps->kind = 'w';
        return;
    }
    ps->tok[0] = *ps->p++;
    ps->tok[1] = 0;
    ps->kind = ps->tok[0];
}

static int expect(parser *ps, int kind, const char *what)
{
    if (ps->failed)
        return -1;
    if (ps->kind != kind) {
        fail(ps, what);
        return -1;
    }
    next(ps);
    return 0;
}

/* A name: word or quoted string, copied into out. */
static int take_name(parser *ps, char *out, size_t outlen)
{
    if (ps->failed || (ps->kind != 'w' && ps->kind != 's')) {
        fail(ps, "expected a name");
        return -1;
    }
    if (str_copy(out, ps->tok, outlen) >= outlen) {
        fail(ps, "name too long");
        return -1;
    }
    next(ps);
    return 0;
}

/* ---------------------------------------------------------------------------------------------------
 * Grammar
 */
static name_list *find_list(name_list *lists, int n, const char *name)
{
    for (int i = 0; i < n; i++)
        if (strcmp(lists[i].name, name) == 0)
            return &lists[i];
    return NULL;
}

/* UAG(name) { a, b } / HAG(name) { h1, h2 } */
static void parse_name_list(parser *ps, name_list **lists, int *n)
{
    char name[NAME_MAX_LEN];
    if (expect(ps, '(', "expected '('") || take_name(ps, name, sizeof name) || expect(ps, ')', "expected ')'"))
        return;
    name_list *nl = find_list(*lists, *n, name);
    if (!nl) {
        *lists = xrealloc(*lists, (size_t)(*n + 1) * sizeof **lists);
        nl = &(*lists)[(*n)++];
        memset(nl, 0, sizeof *nl);
        str_copy(nl->name, name, sizeof nl->name);
    }
    if (ps->kind != '{')
        return;
    next(ps);
    while (!ps->failed && ps->kind != '}') {
        char member[NAME_MAX_LEN];
        if (take_name(ps, member, sizeof member))
            return;
        nl->members = xrealloc(nl->members, (size_t)(nl->nmembers + 1) * sizeof *nl->members);
        nl->members[nl->nmembers++] = xstrdup(member);
        if (ps->kind == ',')
            next(ps);
    }
    expect(ps, '}', "expected '}'");
}

/* UAG(a, b) or HAG(a) inside a RULE body: references to defined lists. */
static void parse_refs(parser *ps, name_list *lists, int nlists, int **idx, int *n, const char *kind)
{
    if (expect(ps, '(', "expected '('"))
        return;
    while (!ps->failed && ps->kind != ')') {
        char name[NAME_MAX_LEN];
        if (take_name(ps, name, sizeof name))
            return;
        name_list *nl = find_list(lists, nlists, name);
        if (!nl) {
            char msg[128];
            snprintf(msg, sizeof msg, "%s '%s' is not defined", kind, name);
            fail(ps, msg);
            return;
        }
        *idx = xrealloc(*idx, (size_t)(*n + 1) * sizeof **idx);
        (*idx)[(*n)++] = (int)(nl - lists);
        if (ps->kind == ',')
            next(ps);
    }
    expect(ps, ')', "expected ')'");
}

static void parse_rule(parser *ps, rule_set *rs, group *g)
{
    rule ru;
    memset(&ru, 0, sizeof ru);
    char level[16], access[16];
    if (expect(ps, '(', "expected '('") || take_name(ps, level, sizeof level) ||
        expect(ps, ',', "expected ','") || take_name(ps, access, sizeof access))
        return;
    char *end;
    ru.level = (int)strtol(level, &end, 10);
    if (*end || ru.level < 0) {
        fail(ps, "RULE level must be a non-negative integer");
        return;
    }
    if (strcmp(access, "NONE") == 0)
        ru.access = 0;
    else if (strcmp(access, "READ") == 0)
        ru.access = ACCESS_READ;
    else if (strcmp(access, "WRITE") == 0)
        ru.access = ACCESS_READ | ACCESS_WRITE;
    else {
        fail(ps, "RULE access must be NONE, READ or WRITE");
        return;
    }
    if (ps->kind == ',') {              /* TRAPWRITE / NOTRAPWRITE: accepted, no put logging here */
        next(ps);
        char trap[16];
        if (take_name(ps, trap, sizeof trap))
            return;
        if (strcmp(trap, "TRAPWRITE") && strcmp(trap, "NOTRAPWRITE")) {
            fail(ps, "expected TRAPWRITE or NOTRAPWRITE");
            return;
        }
    }
    if (expect(ps, ')', "expected ')'"))
        return;
    g->rules = xrealloc(g->rules, (size_t)(g->nrules + 1) * sizeof *g->rules);
    rule *dst = &g->rules[g->nrules++];
    *dst = ru;
    if (ps->kind != '{')
        return;
    next(ps);
    while (!ps->failed && ps->kind != '}') {
        if (ps->kind == 'w' && strcmp(ps->tok, "UAG") == 0) {
            next(ps);
            parse_refs(ps, rs->uags, rs->nuags, &dst->uags, &dst->nuags, "UAG");
        } else if (ps->kind == 'w' && strcmp(ps->tok, "HAG") == 0) {
            next(ps);
            parse_refs(ps, rs->hags, rs->nhags, &dst->hags, &dst->nhags, "HAG");
        } else if (ps->kind == 'w' && strcmp(ps->tok, "CALC") == 0) {
            next(ps);
            if (expect(ps, '(', "expected '('"))
                return;
            if (ps->kind != 's') {
                fail(ps, "CALC needs a quoted expression");
                return;
            }
            char msg[128];
            free(dst->calc);
            dst->calc = xstrdup(ps->tok);
            dst->calc_program = access_calc_compile(ps->tok, msg, sizeof msg);
            if (!dst->calc_program) {
                fail(ps, msg);
                return;
            }
            next(ps);
            expect(ps, ')', "expected ')'");
        } else {
            fail(ps, "expected UAG, HAG or CALC in RULE");
        }
    }
    expect(ps, '}', "expected '}'");
}

static void parse_group(parser *ps, rule_set *rs)
{
    char name[NAME_MAX_LEN];
    if (expect(ps, '(', "expected '('") || take_name(ps, name, sizeof name) || expect(ps, ')', "expected ')'"))
        return;
    for (int i = 0; i < rs->ngroups; i++)
        if (strcmp(rs->groups[i].name, name) == 0) {
            fail(ps, "ASG defined twice");
            return;
        }
    rs->groups = xrealloc(rs->groups, (size_t)(rs->ngroups + 1) * sizeof *rs->groups);
    group *g = &rs->groups[rs->ngroups++];
    memset(g, 0, sizeof *g);
    str_copy(g->name, name, sizeof g->name);
    if (ps->kind != '{')
        return;
    next(ps);
    while (!ps->failed && ps->kind != '}') {
        if (ps->kind == 'w' && strcmp(ps->tok, "RULE") == 0) {
            next(ps);
            parse_rule(ps, rs, g);
        } else if (ps->kind == 'w' && strncmp(ps->tok, "INP", 3) == 0 && ps->tok[3] >= 'A' &&
                   ps->tok[3] < 'A' + ACCESS_INPUTS && ps->tok[4] == 0) {
            int k = ps->tok[3] - 'A';
            next(ps);
            if (expect(ps, '(', "expected '('") || take_name(ps, g->inputs[k], sizeof g->inputs[k]))
                return;
            expect(ps, ')', "expected ')'");
        } else {
            fail(ps, "expected RULE or INPx in ASG");
        }
    }
    expect(ps, '}', "expected '}'");
}

static rule_set *parse(const char *text, const char *origin, char *err, size_t errlen)
{
    parser ps = { .p = text, .origin = origin, .line = 1, .err = err, .errlen = errlen };
    rule_set *rs = xcalloc(1, sizeof *rs);
    next(&ps);
    while (!ps.failed && ps.kind) {
        if (ps.kind == 'w' && strcmp(ps.tok, "UAG") == 0) {
            next(&ps);
            parse_name_list(&ps, &rs->uags, &rs->nuags);
        } else if (ps.kind == 'w' && strcmp(ps.tok, "HAG") == 0) {
            next(&ps);
            parse_name_list(&ps, &rs->hags, &rs->nhags);
        } else if (ps.kind == 'w' && strcmp(ps.tok, "ASG") == 0) {
            next(&ps);
            parse_group(&ps, rs);
        } else {
            fail(&ps, "expected UAG, HAG or ASG");
        }
    }
    if (ps.failed) {
        free_rule_set(rs);
        return NULL;
    }
    return rs;
}

/* ---------------------------------------------------------------------------------------------------
 * Loading
 */
int access_load_text(const char *text, const char *origin, char *err, size_t errlen)
{
    rule_set *rs = parse(text, origin, err, errlen);
    if (!rs)
        return -1;
    for (int gi = 0; gi < rs->ngroups; gi++)
        for (int k = 0; k < ACCESS_INPUTS; k++) {
            group *g = &rs->groups[gi];
            if (!g->inputs[k][0])
                continue;
            g->input_resolved[k] = db_name_to_addr(g->inputs[k], &g->input_addr[k]) == DB_OK;
            if (!g->input_resolved[k])
                log_warn("access", "%s: ASG %s INP%c: no channel %s (CALC rules using it deny access)",
                         origin, g->name, 'A' + k, g->inputs[k]);
        }
    pthread_mutex_lock(&rules_lock);
    rule_set *old = rules;
    rules = rs;
    generation++;
    pthread_mutex_unlock(&rules_lock);
    free_rule_set(old);
    return 0;
}

void access_clear(void)
{
    pthread_mutex_lock(&rules_lock);
    rule_set *old = rules;
    rules = NULL;
    generation++;
    pthread_mutex_unlock(&rules_lock);
    free_rule_set(old);
}

void access_set_file(const char *path)
{
    pthread_mutex_lock(&rules_lock);
    str_copy(acf_path, path ? path : "", sizeof acf_path);
    pthread_mutex_unlock(&rules_lock);
}

int access_init(char *err, size_t errlen)
{
    char path[sizeof acf_path];
    pthread_mutex_lock(&rules_lock);
    str_copy(path, acf_path, sizeof path);
    pthread_mutex_unlock(&rules_lock);
    if (!path[0]) {
        access_clear();
        return 0;
    }
    char why[512];
    char *text = file_read_all(path, 0, NULL, why, sizeof why);
    if (!text) return error_set(err, errlen, "access security file: %s", why);
    int rc = access_load_text(text, path, err, errlen);
    free(text);
    if (rc == 0)
        log_info("access", "loaded access security file %s", path);
    return rc;
}

/* ---------------------------------------------------------------------------------------------------
 * Queries
 */
static int list_has(const name_list *nl, const char *who, int nocase)
{
    for (int i = 0; i < nl->nmembers; i++)
        if (nocase ? strcasecmp(nl->members[i], who) == 0 : strcmp(nl->members[i], who) == 0)
            return 1;
    return 0;
}

static int rule_matches(const rule_set *rs, const group *g, const rule *ru, const char *user, const char *host)
{
    if (ru->nuags) {
        int ok = 0;
        for (int i = 0; i < ru->nuags && !ok; i++)
            ok = list_has(&rs->uags[ru->uags[i]], user, 0);
        if (!ok)
            return 0;
    }
    if (ru->nhags) {
        int ok = 0;
        for (int i = 0; i < ru->nhags && !ok; i++)
            ok = list_has(&rs->hags[ru->hags[i]], host, 1);
        if (!ok)
            return 0;
    }
    if (ru->calc_program) {
        for (int k = 0; k < ACCESS_INPUTS; k++)   /* a CALC over an unreadable input never grants access */
            if (g->inputs[k][0] && !g->input_ok[k])
                return 0;
        return access_calc_eval(ru->calc_program, g->values) != 0.0;
    }
    return 1;
}

unsigned access_rights(const char *asg, int level, const char *user, const char *host)
{
    unsigned granted = 0;
    pthread_mutex_lock(&rules_lock);
    if (!rules) {
        pthread_mutex_unlock(&rules_lock);
        return ACCESS_READ | ACCESS_WRITE;
    }
    const group *g = NULL;
    for (int pass = 0; pass < 2 && !g; pass++)
        for (int i = 0; i < rules->ngroups; i++)
            if (strcmp(rules->groups[i].name, pass == 0 && asg && asg[0] ? asg : "DEFAULT") == 0) {
                g = &rules->groups[i];
                break;
            }
    for (int r = 0; g && r < g->nrules; r++) {
        const rule *ru = &g->rules[r];
        if (ru->level >= level && rule_matches(rules, g, ru, user ? user : "", host ? host : ""))
            granted |= ru->access;
    }
    pthread_mutex_unlock(&rules_lock);
    return granted;
}

int access_refresh_inputs(void)
{
    int changed = 0;
    pthread_mutex_lock(&rules_lock);
    for (int gi = 0; rules && gi < rules->ngroups; gi++) {
        group *g = &rules->groups[gi];
        for (int k = 0; k < ACCESS_INPUTS; k++) {
            if (!g->inputs[k][0])
                continue;
            double v = 0;
            long n = 1;
            int ok = g->input_resolved[k] && db_get(&g->input_addr[k], DBR_DOUBLE, &v, &n) == DB_OK && n == 1;
            if (ok != g->input_ok[k] || (ok && v != g->values[k])) {
                g->input_ok[k] = ok;
                g->values[k] = v;
                changed = 1;
            }
        }
    }
    if (changed)
        generation++;
    pthread_mutex_unlock(&rules_lock);
    return changed;
}

unsigned long access_generation(void)
{
    pthread_mutex_lock(&rules_lock);
    unsigned long g = generation;
    pthread_mutex_unlock(&rules_lock);
    return g;
}

/* ---------------------------------------------------------------------------------------------------
 * st.cmd commands and iocInit
 */
static int cmd_as_set_filename(int argc, char **argv, char *err, size_t errlen)
{
    (void)argc;
    access_set_file(argv[1]);
    /* Checked now so that a bad file stops the IOC at its st.cmd line; installed again at iocInit, when
     * the records that CALC inputs name exist. */
    return access_init(err, errlen);
}

static int cmd_as_init(int argc, char **argv, char *err, size_t errlen)
{
    (void)argc;
    (void)argv;
    return access_init(err, errlen);   /* the loop pushes changed rights within its next round */
}

/* iocInit: the rules again, now that the records CALC inputs name exist. */
static void reload_at_init(void *user)
{
    (void)user;
    char err[512];
    if (access_init(err, sizeof err) < 0) log_error("access", "%s (previous access rules kept)", err);
}

void access_register(void)
{
    shell_register("asSetFilename", "asSetFilename file.acf  access security file", 1, 1, cmd_as_set_filename);
    shell_register("asInit", "asInit  (re)load the access security file", 0, 0, cmd_as_init);
    db_at_init(reload_at_init, NULL);
}
