/* tools/cli_common.h — argument helpers shared by the model subcommands (inspect, run). */
#ifndef BITPIPE_CLI_COMMON_H
#define BITPIPE_CLI_COMMON_H

#include "frontend/passes.h"

#define BP_MAX_BINDS 32
#define BP_MAX_INPUTS 64

typedef struct {
  const char *model;
  bp_binding binds[BP_MAX_BINDS];
  int nbinds;
  const char *input_names[BP_MAX_INPUTS];
  const char *input_files[BP_MAX_INPUTS];
  int ninputs;
  const char *output_dir;
} bp_cli_model_args;

/* Parses "NAME=VALUE" for --bind; returns -1 with a message on stderr. */
int bp_cli_parse_bind(bp_cli_model_args *a, const char *s);
/* Parses "NAME=FILE" for --input. */
int bp_cli_parse_input(bp_cli_model_args *a, const char *s);
/* Reads the --input files and orders them as the graph's inputs (given[i] for graph input i).
 * Unknown input names are an error listing the graph's inputs. */
int bp_cli_read_inputs(const bp_graph *g, const bp_cli_model_args *a, bp_value **given, bp_err *e);
void bp_cli_free_inputs(const bp_graph *g, bp_value **given);
/* Fails, naming the first graph input that has no --input, when any is missing. */
int bp_cli_require_inputs(const bp_graph *g, bp_value *const *given, bp_err *e);

#endif
