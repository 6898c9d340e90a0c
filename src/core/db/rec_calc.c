/* rec_calc.c -- calc and calcout: read INPA..INPL into A..L, evaluate CALC (compiled once, again when
 * CALC changes; src/core/calc) into VAL with alarm limits and deadbands. calcout then decides by OOPT whether
 * to write, computes OVAL from VAL or OCAL (DOPT), and writes it to OUT through its device support
 * ("Soft Channel" for calcout writes OVAL). ODLY and OEVT are not implemented. */
#include "core/db/db_internal.h"
#include "core/base/base.h"
#include "core/calc/calc.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#define CALC_SIZE 80

typedef struct calc_record {
    db_common common;
    db_analog an;
    double val;
    char calc[CALC_SIZE];
    db_link inp[CALC_NINPUTS];
    double args[CALC_NINPUTS];
    double last_args[CALC_NINPUTS];     /* for posting A..L that changed */
    calc_program prog;
    /* calcout only */
    char ocal[CALC_SIZE];
    calc_program oprog;
    uint16_t oopt, dopt;
    double oval, pval;
    db_output o;
} calc_record;

static const char *const oopt_choices[] = {"Every Time", "On Change", "When Zero", "When Non-zero",
                                           "Transition To Zero", "Transition To Non-zero"};
static const db_menu calcoutOOPT = {"calcoutOOPT", 6, oopt_choices};
static const char *const dopt_choices[] = {"Use CALC", "Use OCAL"};
static const db_menu calcoutDOPT = {"calcoutDOPT", 2, dopt_choices};

#define T calc_record
#define INPUT(L, I) DB_FIELD(T, "INP" #L, DBF_INLINK, inp[I], 0), DB_FIELD(T, #L, DBF_DOUBLE, args[I], DBFLD_PROCESS)
#define CALC_FIELDS \
    DB_FIELD(T, "VAL", DBF_DOUBLE, val, DBFLD_PROCESS), \
    DB_FIELD_INIT(T, "CALC", DBF_STRING, calc, DBFLD_SPECIAL | DBFLD_PROCESS, "0"), \
    INPUT(A, 0), INPUT(B, 1), INPUT(C, 2), INPUT(D, 3), INPUT(E, 4), INPUT(F, 5), INPUT(G, 6), INPUT(H, 7), \
    INPUT(I, 8), INPUT(J, 9), INPUT(K, 10), INPUT(L, 11), \
    DB_ANALOG_FIELDS(T)

static const db_field_desc calc_fields[] = {CALC_FIELDS};
static const db_field_desc calcout_fields[] = {
    CALC_FIELDS,
    DB_FIELD_INIT(T, "OCAL", DBF_STRING, ocal, DBFLD_SPECIAL | DBFLD_PROCESS, "0"),
    DB_MENU_FIELD(T, "OOPT", oopt, 0, calcoutOOPT, NULL),
    DB_MENU_FIELD(T, "DOPT", dopt, 0, calcoutDOPT, NULL),
    DB_FIELD(T, "OVAL", DBF_DOUBLE, oval, DBFLD_READONLY),
    DB_FIELD(T, "PVAL", DBF_DOUBLE, pval, DBFLD_READONLY),
    DB_MENU_FIELD(T, "IVOA", o.ivoa, 0, menuIvoa, NULL),
    DB_FIELD(T, "IVOV", DBF_DOUBLE, o.ivov, 0),
    DB_FIELD(T, "OUT", DBF_OUTLINK, o.out, 0),
};
#undef T

static const db_value_desc calc_value = {DBF_DOUBLE, offsetof(calc_record, val), 0, NULL};

static int is_calcout(const db_record *rec)
{
    return strcmp(rec->rtype->name, "calcout") == 0;
}

static int compile(db_record *rec, const char *field, const char *text, calc_program *prog)
{
    calc_error err;
    if (calc_compile(text, prog, &err) == 0) return 0;
    if (db_is_running())
        log_error("db", "%s.%s: bad expression \"%s\" at position %d: %s", rec->name, field, text,
                  err.position + 1, err.message);
    else
        db_init_failure("%s \"%s\" is not a valid expression: at position %d, %s", field, text, err.position + 1,
                        err.message);
    return -1;
}

static int calc_init(db_record *rec, int pass)
{
    calc_record *c = (calc_record *)rec;
    if (pass == 0) {
        int bad = compile(rec, "CALC", c->calc, &c->prog);
        if (is_calcout(rec)) bad |= compile(rec, "OCAL", c->ocal, &c->oprog);
        return bad;
    }
    for (int i = 0; i < CALC_NINPUTS; i++) {
        db_span arg = {DBF_DOUBLE, &c->args[i], sizeof(double), NULL};
        db_link_load_constant(&c->inp[i], &arg);
        c->last_args[i] = c->args[i];
    }
    recsup_analog_init(rec, &calc_value);
    return 0;
}

/* A changed CALC or OCAL compiles at once; a bad expression leaves the record in CALC/INVALID. */
static int calc_special(const db_addr *addr, int after)
{
    calc_record *c = (calc_record *)addr->rec;
    if (!after) return 0;
    if (strcmp(addr->field->name, "CALC") == 0) compile(addr->rec, "CALC", c->calc, &c->prog);
    else compile(addr->rec, "OCAL", c->ocal, &c->oprog);
    return 0;
}

static void fetch_inputs(calc_record *c)
{
    for (int i = 0; i < CALC_NINPUTS; i++) {
        db_span arg = {DBF_DOUBLE, &c->args[i], sizeof(double), NULL};
        long n = 1;
        if (db_link_read(&c->common, &c->inp[i], &arg, &n) < 0) db_alarm_raise(&c->common, STAT_LINK, INVALID_ALARM);
    }
}

static int evaluate(calc_record *c, const calc_program *prog, double *result)
{
    if (calc_eval(prog, c->args, c->val, result) == 0) return 0;
    db_alarm_raise(&c->common, STAT_CALC, INVALID_ALARM);
    return -1;
}

static void post_changed_inputs(calc_record *c)
{
    for (int i = 0; i < CALC_NINPUTS; i++) {
        if (c->args[i] == c->last_args[i] || (isnan(c->args[i]) && isnan(c->last_args[i]))) continue;
        c->last_args[i] = c->args[i];
        db_post_events(&c->common, &c->args[i], DBE_VALUE | DBE_LOG);
    }
}

static void compute_val(calc_record *c)
{
    fetch_inputs(c);
    double v;
    if (evaluate(c, &c->prog, &v) == 0) {
        c->val = v;
        c->common.udf = isnan(v);
    }
    recsup_analog_alarms(&c->common, c->val);
}

static void calc_finish(calc_record *c)
{
    unsigned mask = db_process_finish(&c->common);
    recsup_analog_monitor(&c->common, &c->val, c->val, mask);
    post_changed_inputs(c);
}

static long calc_process(db_record *rec)
{
    calc_record *c = (calc_record *)rec;
    compute_val(c);
    calc_finish(c);
    return 0;
}

static int should_output(const calc_record *c)
{
    switch (c->oopt) {
    case 0: return 1;
    case 1: return c->val != c->pval;
    case 2: return c->val == 0;
    case 3: return c->val != 0;
    case 4: return c->pval != 0 && c->val == 0;
    case 5: return c->pval == 0 && c->val != 0;
    default: return 0;
    }
}

static long calcout_process(db_record *rec)
{
    calc_record *c = (calc_record *)rec;
    int completing = rec->pact;
    long status = 0;
    if (!completing) {
        compute_val(c);
        int write = should_output(c);
        c->pval = c->val;
        if (write) {
            double out = c->val;
            if (c->dopt == 1) evaluate(c, &c->oprog, &out);
            if (c->oval != out) {
                c->oval = out;
                db_post_events(rec, &c->oval, DBE_VALUE | DBE_LOG);
            }
            if (rec->nsev >= INVALID_ALARM && c->o.ivoa == 1) write = 0;
            else if (rec->nsev >= INVALID_ALARM && c->o.ivoa == 2) c->oval = c->o.ivov;
        }
        if (!write) {
            calc_finish(c);
            return 0;
        }
    }
    status = recsup_device_io(rec, 1);
    if (!completing && rec->pact) return 0;
    calc_finish(c);
    return status < 0 ? status : 0;
}

/* calcout's "Soft Channel": writes OVAL (not VAL) to OUT. */
static long calcout_soft_write(db_record *rec)
{
    calc_record *c = (calc_record *)rec;
    db_span src = {DBF_DOUBLE, &c->oval, sizeof c->oval, NULL};
    return db_link_write(rec, &c->o.out, &src, 1) < 0 ? -1 : 0;
}

static const db_dset calcout_soft = {"Soft Channel", "calcout", NULL, NULL, calcout_soft_write};

static const db_record_type calc_types[] = {
    {.name = "calc", .size = sizeof(calc_record), .fields = calc_fields,
     .nfields = sizeof calc_fields / sizeof calc_fields[0], .init_record = calc_init, .process = calc_process,
     .special = calc_special, .get_meta = recsup_analog_meta},
    {.name = "calcout", .size = sizeof(calc_record), .fields = calcout_fields,
     .nfields = sizeof calcout_fields / sizeof calcout_fields[0], .init_record = calc_init,
     .process = calcout_process, .special = calc_special, .get_meta = recsup_analog_meta},
};

void rec_calc_register(void)
{
    db_register_menu(&calcoutOOPT);
    db_register_menu(&calcoutDOPT);
    for (size_t i = 0; i < sizeof calc_types / sizeof calc_types[0]; i++) db_register_record_type(&calc_types[i]);
    db_register_dset(&calcout_soft);
}
