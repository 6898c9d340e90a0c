"""The stage map as operators and scripts use it over Channel Access, with the simulated motor controller: the
scan macro queue (soft limits read from the motor records), fiducial fits published as PVs (checked against
scikit-image), pixel <-> stage conversions of the reference and the live camera layer, beam calibration, geometry
loaded from files, and "move to pixel" / "centre particle N" guarded by the enable PV and the soft limits."""

import epics
import h5py
import numpy as np
import pytest
import tifffile
from skimage.transform import estimate_transform

import ioc as ioc_module
from ioc import wait_for
from reloc_scene import map_sync, stage_st_cmd

TOP = ioc_module.TOP
P = "SM:"
ENGINES = TOP / "protocols" / "scan_engines.json"
# The simulated encoders jitter by a step or two (0.1 um) between readings of an idle motor: conversions of the
# live layer, which follows the readback, are compared to an earlier reading within that.
RBV_JITTER = 0.25


@pytest.fixture(scope="module")
def ioc(tmp_path_factory):
    env = ioc_module.session_env()
    st = stage_st_cmd(P, f"""dbLoadRecords "motor.db" "P={P},M=zoom,PORT=MC1,ADDR=6,EGU=mm,MRES=0.001,VELO=20,HVEL=5,DHLM=60,DLLM=-1,RDBD=0.003"
dbLoadRecords "camera_stage.db" "P={P},ZOOM=zoom"
stagemapConfigure "MAP" "{P}samx" "{P}samy" "{ENGINES}"
dbLoadRecords "stagemap.db" "P={P},PORT=MAP"
dbLoadRecords "stagemap_zoom.db" "P={P},PORT=MAP,PIXEL_SIZE={P}cam_pixel_size\"""") + """mapPixelToStage "MAP" "ref" 10 20
mapStageToPixel "MAP" "ref" -3.5 7
"""
    with ioc_module.Ioc(st, tmp_path_factory.mktemp("stagemap"), env=env) as running:
        assert epics.caget(P + "samx.HLM", timeout=5) == 9.5
        yield running


def test_shell_conversions(ioc):
    """Before any geometry is set the reference layer is the identity (1 um pixels at stage 0, 0)."""
    log = ioc.wait_for_log(r"pixel -3.5000 7.0000")
    assert "stage 10.0000 20.0000 um" in log


def put(name, value):
    assert epics.caput(P + name, value, wait=True, timeout=30) == 1, name
    map_sync(P)


def get(name, **kw):
    value = epics.caget(P + name, timeout=5, **kw)
    assert value is not None, name
    return value


def text(name):
    return get(name, as_string=True)


def put_fails(name, value):
    """A put the IOC refuses: the record keeps an alarm and the message PV says why."""
    epics.caput(P + name, value, wait=True, timeout=30)
    map_sync(P)


def append_rect(name, x0, y0, x1, y1, step=1.0):
    for k, v in dict(X0=x0, Y0=y0, X1=x1, Y1=y1, StepX=step, StepY=step, Dwell=0.5).items():
        put("Macro:" + k, v)
    put("Macro:Shape", 0)
    put("Macro:Name", name)
    put("Macro:Append", 1)


def test_macro_queue_append_reorder_remove_export(ioc, tmp_path):
    put("Macro:Clear", 1)
    put("Macro:Engine", "sardana")
    append_rect("a", 100, -50, 110, -40)
    append_rect("b", 0, 0, 2, 2)
    put("Macro:Engine", "spec")
    append_rect("c", -20, 30, -10, 40, step=2)
    assert get("Macro:Count_RBV") == 3 and get("Macro:Selected_RBV") == 2
    a = "mesh samx 0.1000 0.1100 10 samy -0.0500 -0.0400 10 0.5\n"
    b = "mesh samx 0.0000 0.0020 2 samy 0.0000 0.0020 2 0.5\n"
    c = "mesh samx -0.0200 -0.0100 5 samy 0.0300 0.0400 5 0.5\n"
    assert text("Macro:Current_RBV") == c.strip()
    put("Macro:MoveUp", 1)          # c moves above b
    assert get("Macro:Selected_RBV") == 1 and text("Macro:Current_RBV") == c.strip()
    put("Macro:Selected", 0)
    put("Macro:MoveDown", 1)        # a moves below c: c, a, b
    out = tmp_path / "queue.txt"
    put("Macro:ExportPath", str(out))
    put("Macro:Export", 1)
    assert out.read_text() == c + a + b
    put("Macro:Selected", 2)
    put("Macro:Remove", 1)
    put("Macro:Export", 1)
    assert out.read_text() == c + a and get("Macro:Count_RBV") == 2
    put("Macro:Clear", 1)
    assert get("Macro:Count_RBV") == 0


def test_polygon_and_particle_rois_from_pvs(ioc, tmp_path):
    put("Macro:Clear", 1)
    put("Macro:Engine", "spec")
    put("Macro:Polygon", [0, 0, 10, 0, 0, 10])
    for k, v in dict(Shape=1, StepX=5, StepY=5, Dwell=1, Relative=0, Name="tri").items():
        put("Macro:" + k, v)
    put("Macro:Append", 1)
    put("Macro:Engine", "sardana")
    for k, v in dict(Shape=2, X0=1250, Y0=-730, ParticleSize=3, Margin=1, StepX=0.5, StepY=0.5, Dwell=0.1,
                     Relative=1, Name="p7").items():
        put("Macro:" + k, v)
    put("Macro:Append", 1)
    out = tmp_path / "q.txt"
    put("Macro:ExportPath", str(out))
    put("Macro:Export", 1)
    assert out.read_text() == ("umv samy 0.0000\nascan samx 0.0000 0.0100 2 1\n"
                               "umv samy 0.0050\nascan samx 0.0000 0.0050 1 1\n"
                               "umv samy 0.0100\nascan samx 0.0000 0.0050 1 1\n"
                               "mv samx 1.2500 samy -0.7300\ndmesh samx -0.0025 0.0025 10 samy -0.0025 0.0025 10 0.1\n")
    put("Macro:Relative", 0)
    put_fails("Macro:Polygon", [0, 0, 10])
    assert "even number" in text("Map:Message_RBV") or "even number" in text("Macro:Message_RBV")


def test_macro_refused_beyond_the_motor_records_soft_limits(ioc):
    put("Macro:Clear", 1)
    put("Macro:Engine", "bluesky")
    put("samx.HLM", 0.2)                  # mm: the macro check must follow the record's limit (200 um)
    try:
        append_rect("inside", 150, 0, 190, 10)
        assert get("Macro:Count_RBV") == 1 and get("Macro:Status_RBV") == 0
        put("Macro:Name", "outside")
        put("Macro:X1", 250)
        put_fails("Macro:Append", 1)
        assert get("Macro:Count_RBV") == 1 and get("Macro:Status_RBV") == 1
        message = text("Macro:Message_RBV")
        assert "refused" in message and "250.0000 um" in message and "200.0000 um" in message, message
    finally:
        put("samx.HLM", 9.5)
    put("Macro:Append", 1)
    assert get("Macro:Count_RBV") == 2
    put_fails("Macro:Engine", "nosuchengine")
    assert "known: sardana spec bluesky" in text("Macro:Message_RBV")


def similarity(scale, angle_deg, tx, ty):
    a = np.radians(angle_deg)
    return np.array([[scale * np.cos(a), -scale * np.sin(a), tx], [scale * np.sin(a), scale * np.cos(a), ty], [0, 0, 1]])


def apply(m, pts):
    return pts @ m[:2, :2].T + m[:2, 2]


def convert(layer, u, v):
    put("Conv:Layer", layer)
    put("Conv:PixelX", u)
    put("Conv:PixelY", v)
    return np.array([get("Conv:ToStageX_RBV"), get("Conv:ToStageY_RBV")])


def test_fiducial_fit_publishes_transform_residuals_and_rejects_an_outlier(ioc):
    rng = np.random.default_rng(3)
    truth = similarity(0.05, 4.0, -300.0, 250.0)       # SEM pixels (50 nm) -> stage um
    src = rng.uniform(0, 4096, size=(7, 2))
    dst = apply(truth, src) + rng.normal(0, 0.05, size=(7, 2))
    dst[4] += [30.0, -20.0]                              # a mis-clicked fiducial
    put("Fid:Kind", 0)
    put("Fid:Robust", 1)
    put("Fid:Pixel", src.ravel())
    put("Fid:Stage", dst.ravel())
    put("Fid:Fit", 1)
    inliers = np.asarray(get("Fid:Inliers_RBV"))[:7]
    assert list(inliers) == [1, 1, 1, 1, 0, 1, 1]
    keep = inliers.astype(bool)
    ref = estimate_transform("similarity", src[keep], dst[keep]).params
    np.testing.assert_allclose(np.asarray(get("Ref:Matrix_RBV")).reshape(2, 3), ref[:2], rtol=1e-6, atol=1e-6)
    residuals = np.linalg.norm(apply(ref, src) - dst, axis=1)
    np.testing.assert_allclose(np.asarray(get("Fid:Residuals_RBV"))[:7], residuals, atol=1e-6)
    assert get("Fid:RMS_RBV") == pytest.approx(np.sqrt(np.mean(residuals[keep] ** 2)), rel=1e-6)
    assert get("Ref:Rotation_RBV") == pytest.approx(4.0, abs=0.01)
    assert get("Ref:PixelSizeX_RBV") == pytest.approx(0.05, rel=1e-3)
    # pixel -> stage through the conversion PVs, and back
    stage = convert(0, 1000.0, 2000.0)
    np.testing.assert_allclose(stage, apply(ref, np.array([[1000.0, 2000.0]]))[0], atol=1e-4)
    put("Conv:StageX", stage[0])
    put("Conv:StageY", stage[1])
    assert get("Conv:ToPixelX_RBV") == pytest.approx(1000.0, abs=1e-4)
    assert get("Conv:ToPixelY_RBV") == pytest.approx(2000.0, abs=1e-4)


def test_affine_from_three_pairs_and_mismatched_lists_refused(ioc):
    m = np.array([[0.11, 0.02, 5.0], [-0.01, 0.09, -7.0], [0, 0, 1]])
    src = np.array([[0.0, 0.0], [100.0, 0.0], [0.0, 100.0]])
    put("Fid:Kind", 1)
    put("Fid:Pixel", src.ravel())
    put("Fid:Stage", apply(m, src).ravel())
    put("Fid:Fit", 1)
    np.testing.assert_allclose(np.asarray(get("Ref:Matrix_RBV")).reshape(2, 3), m[:2], atol=1e-9)
    put("Fid:Stage", apply(m, src)[:2].ravel())
    put_fails("Fid:Fit", 1)
    assert "Fid:Pixel has 3 points but Fid:Stage 2" in text("Map:Message_RBV")


def test_geometry_pvs_sidecar_tiff_and_hdf5(ioc, tmp_path):
    geometry = dict(PixelSizeX=0.02, PixelSizeY=0.03, RefPixelX=512, RefPixelY=256, RefStageX=1500.0,
                    RefStageY=-800.0, Rotation=30.0, FlipX=0, FlipY=1)
    for k, v in geometry.items():
        put("Ref:" + k, v)
    a = np.radians(30.0)
    rot = np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])
    expected = np.array([1500.0, -800.0]) + rot @ (np.diag([0.02, -0.03]) @ np.array([612.0 - 512, 206.0 - 256]))
    np.testing.assert_allclose(convert(0, 612.0, 206.0), expected, atol=1e-6)

    sidecar = tmp_path / "sem.json"
    sidecar.write_text('{"pixel_size": 0.01, "ref_pixel": [0, 0], "ref_stage": [10, 20], "rotation_deg": 0, '
                       '"flip_y": false}')
    put("Ref:LoadPath", str(sidecar))
    put("Ref:Load", 1)
    wait_for(lambda: text("Map:Message_RBV") == "geometry loaded")
    np.testing.assert_allclose(convert(0, 100.0, 50.0), [11.0, 20.5], atol=1e-9)

    tif = tmp_path / "afm.tif"       # 0.25 um pixels: 40000 pixels per cm
    tifffile.imwrite(tif, np.zeros((8, 8), np.uint16), resolution=(40000, 40000), resolutionunit="CENTIMETER")
    put("Ref:LoadPath", str(tif))
    put("Ref:Load", 1)
    wait_for(lambda: get("Ref:PixelSizeX_RBV") == pytest.approx(0.25))
    map_sync(P)
    assert get("Ref:SizeX_RBV") == 8 and get("Ref:SizeY_RBV") == 8
    corners = np.array([[-0.5, -0.5], [7.5, -0.5], [7.5, 7.5], [-0.5, 7.5]])
    np.testing.assert_allclose(np.asarray(get("Ref:Outline_RBV")).reshape(4, 2), [10, 20] + 0.25 * corners, atol=1e-9)
    h5 = tmp_path / "xrf.h5"
    with h5py.File(h5, "w") as f:
        f.create_dataset("map", data=np.zeros((4, 4), np.float32)).attrs["pixel_size"] = [0.5, 0.75]
    put("Ref:LoadPath", f"{h5}:/map")
    put("Ref:Load", 1)
    wait_for(lambda: get("Ref:PixelSizeX_RBV") == pytest.approx(0.75))
    assert get("Ref:PixelSizeY_RBV") == pytest.approx(0.5)
    put("Ref:LoadPath", str(tmp_path / "missing.json"))
    put("Ref:Load", 1)
    wait_for(lambda: "cannot open" in text("Map:Message_RBV"))
    assert get("Map:Status_RBV") == 1


def test_live_layer_follows_the_stage_and_beam_calibration(ioc):
    put("Move:Enable", 1)
    put("samx", 0.150)
    put("samy", -0.075)
    put("Live:PixelSizeX", 0.2)
    put("Live:PixelSizeY", 0.2)
    put("Live:Rotation", 0.0)
    put("Beam:ClickX", 300.0)
    put("Beam:ClickY", 200.0)
    put("Beam:Calibrate", 1)
    x, y = get("samx.RBV") * 1000, get("samy.RBV") * 1000
    assert get("Live:BeamX_RBV") == 300.0 and get("Beam:StageX_RBV") == pytest.approx(x, abs=RBV_JITTER)
    np.testing.assert_allclose(convert(1, 300.0, 200.0), [x, y], atol=RBV_JITTER)
    np.testing.assert_allclose(convert(1, 350.0, 180.0), [x + 10.0, y - 4.0], atol=RBV_JITTER)


def test_move_to_pixel_is_guarded_and_reaches_the_target(ioc):
    put("Move:Enable", 0)
    put("Move:Layer", 1)
    put("Move:PixelX", 400.0)
    put("Move:PixelY", 250.0)
    before = get("samx.RBV")
    put_fails("Move:Go", 1)
    assert "disabled" in text("Map:Message_RBV")
    put("Move:Enable", 1)
    put("Move:PixelX", 300.0 + 60000.0)               # 12 mm away: beyond the 9.5 mm soft limit
    put_fails("Move:Go", 1)
    assert "outside its soft limits" in text("Map:Message_RBV") and "SM:samx" in text("Map:Message_RBV")
    assert get("samx.RBV") == pytest.approx(before, abs=1e-3)
    x0, y0 = get("samx.RBV") * 1000, get("samy.RBV") * 1000
    put("Move:PixelX", 400.0)                          # 100 px = 20 um right, 50 px = 10 um down
    put("Move:Go", 1)                                  # the put-callback returns when the motors are done
    assert get("samx.DMOV") == 1 and get("samy.DMOV") == 1
    assert get("samx.RBV") * 1000 == pytest.approx(x0 + 20.0, abs=0.5)
    assert get("samy.RBV") * 1000 == pytest.approx(y0 + 10.0, abs=0.5)


def test_centre_particle_on_the_beam(ioc):
    put("Ref:PixelSizeX", 0.1)
    put("Ref:PixelSizeY", 0.1)
    for k in ("RefPixelX", "RefPixelY", "RefStageX", "RefStageY", "Rotation", "FlipX", "FlipY"):
        put("Ref:" + k, 0)
    put("Particles", [100.0, 200.0, -500.0, 1500.0])
    put("Move:Particle", 1)
    put("Move:CentreParticle", 1)
    assert get("samx.RBV") * 1000 == pytest.approx(-50.0, abs=0.5)
    assert get("samy.RBV") * 1000 == pytest.approx(150.0, abs=0.5)
    put("Move:Particle", 2)
    put_fails("Move:CentreParticle", 1)
    assert "no particle 2" in text("Map:Message_RBV")


def test_live_layer_follows_the_zoom(ioc):
    for zoom in (2.0, 5.0):
        put("zoom", zoom)
        pixel = get("cam_pixel_size")
        assert pixel == pytest.approx(3.45 / (1 + 0.2 * zoom), rel=1e-3)
        wait_for(lambda: get("Live:PixelSizeX_RBV") == pytest.approx(pixel, rel=1e-9))
        assert get("Live:PixelSizeY_RBV") == pytest.approx(pixel, rel=1e-9)
        x, y = get("samx.RBV") * 1000, get("samy.RBV") * 1000
        beam = get("Live:BeamX_RBV"), get("Live:BeamY_RBV")
        np.testing.assert_allclose(convert(1, beam[0] + 100, beam[1]), [x + 100 * pixel, y], atol=RBV_JITTER)



def test_reference_layer_from_a_registration_result(ioc, tmp_path):
    """scikit-image registers a simulated live frame against a simulated reference taken elsewhere on the stage;
    its shift, written to Reg:*, must give the reference's true pixel -> stage mapping."""
    import subprocess
    import tifffile
    from skimage.registration import phase_cross_correlation

    put("Live:PixelSizeX", 0.25)
    put("Live:PixelSizeY", 0.25)
    put("Live:BeamX", 255.5)
    put("Live:BeamY", 255.5)
    put("Live:Rotation", 0)
    put("Live:FlipX", 0)
    put("Live:FlipY", 0)
    here = np.array([get("samx.RBV"), get("samy.RBV")]) * 1000
    ref_stage = here + [21.3, -13.7]                 # the reference was taken 21.3, -13.7 um away
    sample = TOP / "sim" / "sample_default.json"
    for name, stage in (("ref.tif", ref_stage), ("live.tif", here)):
        subprocess.run([str(ioc_module.BIN / "reloc-sim-scope"), str(sample), str(tmp_path / name), "--size", "512",
                        "512", "--pixel-size", "0.25", "--stage", str(stage[0]), str(stage[1]), "--noiseless"],
                       check=True, capture_output=True)
    ref = tifffile.imread(tmp_path / "ref.tif").astype(float)
    live = tifffile.imread(tmp_path / "live.tif").astype(float)
    shift_yx = phase_cross_correlation(ref, live, upsample_factor=100)[0]     # -t, (y, x)
    for k, v in dict(ShiftX=-shift_yx[1], ShiftY=-shift_yx[0], Angle=0, Scale=1, CenterX=255.5, CenterY=255.5).items():
        put("Reg:" + k, v)
    put("Reg:Apply", 1)
    for u, v in ((0.0, 0.0), (400.0, 100.0)):
        expected = ref_stage + (np.array([u, v]) - 255.5) * 0.25
        np.testing.assert_allclose(convert(0, u, v), expected, atol=RBV_JITTER)
    # rotation and scale follow register.h's convention: reference p is at A (p - c) + c + t in the frame
    angle, scale, c, t = 10.0, 1.2, np.array([300.0, 200.0]), np.array([5.0, -7.0])
    for k, v in dict(ShiftX=t[0], ShiftY=t[1], Angle=angle, Scale=scale, CenterX=c[0], CenterY=c[1]).items():
        put("Reg:" + k, v)
    put("Reg:Apply", 1)
    a = np.radians(angle)
    A = scale * np.array([[np.cos(a), np.sin(a)], [-np.sin(a), np.cos(a)]])
    p = np.array([123.0, 456.0])
    live_pixel = A @ (p - c) + c + t
    np.testing.assert_allclose(convert(0, *p), here + (live_pixel - 255.5) * 0.25, atol=RBV_JITTER)
