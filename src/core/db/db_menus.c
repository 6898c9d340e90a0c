/* db_menus.c -- the menus shared by db_common and the record types (choice strings as in EPICS Base). */
#include "core/db/db_internal.h"

#define MENU(var, menu_name, ...) \
    static const char *const var##_choices[] = {__VA_ARGS__}; \
    const db_menu var = {menu_name, (int)(sizeof var##_choices / sizeof var##_choices[0]), var##_choices}

MENU(menuScan, "menuScan", "Passive", "Event", "I/O Intr", "10 second", "5 second", "2 second", "1 second",
     ".5 second", ".2 second", ".1 second");
MENU(menuPini, "menuPini", "NO", "YES", "RUN", "RUNNING", "PAUSE", "PAUSED");
MENU(menuPriority, "menuPriority", "LOW", "MEDIUM", "HIGH");
MENU(menuAlarmSevr, "menuAlarmSevr", "NO_ALARM", "MINOR", "MAJOR", "INVALID");
MENU(menuAlarmStat, "menuAlarmStat", "NO_ALARM", "READ", "WRITE", "HIHI", "HIGH", "LOLO", "LOW", "STATE",
     "COS", "COMM", "TIMEOUT", "HWLIMIT", "CALC", "SCAN", "LINK", "SOFT", "BAD_SUB", "UDF", "DISABLE", "SIMM",
     "READ_ACCESS", "WRITE_ACCESS");
MENU(menuYesNo, "menuYesNo", "NO", "YES");
MENU(menuOmsl, "menuOmsl", "supervisory", "closed_loop");
MENU(menuFtype, "menuFtype", "STRING", "CHAR", "UCHAR", "SHORT", "USHORT", "LONG", "ULONG", "INT64", "UINT64",
     "FLOAT", "DOUBLE", "ENUM");
MENU(menuIvoa, "menuIvoa", "Continue normally", "Don't drive outputs", "Set output to IVOV");
