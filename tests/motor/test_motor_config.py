"""Bad motor configuration in st.cmd or a .db file stops the IOC from starting, with a message that says what
is wrong and where (it never starts half-configured)."""
import pytest

from motor_stage import TOP

PROTOCOLS = TOP / "protocols"


@pytest.mark.parametrize("line, message", [
    ('motorControllerCreate "MC1" "127.0.0.1:1" "nonexistent.proto" 2', "cannot open protocol file nonexistent.proto"),
    ('motorControllerCreate "MC1" "no-port-here" "simmotor.proto" 2', "'no-port-here' is not host:port"),
    ('motorControllerCreate "MC1" "127.0.0.1:1" "simmotor.proto" 0', "axes must be 1..32"),
])
def test_bad_controller_lines(refuses_to_start, line, message):
    log = refuses_to_start(f'epicsEnvSet STREAM_PROTOCOL_PATH "{PROTOCOLS}"\n{line}\niocInit\n')
    assert message in log, log


def test_protocol_syntax_error_names_file_and_line(refuses_to_start, tmp_path):
    (tmp_path / "bad.proto").write_text('Terminator = LF;\nMovingBit = 1;\npoll { out "POS?"; in "%q"; }\n')
    log = refuses_to_start(f'epicsEnvSet STREAM_PROTOCOL_PATH "{tmp_path}"\n'
                         'motorControllerCreate "MC1" "127.0.0.1:1" "bad.proto" 2\niocInit\n')
    assert "bad.proto:3: unsupported converter '%q'" in log, log


def test_motor_record_on_an_unknown_controller(refuses_to_start, tmp_path):
    db = tmp_path / "m.db"
    db.write_text('record(motor, "X:m") { field(DTYP, "reloc motor") field(OUT, "@NOPE 1") }\n')
    log = refuses_to_start(f'dbLoadRecords "{db}"\niocInit\n')
    assert "no motor controller 'NOPE'" in log, log


@pytest.mark.parametrize("field, value, message", [
    ("MRES", "0", "field MRES: a step size of 0"),
    ("VELO", "-2", "field VELO: a speed must be > 0"),
    ("DHLM", "nan", "field DHLM: not a finite number"),
])
def test_motor_record_with_an_unusable_setting(refuses_to_start, tmp_path, field, value, message):
    db = tmp_path / "m.db"
    db.write_text(f'record(motor, "X:m") {{ field({field}, "{value}") }}\n')
    log = refuses_to_start(f'dbLoadRecords "{db}"\niocInit\n')
    assert f"X:m: {message}" in log, log
