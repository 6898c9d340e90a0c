/* stages.h -- live analysis stages on a camera's frames: particle detection and tracking (src/kernels/detection) and
 * DFT registration against a reference image (src/kernels/registration), each on the newest frame, results as PVs.
 *
 * st.cmd commands (registered by analysis_register), after cameraConfigure and before iocInit:
 *   detectionConfigure(PORT, CAMERA_PORT [, MAX_FEATURES])     records: db/detection.db
 *   registrationConfigure(PORT, CAMERA_PORT)                    records: db/registration.db
 *
 * Every stage owns one thread that takes the camera's newest frame (frames it was too slow for are counted
 * as dropped), analyses it and publishes the results through its parameter port (param.h). Parameters are
 * validated when a record writes them: a bad value is refused (the record goes to WRITE alarm) and the
 * stage's Message parameter says why. Threads start at iocInit and stop at db_shutdown.
 */
#ifndef RELOC_ANALYSIS_H
#define RELOC_ANALYSIS_H

void analysis_register(void);

#endif
