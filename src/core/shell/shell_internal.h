/* shell_internal.h -- (private to src/core/shell) the groups of built-in commands, registered by
 * shell_register_builtins(): ioc_commands.c (environment, loading, iocInit, exit) and db_commands.c
 * (dbl, dbpr, dbpf, dbgf). */
#ifndef RELOC_SHELL_COMMANDS_H
#define RELOC_SHELL_COMMANDS_H

void shell_register_ioc_commands(void);
void shell_register_db_commands(void);

#endif
