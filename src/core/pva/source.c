/* source.c -- structured PVs served beside the records (pva.h: camera frames as NTNDArray, tables as
 * NTTable): the registry of sources, and the newest value of each as one shared, reference-counted encoding.
 *
 * Ownership and locks: the registry is built before iocInit (st.cmd thread) and read-only afterwards, so the
 * loop looks names up without a lock. A source's `lock` guards its newest value and sequence number; posts
 * (a driver's thread) encode outside the lock and only swap the pointer under it. A value stays alive while a
 * connection sends it (pva_source_latest / pva_value_unref; conn.c splices it into its output unchanged).
 * Lock order: db lock -> connection lock -> source lock; posts take the source lock alone. */
#include "core/pva/pva.h"
#include "core/pva/pva_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/base/base.h"

struct pva_value {
    int refs;                   /* atomic */
    pva_buf bytes;              /* the poster's encoding, taken over (a frame is not copied) */
};

static pva_source *sources;     /* before iocInit only; read-only afterwards */

pva_source *pva_source_find(const char *name)
{
    for (pva_source *s = sources; s; s = s->next)
        if (!strcmp(s->name, name))
            return s;
    return NULL;
}

pva_source *pva_source_new(const char *name, char *err, size_t errlen)
{
    db_addr addr;
    if (pva_source_find(name) || db_name_to_addr(name, &addr) == DB_OK) {
        error_set(err, errlen, "a PV named '%s' exists already", name);
        return NULL;
    }
    if (pva_server_port) {
        error_set(err, errlen, "'%s': structured PVs belong before iocInit", name);
        return NULL;
    }
    pva_source *s = xcalloc(1, sizeof *s);
    str_copy(s->name, name, sizeof s->name);
    pthread_mutex_init(&s->lock, NULL);
    s->next = sources;
    sources = s;
    return s;
}

/* Depth-first numbering: a structure's members follow it; unions, arrays and "any" are leaves. */
static uint64_t leaves(const pva_type *t, unsigned *next)
{
    unsigned me = (*next)++;
    if (t->code != PVA_STRUCT || t->nmembers == 0)
        return me < 64 ? 1ull << me : 0;
    uint64_t m = 0;
    for (uint32_t i = 0; i < t->nmembers; i++)
        m |= leaves(t->members[i], next);
    return m;
}

void pva_source_type_done(pva_source *s)
{
    pva_reader r = { .p = s->type.data + s->type.head, .end = s->type.data + s->type.head + s->type.len };
    pva_type_cache none = { 0 };
    pva_type *t = pva_type_decode(&r, &none);
    unsigned n = 0;
    s->leaf_bits = t ? leaves(t, &n) : 1;
    pva_type_free(t);
}

void pva_sources_free(void *user)
{
    (void)user;
    while (sources) {
        pva_source *s = sources;
        sources = s->next;
        pva_value_unref(s->latest);
        pva_buf_free(&s->type);
        for (int i = 0; i < s->ncols; i++)
            free(s->labels[i]);
        free(s->labels);
        free(s->member_codes);
        pthread_mutex_destroy(&s->lock);
        free(s);
    }
}

void pva_source_publish(pva_source *s, pva_buf *value)
{
    pva_value *v = xmalloc(sizeof *v);
    v->refs = 1;
    v->bytes = *value;
    *value = (pva_buf){ 0 };
    pthread_mutex_lock(&s->lock);
    pva_value *old = s->latest;
    s->latest = v;
    s->seq++;
    pthread_mutex_unlock(&s->lock);
    pva_value_unref(old);
    pva_server_wake();
}

pva_value *pva_source_latest(pva_source *s, uint64_t *seq)
{
    pthread_mutex_lock(&s->lock);
    pva_value *v = s->latest;
    if (v)
        __atomic_add_fetch(&v->refs, 1, __ATOMIC_ACQ_REL);
    *seq = s->seq;
    pthread_mutex_unlock(&s->lock);
    return v;
}

uint64_t pva_source_seq(pva_source *s)
{
    pthread_mutex_lock(&s->lock);
    uint64_t seq = s->seq;
    pthread_mutex_unlock(&s->lock);
    return seq;
}

void pva_value_unref(pva_value *v)
{
    if (v && __atomic_sub_fetch(&v->refs, 1, __ATOMIC_ACQ_REL) == 0) {
        pva_buf_free(&v->bytes);
        free(v);
    }
}

const uint8_t *pva_value_bytes(const pva_value *v, size_t *len)
{
    *len = v->bytes.len;
    return v->bytes.data + v->bytes.head;
}
