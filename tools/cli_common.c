/* tools/cli_common.c — argument helpers shared by the model subcommands. */
#include "tools/cli_common.h"
#include "frontend/npy.h"
#include "frontend/onnx_load.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int bp_cli_parse_bind(bp_cli_model_args *a, const char *s) {
  const char *eq = strchr(s, '=');
  if (!eq || eq == s) {
    fprintf(stderr, "bitpipec: --bind expects NAME=VALUE, got '%s'\n", s);
    return -1;
  }
  char *end;
  errno = 0;
  long long v = strtoll(eq + 1, &end, 10);
  if (errno || *end || v <= 0) {
    fprintf(stderr, "bitpipec: --bind %s: value must be a positive integer\n", s);
    return -1;
  }
  if (a->nbinds >= BP_MAX_BINDS) {
    fprintf(stderr, "bitpipec: too many --bind options (max %d)\n", BP_MAX_BINDS);
    return -1;
  }
  /* the name is the part before '=' of argv, which lives as long as the process */
  ((char *)eq)[0] = 0;
  a->binds[a->nbinds].name = s;
  a->binds[a->nbinds++].value = v;
  return 0;
}

int bp_cli_parse_input(bp_cli_model_args *a, const char *s) {
  const char *eq = strchr(s, '=');
  if (!eq || eq == s || !eq[1]) {
    fprintf(stderr, "bitpipec: --input expects NAME=FILE, got '%s'\n", s);
    return -1;
  }
  if (a->ninputs >= BP_MAX_INPUTS) {
    fprintf(stderr, "bitpipec: too many --input options (max %d)\n", BP_MAX_INPUTS);
    return -1;
  }
  ((char *)eq)[0] = 0;
  a->input_names[a->ninputs] = s;
  a->input_files[a->ninputs++] = eq + 1;
  return 0;
}

int bp_cli_read_inputs(const bp_graph *g, const bp_cli_model_args *a, bp_value **given, bp_err *e) {
  for (int i = 0; i < g->ninputs; i++) given[i] = NULL;
  for (int k = 0; k < a->ninputs; k++) {
    int slot = -1;
    for (int i = 0; i < g->ninputs; i++)
      if (strcmp(g->tensors[g->inputs[i]]->name, a->input_names[k]) == 0) slot = i;
    if (slot < 0) {
      char names[1024];
      size_t n = 0;
      names[0] = 0;
      for (int i = 0; i < g->ninputs && n < sizeof names; i++)
        n += (size_t)snprintf(names + n, sizeof names - n, "%s'%s'", i ? ", " : "", g->tensors[g->inputs[i]]->name);
      return bp_errf(e, "--input %s: the model has no input of that name (its inputs: %s)", a->input_names[k],
                     g->ninputs ? names : "none");
    }
    if (given[slot]) return bp_errf(e, "--input %s given twice", a->input_names[k]);
    given[slot] = calloc(1, sizeof(bp_value));
    if (!given[slot]) return bp_errf(e, "out of memory");
    if (bp_value_read_file(a->input_files[k], given[slot], e) < 0) return -1;
  }
  return 0;
}

void bp_cli_free_inputs(const bp_graph *g, bp_value **given) {
  for (int i = 0; i < g->ninputs; i++)
    if (given[i]) {
      free(given[i]->data);
      free(given[i]);
      given[i] = NULL;
    }
}

int bp_cli_require_inputs(const bp_graph *g, bp_value *const *given, bp_err *e) {
  for (int i = 0; i < g->ninputs; i++)
    if (!given[i]) {
      const char *name = g->tensors[g->inputs[i]]->name;
      return bp_errf(e, "input '%s' was not given (use --input %s=FILE)", name, name);
    }
  return 0;
}
