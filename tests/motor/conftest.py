"""tests/motor/conftest.py -- one simulator and one IOC with the real motor templates per test module."""
import pytest

from motor_stage import start_stage, stop_stage


@pytest.fixture(scope="module")
def stage(request, tmp_path_factory):
    """(simulator, ioc) shared by the tests of one module, whose PV prefix is its module-level P (and st.cmd
    lines after iocInit its AFTER_INIT, if any); checked for sanitizer reports at the end."""
    sim, ioc = start_stage(tmp_path_factory.mktemp("motor_ioc"), request.module.P,
                           after_init=getattr(request.module, "AFTER_INIT", ""))
    try:
        yield sim, ioc
    finally:
        stop_stage(sim, ioc)
