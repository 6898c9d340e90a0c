/* param_port.c -- parameter tables of drivers (param.h): values, change tracking, alarms and the I/O Intr
 * lists their records join. A port's mutex guards its values; the port registry is written only before
 * iocInit (st.cmd, one thread) and read-only afterwards. */
#include "core/param/param_internal.h"

#include "core/base/base.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static param_port **ports;
static int nports;

param_port *param_port_create(const char *name, param_write_fn write, void *driver)
{
    if (param_port_find(name)) {
        log_error("param", "port %s exists already", name);
        return NULL;
    }
    param_port *p = xcalloc(1, sizeof *p);
    str_copy(p->name, name, sizeof p->name);
    p->write = write;
    p->driver = driver;
    pthread_mutex_init(&p->lock, NULL);
    ports = xrealloc(ports, (size_t)(nports + 1) * sizeof *ports);
    ports[nports++] = p;
    return p;
}

param_port *param_port_find(const char *name)
{
    for (int i = 0; i < nports; i++)
        if (strcmp(ports[i]->name, name) == 0) return ports[i];
    return NULL;
}

int param_port_count(void) { return nports; }
param_port *param_port_at(int i) { return ports[i]; }

int param_index(param_port *p, const char *name)
{
    for (int i = 0; i < p->nparams; i++)
        if (strcmp(p->params[i].name, name) == 0) return i;
    return -1;
}

static int add(param_port *p, const char *name, param_type type)
{
    if (param_index(p, name) >= 0) {
        log_error("param", "%s: parameter %s exists already", p->name, name);
        return -1;
    }
    p->params = xrealloc(p->params, (size_t)(p->nparams + 1) * sizeof *p->params);
    param *prm = &p->params[p->nparams];
    memset(prm, 0, sizeof *prm);
    str_copy(prm->name, name, sizeof prm->name);
    prm->type = type;
    prm->sval = xstrdup("");
    return p->nparams++;
}

int param_create(param_port *p, const char *name, param_type type) { return add(p, name, type); }

void param_create_table(param_port *p, const param_def *defs, size_t count)
{
    for (size_t i = 0; i < count; i++) param_create(p, defs[i].name, defs[i].type);
}

int param_create_array(param_port *p, const char *name, dbr_value_type array_type, long max_elements)
{
    int i = add(p, name, PARAM_ARRAY);
    if (i >= 0) {
        param *prm = &p->params[i];
        prm->array_type = array_type;
        prm->max_elements = max_elements;
        prm->array = xcalloc((size_t)max_elements, param_element_size(array_type));
    }
    return i;
}

size_t param_element_size(dbr_value_type type)
{
    static const size_t sizes[] = {DB_STRING_SIZE, 2, 4, 2, 1, 4, 8};
    return sizes[type];
}

/* [port locked] */
static param *get(param_port *p, int index) { return &p->params[index]; }

static void changed(param *prm)
{
    prm->changed = 1;
    prm->defined = 1;
}

void param_set_int(param_port *p, int index, long value)
{
    pthread_mutex_lock(&p->lock);
    param *prm = get(p, index);
    if (!prm->defined || prm->ival != value || prm->dval != (double)value) changed(prm);
    prm->ival = value;
    prm->dval = (double)value;
    pthread_mutex_unlock(&p->lock);
}

void param_set_double(param_port *p, int index, double value)
{
    pthread_mutex_lock(&p->lock);
    param *prm = get(p, index);
    if (!prm->defined || prm->dval != value) changed(prm);
    prm->dval = value;
    prm->ival = (long)value;
    pthread_mutex_unlock(&p->lock);
}

void param_set_string(param_port *p, int index, const char *value)
{
    pthread_mutex_lock(&p->lock);
    param *prm = get(p, index);
    if (!prm->defined || strcmp(prm->sval, value) != 0) {
        changed(prm);
        free(prm->sval);
        prm->sval = xstrdup(value);
    }
    pthread_mutex_unlock(&p->lock);
}

void param_set_array(param_port *p, int index, const void *data, long nelem)
{
    pthread_mutex_lock(&p->lock);
    param *prm = get(p, index);
    if (nelem > prm->max_elements) nelem = prm->max_elements;
    if (nelem > 0) memcpy(prm->array, data, (size_t)nelem * param_element_size(prm->array_type));
    prm->nelem = nelem < 0 ? 0 : nelem;
    changed(prm);      /* arrays always count as changed: a new frame is news even if identical */
    pthread_mutex_unlock(&p->lock);
}

void param_set_alarm(param_port *p, int index, uint16_t status, uint16_t severity)
{
    pthread_mutex_lock(&p->lock);
    param *prm = get(p, index);
    if (prm->alarm_status != status || prm->alarm_severity != severity) prm->changed = 1;
    prm->alarm_status = status;
    prm->alarm_severity = severity;
    pthread_mutex_unlock(&p->lock);
}

int param_write_refused(param_port *p, int index)
{
    pthread_mutex_lock(&p->lock);
    int refused = get(p, index)->refused;
    pthread_mutex_unlock(&p->lock);
    return refused;
}

long param_get_int(param_port *p, int index)
{
    pthread_mutex_lock(&p->lock);
    long v = get(p, index)->ival;
    pthread_mutex_unlock(&p->lock);
    return v;
}

double param_get_double(param_port *p, int index)
{
    pthread_mutex_lock(&p->lock);
    double v = get(p, index)->dval;
    pthread_mutex_unlock(&p->lock);
    return v;
}

void param_get_string(param_port *p, int index, char *buf, size_t len)
{
    pthread_mutex_lock(&p->lock);
    str_copy(buf, get(p, index)->sval, len);
    pthread_mutex_unlock(&p->lock);
}

long param_get_array(param_port *p, int index, void *dst, long max)
{
    pthread_mutex_lock(&p->lock);
    param *prm = get(p, index);
    long n = prm->nelem < max ? prm->nelem : max;
    if (n > 0) memcpy(dst, prm->array, (size_t)n * param_element_size(prm->array_type));
    pthread_mutex_unlock(&p->lock);
    return n;
}

long param_array_length(param_port *p, int index)
{
    pthread_mutex_lock(&p->lock);
    long n = get(p, index)->nelem;
    pthread_mutex_unlock(&p->lock);
    return n;
}

void param_post(param_port *p)
{
    /* collect under the port lock, trigger without it (db_ioscan_request may take scan locks) */
    db_ioscan *lists[64];
    int n = 0;
    pthread_mutex_lock(&p->lock);
    for (int i = 0; i < p->nparams; i++) {
        param *prm = &p->params[i];
        if (!prm->changed) continue;
        if (prm->ioscan && n == (int)(sizeof lists / sizeof lists[0])) break;   /* the rest on the next post */
        prm->changed = 0;
        if (prm->ioscan) lists[n++] = prm->ioscan;
    }
    pthread_mutex_unlock(&p->lock);
    for (int i = 0; i < n; i++) db_ioscan_request(lists[i]);
}

void param_write_done(param_port *p, int index, int status)
{
    pthread_mutex_lock(&p->lock);
    param *prm = get(p, index);
    int n = prm->npending;
    db_record *pending[PARAM_MAX_PENDING];
    memcpy(pending, prm->pending, (size_t)n * sizeof *pending);
    prm->npending = 0;
    prm->async_status = status;
    pthread_mutex_unlock(&p->lock);
    for (int i = 0; i < n; i++) db_request_process(pending[i]);
}

void param_port_destroy(param_port *p)
{
    int i = 0;
    while (i < nports && ports[i] != p) i++;
    if (i == nports) return;
    ports[i] = ports[--nports];
    for (int k = 0; k < p->nparams; k++) {
        free(p->params[k].sval);
        free(p->params[k].array);
    }
    for (int k = 0; k < p->nrecords; k++) free(p->record_state[k]);
    free(p->record_state);
    free(p->params);
    pthread_mutex_destroy(&p->lock);
    free(p);
    if (!nports) {
        free(ports);
        ports = NULL;
    }
}
