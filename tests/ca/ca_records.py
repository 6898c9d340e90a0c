"""tests/ca/ca_records.py -- the test IOC of the Channel Access tests: one record of every type users read
over CA, with metadata to check, plus asynchronous and access-controlled records."""
import ioc as ioc_module

BIG_NELM = 524288          # DOUBLE elements: 4 MiB


def records_db(prefix="CAT:"):
    return f"""
record(ai, "{prefix}ai") {{
    field(DESC, "analog in")
    field(EGU, "mm")
    field(PREC, "3")
    field(HOPR, "100")
    field(LOPR, "-100")
    field(HIHI, "90")
    field(HIGH, "80")
    field(LOW, "-80")
    field(LOLO, "-90")
    field(HHSV, "MAJOR")
    field(HSV, "MINOR")
    field(LSV, "MINOR")
    field(LLSV, "MAJOR")
    field(VAL, "1.5")
}}
record(ao, "{prefix}ao") {{
    field(EGU, "V")
    field(PREC, "2")
    field(DRVH, "10")
    field(DRVL, "-10")
    field(HOPR, "12")
    field(LOPR, "-12")
}}
record(ao, "{prefix}mdel") {{
    field(MDEL, "1.0")
    field(ADEL, "5.0")
}}
record(bo, "{prefix}bo") {{
    field(ZNAM, "Off")
    field(ONAM, "On")
}}
record(mbbo, "{prefix}mbbo") {{
    field(ZRST, "zero")
    field(ONST, "one")
    field(TWST, "two")
    field(ZRVL, "0")
    field(ONVL, "1")
    field(TWVL, "2")
}}
record(longout, "{prefix}long") {{
    field(EGU, "counts")
    field(HOPR, "1000")
    field(LOPR, "0")
    field(VAL, "42")
}}
record(stringout, "{prefix}str") {{
    field(VAL, "hello")
}}
record(waveform, "{prefix}wf") {{
    field(FTVL, "DOUBLE")
    field(NELM, "10")
}}
record(waveform, "{prefix}chars") {{
    field(FTVL, "CHAR")
    field(NELM, "64")
}}
record(waveform, "{prefix}big") {{
    field(FTVL, "DOUBLE")
    field(NELM, "{BIG_NELM}")
}}
record(calc, "{prefix}ticks") {{
    field(SCAN, ".1 second")
    field(CALC, "A+1")
    field(INPA, "{prefix}ticks NPP")
}}
record(ao, "{prefix}slow") {{
    field(DTYP, "Async Delay")
    field(OUT, "@0.5")
}}
record(ao, "{prefix}locked") {{
    field(ASG, "LOCKED")
    field(VAL, "3")
}}
record(ao, "{prefix}hostlocked") {{
    field(ASG, "HOSTLOCKED")
    field(VAL, "4")
}}
record(ao, "{prefix}open") {{
    field(ASG, "OPERATORS")
    field(VAL, "5")
}}
"""


def acf_text(user, host):
    """Access rules: LOCKED is writable only by a user that is not us, HOSTLOCKED only from another host,
    OPERATORS by us."""
    return f"""
UAG(nobody) {{ someone_else }}
UAG(operators) {{ {user} }}
HAG(elsewhere) {{ some.other.host }}
HAG(here) {{ {host} }}
ASG(DEFAULT) {{
    RULE(1, WRITE)
}}
ASG(LOCKED) {{
    RULE(1, READ)
    RULE(1, WRITE) {{ UAG(nobody) }}
}}
ASG(HOSTLOCKED) {{
    RULE(1, READ)
    RULE(1, WRITE) {{ UAG(operators) HAG(elsewhere) }}
}}
ASG(OPERATORS) {{
    RULE(1, READ)
    RULE(1, WRITE) {{ UAG(operators) HAG(here) }}
}}
"""


def st_cmd(db_path, acf_path=None):
    return ioc_module.st_cmd([f'asSetFilename("{acf_path}")'] if acf_path else [], f'dbLoadRecords("{db_path}")')
