/* toolargs.h -- strict parsing of command-line values for the bin/reloc-* tools: a number is accepted only when
 * the whole argument is one (no trailing text, finite, in range), so a typo is reported instead of becoming 0.
 * No state; thread-safe.
 */
#ifndef RELOC_TOOLARGS_H
#define RELOC_TOOLARGS_H

/* Returns 0 and the value, or -1 when s is not a finite number. */
int toolargs_double(const char *s, double *out);
/* Returns 0 and the value, or -1 when s is not an integer in lo..hi. */
int toolargs_int(const char *s, int lo, int hi, int *out);
/* Cuts the extension (".h5", ".txt", ...) off the last component of a path, in place. */
void toolargs_strip_extension(char *path);

#endif
