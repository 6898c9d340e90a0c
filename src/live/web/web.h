/* web.h -- the IOC's own web live view: an HTTP server (one thread, poll() loop, loopback by default) that
 * serves one page (web/index.html), the newest camera frame as JPEG (/frame.jpg), a server-sent event stream
 * per browser (/events: "frame" when a new JPEG is ready, "state" when a watched PV changed), moves of the
 * sample stage (POST /move) through the one move path (drivers/motion), guarded by an enable PV and answered with
 * the motors' verdict, and STOP (POST /stop, no enable needed). POSTs must come from the page's own origin.
 *
 * st.cmd commands (registered by web_register):
 *   webServerConfigure(ADDRESS, CAMERA_PORT, PAGE_DIR, PV_PREFIX)
 *       ADDRESS "host:port" to listen on (port 0: any free port); CAMERA_PORT of cameraConfigure; PAGE_DIR
 *       holds index.html; PV_PREFIX of the records of db/web.db (e.g. "$(P)web:"): Port, URL and Clients
 *       are published there.
 *   webServerStage(X_MOTOR, Y_MOTOR [, X_PIEZO, Y_PIEZO])
 *                                          motor records moved by "go to" and click-to-move (stage um = coarse +
 *                                          piezo; converted to each motor's EGU)
 *   webServerBeam(X_CHANNEL, Y_CHANNEL)    the calibrated beam pixel (frame pixels, e.g. "$(P)Live:BeamX_RBV"):
 *                                          the crosshair, and where clicks bring the clicked point
 *   webServerStopAll(CHANNEL)              written 1 by STOP (e.g. "$(P)allstop": every motor)
 *   webServerMoveEnable(CHANNEL)           moves happen only while this is non-zero (e.g. "$(P)Move:Enable",
 *                                          the stage map's enable, the same the screens use); none: no moves
 *   webServerParticles(X_ARRAY, Y_ARRAY)   waveforms of particle positions listed with "go to": stage um, or
 *                                          frame pixels when their EGU is "px" (live detection, det1:X_RBV)
 *   webServerShow(LABEL, CHANNEL)          any channel shown as a labelled value (registration status,
 *                                          macro queue, ...); the page updates it when it changes
 *
 * Threads: the server thread (sockets, HTTP, event streams, db reads and puts) and the JPEG thread (newest
 * frame -> JPEG, only while a browser watches). Both are started at iocInit and stopped at db_shutdown.
 */
#ifndef RELOC_WEB_H
#define RELOC_WEB_H

void web_register(void);

#endif
