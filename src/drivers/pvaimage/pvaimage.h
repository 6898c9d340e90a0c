/* pvaimage.h -- camera frames over pvAccess as NTNDArray, under the name areaDetector's NDPluginPva uses
 * ($(P)Pva1:Image), for Phoebus image widgets (pva://...), ImageJ viewers and ophyd-async.
 *
 * st.cmd:  pvaImageConfigure(CAMERA_PORT, PV_NAME)     before iocInit
 * A consumer of the camera's frame ring (camera.h) takes the newest frame, encodes it once as NTNDArray
 * (ushortValue, dimension [x, y], uniqueId, dataTimeStamp, attributes stage_x, stage_y, stage_z in um and
 * pixel_size in um/pixel at exposure) and posts it to the PVA server, which shares that encoding between all
 * subscribers; a slow subscriber gets the newest frame, and the camera never waits (core/pva/pva.h).
 *
 * Thread: one per configured PV, started at iocInit and stopped at db_shutdown.
 */
#ifndef RELOC_PVAIMAGE_H
#define RELOC_PVAIMAGE_H

void pvaimage_register(void);

#endif
