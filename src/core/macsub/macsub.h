/* macsub.h -- macro substitution as EPICS macLib does it, for .db files, substitution files and st.cmd.
 *
 * A macro table maps names to unexpanded values; values are expanded when used, so a value may refer to
 * other macros ("P=$(SYS):", "R=$(P)m1"). A table may have a parent (a scope: include files and template
 * instances see their own definitions first) and may fall back to the process environment.
 *
 * Syntax inside text:
 *   $(NAME) ${NAME}        the value of NAME (itself expanded)
 *   $(NAME=default)        the default (expanded) when NAME is undefined
 *   $(P$(N))               names and defaults may contain macros
 *   \$                     a literal '$' (the backslash is dropped); other backslashes are kept as written
 * An undefined macro without a default and a macro that refers to itself are errors naming the macro.
 *
 * Definitions "P=a,R=b" (macsub_parse_defs): names and values are trimmed; values may be quoted with "..." or
 * '...' to keep commas, '=' and surrounding blanks; a backslash escapes the next character.
 *
 * Tables are not locked: each is owned by the one thread that loads a file or runs a script.
 */
#ifndef RELOC_MACRO_H
#define RELOC_MACRO_H

#include <stddef.h>

typedef struct macsub_table macsub_table;

/* parent may be NULL; use_env: names not found here or in a parent are looked up with getenv(). */
macsub_table *macsub_create(const macsub_table *parent, int use_env);
void macsub_free(macsub_table *table);

/* Defines (or redefines) name; the value is stored unexpanded. */
void macsub_define(macsub_table *table, const char *name, const char *value);
/* The unexpanded value of name in this table, its parents or the environment; NULL when undefined. */
const char *macsub_lookup(const macsub_table *table, const char *name);

/* Parses "A=1,B='x, y'" into the table. 0, or -1 with a message in err. */
int macsub_parse_defs(macsub_table *table, const char *defs, char *err, size_t errlen);

/* Expands every macro in text. Returns a new string (free() it), or NULL with a message in err such as
 * "undefined macro $(R)" or "macro $(A) refers to itself". */
char *macsub_expand(const macsub_table *table, const char *text, char *err, size_t errlen);

#endif
