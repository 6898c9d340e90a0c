#!../../bin/relocioc
# st.cmd -- the default reloc IOC. Run from this directory: ../../bin/relocioc st.cmd (or 'make run').

# Channel Access stays on the loopback interface unless the environment says otherwise (DEVELOPERS.md).
epicsEnvSet EPICS_CAS_INTF_ADDR_LIST "$(EPICS_CAS_INTF_ADDR_LIST=127.0.0.1)"
epicsEnvSet EPICS_CAS_BEACON_ADDR_LIST "$(EPICS_CAS_BEACON_ADDR_LIST=127.0.0.1)"
epicsEnvSet EPICS_CAS_AUTO_BEACON_ADDR_LIST "$(EPICS_CAS_AUTO_BEACON_ADDR_LIST=NO)"
# pvAccess (the same records over PVA) follows the same rules: loopback, beacons only to the listed address.
epicsEnvSet EPICS_PVAS_INTF_ADDR_LIST "$(EPICS_PVAS_INTF_ADDR_LIST=127.0.0.1)"
epicsEnvSet EPICS_PVAS_BEACON_ADDR_LIST "$(EPICS_PVAS_BEACON_ADDR_LIST=127.0.0.1)"
epicsEnvSet EPICS_PVAS_AUTO_BEACON_ADDR_LIST "$(EPICS_PVAS_AUTO_BEACON_ADDR_LIST=NO)"
# Links to other IOCs (libca) search only these addresses ("host:port" each) unless the environment says otherwise.
epicsEnvSet EPICS_CA_ADDR_LIST "$(EPICS_CA_ADDR_LIST=127.0.0.1)"
epicsEnvSet EPICS_CA_AUTO_ADDR_LIST "$(EPICS_CA_AUTO_ADDR_LIST=NO)"

# PV prefix of this IOC and where record templates live.
epicsEnvSet P "$(RELOC_PREFIX=RELOC:)"
epicsEnvSet TOP "$(RELOC_TOP=../..)"
epicsEnvSet EPICS_DB_INCLUDE_PATH "$(TOP)/db:$(EPICS_DB_INCLUDE_PATH=)"

# Operator settings survive restarts: fields listed in info(autosaveFields, ...) are saved here.
autosaveSetFile "$(RELOC_AUTOSAVE_FILE=reloc.sav)"
autosaveSetPeriod 1.0

dbLoadRecords "reloc_ioc.db" "P=$(P)"

# Motor stages. simMotorStart runs bin/reloc-sim-motor on a free loopback port (6 axes; stopped with the IOC)
# and sets MOTOR_SIM_PORT; with real hardware, drop it and point motorControllerCreate at the controller.
epicsEnvSet STREAM_PROTOCOL_PATH "$(STREAM_PROTOCOL_PATH=$(TOP)/protocols)"
simMotorStart 0 6
motorControllerCreate "MC1" "127.0.0.1:$(MOTOR_SIM_PORT)" "simmotor.proto" 6
dbLoadTemplate "sample_stage.substitutions" "P=$(P),PORT=MC1"
dbLoadRecords "motor.db" "P=$(P),M=zoom,PORT=MC1,ADDR=6,DESC=Camera zoom,EGU=mm,MRES=0.001,VELO=10,HVEL=5,DHLM=60,DLLM=-1,RDBD=0.003"
dbLoadRecords "camera_stage.db" "P=$(P),ZOOM=zoom"
dbLoadRecords "motor_util.db" "P=$(P)"

# Sample camera: the simulated inline microscope renders sim/sample_default.json where the sample stage
# (coarse + piezo) puts it, at the pixel size the zoom gives. With a real camera publishing frames over
# ZeroMQ use: cameraConfigure("CAM1", "zmq", "tcp://host:port", MAX_WIDTH, MAX_HEIGHT).
epicsEnvSet CAM_W "$(RELOC_CAMERA_WIDTH=640)"
epicsEnvSet CAM_H "$(RELOC_CAMERA_HEIGHT=512)"
cameraConfigure("CAM1", "sim", "$(TOP)/sim/sample_default.json", $(CAM_W), $(CAM_H))
cameraStage("CAM1", "$(P)samx.RBV+$(P)pssx.RBV", "$(P)samy.RBV+$(P)pssy.RBV", "$(P)samz.RBV", "$(P)cam_pixel_size")
cameraPreview("CAM1", "$(RELOC_PREVIEW_ENDPOINT=tcp://127.0.0.1:5570)", 85, 1024, 10)
# The same frames over pvAccess as NTNDArray (areaDetector NDPluginPva's name): pva://$(P)Pva1:Image in Phoebus.
pvaImageConfigure("CAM1", "$(P)Pva1:Image")
dbLoadRecords "camera.db" "P=$(P),PORT=CAM1,NELM=$(RELOC_CAMERA_PIXELS=327680),XSIZE=$(CAM_W),YSIZE=$(CAM_H)"

# Live analysis of every camera frame: particle detection and tracking ($(P)det1:), registration against a
# reference image ($(P)reg1:).
detectionConfigure("DET1", "CAM1", 4096)
detectionPvaTable("DET1", "$(P)det1:Table")
registrationConfigure("REG1", "CAM1")
registrationPvaResult("REG1", "$(P)reg1:Result")
dbLoadRecords "detection.db" "P=$(P),R=det1:,PORT=DET1,NMAX=4096"
dbLoadRecords "registration.db" "P=$(P),R=reg1:,PORT=REG1"

# XANES white-line analysis of the camera frames during an energy scan; a scan script writes the beam
# energy to $(P)mono:Energy (or point ENERGY_CHANNEL at the monochromator's record).
dbLoadRecords "mono.db" "P=$(P)"
xanesLiveConfigure("XANES", "CAM1", "$(P)mono:Energy", $(RELOC_CAMERA_PIXELS=327680))
dbLoadRecords "xanes.db" "P=$(P),R=xanes:,PORT=XANES,NELM=$(RELOC_CAMERA_PIXELS=327680)"

# On-the-fly XRF self-absorption correction of fly-scan chunks (ZeroMQ PULL in, PUB out, HDF5 per scan:
# xrf_scan_N.h5 in RELOC_XRF_OUT_DIR, created when missing; point it at the beamline's data folder).
xrfCorrectionConfigure("XRF", "$(TOP)/iocBoot/iocreloc/xrf_correction.json", "$(RELOC_XRF_PULL=tcp://127.0.0.1:5580)", "$(RELOC_XRF_PUB=tcp://127.0.0.1:5581)", "$(RELOC_XRF_OUT_DIR=/tmp/reloc-xrf)", 262144)
dbLoadRecords "xrf.db" "P=$(P),R=xrf:,PORT=XRF,CHUNK_NELM=65536"
dbLoadRecords "xrf_element.db" "P=$(P),R=xrf:,PORT=XRF,N=0,NELM=262144"
dbLoadRecords "xrf_element.db" "P=$(P),R=xrf:,PORT=XRF,N=1,NELM=262144"

# Stage map: image layers, pixel <-> stage, moves to pixels, relocalization, scan macros (templates per engine).
stagemapConfigure "MAP" "$(P)samx" "$(P)samy" "$(TOP)/protocols/scan_engines.json"
stagemapPiezo "MAP" "$(P)pssx" "$(P)pssy"
stagemapCamera "MAP" "CAM1"
dbLoadRecords "stagemap.db" "P=$(P),PORT=MAP,BEAM_X=$(RELOC_BEAM_X=319.5),BEAM_Y=$(RELOC_BEAM_Y=255.5)"
dbLoadRecords "stagemap_zoom.db" "P=$(P),PORT=MAP,PIXEL_SIZE=$(P)cam_pixel_size"

# Web live view (loopback; RELOC_WEB_ADDRESS=127.0.0.1:0 picks a free port, published in $(P)web:Port):
# camera, detected particles with "go to", registration, relocalization and the macro queue. Moves (click,
# "go to") go to the motor records and only while the stage map's $(P)Move:Enable is Enabled.
webServerConfigure("$(RELOC_WEB_ADDRESS=127.0.0.1:8080)", "CAM1", "$(TOP)/web", "$(P)web:")
webServerStage("$(P)samx", "$(P)samy", "$(P)pssx", "$(P)pssy")
webServerBeam("$(P)Live:BeamX_RBV", "$(P)Live:BeamY_RBV")
webServerStopAll("$(P)allstop")
webServerMoveEnable("$(P)Move:Enable")
webServerParticles("$(P)det1:X_RBV", "$(P)det1:Y_RBV")
webServerShow("Registration", "$(P)reg1:Message")
webServerShow("Match confidence", "$(P)reg1:Confidence_RBV")
webServerShow("Relocalization", "$(P)Reloc:State_RBV")
webServerShow("Macro queue", "$(P)Macro:Current_RBV")
dbLoadRecords "web.db" "P=$(P)"

iocInit
