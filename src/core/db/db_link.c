/* db_link.c -- links between records: parsing link text ("REC.FIELD PP MS", "1.5", "@driver args"),
 * resolving database links at iocInit (to this IOC's records, or through db_ca.c to other IOCs), reading input
 * links and writing output links with PP/MS semantics, and CP/CPP monitored inputs that process their record
 * when the target changes.
 */
#include "core/db/db_internal.h"
#include "core/base/base.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct db_cp_link {
    db_record *rec;
    db_link *link;
    db_subscription *sub;
    struct db_cp_link *next;
};

static const struct { const char *word; unsigned set, clear; } modifiers[] = {
    {"PP", DBLINK_PP, 0}, {"NPP", 0, DBLINK_PP}, {"CA", DBLINK_CA, 0}, {"CP", DBLINK_CP, 0},
    {"CPP", DBLINK_CPP, 0}, {"MS", DBLINK_MS, 0}, {"NMS", 0, DBLINK_MS | DBLINK_MSS | DBLINK_MSI},
    {"MSS", DBLINK_MSS, 0}, {"MSI", DBLINK_MSI, 0},
};

int db_link_parse(db_link *link, const char *text, char *err, size_t errlen)
{
    memset(link, 0, sizeof *link);
    while (isspace((unsigned char)*text)) text++;
    size_t len = strlen(text);
    while (len && isspace((unsigned char)text[len - 1])) len--;
    if (len >= sizeof link->text) {
        snprintf(err, errlen, "link text '%.40s...' is longer than %d characters", text, DB_LINK_SIZE - 1);
        return DB_ERR_SYNTAX;
    }
    memcpy(link->text, text, len);
    link->text[len] = 0;
    if (len == 0) {
        link->kind = LINK_NONE;
        return DB_OK;
    }
    if (text[0] == '@' || text[0] == '#') {
        link->kind = LINK_HW;
        return DB_OK;
    }
    if (db_parse_double(link->text, &link->constant) == 0) {
        link->kind = LINK_CONSTANT;
        return DB_OK;
    }
    char words[DB_LINK_SIZE];
    str_copy(words, link->text, sizeof words);
    char *save;
    strtok_r(words, " \t", &save);          /* the target's name */
    for (char *w = strtok_r(NULL, " \t", &save); w; w = strtok_r(NULL, " \t", &save)) {
        size_t i;
        for (i = 0; i < sizeof modifiers / sizeof modifiers[0]; i++) {
            if (strcmp(w, modifiers[i].word) == 0) {
                link->flags = (link->flags & ~modifiers[i].clear) | modifiers[i].set;
                break;
            }
        }
        if (i == sizeof modifiers / sizeof modifiers[0]) {
            snprintf(err, errlen, "link '%s': unknown modifier '%s' (expected PP NPP CA CP CPP MS NMS MSS MSI)",
                     link->text, w);
            return DB_ERR_SYNTAX;
        }
    }
    link->kind = LINK_DB;
    return DB_OK;
}

int db_link_resolve(db_record *rec, const db_field_desc *field, db_link *link, char *err, size_t errlen)
{
    if (link->kind != LINK_DB || link->target || link->ca) return DB_OK;
    char name[DB_LINK_SIZE];
    str_copy(name, link->text, sizeof name);
    name[strcspn(name, " \t")] = 0;
    db_addr addr;
    int local = db_name_to_addr(name, &addr) == DB_OK;
    if (field->type == DBF_FWDLINK && !local) {
        snprintf(err, errlen, "record '%s': forward link '%s' names no record of this IOC", rec->name, link->text);
        return DB_ERR_NOT_FOUND;
    }
    if (!local || (link->flags & DBLINK_CA)) {
        link->ca = db_ca_link_open(rec, link, field->name, field->type == DBF_INLINK, name);
        if (!link->ca) {
            snprintf(err, errlen, "record '%s': link '%s': no Channel Access client", rec->name, link->text);
            return DB_ERR_FAILED;
        }
        return DB_OK;
    }
    link->target = xmalloc(sizeof *link->target);
    *link->target = addr;
    return DB_OK;
}

void db_link_release(db_link *link)
{
    free(link->target);
    link->target = NULL;
    if (link->ca) db_ca_link_close(link->ca);
    link->ca = NULL;
}

int db_link_load_constant(const db_link *link, const db_span *dst)
{
    if (link->kind != LINK_CONSTANT) return 1;
    db_span src = {DBF_DOUBLE, (void *)&link->constant, sizeof link->constant, NULL};
    return db_convert(dst, &src, 1) == DB_OK ? 0 : DB_ERR_CONVERT;
}

static void propagate_severity(db_record *to, const db_link *link, uint16_t stat, uint16_t sevr)
{
    if (link->flags & DBLINK_MSS) db_alarm_raise(to, stat, sevr);
    else if (link->flags & DBLINK_MS) db_alarm_raise(to, STAT_LINK, sevr);
    else if ((link->flags & DBLINK_MSI) && sevr == INVALID_ALARM) db_alarm_raise(to, STAT_LINK, sevr);
}

int db_link_read(db_record *rec, db_link *link, const db_span *dst, long *nelem)
{
    if (link->ca) {
        uint16_t stat, sevr;
        if (db_ca_link_read(link->ca, dst, nelem, &stat, &sevr) != DB_OK) {
            *nelem = 0;
            return DB_ERR_FAILED;       /* the caller raises LINK/INVALID */
        }
        propagate_severity(rec, link, stat, sevr);
        return 0;
    }
    if (link->kind != LINK_DB || !link->target) return 1;
    db_record *target = link->target->rec;
    if ((link->flags & DBLINK_PP) && target->scan == DB_SCAN_PASSIVE && target != rec) db_process(target);
    db_storage st;
    int status = db_addr_storage(link->target, &st);
    if (status != DB_OK || !st.data) return DB_ERR_BAD_TYPE;
    long n = st.nelem < *nelem ? st.nelem : *nelem;
    db_span src = {st.type, st.data, st.elem_size, link->target};
    status = db_convert(dst, &src, n);
    *nelem = status == DB_OK ? n : 0;
    propagate_severity(rec, link, target->stat, target->sevr);
    return status;
}

int db_link_write(db_record *rec, db_link *link, const db_span *src, long nelem)
{
    if (link->ca) {
        if (db_ca_link_write(link->ca, src, nelem) == 0) return DB_OK;
        db_alarm_raise(rec, STAT_LINK, INVALID_ALARM);
        return DB_ERR_FAILED;
    }
    if (link->kind != LINK_DB || !link->target) return 1;
    db_record *target = link->target->rec;
    int status = db_put_span(link->target, src, nelem);
    if (status != DB_OK) return status;
    propagate_severity(target, link, rec->nsta, rec->nsev);
    int proc_field = strcmp(link->target->field->name, "PROC") == 0;
    if (((link->flags & DBLINK_PP) && target->scan == DB_SCAN_PASSIVE) || proc_field) {
        if (target->pact) target->rpro = 1;
        else db_process(target);
    }
    return DB_OK;
}

int db_link_write_start(db_record *rec, db_link *link, const db_span *src, long nelem)
{
    if (!link->ca) return db_link_write(rec, link, src, nelem);
    if (db_ca_link_write_start(link->ca, src, nelem) == 0) return 1;
    db_alarm_raise(rec, STAT_LINK, INVALID_ALARM);
    return DB_ERR_FAILED;
}

int db_link_write_finish(db_record *rec, db_link *link)
{
    if (!link->ca || db_ca_link_write_outcome(link->ca) == 0) return DB_OK;
    db_alarm_raise(rec, STAT_LINK, INVALID_ALARM);
    return DB_ERR_FAILED;
}

int db_link_get(db_record *rec, db_link *link, dbr_value_type type, void *buf, long *nelem)
{
    db_span dst = {dbr_storage_type(type), buf, db_dbr_value_size(type), NULL};
    long n = *nelem > 0 ? *nelem : 1;
    if (link->kind == LINK_CONSTANT) {
        *nelem = 1;
        return db_link_load_constant(link, &dst);
    }
    int status = db_link_read(rec, link, &dst, &n);
    *nelem = status == 0 ? n : 0;
    return status;
}

int db_link_put(db_record *rec, db_link *link, dbr_value_type type, const void *buf, long nelem)
{
    db_span src = {dbr_storage_type(type), (void *)buf, db_dbr_value_size(type), NULL};
    return db_link_write(rec, link, &src, nelem);
}

static void cp_event(void *user, const db_addr *addr, unsigned mask)
{
    struct db_cp_link *cp = user;
    if ((cp->link->flags & DBLINK_CPP) && cp->rec->scan != DB_SCAN_PASSIVE) return;
    db_request_process(cp->rec);
}

int db_cp_links_start(db_record *rec)
{
    size_t n = db_field_count(rec->rtype);
    for (size_t i = 0; i < n; i++) {
        const db_field_desc *f = db_field_at(rec->rtype, i);
        if (f->type != DBF_INLINK) continue;
        db_link *link = db_field_ptr(rec, f);
        if (link->kind != LINK_DB || !link->target || !(link->flags & (DBLINK_CP | DBLINK_CPP))) continue;
        struct db_cp_link *cp = xmalloc(sizeof *cp);
        cp->rec = rec;
        cp->link = link;
        cp->sub = db_subscribe_locked(link->target, DBE_VALUE | DBE_ALARM, cp_event, cp);
        cp->next = rec->cp_links;
        rec->cp_links = cp;
    }
    return DB_OK;
}

void db_cp_links_free(db_record *rec)
{
    struct db_cp_link *cp = rec->cp_links;
    while (cp) {
        struct db_cp_link *next = cp->next;
        db_unsubscribe_locked(cp->sub);
        free(cp);
        cp = next;
    }
    rec->cp_links = NULL;
}
