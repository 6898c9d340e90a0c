/* camera_params.h -- the camera driver's parameters: index, name (as used in db/camera.db), type.
 * Internal to src/drivers/camera. X-macro table so the enum and the name table cannot drift apart. */
#ifndef RELOC_CAMERA_PARAMS_H
#define RELOC_CAMERA_PARAMS_H

#include "core/param/param.h"

#define CAMERA_PARAMS(X) \
    X(P_ACQUIRE, "Acquire", PARAM_INT) \
    X(P_ACQUIRE_BUSY, "AcquireBusy", PARAM_INT) \
    X(P_ACQUIRE_TIME, "AcquireTime", PARAM_DOUBLE) \
    X(P_ACQUIRE_PERIOD, "AcquirePeriod", PARAM_DOUBLE) \
    X(P_IMAGE_MODE, "ImageMode", PARAM_INT) \
    X(P_NUM_IMAGES, "NumImages", PARAM_INT) \
    X(P_NUM_IMAGES_COUNTER, "NumImagesCounter", PARAM_INT) \
    X(P_ARRAY_COUNTER, "ArrayCounter", PARAM_INT) \
    X(P_ARRAY_RATE, "ArrayRate", PARAM_DOUBLE) \
    X(P_DETECTOR_STATE, "DetectorState", PARAM_INT) \
    X(P_STATUS_MESSAGE, "StatusMessage", PARAM_STRING) \
    X(P_MAX_SIZE_X, "MaxSizeX", PARAM_INT) \
    X(P_MAX_SIZE_Y, "MaxSizeY", PARAM_INT) \
    X(P_SIZE_X, "SizeX", PARAM_INT) \
    X(P_SIZE_Y, "SizeY", PARAM_INT) \
    X(P_MIN_X, "MinX", PARAM_INT) \
    X(P_MIN_Y, "MinY", PARAM_INT) \
    X(P_BIN_X, "BinX", PARAM_INT) \
    X(P_BIN_Y, "BinY", PARAM_INT) \
    X(P_GAIN, "Gain", PARAM_DOUBLE) \
    X(P_DATA_TYPE, "DataType", PARAM_INT) \
    X(P_COLOR_MODE, "ColorMode", PARAM_INT) \
    X(P_ARRAY_SIZE_X, "ArraySizeX", PARAM_INT) \
    X(P_ARRAY_SIZE_Y, "ArraySizeY", PARAM_INT) \
    X(P_ARRAY_SIZE, "ArraySize", PARAM_INT) \
    X(P_UNIQUE_ID, "UniqueId", PARAM_INT) \
    X(P_TIME_STAMP, "TimeStamp", PARAM_DOUBLE) \
    X(P_STAGE_X, "StageX", PARAM_DOUBLE) \
    X(P_STAGE_Y, "StageY", PARAM_DOUBLE) \
    X(P_PIXEL_SIZE, "PixelSize", PARAM_DOUBLE) \
    X(P_SOURCE_KIND, "SourceKind", PARAM_STRING) \
    X(P_SOURCE_RECEIVED, "SourceReceived", PARAM_INT) \
    X(P_SOURCE_REJECTED, "SourceRejected", PARAM_INT) \
    X(P_SOURCE_ERROR, "SourceError", PARAM_STRING) \
    X(P_IMAGE_ENABLE, "image:EnableCallbacks", PARAM_INT) \
    X(P_IMAGE_COUNTER, "image:ArrayCounter", PARAM_INT) \
    X(P_IMAGE_UNIQUE_ID, "image:UniqueId", PARAM_INT) \
    X(P_IMAGE_SIZE0, "image:ArraySize0", PARAM_INT) \
    X(P_IMAGE_SIZE1, "image:ArraySize1", PARAM_INT) \
    X(P_IMAGE_RATE, "image:ArrayRate", PARAM_DOUBLE) \
    X(P_IMAGE_DROPPED, "image:DroppedArrays", PARAM_INT) \
    X(P_IMAGE_LATENCY, "image:Latency", PARAM_DOUBLE) \
    X(P_IMAGE_MIN_TIME, "image:MinCallbackTime", PARAM_DOUBLE) \
    X(P_PREVIEW_ENDPOINT, "preview:Endpoint", PARAM_STRING) \
    X(P_PREVIEW_QUALITY, "preview:Quality", PARAM_INT) \
    X(P_PREVIEW_SENT, "preview:Sent", PARAM_INT) \
    X(P_PREVIEW_BYTES, "preview:Bytes", PARAM_INT) \
    X(P_PREVIEW_RATE, "preview:Rate", PARAM_DOUBLE) \
    X(P_PREVIEW_DROPPED, "preview:Dropped", PARAM_INT) \
    X(P_PREVIEW_LATENCY, "preview:Latency", PARAM_DOUBLE) \
    X(P_FILE_PATH, "hdf:FilePath", PARAM_STRING) \
    X(P_FILE_NAME, "hdf:FileName", PARAM_STRING) \
    X(P_FILE_NUMBER, "hdf:FileNumber", PARAM_INT) \
    X(P_FULL_FILE_NAME, "hdf:FullFileName", PARAM_STRING) \
    X(P_CAPTURE, "hdf:Capture", PARAM_INT) \
    X(P_CAPTURE_BUSY, "hdf:CaptureBusy", PARAM_INT) \
    X(P_NUM_CAPTURE, "hdf:NumCapture", PARAM_INT) \
    X(P_NUM_CAPTURED, "hdf:NumCaptured", PARAM_INT) \
    X(P_WRITE_STATUS, "hdf:WriteStatus", PARAM_INT) \
    X(P_WRITE_MESSAGE, "hdf:WriteMessage", PARAM_STRING) \
    X(P_CAPTURE_DROPPED, "hdf:DroppedArrays", PARAM_INT)

enum { CAMERA_PARAMS(PARAM_ENUM) P_IMAGE_DATA, CAMERA_NPARAMS };

/* areaDetector DetectorState values */
enum { DETECTOR_IDLE = 0, DETECTOR_ACQUIRE = 1, DETECTOR_ERROR = 6 };
/* ImageMode */
enum { IMAGE_SINGLE = 0, IMAGE_MULTIPLE = 1, IMAGE_CONTINUOUS = 2 };

#endif
