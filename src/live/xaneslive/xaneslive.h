/* xaneslive.h -- XANES white-line analysis live in the IOC: while an energy scan runs, every camera frame
 * read out at a new energy joins the stack, and the white-line energy map, fit quality, histogram,
 * centroid and spread, and the summed spectrum's peak are recomputed (src/kernels/xanes) and published as PVs
 * (db/xanes.db).
 *
 * st.cmd:  xanesLiveConfigure(PORT, CAMERA_PORT, ENERGY_CHANNEL, MAX_PIXELS)
 *          ENERGY_CHANNEL is the record giving the beam energy in eV (e.g. the monochromator's readback).
 * Use: set the fit parameters, write 1 to $(P)Collect (clears the stack), scan the energy; each time the
 * energy channel shows a new value, the next frame read out is added (value = pixel * Scale). Collect = 0
 * stops adding; the last results stay.
 *
 * Thread model: one thread consumes the camera's newest frames, owns the stack and runs the analysis;
 * record writes only change settings under the driver's lock.
 */
#ifndef RELOC_XANESIOC_H
#define RELOC_XANESIOC_H

void xanesioc_register(void);

#endif
