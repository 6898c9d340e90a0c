"""Phoebus screens (screens/*.bob) against the default IOC: every file parses as a Display Builder display,
every macro expands for the default st.cmd, every PV a widget names (values, rules, write actions) is served
by the running default IOC, and every open_display / embedded target exists."""
import re
import sys
import time
import xml.etree.ElementTree as ET

import epics
import pytest

import ioc as ioc_module

sys.path.insert(0, str(ioc_module.TOP / "tests" / "pva"))
import pva_ioc  # noqa: E402
from pvaclient import Client  # noqa: E402

TOP = ioc_module.TOP
SCREENS = TOP / "screens"
BOOT = ioc_module.BOOT
BOB_FILES = sorted(SCREENS.glob("*.bob"))
# Widget types of Phoebus Display Builder 4.7 that these screens may use.
KNOWN_WIDGETS = {"label", "textupdate", "textentry", "action_button", "bool_button", "choice", "combo", "led",
                 "multi_state_led", "progressbar", "group", "embedded", "rectangle", "ellipse", "polyline",
                 "image", "xyplot", "stripchart", "table", "checkbox", "slide_button", "byte_monitor", "tabs"}
MACRO = re.compile(r"\$[({](\w+)[)}]")


def default_prefix():
    """P as the default st.cmd sets it when the environment does not: epicsEnvSet P "$(VAR=default)"."""
    text = (BOOT / "st.cmd").read_text()
    match = re.search(r'^epicsEnvSet\s+P\s+"\$\(\w+=([^)]*)\)"', text, re.M)
    assert match, "the default st.cmd no longer sets P with a default"
    return match.group(1)


def expand(text, macros):
    for _ in range(5):
        new = MACRO.sub(lambda m: macros.get(m.group(1), m.group(0)), text)
        if new == text:
            break
        text = new
    return text


def own_macros(element):
    node = element.find("macros")
    return {child.tag: (child.text or "") for child in node} if node is not None else {}


def walk(path, outer, seen_pvs, targets, stack=()):
    """PVs of one display with the macros the opener gives (they win over the display's own defaults), and of
    the displays it embeds or opens."""
    assert path not in stack, f"{path.name} embeds itself"
    root = ET.parse(path).getroot()
    assert root.tag == "display" and root.get("version", "").startswith("2."), f"{path.name}: not a .bob display"
    macros = {**own_macros(root), **outer}
    for widget in root.iter("widget"):
        assert widget.get("type") in KNOWN_WIDGETS, f"{path.name}: unknown widget type {widget.get('type')}"
        for tag in ("pv_name", "x_pv", "y_pv", "err_pv"):
            for node in widget.iter(tag):
                if node.text and node.text.strip():
                    seen_pvs.setdefault(expand(node.text.strip(), macros), set()).add(path.name)
        for action in widget.iter("action"):
            if action.get("type") == "open_display":   # the opened display gets this one's macros and the action's
                target = path.parent / expand(action.findtext("file"), macros)
                targets.append((path.name, target))
                if target.exists() and target not in stack + (path,):
                    walk(target, {**macros, **own_macros(action)}, seen_pvs, targets, stack + (path,))
        if widget.get("type") == "embedded":
            target = path.parent / expand(widget.findtext("file"), macros)
            targets.append((path.name, target))
            if target.exists():
                walk(target, {**macros, **own_macros(widget)}, seen_pvs, targets, stack + (path,))


@pytest.fixture(scope="module")
def screen_pvs():
    assert BOB_FILES, "no screens"
    pvs, targets = {}, []
    for path in BOB_FILES:
        walk(path, {"P": default_prefix()}, pvs, targets)
    return pvs, targets


def test_screens_cover_the_ioc(screen_pvs):
    names = {p.name for p in BOB_FILES}
    assert {"reloc_overview.bob", "camera.bob", "motors.bob", "motor_axis.bob", "ioc_status.bob", "registration.bob",
            "particles.bob", "mapping.bob", "relocalization.bob", "macro_queue.bob", "xrf.bob"} <= names
    pvs, _ = screen_pvs
    assert any(pv.endswith("image1:ArrayData") for pv in pvs)
    assert any(pv.startswith("pva://") and pv.endswith("Pva1:Image") for pv in pvs)     # camera_pva.bob


def test_every_display_target_exists(screen_pvs):
    _, targets = screen_pvs
    missing = [f"{source} -> {target.name}" for source, target in targets if not target.is_file()]
    assert not missing, missing
    # The overview reaches every other top-level screen.
    opened = {target.name for source, target in targets if source == "reloc_overview.bob"}
    assert {p.name for p in BOB_FILES} - {"reloc_overview.bob", "motor_axis.bob"} <= opened


def test_every_macro_expands(screen_pvs):
    pvs, _ = screen_pvs
    unexpanded = {pv: files for pv, files in pvs.items() if "$(" in pv or "${" in pv}
    assert not unexpanded, unexpanded


def test_every_pv_is_served_by_the_default_ioc(screen_pvs, start_ioc, tmp_path, ioc_env):
    pvs, _ = screen_pvs
    env, pva_port, _, beacons = pva_ioc.pva_env(ioc_env)
    beacons.close()
    env = ioc_module.default_env(env, tmp_path, RELOC_WEB_ADDRESS="127.0.0.1:0", RELOC_TOP=str(TOP))
    start_ioc(ioc_module.default_st_cmd(), env=env)
    ca_names = [name for name in pvs if not name.startswith("pva://")]
    pva_names = [name.removeprefix("pva://") for name in pvs if name.startswith("pva://")]
    # pvAccess PVs (Phoebus pva://): each answers introspection and a read over PVA
    ioc_module.wait_for(lambda: pva_ioc.accepts(pva_port), 10, "the PVA server")
    with Client(pva_port) as client:
        for name in pva_names:
            assert client.get(name).type.id.startswith("epics:nt/"), name
    channels = {}
    for name in ca_names:
        assert "://" not in name or name.startswith("ca://"), f"{name}: screens talk Channel Access or pva://"
        channels[name] = epics.PV(name.removeprefix("ca://"), auto_monitor=False, connection_timeout=10)
    deadline = time.monotonic() + 10   # all channels connect in parallel: one deadline for all of them
    unserved = sorted(f"{name} ({', '.join(sorted(pvs[name]))})" for name, pv in channels.items()
                      if not pv.wait_for_connection(timeout=max(0.1, deadline - time.monotonic())))
    assert not unserved, f"PVs named by screens but not served by the default IOC: {unserved}"
    # A connected channel also answers a read (the widget's first CTRL read).
    for name, pv in channels.items():
        if not name.endswith("ArrayData"):
            assert pv.get_ctrlvars() is not None, name
    for pv in channels.values():
        pv.disconnect()
