/* param_devsup.c -- device support "reloc param": records reading and writing driver parameters
 * (param.h explains the behaviour). Runs with the db lock held, takes the port lock inside it. */
#include "core/param/param_internal.h"

#include "core/base/base.h"
#include "core/shell/shell.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct dev_param {
    param_port *port;
    int index;
    int output;
    db_addr val;                 /* the record's VAL */
} dev_param;

static const char *const output_types[] = {"ao", "bo", "mbbo", "longout", "stringout", "lso", "aao"};
static const char *const input_types[] = {"ai", "bi", "mbbi", "longin", "stringin", "lsi", "waveform", "aai"};

static int type_in(const char *name, const char *const *list, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(name, list[i]) == 0) return 1;
    return 0;
}

/* The "@PORT NAME" text of the record's INP or OUT link. */
static const char *link_text(db_record *rec, int output)
{
    const db_field_desc *f = db_find_field(rec, output ? "OUT" : "INP");
    return f ? ((const db_link *)db_field_ptr(rec, f))->text : "";
}

/* [port locked] Stores the parameter's value into the record's VAL. */
static int store_value(dev_param *d, param *prm)
{
    switch (prm->type) {
    case PARAM_INT: {
        int32_t v = (int32_t)prm->ival;
        return db_put(&d->val, DBR_LONG, &v, 1);
    }
    case PARAM_DOUBLE: return db_put(&d->val, DBR_DOUBLE, &prm->dval, 1);
    case PARAM_STRING:
        if (d->val.type == DBF_CHAR || d->val.type == DBF_UCHAR) {
            long n = (long)strlen(prm->sval) + 1;
            if (n > d->val.max_elements) n = d->val.max_elements;
            return db_put(&d->val, DBR_CHAR, prm->sval, n);
        } else {
            char text[DB_STRING_SIZE];
            str_copy(text, prm->sval, sizeof text);
            return db_put(&d->val, DBR_STRING, text, 1);
        }
    case PARAM_ARRAY: return db_put(&d->val, prm->array_type, prm->array, prm->nelem);
    }
    return DB_ERR_BAD_TYPE;
}

static long read_param(db_record *rec, dev_param *d)
{
    param_port *p = d->port;
    pthread_mutex_lock(&p->lock);
    param *prm = &p->params[d->index];
    int status = store_value(d, prm);
    uint16_t stat = prm->alarm_status, sevr = prm->alarm_severity;
    pthread_mutex_unlock(&p->lock);
    if (sevr) db_alarm_raise(rec, stat, sevr);
    if (status != DB_OK) {
        log_warn("param", "%s: cannot store %s/%s: %s", rec->name, p->name, prm->name, db_strerror(status));
        return -1;
    }
    return 2;
}

/* A number no driver is handed: NaN or Inf in a numeric VAL (an ao's NaN would reach an integer parameter as 0). */
static int value_not_finite(const dev_param *d)
{
    if (d->val.max_elements != 1 || (d->val.type != DBF_DOUBLE && d->val.type != DBF_FLOAT)) return 0;
    double v = 0;
    long n = 1;
    return db_get(&d->val, DBR_DOUBLE, &v, &n) == DB_OK && !isfinite(v);
}

/* A refused write: VAL goes back to the value the driver accepted last (what it uses, and what autosave and
 * monitors then see), so a refused value is never kept; the record shows the refusal as WRITE/INVALID. */
static void restore_accepted(dev_param *d, param *prm)
{
    pthread_mutex_lock(&d->port->lock);
    prm->refused = 1;
    if (prm->defined) store_value(d, prm);
    pthread_mutex_unlock(&d->port->lock);
}

/* Reads the record's VAL into a write request (and the parameter on success). */
static long write_param(db_record *rec, dev_param *d)
{
    param_port *p = d->port;
    param *prm = &p->params[d->index];
    if (rec->pact) {     /* an asynchronous write completing: VAL shows the driver's value again */
        pthread_mutex_lock(&p->lock);
        int status = prm->async_status;
        store_value(d, prm);
        pthread_mutex_unlock(&p->lock);
        return status < 0 ? -1 : 0;
    }
    if (value_not_finite(d)) {
        log_warn("param", "%s: write to %s/%s refused: not a finite number", rec->name, p->name, prm->name);
        restore_accepted(d, prm);
        return -1;
    }
    param_write w = {.index = d->index, .name = prm->name};
    char text[4096] = "";
    void *array = NULL;
    long n = 1;
    int status = DB_OK;
    switch (prm->type) {
    case PARAM_INT: {
        int32_t v = 0;
        status = db_get(&d->val, DBR_LONG, &v, &n);
        w.ival = v;
        w.dval = v;
        break;
    }
    case PARAM_DOUBLE:
        status = db_get(&d->val, DBR_DOUBLE, &w.dval, &n);
        w.ival = (long)w.dval;
        break;
    case PARAM_STRING:
        if (d->val.type == DBF_CHAR || d->val.type == DBF_UCHAR) {
            n = (long)sizeof text - 1;
            status = db_get(&d->val, DBR_CHAR, text, &n);
            text[n > 0 ? n : 0] = '\0';
        } else {
            status = db_get(&d->val, DBR_STRING, text, &n);
        }
        w.sval = text;
        break;
    case PARAM_ARRAY:
        n = d->val.max_elements < prm->max_elements ? d->val.max_elements : prm->max_elements;
        array = xcalloc((size_t)n, param_element_size(prm->array_type));
        status = db_get(&d->val, prm->array_type, array, &n);
        w.array_type = prm->array_type;
        w.array = array;
        w.nelem = n;
        break;
    }
    /* Join the pending list before the driver sees the write: a driver that completes at once from another
     * thread (param_write_done) then finds this record, and the scan thread processes it after this
     * processing has released the db lock, when pact is already set. */
    pthread_mutex_lock(&p->lock);
    int registered = prm->npending < PARAM_MAX_PENDING;
    if (registered) prm->pending[prm->npending++] = rec;
    pthread_mutex_unlock(&p->lock);
    char err[256] = "rejected";
    int rc = status == DB_OK ? p->write(p->driver, &w, err, sizeof err) : -1;
    if (status != DB_OK) snprintf(err, sizeof err, "cannot read VAL: %s", db_strerror(status));
    if (rc == PARAM_ASYNC && !registered) {
        rc = -1;
        snprintf(err, sizeof err, "too many writes waiting on %s", prm->name);
    }
    if (rc != PARAM_ASYNC && registered) {
        pthread_mutex_lock(&p->lock);
        for (int i = 0; i < prm->npending; i++)
            if (prm->pending[i] == rec) prm->pending[i--] = prm->pending[--prm->npending];
        pthread_mutex_unlock(&p->lock);
    }
    if (rc == 0 || rc == PARAM_ASYNC) {
        pthread_mutex_lock(&p->lock);
        prm->refused = 0;
        pthread_mutex_unlock(&p->lock);
        switch (prm->type) {
        case PARAM_INT: param_set_int(p, d->index, w.ival); break;
        case PARAM_DOUBLE: param_set_double(p, d->index, w.dval); break;
        case PARAM_STRING: param_set_string(p, d->index, text); break;
        case PARAM_ARRAY: param_set_array(p, d->index, array, n); break;
        }
        param_post(p);
    }
    free(array);
    if (rc == PARAM_ASYNC) {
        rec->pact = 1;
        return 0;
    }
    if (rc < 0) {
        log_warn("param", "%s: write to %s/%s refused: %s", rec->name, p->name, prm->name, err);
        restore_accepted(d, prm);
        return -1;
    }
    return 0;
}

static long param_io(db_record *rec)
{
    dev_param *d = rec->dpvt;
    if (!d) return -1;
    return d->output ? write_param(rec, d) : read_param(rec, d);
}

static int param_init_record(db_record *rec)
{
    const char *type = rec->rtype->name;
    int output = type_in(type, output_types, sizeof output_types / sizeof output_types[0]);
    if (!output && !type_in(type, input_types, sizeof input_types / sizeof input_types[0])) {
        log_error("param", "%s: record type %s is not supported by \"reloc param\"", rec->name, type);
        return -1;
    }
    char port_name[64], param_name[64];
    const char *text = link_text(rec, output);
    if (sscanf(text, " @%63s %63s", port_name, param_name) != 2) {
        log_error("param", "%s: %s \"%s\" must be \"@PORT PARAM\"", rec->name, output ? "OUT" : "INP", text);
        return -1;
    }
    param_port *port = param_port_find(port_name);
    int index = port ? param_index(port, param_name) : -1;
    if (!port || index < 0) {
        log_error("param", "%s: %s %s", rec->name, port ? "no parameter" : "no port", port ? param_name : port_name);
        return -1;
    }
    char channel[DB_NAME_SIZE + 8];
    snprintf(channel, sizeof channel, "%s.VAL", rec->name);
    dev_param *d = xcalloc(1, sizeof *d);
    d->port = port;
    d->index = index;
    d->output = output;
    if (db_name_to_addr(channel, &d->val) != DB_OK) {
        log_error("param", "%s: no VAL field", rec->name);
        free(d);
        return -1;
    }
    rec->dpvt = d;
    port->record_state = xrealloc(port->record_state, (size_t)(port->nrecords + 1) * sizeof *port->record_state);
    port->record_state[port->nrecords++] = d;    /* freed with the port */
    /* outputs show the driver's value, unless PINI will write the record's own value to the driver */
    if (output && !rec->pini) {
        pthread_mutex_lock(&port->lock);
        param *prm = &port->params[index];
        if (prm->defined && store_value(d, prm) == DB_OK) rec->udf = 0;
        pthread_mutex_unlock(&port->lock);
    }
    return 0;
}

static int param_get_ioint(db_record *rec, db_ioscan **list)
{
    dev_param *d = rec->dpvt;
    if (!d) return -1;
    pthread_mutex_lock(&d->port->lock);
    param *prm = &d->port->params[d->index];
    if (!prm->ioscan) prm->ioscan = db_ioscan_create();
    *list = prm->ioscan;
    pthread_mutex_unlock(&d->port->lock);
    return 0;
}

static const db_dset param_dset = {
    .name = "reloc param",
    .record_type = NULL,
    .init_record = param_init_record,
    .get_ioint = param_get_ioint,
    .io = param_io,
};

static int param_report_cmd(int argc, char **argv, char *err, size_t errlen)
{
    for (int i = 0; i < param_port_count(); i++) {
        param_port *p = param_port_at(i);
        if (argc > 1 && strcmp(argv[1], p->name) != 0) continue;
        printf("port %s: %d parameters\n", p->name, p->nparams);
        pthread_mutex_lock(&p->lock);
        for (int k = 0; k < p->nparams; k++) {
            param *prm = &p->params[k];
            switch (prm->type) {
            case PARAM_INT: printf("  %-28s int    %ld\n", prm->name, prm->ival); break;
            case PARAM_DOUBLE: printf("  %-28s double %.6g\n", prm->name, prm->dval); break;
            case PARAM_STRING: printf("  %-28s string \"%s\"\n", prm->name, prm->sval); break;
            case PARAM_ARRAY: printf("  %-28s array  %ld/%ld elements\n", prm->name, prm->nelem, prm->max_elements); break;
            }
        }
        pthread_mutex_unlock(&p->lock);
    }
    return 0;
}

void param_register(void)
{
    db_register_dset(&param_dset);
    shell_register("paramReport", "paramReport [port]  -- driver parameters and their values", 0, 1,
                   param_report_cmd);
}
