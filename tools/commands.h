/* tools/commands.h — the subcommands of bitpipec; each parses its own arguments and returns the
 * process exit status (0 ok, 1 error reported on stderr, 2 usage error). */
#ifndef BITPIPE_COMMANDS_H
#define BITPIPE_COMMANDS_H

int bp_cmd_inspect(int argc, char **argv);
int bp_cmd_run(int argc, char **argv);
int bp_cmd_schedule(int argc, char **argv);
int bp_cmd_train(int argc, char **argv);
int bp_cmd_partition(int argc, char **argv);
int bp_cmd_compile(int argc, char **argv); /* bitpipec MODEL -o TRAIN: argv[0] is MODEL */
int bp_cmd_tokenize(int argc, char **argv);

#endif
