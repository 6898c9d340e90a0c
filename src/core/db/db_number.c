/* db_number.c -- a number that st.cmd names by channel ("P:samx.RBV", "BL:mono:Energy"): a field of a record of
 * this IOC, or, when this IOC has no record of that name, a PV of another IOC through a db_ca_channel (with a
 * second channel to that record's EGU for the units). The camera's stage-position inputs (drivers/motion) and
 * the XANES stage's mono energy read theirs through it, so each takes a PV of another IOC the same way.
 *
 * A db_number belongs to its user (no lock of its own): resolved once (iocInit or the user's thread), then read
 * under the db lock. The channels live until db_shutdown (db_ca.c).
 */
#include "core/db/db.h"
#include "core/base/base.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

int db_number_resolve(db_number *n, const char *name, const char *owner, char *err, size_t errlen)
{
    memset(n, 0, sizeof *n);
    if (str_copy(n->name, name, sizeof n->name) >= sizeof n->name)
        return error_set(err, errlen, "channel name \"%s\" is too long", name);
    if (db_name_to_addr(name, &n->addr) == DB_OK) {
        n->local = 1;
        return 0;
    }
    char egu[sizeof n->name + 8];
    size_t record = strcspn(name, ".");
    snprintf(egu, sizeof egu, "%.*s.EGU", (int)record, name);
    n->remote = db_ca_channel_open(name, owner);
    n->remote_egu = n->remote ? db_ca_channel_open(egu, owner) : NULL;
    if (!n->remote_egu) return error_set(err, errlen, "channel %s: no record here, and no Channel Access client", name);
    log_info("db", "%s: %s is no record of this IOC: read through Channel Access", owner, name);
    return 0;
}

int db_number_read(const db_number *n, double *value, char *units, size_t unitslen, char *err, size_t errlen)
{
    if (n->local) {
        long count = 1;
        if (db_get(&n->addr, DBR_DOUBLE, value, &count) != DB_OK || count != 1)
            return error_set(err, errlen, "%s cannot be read", n->name);
        if (units) {
            db_meta meta;
            db_get_meta(&n->addr, &meta);
            str_copy(units, meta.units, unitslen);
        }
        return 0;
    }
    if (!n->remote) return error_set(err, errlen, "%s is not resolved", n->name);
    if (db_ca_channel_get(n->remote, value, NULL, 0, err, errlen)) return -1;
    if (units && db_ca_channel_get(n->remote_egu, NULL, units, unitslen, err, errlen)) return -1;
    return 0;
}
