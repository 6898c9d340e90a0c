/* xrflive.h -- the XRF self-absorption correction as an IOC driver: fly-scan map chunks arrive on a ZeroMQ
 * PULL socket or through PVs, are corrected by src/kernels/xrf's streaming engine, and the corrected and
 * weight-fraction maps, progress, latency and chunk status are published as PVs (db/xrf.db), next to the
 * engine's own ZeroMQ PUB stream and HDF5 file.
 *
 * st.cmd:  xrfCorrectionConfigure(PORT, CONFIG_JSON, PULL_ENDPOINT, PUB_ENDPOINT, OUT_DIR, MAX_PIXELS)
 *          ("" for PUB_ENDPOINT or OUT_DIR: none; endpoints may end in ":*" for any free port, published in
 *          $(P)PullEndpoint_RBV / $(P)PubEndpoint_RBV). MAX_PIXELS bounds the maps published as waveforms.
 * PV chunks: write the JSON header (the ZeroMQ wire format of xrf.h) to $(P)ChunkHeader, the counts of each
 * element then I0 (equal parts, float64) to $(P)ChunkData, then 1 to $(P)ChunkPush.
 *
 * Thread model: one thread owns the ingest (sockets, stream, HDF5 file). Record writes (Abort, ChunkPush)
 * only queue requests under the driver's lock; maps are copied to the parameters at most MapRate times a
 * second and whenever a scan ends.
 */
#ifndef RELOC_XRFIOC_H
#define RELOC_XRFIOC_H

void xrfioc_register(void);

#endif
