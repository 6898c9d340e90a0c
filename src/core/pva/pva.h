/* pva.h -- the pvAccess server of reloc (public interface).
 *
 * pva_register() registers the shell commands (pvasr, pvasSetLimits) and the db hooks that start the server
 * at the end of iocInit (beside the CA server, on the same records and access security) and stop it at
 * db_shutdown. Environment: EPICS_PVAS_INTF_ADDR_LIST, EPICS_PVAS_SERVER_PORT (5075), EPICS_PVAS_BROADCAST_PORT
 * (5076), EPICS_PVAS_BEACON_ADDR_LIST, RELOC_PVAS_MAX_CLIENTS / _MAX_CHANNELS / _MAX_QUEUE_BYTES /
 * _MAX_MESSAGE_BYTES. Everything else is internal to src/core/pva (see pva_internal.h).
 */
#ifndef RELOC_PVA_H
#define RELOC_PVA_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

void pva_register(void);

/* ---------------------------------------------------------------------------------------------------
 * Structured PVs served beside the records: a source is added by name before iocInit (st.cmd time) and gets
 * complete values posted from any thread. Each value is encoded once and shared by every client that reads
 * or monitors it; a monitor that cannot keep up gets the newest value, never a queue of old ones, and a post
 * never waits for a client.
 */
typedef struct pva_source pva_source;

/* NTNDArray (areaDetector NDPluginPva layout): a 2-D uint16 image with named double attributes. */
typedef struct pva_ndarray {
    int width, height;                  /* pixels, x fastest */
    const uint16_t *data;
    int32_t unique_id;
    struct timespec stamp;              /* POSIX */
    int nattr;
    const char *const *attr_names;      /* nattr names ... */
    const double *attr_values;          /* ... and their values */
} pva_ndarray;
/* NULL (err set) when the name is taken or the server runs already. */
pva_source *pva_ndarray_source_add(const char *name, char *err, size_t errlen);
void pva_ndarray_post(pva_source *s, const pva_ndarray *a);

/* NTTable of double columns (labels fixed at creation). */
pva_source *pva_table_source_add(const char *name, int ncols, const char *const *labels, char *err, size_t errlen);
/* columns[ncols] arrays of nrows doubles each (a NULL column reads NaN), with the time stamp of the data. */
void pva_table_post(pva_source *s, const double *const *columns, long nrows, struct timespec stamp);

/* A structure of named scalars with alarm and timeStamp (e.g. one frame's registration result), so that a client
 * gets every member of one result in one update; CA's separate PVs can tear between results. */
typedef enum { PVA_MEMBER_DOUBLE, PVA_MEMBER_INT, PVA_MEMBER_BOOL } pva_member_kind;
typedef struct pva_member_def {
    const char *name;
    pva_member_kind kind;
} pva_member_def;
/* type_id: the structure's type name (e.g. "reloc:registration:1.0"); at most 50 members. */
pva_source *pva_struct_source_add(const char *name, const char *type_id, int nmembers, const pva_member_def *members,
                                  char *err, size_t errlen);
/* values[nmembers] in the members' order (an int member takes the value rounded, a bool member value != 0); the
 * alarm severity 0-3 (NO_ALARM, MINOR, MAJOR, INVALID) and its message describe the whole result. */
void pva_struct_post(pva_source *s, const double *values, int severity, const char *message, struct timespec stamp);

#endif
