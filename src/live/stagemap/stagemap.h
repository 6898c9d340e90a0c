/* stagemap.h -- the IOC side of mapping: image layers with their geometry, fiducial fits, pixel <-> stage
 * conversions, beam calibration, "move to pixel" / "centre particle N on the beam", and the scan macro queue,
 * all as parameters of one port (records in db/stagemap.db). Orchestration moves the motors through their
 * records (put with completion on VAL), so soft limits and access rules apply as for any client.
 *
 * st.cmd (after stagemap_register()):
 *   stagemapConfigure(PORT, X_MOTOR, Y_MOTOR, ENGINES_FILE)   e.g. "MAP", "$(P)samx", "$(P)samy",
 *                                                             "$(TOP)/protocols/scan_engines.json"
 *   stagemapPiezo(PORT, X_PIEZO, Y_PIEZO)                    optional fine stages on the coarse ones: the stage
 *                                                             position is their sum; moves within the piezo
 *                                                             range move the piezo only
 *   stagemapCamera(PORT, CAMERA_PORT)                         the camera relocalization takes frames from, or
 *   stagemapWorker(PORT, PREFIX)                              a worker IOC's features stage (e.g. "W:feat1:",
 *                                                             featuresConfigure there) whose views it takes over
 *                                                             Channel Access (stagemap_view.c)
 *   mapPixelToStage(PORT, LAYER, U, V)      prints the stage position (um) of a pixel; LAYER ref or live
 *   mapStageToPixel(PORT, LAYER, X, Y)      prints the pixel of a stage position
 * Stage coordinates are micrometres; the motors' positions are converted with their EGU (mm, um, nm).
 */
#ifndef RELOC_STAGEMAP_H
#define RELOC_STAGEMAP_H

void stagemap_register(void);

#endif
