/* stages.h -- live analysis stages on a camera's frames: particle detection and tracking (src/kernels/detection),
 * DFT registration against a reference image (src/kernels/registration), each on the newest frame, and XANES
 * white-line analysis during an energy scan (src/kernels/xanes); results as PVs.
 *
 * st.cmd commands (registered by analysis_register), after cameraConfigure and before iocInit:
 *   detectionConfigure(PORT, CAMERA_PORT [, MAX_FEATURES])     records: db/detection.db
 *   registrationConfigure(PORT, CAMERA_PORT)                    records: db/registration.db
 *   featuresConfigure(PORT, CAMERA_PORT [, MAX_FEATURES])       records: db/features.db -- relocalization's
 *       view of every frame (features of both contrasts, sharpness) as one array tagged with the frame's
 *       uniqueId, time stamp and stage position, for a camera IOC's stagemapWorker (stagemap.h)
 *   xanesLiveConfigure(PORT, CAMERA_PORT, ENERGY_CHANNEL, MAX_PIXELS)   records: db/xanes.db
 *       ENERGY_CHANNEL is the record giving the beam energy in eV (e.g. the monochromator's readback). Set the
 *       fit parameters, write 1 to $(P)$(R)Collect (clears the stack) and scan the energy: each time the energy
 *       channel shows a new value, the next frame read out is added (value = pixel * Scale) and the stack is
 *       analysed again. Collect = 0 stops adding; the last results stay.
 * Every stage has the common records of db/stage.db: Enable, Message, Status, FrameId, Processed, Dropped, Rate,
 * Latency, ComputeTime.
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
