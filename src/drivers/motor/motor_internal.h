/* motor_internal.h -- what record.c (the motor record type) and devmotor.c (its device support, the allstop and
 * status records, the st.cmd commands) share: the record's struct and the device-support entry points. Private
 * to src/drivers/motor. Everything here is guarded by the db lock unless marked otherwise. */
#ifndef RELOC_MOTOR_INTERNAL_H
#define RELOC_MOTOR_INTERNAL_H

#include "core/db/db.h"
#include "drivers/motor/motor.h"

#include <stdint.h>

/* Where the record's current motion is. */
enum { PHASE_IDLE, PHASE_MOVE, PHASE_BACKLASH, PHASE_HOME, PHASE_STOP, PHASE_PAUSE, PHASE_LOAD, PHASE_JOG };

typedef struct motor_record {
    db_common common;
    double val, dval;
    int32_t rval;
    double rlv;
    double rbv, drbv;
    int32_t rrbv;
    double diff;
    int32_t rdif;
    int16_t dmov, movn, stop;
    uint16_t spmg;
    double velo, vbas, vmax, accl, bdst, bvel, bacc, hvel;
    double hlm, llm, dhlm, dllm;
    int16_t hls, lls, lvio;
    double twv;
    int16_t twf, twr, homf, homr, jogf, jogr;
    double jvel;
    double off;
    uint16_t dir, foff, set, cnen, ueip, urip;
    char egu[DB_EGU_SIZE];
    int16_t prec;
    double mres, eres, rdbd, dly;
    int16_t rtry, rcnt, miss;
    uint32_t msta;
    uint16_t mip;
    int16_t tdir, athm;
    float vers;
    db_link out;

    /* Not fields: the motion state machine. */
    int phase;                   /* PHASE_* */
    unsigned long first_seq;     /* first driver command of the current motion (failures after it abort it) */
    unsigned long seq;           /* the command whose completion ends the current leg */
    double target_dial;          /* final dial target of the current move */
    double last_val, last_dval;  /* before the current client write (restored on LVIO) */
    int refused;                 /* the controller refused the last motion: alarm until the next one works */
    int synced;                  /* targets were aligned with the first readback */
} motor_record;

/* Device support of the motor record: the write path, as a motor record's dset is in EPICS. Record support
 * plans the motion (soft limits, backlash, retries) in raw units and hands each controller command to device
 * support, which issues it to the axis driver; device support also gives the axis's state back. Every dset
 * registered for record type "motor" is a motor_dset. */
typedef struct motor_dset {
    db_dset common;
    /* Queues one command for the record's axis; returns its sequence number (0: the record has no axis). */
    unsigned long (*issue)(motor_record *m, const motor_command *command);
    /* The axis's latest state; 0, or -1 (out zeroed) when the record has no axis. */
    int (*axis_state)(motor_record *m, motor_axis_snapshot *out);
} motor_dset;

extern const db_record_type motor_record_type;
void motor_record_register(void);
void motor_record_stop(motor_record *m);

/* devmotor.c */
void motor_device_register(void);
void motor_device_free(db_record *rec);
void motor_records_add(motor_record *m);
void motor_records_remove(motor_record *m);
/* A motor's DMOV changed: the alldone/moving records update. */
void motor_status_changed(void);

#endif
