"""Moves from the web view that an operator can trust, on the default IOC (st.cmd unchanged), through HTTP (urllib
and raw sockets) and pyepics: a move is planned from where the stage is when it is asked for, not from the last
frame a browser saw; the reply is the motors' verdict (4xx and the reason when refused); STOP stops every stage
motor without Move:Enable; POSTs from another origin are refused; connections that send half a request are
closed."""
import http.client
import json
import socket
import time
import urllib.request

import pytest

from ioc import wait_for
from test_web_view import pv, stage_position as stage_um, web_ioc  # noqa: F401 (fixture)


def post(port, path, body="", headers=None, timeout=60):
    """A POST as a script would send it (urllib sets Host, no Origin); returns (status, reply JSON)."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    connection.request("POST", path, body=body, headers={"Content-Type": "application/x-www-form-urlencoded",
                                                         **(headers or {})})
    reply = connection.getresponse()
    status, data = reply.status, json.loads(reply.read())
    connection.close()
    return status, data


@pytest.fixture
def web(web_ioc):  # noqa: F811
    """The default IOC with a free web port; returns the port."""
    return int(web_ioc.rsplit(":", 1)[1].strip("/"))


def test_move_is_planned_from_where_the_stage_is_now(web):
    """Finding 2: a browser watched (a JPEG was made at the start position) and left; the stage then moved by CA.
    POST /move x=1000 must take the stage to 1000 um, not 1000 um further than the old frame."""
    assert pv("cam1:ImageMode").put(2, wait=True) and pv("cam1:Acquire").put(1)
    with urllib.request.urlopen(f"http://127.0.0.1:{web}/events", timeout=10) as events:   # a browser watches
        wait_for(lambda: b"event: frame" in events.read1(65536), 20, "a frame event")
    start = stage_um()
    assert pv("samx").put(1.0, wait=True, timeout=30)                 # moved by CA, no browser open
    assert abs(stage_um()[0] - 1000) < 1
    assert pv("Move:Enable").put(1, wait=True)
    status, reply = post(web, "/move", f"x=1000&y={start[1]}")
    assert status == 200 and reply["ok"], reply
    assert reply["message"].startswith("at 1000.000,"), reply
    x, y = stage_um()
    assert abs(x - 1000) < 1 and abs(y - start[1]) < 1, (x, y)
    # A relative move only when asked for: by 30 um from where it is.
    status, reply = post(web, "/move", "x=30&y=-20&relative=1")
    assert status == 200, reply
    x2, y2 = stage_um()
    assert abs(x2 - (x + 30)) < 1 and abs(y2 - (y - 20)) < 1, (x2, y2)


def test_refused_moves_answer_with_the_motors_reason(web):
    """Finding 3: a target beyond samx's soft limit (9.5 mm) is refused with the reason; a disabled motor too;
    moves while Move:Enable is off are refused; nothing moves."""
    start = stage_um()
    status, reply = post(web, "/move", "x=1000&y=0")
    assert status == 403 and not reply["ok"] and "disabled" in reply["message"], reply
    assert pv("Move:Enable").put(1, wait=True)
    status, reply = post(web, "/move", "x=20000&y=0")
    assert status == 409 and not reply["ok"], reply
    assert "samx" in reply["message"] and "soft limits" in reply["message"], reply
    assert pv("samx_able").put(1, wait=True)                            # samx disabled (DISP)
    status, reply = post(web, "/move", "x=2000&y=0")
    assert status == 409 and "samx" in reply["message"] and "disabled" in reply["message"], reply
    assert pv("samx_able").put(0, wait=True)
    time.sleep(0.5)
    assert max(abs(a - b) for a, b in zip(stage_um(), start)) < 0.5
    status, reply = post(web, "/move", "x=nan&y=0")
    assert status == 400, reply


def test_stop_stops_every_stage_motor_without_enable(web):
    assert not pv("Move:Enable").get()
    assert pv("samy").put(6.0)                                           # 6 mm at 2 mm/s: 3 s
    wait_for(lambda: pv("samy.DMOV").get() == 0, 10, "samy moving")
    status, reply = post(web, "/stop")
    assert status == 200 and reply["ok"], reply
    wait_for(lambda: pv("samy.DMOV").get() == 1, 10, "samy stopped")
    assert pv("samy.RBV").get() < 5.0


def test_cross_origin_posts_are_refused(web):
    """Finding 10: another site's page (Origin), a rebound host name (Host) and a cross-site fetch do not move
    the stage; the page's own origin does."""
    assert pv("Move:Enable").put(1, wait=True)
    start = stage_um()
    for headers in ({"Origin": "http://evil.example"}, {"Host": "evil.example"},
                    {"Host": "evil.example", "Origin": "http://evil.example"}, {"Sec-Fetch-Site": "cross-site"}):
        status, reply = post(web, "/move", f"x={start[0] + 50}&y={start[1]}", headers)
        assert status == 403 and not reply["ok"], (headers, reply)
        status, reply = post(web, "/stop", "", headers)
        assert status == 403, (headers, reply)
    time.sleep(0.5)
    assert abs(stage_um()[0] - start[0]) < 0.5
    status, reply = post(web, "/move", f"x={start[0] + 50}&y={start[1]}",
                         {"Origin": f"http://127.0.0.1:{web}", "Sec-Fetch-Site": "same-origin"})
    assert status == 200, reply
    assert abs(stage_um()[0] - (start[0] + 50)) < 1


def test_half_sent_requests_are_closed(web):
    """Finding 10: 20 connections that send half a header are closed by the server; it serves others meanwhile."""
    clients = []
    for _ in range(20):
        client = socket.create_connection(("127.0.0.1", web), timeout=30)
        client.sendall(b"POST /move HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Le")
        clients.append(client)
    with urllib.request.urlopen(f"http://127.0.0.1:{web}/", timeout=10) as page:
        assert b"reloc live view" in page.read()
    for client in clients:   # each read ends when the server closes (30 s at most per socket, bounded)
        try:
            assert client.recv(1024) == b""
        except ConnectionResetError:
            pass
        client.close()
