"""tests/ioc/test_ioc_shell.py -- relocioc as an operator runs it: st.cmd scripts, .db loading, refusal to
start on a broken script or database (with file:line), clean shutdown on SIGTERM, and autosave across
restarts, including a truncated save file that must be set aside without being half-applied."""
import re
import signal
import time
from pathlib import Path

import pytest

import ioc as ioc_module
from ioc import pv, wait_for

GOOD_DB = """\
# test database
record(ao, "$(P)ao") {
    field(DESC, "settable")
    field(EGU, "$(EGU=mm)")
    field(PREC, "3")
    field(VAL, "1.5")
    info(autosaveFields, "VAL EGU")
}
record(longout, "$(P)count") {
    field(VAL, "4")
    info(autosaveFields_pass0, "VAL")
}
record(stringout, "$(P)name") { field(VAL, "default name") alias("$(P)alias") }
"""


@pytest.fixture
def good_db(tmp_path):
    path = tmp_path / "good.db"
    path.write_text(GOOD_DB)
    return path


def test_starts_stays_up_and_exits_0_on_sigterm(start_ioc, good_db):
    ioc = start_ioc(f'dbLoadRecords("{good_db}", "P=T:")\niocInit\n')
    time.sleep(1.0)
    assert ioc.proc.poll() is None, ioc.log()
    assert ioc.stop(signal.SIGTERM) == 0, ioc.log()
    assert "shut down cleanly" in ioc.log()


def test_sigint_also_shuts_down_cleanly(start_ioc, good_db):
    ioc = start_ioc(f'dbLoadRecords("{good_db}", "P=T:")\niocInit\n')
    assert ioc.stop(signal.SIGINT) == 0, ioc.log()


def test_diagnostic_commands(start_ioc, good_db):
    ioc = start_ioc(f"""\
epicsEnvSet("PFX", "T:")
dbLoadRecords "{good_db}" "P=$(PFX),EGU=deg"
iocInit
dbpf T:ao 2.25
dbgf T:ao.EGU
dbgf T:alias
dbl longout
dbl "*" "T:n*"
dbpr T:ao 1
help dbpr
""")
    log = ioc.wait_for_log(r"dbpr RECORD \[LEVEL\]")
    assert re.search(r"^T:ao: 2\.25", log, re.M), log
    assert re.search(r"^T:ao\.EGU: deg$", log, re.M), log
    assert re.search(r"^T:alias: default name$", log, re.M), log
    listed = [line for line in log.splitlines() if re.fullmatch(r"T:\w+", line)]
    assert listed == ["T:count", "T:name"], log
    assert re.search(r"^\s*PREC\s*: 3$", log, re.M), log
    assert re.search(r"^\s*DESC\s*: settable$", log, re.M), log


def test_script_include_and_cd(start_ioc, tmp_path, good_db):
    sub = tmp_path / "sub"
    sub.mkdir()
    (sub / "part.cmd").write_text('dbLoadRecords "good.db" "P=INC:"\n')
    (sub / "good.db").write_text(GOOD_DB)
    ioc = start_ioc(f"cd {sub}\n< part.cmd\niocInit\ndbgf INC:count\n")
    ioc.wait_for_log(r"INC:count: 4")


@pytest.mark.parametrize("line, message", [
    ("dbLoadRecrods x.db", r'unknown command "dbLoadRecrods"'),
    ("iocInit extra", r"iocInit: wrong number of arguments"),
    ("autosaveSetPeriod fast", r'"fast" is not a number'),
    ("epicsEnvSet X $(NOT_DEFINED_ANYWHERE)", r"undefined macro \$\(NOT_DEFINED_ANYWHERE\)"),
    ('dbLoadRecords "missing.db"', r"missing\.db: file not found"),
    ('epicsEnvSet X "unterminated', r"unterminated \" quote"),
    ('autosaveSetFile "/nonexistent-dir/x.sav"', r"cannot write into /nonexistent-dir"),
])
def test_bad_st_cmd_line_stops_startup(refuses_to_start, good_db, line, message):
    log = refuses_to_start(f'dbLoadRecords "{good_db}" "P=T:"\n# comment\n{line}\niocInit\n')
    assert re.search(r"st\.cmd:3: .*" + message, log), log


@pytest.mark.parametrize("db_text, where, message", [
    ('record(ai, "A") {\n  field(DESC, "x")\n  field(NOPE, 1)\n}\n', ":3:", r'unknown field "NOPE"'),
    ('\nrecord(nosuchtype, "A")\n', ":2:", r'unknown record type "nosuchtype"'),
    ('record(ai, "A") {\n  field(DESC, "open\n}\n', ":2:15:", "unterminated string"),
    ('record(ai, "A") {\n  field(DESC, "x")\n', ":3:", "missing '}'"),
    ('record(ai, "$(P)A") {}\nrecord(ai, "$(Q)B") {}\n', ":2:", r"undefined macro \$\(Q\)"),
    ('record(ai, "A") { field(SCAN, "sometimes") }\n', ":1:", "SCAN"),
])
def test_bad_db_file_stops_startup(refuses_to_start, tmp_path, db_text, where, message):
    bad = tmp_path / "bad.db"
    bad.write_text(db_text)
    log = refuses_to_start(f'dbLoadRecords "{bad}" "P=T:"\niocInit\n')
    assert re.search(re.escape(str(bad)) + where + ".*" + message, log), log
    assert "st.cmd:1:" in log, log


def test_script_without_iocinit_does_not_start(refuses_to_start, good_db):
    log = refuses_to_start(f'dbLoadRecords "{good_db}" "P=T:"\n')
    assert "ended without iocInit" in log


def test_template_loading(start_ioc, tmp_path, good_db):
    subst = tmp_path / "t.substitutions"
    subst.write_text(f"""\
global {{ EGU=V }}
file "{good_db.name}" {{
    pattern {{ P }}
            {{ "A:" }}
            {{ "B:" }}
}}
file {good_db.name} {{ {{ P="C:", EGU="$(UNITS)" }} }}
""")
    ioc = start_ioc(f'epicsEnvSet UNITS keV\ndbLoadTemplate "{subst}"\niocInit\n'
                    "dbgf A:ao.EGU\ndbgf B:count\ndbgf C:ao.EGU\n")
    log = ioc.wait_for_log(r"C:ao\.EGU: \S+")
    assert re.search(r"^A:ao\.EGU: V$", log, re.M), log
    assert re.search(r"^B:count: 4$", log, re.M), log
    assert re.search(r"^C:ao\.EGU: keV$", log, re.M), log


# ---- autosave

def autosave_cmd(db, save, after_init="", period=1.0):
    return (f'autosaveSetFile "{save}"\nautosaveSetPeriod {period}\n'
            f'dbLoadRecords "{db}" "P=T:"\niocInit\n{after_init}')


def saved_values(save):
    """The save file parsed independently of the IOC: {channel: value}."""
    values = {}
    for line in save.read_text().splitlines():
        m = re.fullmatch(r'(\S+) "(.*)"', line)
        if m:
            values[m.group(1)] = m.group(2)
    return values


def test_autosave_restores_after_restart(start_ioc, tmp_path, good_db):
    save = tmp_path / "ioc.sav"
    # 7.123456789 has more digits than PREC=3 shows: the save file must keep all of them.
    ioc = start_ioc(autosave_cmd(good_db, save, "dbpf T:ao 7.123456789\ndbpf T:ao.EGU um\ndbpf T:count 11\n"))
    wait_for(lambda: save.exists() and saved_values(save).get("T:count.VAL") == "11", what="save file")
    assert ioc.stop() == 0
    values = saved_values(save)
    assert float(values["T:ao.VAL"]) == 7.123456789 and values["T:ao.EGU"] == "um", values
    assert save.read_text().splitlines()[-1].startswith("#END 3 ")

    ioc2 = start_ioc(autosave_cmd(good_db, save, "dbgf T:ao\ndbgf T:ao.EGU\ndbgf T:count\ndbgf T:name\n"))
    log = ioc2.wait_for_log(r"T:name: .*")
    assert re.search(r"^T:ao: 7\.123", log, re.M), log
    assert re.search(r"^T:ao\.EGU: um$", log, re.M), log
    assert re.search(r"^T:count: 11$", log, re.M), log
    assert re.search(r"^T:name: default name$", log, re.M), log   # not an autosave field
    assert ioc2.stop() == 0
    assert float(saved_values(save)["T:ao.VAL"]) == 7.123456789   # restored without rounding


def test_pending_change_is_flushed_on_shutdown(start_ioc, tmp_path, good_db):
    save = tmp_path / "ioc.sav"
    ticker = tmp_path / "ticker.db"
    ticker.write_text('record(calc, "T:tick") { field(SCAN, ".1 second") field(INPA, "T:tick NPP") '
                      'field(CALC, "A+1") info(autosaveFields, "VAL") }\n')
    # A 60 s period: after the first write at iocInit, later ticks reach the file only through the final flush.
    ioc = start_ioc(f'dbLoadRecords "{ticker}"\n' + autosave_cmd(good_db, save, period=60))
    wait_for(save.exists, what="first save")
    first = float(saved_values(save)["T:tick.VAL"])
    time.sleep(1.5)
    assert float(saved_values(save)["T:tick.VAL"]) == first      # rate limit: no second write yet
    assert ioc.stop() == 0
    assert float(saved_values(save)["T:tick.VAL"]) >= first + 5, ioc.log()


def test_truncated_save_file_is_set_aside_not_half_applied(start_ioc, tmp_path, good_db):
    save = tmp_path / "ioc.sav"
    ioc = start_ioc(autosave_cmd(good_db, save, "dbpf T:ao 7.25\ndbpf T:count 11\n"))
    wait_for(lambda: save.exists() and saved_values(save).get("T:count.VAL") == "11", what="save file")
    assert ioc.stop() == 0
    lines = save.read_text().splitlines(keepends=True)
    assert lines[-1].startswith("#END")
    truncated = "".join(lines[:-1])          # every entry complete, end marker lost (crash mid-write)
    save.write_text(truncated)

    status_db = ioc_module.TOP / "db" / "reloc_ioc.db"
    ioc2 = start_ioc(f'dbLoadRecords "{status_db}" "P=S:"\n' + autosave_cmd(
        good_db, save, "dbgf T:ao\ndbgf T:count\n"))
    log = ioc2.wait_for_log(r"T:count: \S+")
    assert re.search(r"save file rejected.*truncated", log), log
    # operators see it: the status record shows it once it has been scanned
    status, severity = pv("S:AUTOSAVE_STATUS"), pv("S:AUTOSAVE_STATUS.SEVR")
    wait_for(lambda: status.get(as_string=True).startswith("bad save file set aside") and severity.get() == 2,
             what=lambda: f"'bad save file set aside' in MAJOR alarm (now '{status.get(as_string=True)}')")
    assert re.search(r"^T:ao: 1\.5", log, re.M), log          # the .db default, not the saved 7.25
    assert re.search(r"^T:count: 4$", log, re.M), log
    bad = Path(str(save) + ".bad")
    assert bad.read_text() == truncated
    # The running IOC writes a fresh, valid file from its live values.
    wait_for(lambda: save.exists() and save.read_text().splitlines()[-1].startswith("#END"), what="new save")
    assert saved_values(save)["T:count.VAL"] == "4"


# ---- the default IOC and the interactive shell

def test_default_ioc_status_pvs(start_ioc, tmp_path, ioc_env):
    started = time.time()
    ioc = start_ioc(ioc_module.default_st_cmd("dbgf TST:HEARTBEAT", "dbgf TST:UPTIME", "epicsThreadSleep 3",
                                              "dbgf TST:HEARTBEAT", "dbgf TST:UPTIME", "dbgf TST:VERSION",
                                              "dbgf TST:STARTTOD", "dbl"),
                    env=ioc_module.default_env(ioc_env, tmp_path, "TST:"), timeout=60)
    log = ioc.wait_for_log(r"TST:STARTTOD: .+")
    heartbeats = [float(v) for v in re.findall(r"^TST:HEARTBEAT: (\S+)", log, re.M)]
    uptimes = [float(v) for v in re.findall(r"^TST:UPTIME: (\S+)", log, re.M)]
    # both count seconds while the IOC runs (measured across a 3 s pause, so a slow start-up does not matter)
    assert 2 <= heartbeats[1] - heartbeats[0] <= 4, log
    assert 2 <= uptimes[1] - uptimes[0] <= 4 and uptimes[0] < 60, log
    assert re.search(r"^TST:VERSION: reloc \d+\.\d+\.\d+$", log, re.M), log
    tod = re.search(r"^TST:STARTTOD: (\d{4}-\d\d-\d\d \d\d:\d\d:\d\d)", log, re.M).group(1)
    assert abs(time.mktime(time.strptime(tod, "%Y-%m-%d %H:%M:%S")) - started) < 30, tod
    # The status PVs are listed by dbl (the default IOC also serves the motor stages and more); dbl may still be
    # printing when the lines above are there, so wait for the listing rather than read it once.
    status_pvs = {"TST:HEARTBEAT", "TST:UPTIME", "TST:VERSION", "TST:STARTTOD", "TST:AUTOSAVE_STATUS"}
    wait_for(lambda: status_pvs <= set(re.findall(r"^(TST:\w+)$", ioc.log(), re.M)), 30,
             what=lambda: f"dbl listing the status PVs:\n{ioc.log()}")
    status, severity = pv("TST:AUTOSAVE_STATUS"), pv("TST:AUTOSAVE_STATUS.SEVR")
    wait_for(lambda: re.fullmatch(r"saved \d\d:\d\d:\d\d", status.get(as_string=True)) and severity.get() == 0,
             what=lambda: f"'saved hh:mm:ss' without alarm (now '{status.get(as_string=True)}')")
    assert not (ioc_module.BOOT / "reloc.sav.tmp").exists()


def test_interactive_shell_on_a_terminal(tmp_path, ioc_env, good_db):
    """With a terminal on stdin, commands typed after iocInit run; errors do not stop the IOC; exit ends it."""
    import os
    import pty
    import select
    import subprocess

    st = tmp_path / "st.cmd"
    st.write_text(f'dbLoadRecords "{good_db}" "P=T:"\niocInit\n')
    master, slave = pty.openpty()
    proc = subprocess.Popen([str(ioc_module.BIN / "relocioc"), str(st)], cwd=tmp_path, env=ioc_env,
                            stdin=slave, stdout=slave, stderr=slave)
    os.close(slave)
    out = b""

    def read_until(pattern, timeout=10.0):
        nonlocal out
        deadline = time.monotonic() + timeout
        while not re.search(pattern, out) and time.monotonic() < deadline:
            if select.select([master], [], [], 0.1)[0]:
                try:
                    out += os.read(master, 4096)
                except OSError:     # the IOC exited and closed the terminal
                    break
            elif proc.poll() is not None:
                break
        assert re.search(pattern, out), out.decode(errors="replace")
        return out

    try:
        read_until(rb"reloc> ")
        os.write(master, b"dbpf T:count 17\n")
        read_until(rb"T:count: 17")
        os.write(master, b"nosuchcommand\n")
        read_until(rb'error: unknown command "nosuchcommand"')
        os.write(master, b"dbgf T:count\n")
        read_until(rb"T:count: 17\r?\n(.|\n)*T:count: 17")
        os.write(master, b"exit\n")
        assert proc.wait(timeout=10) == 0, out.decode(errors="replace")
        read_until(rb"shut down cleanly")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        os.close(master)
    assert not ioc_module.SANITIZER_PATTERN.search(out.decode(errors="replace"))


@pytest.mark.parametrize("db_text, message", [
    # Problems only record initialization finds also keep the IOC from starting.
    ('record(calc, "T:broken") { field(CALC, "A+*2") }\n', r"T:broken"),
    ('record(ao, "T:x") { info(autosaveFields, "VAL NOPE") }\n', r'record T:x: info\(autosaveFields\) names "NOPE"'),
])
def test_iocinit_failure_stops_startup(refuses_to_start, tmp_path, db_text, message):
    bad = tmp_path / "init.db"
    bad.write_text(db_text)
    log = refuses_to_start(f'dbLoadRecords "{bad}"\niocInit\n')
    assert re.search(r"st\.cmd:2: .*" + message, log), log


def test_bad_line_after_iocinit_is_reported_and_the_ioc_keeps_serving(start_ioc, good_db):
    ioc = start_ioc(f'dbLoadRecords "{good_db}" "P=T:"\niocInit\ndbpf T:nosuch 1\n'
                    f'dbLoadRecords "{good_db}" "P=U:"\ndbgf T:count\n')
    log = ioc.wait_for_log(r"T:count: 4")
    assert re.search(r"st\.cmd:3: dbpf T:nosuch", log), log
    assert re.search(r"st\.cmd:4: .*only be loaded before iocInit", log), log
    time.sleep(0.5)
    assert ioc.proc.poll() is None, log
    assert ioc.stop() == 0


def test_signal_during_startup_stops_the_script(tmp_path, ioc_env, good_db):
    ioc = ioc_module.Ioc(f'dbLoadRecords "{good_db}" "P=T:"\nepicsThreadSleep 1\ndbgf T:count\niocInit\n',
                         tmp_path / "slow", env=ioc_env)
    ioc.start(expect_ready=False)
    ioc.wait_for_log(r"epicsThreadSleep 1")
    code = ioc.stop(signal.SIGTERM)
    log = ioc.log()
    ioc.check_sanitizers()
    assert code != 0, log
    assert re.search(r"st\.cmd:3: interrupted by a signal", log), log
    assert "T:count: 4" not in log and not re.search(r"iocInit.*done", log), log


def test_autosave_of_a_long_array_survives_a_restart(start_ioc, tmp_path):
    """An array whose text is far longer than a scalar's is saved whole and restored element for element."""
    wf = tmp_path / "wf.db"
    wf.write_text('record(waveform, "T:wf") { field(FTVL, "DOUBLE") field(NELM, "400") '
                  'info(autosaveFields, "VAL") }\n')
    save = tmp_path / "ioc.sav"
    values = [i * 0.1 + i * 1e-9 for i in range(300)]
    text = "[" + ", ".join(repr(v) for v in values) + "]"
    assert len(text) > 4000
    st = f'autosaveSetFile "{save}"\ndbLoadRecords "{wf}"\niocInit\n'

    def saved_array():
        raw = saved_values(save).get("T:wf.VAL", "[]")
        return [float(x) for x in raw.strip("[]").split(",") if x.strip()]

    ioc = start_ioc(st + f'dbpf T:wf "{text}"\n')
    wait_for(lambda: save.exists() and len(saved_array()) == 300, what="array in the save file")
    assert ioc.stop() == 0
    assert saved_array() == values

    ioc2 = start_ioc(st + "dbgf T:wf.NORD\n")
    log = ioc2.wait_for_log(r"T:wf\.NORD: \d+")
    assert re.search(r"^T:wf\.NORD: 300$", log, re.M), log
    assert ioc2.stop() == 0
    assert saved_array() == values          # written again from the restored record


def test_autosave_survives_a_crash(start_ioc, tmp_path, good_db):
    """SIGKILL gives no chance to flush: what the writer saved before is restored, from a valid file."""
    save = tmp_path / "ioc.sav"
    ioc = start_ioc(autosave_cmd(good_db, save, "dbpf T:count 23\n", period=0.2))
    wait_for(lambda: save.exists() and saved_values(save).get("T:count.VAL") == "23", what="save file")
    assert ioc.stop(signal.SIGKILL) == -signal.SIGKILL
    ioc2 = start_ioc(autosave_cmd(good_db, save, "dbgf T:count\n"))
    log = ioc2.wait_for_log(r"T:count: \d+")
    assert re.search(r"^T:count: 23$", log, re.M), log
    assert "rejected" not in log


def test_exit_in_the_script_shuts_down_cleanly(start_ioc, good_db):
    ioc = start_ioc(f'dbLoadRecords "{good_db}" "P=T:"\niocInit\nexit\ndbgf T:count\n')
    assert ioc.wait_exit() == 0, ioc.log()
    assert "T:count: 4" not in ioc.log()         # nothing after exit runs
    assert "shut down cleanly" in ioc.log()
