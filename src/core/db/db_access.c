/* db_access.c -- channels: resolving "REC.FIELD" names, reading and writing fields with conversion, field
 * metadata, text access for the shell and autosave, and client puts that process records.
 */
#include "core/db/db_internal.h"
#include "core/base/base.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int db_name_to_addr(const char *channel, db_addr *addr)
{
    char name[DB_NAME_SIZE + 16];
    if (!channel || str_copy(name, channel, sizeof name) >= sizeof name) return DB_ERR_NOT_FOUND;
    char *dot = strchr(name, '.');
    const char *field = "VAL";
    if (dot) {
        *dot = 0;
        field = dot + 1;
    }
    size_t flen = strlen(field);
    int long_string = flen > 0 && field[flen - 1] == '$';
    char fname[16];
    if (flen == 0 || flen - (size_t)long_string >= sizeof fname) return DB_ERR_NOT_FOUND;
    memcpy(fname, field, flen - (size_t)long_string);
    fname[flen - (size_t)long_string] = 0;
    db_record *rec = records_find(name);
    if (!rec) return DB_ERR_NOT_FOUND;
    const db_field_desc *f = db_find_field(rec, fname);
    if (!f) return DB_ERR_NOT_FOUND;
    int running = db_is_running() && !db_lock_held();
    if (running) db_lock();
    int status = db_addr_for_field(rec, f, long_string, addr);
    if (running) db_unlock();
    return status == DB_OK ? DB_OK : DB_ERR_NOT_FOUND;
}

long db_current_elements(const db_addr *addr)
{
    db_storage st;
    if (db_addr_storage(addr, &st) != DB_OK) return 0;
    return st.nelem;
}

static int valid_dbr(dbr_value_type type)
{
    return (int)type >= DBR_STRING && type <= DBR_DOUBLE;
}

/* db_get and db_get_wire: the elements of addr as type, in host order or (wire) big-endian when the bulk number
 * path takes them (returns 1 then; 0 when they are in host order). */
static int get_elements(const db_addr *addr, dbr_value_type type, void *buf, long *nelem, int wire)
{
    if (!valid_dbr(type)) return DB_ERR_BAD_TYPE;
    db_storage st;
    int status = db_addr_storage(addr, &st);
    if (status != DB_OK) return status;
    long n = st.nelem;
    if (*nelem > 0 && *nelem < n) n = *nelem;
    db_span src = {st.type, st.data, st.elem_size, addr};
    db_span dst = {dbr_storage_type(type), buf, db_dbr_value_size(type), NULL};
    int swapped = wire && db_convert_is_bulk(&dst, &src);
    status = swapped ? db_convert_wire(&dst, &src, n) : db_convert(&dst, &src, n);
    *nelem = status == DB_OK ? n : 0;
    return status == DB_OK ? swapped : status;
}

int db_get(const db_addr *addr, dbr_value_type type, void *buf, long *nelem)
{
    int status = get_elements(addr, type, buf, nelem, 0);
    return status > 0 ? DB_OK : status;
}

int db_get_wire(const db_addr *addr, dbr_value_type type, void *buf, long *nelem)
{
    return get_elements(addr, type, buf, nelem, 1);
}

/* VAL, without a strcmp call on every put. */
static int is_val(const db_field_desc *f)
{
    return f->name[0] == 'V' && f->name[1] == 'A' && f->name[2] == 'L' && f->name[3] == 0;
}

/* Fields of db_common whose change moves the record between scan lists. */
static int is_scan_field(const db_field_desc *f)
{
    return f->offset == offsetof(db_common, scan) || f->offset == offsetof(db_common, evnt) ||
           f->offset == offsetof(db_common, phas);
}

static int is_common_field(const db_field_desc *f)
{
    return f >= db_common_fields && f < db_common_fields + db_common_nfields;
}

static int store_elements(const db_addr *addr, const db_storage *st, const db_span *src, long n)
{
    if (addr->long_string) {             /* CHAR elements (or a string) into a string field */
        size_t cap = (size_t)st->capacity;
        char *dst = st->data;
        size_t len;
        if (src->type == DBF_STRING) len = strnlen(src->data, src->elem_size);
        else len = strnlen(src->data, (size_t)n * src->elem_size);
        if (src->type != DBF_STRING && src->type != DBF_CHAR && src->type != DBF_UCHAR) return DB_ERR_BAD_TYPE;
        if (len >= cap) len = cap - 1;
        memmove(dst, src->data, len);
        dst[len] = 0;
        return DB_OK;
    }
    db_span dst = {st->type, st->data, st->elem_size, addr};
    if ((addr->field->flags & DBFLD_ARRAY) && addr->field->type != DBF_STRING) {
        long count = n < st->capacity ? n : st->capacity;
        if (db_convert_is_bulk(&dst, src)) {       /* fails untouched or completes: no staging copy */
            int status = db_convert(&dst, src, count);
            if (status == DB_OK) addr->rec->rtype->put_array(addr, count);
            return status;
        }
        void *tmp = xmalloc((size_t)count * st->elem_size + 1);
        db_span staged = dst;
        staged.data = tmp;
        int status = db_convert(&staged, src, count);
        if (status == DB_OK) {
            memcpy(st->data, tmp, (size_t)count * st->elem_size);
            addr->rec->rtype->put_array(addr, count);
        }
        free(tmp);
        return status;
    }
    char small[256];
    void *tmp = st->elem_size <= sizeof small ? small : xmalloc(st->elem_size);
    db_span staged = dst;
    staged.data = tmp;
    if (st->type == DBF_STRING) memset(tmp, 0, st->elem_size);
    int status = db_convert(&staged, src, 1);
    if (status == DB_OK) memcpy(st->data, tmp, st->elem_size);
    if (tmp != small) free(tmp);
    return status;
}

/* Writing ACKS acknowledges the alarm (CA PUT_ACKS): a severity at least the unacknowledged one clears it. */
static int acknowledge(const db_addr *addr, const db_span *src)
{
    uint16_t sevr;
    db_span dst = {DBF_MENU, &sevr, sizeof sevr, addr};
    if (db_convert(&dst, src, 1) != DB_OK) return DB_ERR_CONVERT;
    db_record *rec = addr->rec;
    if (sevr >= rec->acks && rec->acks != NO_ALARM) {
        rec->acks = NO_ALARM;
        db_post_events(rec, &rec->acks, DBE_VALUE | DBE_ALARM);
    }
    return DB_OK;
}

int db_put_span(const db_addr *addr, const db_span *src, long nelem)
{
    const db_field_desc *f = addr->field;
    db_record *rec = addr->rec;
    /* an array may be emptied (a frame with no particles); a scalar always gets a value */
    if (nelem < 0 || (nelem == 0 && !((f->flags & DBFLD_ARRAY) && f->type != DBF_STRING))) return DB_ERR_BAD_TYPE;
    if (f == db_rtyp_field) return DB_ERR_READ_ONLY;
    if (f->type == DBF_INLINK || f->type == DBF_OUTLINK || f->type == DBF_FWDLINK) {
        char text[DB_LINK_SIZE];
        db_span dst = {DBF_STRING, text, sizeof text, NULL};
        if (addr->long_string) {
            size_t len = strnlen(src->data, (size_t)nelem < sizeof text ? (size_t)nelem : sizeof text - 1);
            memcpy(text, src->data, len);
            text[len] = 0;
        } else if (db_convert(&dst, src, 1) != DB_OK) {
            return DB_ERR_CONVERT;
        }
        char err[256];
        int status = db_put_text_locked(addr, text, err, sizeof err);
        if (status != DB_OK) {
            log_warn("db", "%s", err);
            return status;
        }
        if (db_is_running()) {     /* a new CP target: watch it instead of the old one */
            db_cp_links_free(rec);
            db_cp_links_start(rec);
        }
        db_post_events(rec, db_field_ptr(rec, f), DBE_VALUE | DBE_LOG);
        return DB_OK;
    }
    if (is_common_field(f) && f->offset == offsetof(db_common, acks)) return acknowledge(addr, src);
    db_storage st;
    int status = db_addr_storage(addr, &st);
    if (status != DB_OK) return status;
    if (!st.data) return DB_ERR_STATE;
    int special = (f->flags & DBFLD_SPECIAL) && !is_common_field(f) && rec->rtype->special;
    if (special && rec->rtype->special(addr, 0) != 0) return DB_ERR_FAILED;
    /* a scalar's previous value, put back when special() refuses the new one */
    char before[DB_LINK_SIZE];
    int can_refuse = special && !(f->flags & DBFLD_ARRAY) && !addr->long_string && st.elem_size <= sizeof before;
    if (can_refuse) memcpy(before, st.data, st.elem_size);
    unsigned old_scan = rec->scan;
    status = store_elements(addr, &st, src, nelem);
    if (status != DB_OK) return status;
    if (special && rec->rtype->special(addr, 1) != 0 && can_refuse) {
        memcpy(st.data, before, st.elem_size);
        return DB_ERR_FAILED;
    }
    if (is_val(f)) rec->udf = 0;     /* as EPICS dbPut: a written value is defined */
    if (is_common_field(f) && is_scan_field(f)) db_scan_record_changed(rec, old_scan);
    int value_put_processes = (f->flags & DBFLD_PROCESS) && is_val(f);
    if (!value_put_processes) db_post_events(rec, db_field_ptr(rec, f), DBE_VALUE | DBE_LOG);
    /* units, limits, precision, state strings describe every field of the record: as in EPICS, a property
     * monitor on any of them (REC, REC.VAL) hears of the change */
    if (f->flags & DBFLD_PROPERTY) db_post_events(rec, NULL, DBE_PROPERTY);
    return DB_OK;
}

int db_put(const db_addr *addr, dbr_value_type type, const void *buf, long nelem)
{
    if (!valid_dbr(type)) return DB_ERR_BAD_TYPE;
    db_span src = {dbr_storage_type(type), (void *)buf, db_dbr_value_size(type), NULL};
    return db_put_span(addr, &src, nelem);
}

int db_client_put_check(const db_addr *addr)
{
    if (addr->field->flags & DBFLD_READONLY) return DB_ERR_READ_ONLY;
    if (addr->field->type == DBF_NOACCESS) return DB_ERR_BAD_TYPE;
    if (addr->rec->disp && addr->field->offset != offsetof(db_common, disp)) return DB_ERR_DISABLED;
    return DB_OK;
}

/* Whether a client put to this field processes the record (PROC always; pp fields when Passive). */
int db_client_put_processes(const db_addr *addr)
{
    if (addr->field->offset == offsetof(db_common, proc) && is_common_field(addr->field)) return 1;
    return (addr->field->flags & DBFLD_PROCESS) && addr->rec->scan == DB_SCAN_PASSIVE;
}

static int put_field_span(const db_addr *addr, const db_span *src, long nelem)
{
    int status = db_client_put_check(addr);
    if (status == DB_OK) status = db_put_span(addr, src, nelem);
    if (status == DB_OK && db_client_put_processes(addr)) db_process_for(addr->rec, PROCESS_PUT);
    return status;
}

int db_put_field(const db_addr *addr, dbr_value_type type, const void *buf, long nelem)
{
    if (!valid_dbr(type)) return DB_ERR_BAD_TYPE;
    db_span src = {dbr_storage_type(type), (void *)buf, db_dbr_value_size(type), NULL};
    db_lock();
    int status = put_field_span(addr, &src, nelem);
    db_unlock();
    return status;
}

int db_put_text(const db_addr *addr, const char *text)
{
    db_span src = {DBF_STRING, (void *)text, strlen(text) + 1, NULL};
    db_lock();
    int status;
    if ((addr->field->flags & DBFLD_ARRAY) && addr->field->type != DBF_STRING && !addr->long_string) {
        status = db_client_put_check(addr);
        if (status == DB_OK) status = db_put_text_locked(addr, text, NULL, 0);
        if (status == DB_OK) db_post_events(addr->rec, db_field_ptr(addr->rec, addr->field), DBE_VALUE | DBE_LOG);
        if (status == DB_OK && db_client_put_processes(addr)) db_process_for(addr->rec, PROCESS_PUT);
    } else {
        status = put_field_span(addr, &src, 1);
    }
    db_unlock();
    return status;
}

static void format_time(const struct timespec *t, char *buf, size_t buflen)
{
    struct tm tm;
    time_t secs = t->tv_sec;
    gmtime_r(&secs, &tm);
    size_t n = strftime(buf, buflen, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(buf + n, buflen - n, ".%09ldZ", t->tv_nsec);
}

int db_get_text(const db_addr *addr, char *buf, size_t buflen)
{
    if (!buflen) return DB_ERR_BAD_TYPE;
    buf[0] = 0;
    db_lock();
    int status = DB_OK;
    db_storage st;
    if (addr->field->offset == offsetof(db_common, time) && addr->field->type == DBF_NOACCESS) {
        format_time(&addr->rec->time, buf, buflen);
    } else if ((status = db_addr_storage(addr, &st)) == DB_OK && st.data) {
        /* Full precision, not PREC: autosave and dbgf must read back exactly what is stored. */
        int exact = st.type == DBF_FLOAT || st.type == DBF_DOUBLE;
        db_span src = {st.type, st.data, st.elem_size, exact ? NULL : addr};
        if (addr->long_string || st.type == DBF_STRING) {
            size_t len = addr->long_string ? (size_t)st.nelem : strnlen(st.data, st.elem_size);
            str_copy(buf, st.data, len + 1 < buflen ? len + 1 : buflen);
        } else if (addr->field->flags & DBFLD_ARRAY) {
            size_t used = (size_t)snprintf(buf, buflen, "[");
            for (long i = 0; i < st.nelem && used + 2 < buflen; i++) {
                char one[DB_STRING_SIZE];
                db_span el = {DBF_STRING, one, sizeof one, NULL};
                db_span s1 = src;
                s1.data = (char *)st.data + (size_t)i * st.elem_size;
                if (db_convert(&el, &s1, 1) != DB_OK) break;
                used += (size_t)snprintf(buf + used, buflen - used, "%s%s", i ? ", " : "", one);
            }
            if (used + 1 < buflen) str_copy(buf + used, "]", buflen - used);
        } else {
            db_span dst = {DBF_STRING, buf, buflen, NULL};
            status = db_convert(&dst, &src, 1);
        }
    }
    db_unlock();
    return status;
}

void db_get_meta(const db_addr *addr, db_meta *meta)
{
    db_record *rec = addr->rec;
    memset(meta, 0, sizeof *meta);
    meta->status = rec->stat;
    meta->severity = rec->sevr;
    meta->ackt = rec->ackt;
    meta->acks = rec->acks;
    meta->stamp = rec->time;
    meta->class_name = rec->rtype->name;
    meta->precision = -1;
    const db_field_desc *f = addr->field;
    if (f->type == DBF_MENU && f->menu && !addr->long_string) {
        meta->nstrs = f->menu->nchoices < DB_ENUM_STRS ? f->menu->nchoices : DB_ENUM_STRS;
        for (int i = 0; i < meta->nstrs; i++) str_copy(meta->strs[i], f->menu->choices[i], DB_ENUM_STR_SIZE);
    }
    if (rec->rtype->get_meta) rec->rtype->get_meta(addr, meta);
    if (meta->precision < 0) meta->precision = 0;
}
