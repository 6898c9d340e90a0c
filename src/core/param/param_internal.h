/* param_internal.h -- shared by the files of src/core/param (the port table and the device support). */
#ifndef RELOC_PARAM_INTERNAL_H
#define RELOC_PARAM_INTERNAL_H

#include "core/param/param.h"

#include <pthread.h>

#define PARAM_NAME_SIZE 40
#define PARAM_MAX_PENDING 8     /* output records waiting on one asynchronous parameter */

typedef struct param {
    char name[PARAM_NAME_SIZE];
    param_type type;
    long ival;
    double dval;
    char *sval;
    dbr_value_type array_type;
    void *array;
    long nelem, max_elements;
    uint16_t alarm_status, alarm_severity;
    int defined;                 /* the driver set a value */
    int refused;                 /* the last write from a record was refused (by the driver, or not finite) */
    int changed;                 /* since the last param_post */
    db_ioscan *ioscan;           /* created when the first I/O Intr record joins */
    db_record *pending[PARAM_MAX_PENDING];   /* PARAM_ASYNC writes awaiting param_write_done */
    int npending;
    int async_status;
} param;

struct param_port {
    char name[PARAM_NAME_SIZE];
    pthread_mutex_t lock;        /* guards params[*] values (not the table shape, fixed before iocInit) */
    param *params;
    int nparams;
    param_write_fn write;
    void *driver;
    void **record_state;         /* device support state of the records attached (freed with the port) */
    int nrecords;
};

size_t param_element_size(dbr_value_type type);
int param_port_count(void);
param_port *param_port_at(int index);

#endif
