/* dbload.h -- loading record databases: the EPICS .db syntax, substitution files, and the glue that puts
 * what was parsed into the record database (src/core/db).
 *
 * Parsing knows nothing of db: it produces a parse tree (dbload_db) of records with their fields, info
 * items and aliases, each remembering file and line. Loading (dbload_records, dbload_template) parses every
 * file first, validates the whole tree against the registered record types (types, field names, record
 * names, aliases) and only then creates records; so a file with a syntax, macro, type, field or name error
 * loads nothing of itself. A value a field refuses (e.g. SCAN "sometimes") is only found while the records
 * are created: the load fails with its file:line, and since loading happens before iocInit the IOC then
 * refuses to start, so the records created before it are never served.
 *
 * .db syntax:
 *   record(TYPE, "NAME") { field(F, "v") info(key, "v") alias("A") }   (grecord is the same; the body is
 *   optional; TYPE "*" refers to a record defined earlier), alias("REC", "ALIAS"), include "file.db",
 *   '#' comments, quoted strings with C escapes or bare words, $(M) macros (see macro.h) expanded line by
 *   line before parsing (comments are not expanded).
 * Include files are found relative to the including file, then the current directory, then each directory
 * of EPICS_DB_INCLUDE_PATH (colon-separated).
 *
 * Substitution files (dbLoadTemplate):
 *   global { P=IOC:, R=x }
 *   file "x.db" { pattern { P, R } { "a", "b" } { c, d } }
 *   file x.db { { P="a", R=b } }
 * Values are macro text expanded when the .db file is loaded, so they may refer to other macros.
 *
 * Errors are "file:line[:col]: message". Not thread-safe; the st.cmd shell's thread does all loading.
 */
#ifndef RELOC_DBLOAD_H
#define RELOC_DBLOAD_H

#include <stddef.h>

#include "core/macsub/macsub.h"

/* One field(F, v), info(k, v) or alias(A) (key NULL) inside a record, or a top-level alias(REC, A). */
typedef struct dbload_item {
    char *key;
    char *value;
    const char *file;     /* points into dbload_db.files */
    int line;
} dbload_item;

typedef struct dbload_record {
    char *type;           /* record type name, or "*" for an existing record */
    char *name;
    const char *file;
    int line;
    dbload_item *fields, *infos, *aliases;
    size_t nfields, ninfos, naliases;
} dbload_record;

typedef struct dbload_db {
    dbload_record *records;
    size_t nrecords;
    dbload_item *aliases;  /* top-level: key = record name, value = alias */
    size_t naliases;
    char **files;          /* every file read, owned here */
    size_t nfiles;
} dbload_db;

/* Parses a .db file (and its includes) into db, expanding macros from `macros` (may be NULL). 0, or -1
 * with "file:line:col: message" in err (db then holds what was parsed before the error; free it). */
int dbload_parse_file(dbload_db *db, const char *path, const macsub_table *macros, char *err, size_t errlen);
/* The same for text in memory; `name` is used in messages and includes are relative to the cwd. */
int dbload_parse_text(dbload_db *db, const char *text, const char *name, const macsub_table *macros, char *err,
                      size_t errlen);
void dbload_db_free(dbload_db *db);

/* One instance of a substitution file: a .db file with its macro definitions. */
typedef struct dbload_instance {
    char *dbfile;          /* as written (macros in it are expanded when loading) */
    const char *file;      /* the substitution file, for messages */
    int line;
    macsub_table *macros;   /* globals in force + the instance's own; parent is the caller's table */
} dbload_instance;

typedef struct dbload_substitutions {
    dbload_instance *instances;
    size_t ninstances;
    char *file;
} dbload_substitutions;

/* Parses a substitution file. Macro tables of the instances have `parent` as parent. 0 or -1 with err. */
int dbload_parse_template(dbload_substitutions *tpl, const char *path, const macsub_table *parent, char *err,
                          size_t errlen);
int dbload_parse_template_text(dbload_substitutions *tpl, const char *text, const char *name,
                               const macsub_table *parent, char *err, size_t errlen);
void dbload_template_free(dbload_substitutions *tpl);

/* Finds a file named by the .db world: absolute as is; otherwise relative to `dir` (may be NULL), the
 * current directory, then EPICS_DB_INCLUDE_PATH. Returns a new string or NULL when not found. */
char *dbload_find_file(const char *name, const char *dir);

/* Checks a parsed tree against the record database's registered types and existing records: known record
 * types, known field names, valid record names, no type clash, aliases of existing records. 0 or -1 with
 * "file:line: message" in err. */
int dbload_validate(const dbload_db *db, char *err, size_t errlen);
/* Validates, then creates every record of the tree in the database. */
int dbload_apply(const dbload_db *db, char *err, size_t errlen);

/* dbLoadRecords("file", "P=..,R=..") and dbLoadTemplate("file.substitutions", "macros"): parse everything,
 * validate, then create. Macros not defined in `defs` come from the environment. 0, or -1 with err. */
int dbload_records(const char *path, const char *defs, char *err, size_t errlen);
int dbload_template(const char *path, const char *defs, char *err, size_t errlen);

#endif
