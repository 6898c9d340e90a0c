/* framepub.h -- raw camera frames over ZeroMQ, for analysis on another host (a worker IOC whose camera source is
 * "zmq", or any areaDetector NDPluginZMQ client), in the format PSI's NDPluginZMQ publishes.
 *
 * Each frame is one two-part message, sent only whole: a JSON header, then the pixels (uint16, host byte order,
 * x fastest). Header keys, in this order:
 *   "htype": "array-1.0", "type": "uint16", "shape": [height, width] (slowest axis first), "frame": the frame's
 *   unique id, "timeStamp": POSIX seconds of the exposure, "encoding": "" (raw),
 *   "ndattr": {"stage_x", "stage_y", "stage_z" (um at exposure), "pixel_size" (um per pixel)}.
 * The header starts with '{' and stays well under 1 KiB, as the PSI receiver requires.
 *
 * st.cmd:  framePublishConfigure(PORT, CAMERA_PORT, ENDPOINT, HIGH_WATER_MARK)
 *   ENDPOINT is bound, e.g. "tcp://127.0.0.1:5580" ("tcp://127.0.0.1:*": any free port, see Endpoint_RBV).
 *   HIGH_WATER_MARK: frames queued per subscriber (>= 1). A subscriber that falls behind by more loses the
 *   frames that do not fit (ZeroMQ PUB: the others still get them, the camera never waits); it sees the gap in
 *   "frame" (a reloc camera with the zmq source counts it in cam1:SourceMissed_RBV).
 * Records: db/framepub.db (P, R, PORT): EnableCallbacks, Endpoint_RBV, ArrayCounter_RBV (frames sent),
 *   DroppedArrays_RBV (frames the publisher skipped: newer ones arrived first, or a socket error),
 *   ArrayRate_RBV, Latency_RBV (exposure -> sent, s), Message_RBV.
 *
 * Thread: one per publisher (newest frame -> header -> send, never blocking). Its counters live in the
 * publisher's param port (its own lock).
 */
#ifndef RELOC_FRAMEPUB_H
#define RELOC_FRAMEPUB_H

void framepub_register(void);

#endif
