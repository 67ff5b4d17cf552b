/* tools/cmd_run.c — `bitpipec run MODEL --input NAME=FILE ... [--output-dir DIR]`: runs the
 * forward pass on the CPU and writes each graph output to DIR/NAME.npy. */
#include "tools/cli_common.h"
#include "tools/commands.h"
#include "frontend/npy.h"
#include "frontend/onnx_load.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static void help(FILE *f) {
  fprintf(f, "usage: bitpipec run MODEL --input NAME=FILE [--input NAME=FILE]... [--bind NAME=VALUE]...\n"
             "                          [--output-dir DIR]\n"
             "\n"
             "Runs the model's forward pass on the CPU (inference semantics: Dropout is the identity)\n"
             "and writes every graph output to DIR/NAME.npy (characters other than [A-Za-z0-9._-] in\n"
             "NAME become '_'). Input files are .npy or ONNX TensorProto .pb (the ONNX test-data format).\n"
             "\n"
             "  --input NAME=FILE   value of graph input NAME\n"
             "  --bind NAME=VALUE   bind a symbolic dimension (otherwise taken from the inputs' shapes)\n"
             "  --output-dir DIR    where to write outputs (default: current directory; created if missing)\n");
}

int bp_cmd_run(int argc, char **argv) {
  bp_cli_model_args a;
  memset(&a, 0, sizeof a);
  a.output_dir = ".";
  for (int i = 1; i < argc; i++) {
    if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) { help(stdout); return 0; }
    if (strcmp(argv[i], "--bind") == 0 && i + 1 < argc) { if (bp_cli_parse_bind(&a, argv[++i]) < 0) return 2; }
    else if (strcmp(argv[i], "--input") == 0 && i + 1 < argc) { if (bp_cli_parse_input(&a, argv[++i]) < 0) return 2; }
    else if (strcmp(argv[i], "--output-dir") == 0 && i + 1 < argc) a.output_dir = argv[++i];
    else if (argv[i][0] == '-') { fprintf(stderr, "bitpipec run: unknown option or missing value '%s' (see --help)\n", argv[i]); return 2; }
    else if (!a.model) a.model = argv[i];
    else { fprintf(stderr, "bitpipec run: more than one model given ('%s')\n", argv[i]); return 2; }
  }
  if (!a.model) { help(stderr); return 2; }
  bp_err e = {0};
  bp_graph *g = bp_onnx_load(a.model, &e);
  if (!g) { fprintf(stderr, "bitpipec run: %s\n", e.msg); return 1; }
  int rc = 1;
  bp_value *given[BP_MAX_INPUTS] = {0};
  bp_value *outs = NULL;
  if (g->ninputs > BP_MAX_INPUTS) { fprintf(stderr, "bitpipec run: too many graph inputs\n"); goto done; }
  if (bp_cli_read_inputs(g, &a, given, &e) < 0) { fprintf(stderr, "bitpipec run: %s\n", e.msg); goto done; }
  bp_ctx ctx = {0};
  int prc = bp_prepare_graph(g, a.binds, a.nbinds, given, &ctx, 0, NULL, &e);
  if (prc < 0 && bp_err_needs_constant(&e)) {
    /* Shapes depend on input values: specialise on the given integer inputs and prepare again. */
    bp_graph *g2 = bp_onnx_load(a.model, &e);
    if (g2) {
      fprintf(stderr, "bitpipec run: note: %s; using the given integer inputs as compile-time constants\n", e.msg);
      bp_graph_free(g);
      g = g2;
      memset(&e, 0, sizeof e);
      prc = bp_prepare_graph(g, a.binds, a.nbinds, given, &ctx, 1, NULL, &e);
    }
  }
  if (prc < 0) {
    fprintf(stderr, "bitpipec run: %s\n", e.msg);
    goto done;
  }
  if (bp_cli_require_inputs(g, given, &e) < 0) {
    fprintf(stderr, "bitpipec run: %s\n", e.msg);
    goto done;
  }
  outs = calloc((size_t)(g->noutputs ? g->noutputs : 1), sizeof(bp_value));
  if (!outs) goto done;
  if (bp_execute(g, &ctx, given, outs, &e) < 0) {
    fprintf(stderr, "bitpipec run: %s\n", e.msg);
    free(outs);
    outs = NULL;
    goto done;
  }
  if (mkdir(a.output_dir, 0777) != 0 && errno != EEXIST) {
    fprintf(stderr, "bitpipec run: cannot create output directory '%s': %s\n", a.output_dir, strerror(errno));
    goto done;
  }
  rc = 0;
  for (int i = 0; i < g->noutputs; i++) {
    char name[256], path[4096];
    snprintf(name, sizeof name, "%s", g->tensors[g->outputs[i]]->name);
    for (char *p = name; *p; p++)
      if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') || *p == '.' || *p == '_' || *p == '-'))
        *p = '_';
    snprintf(path, sizeof path, "%s/%s.npy", a.output_dir, name);
    if (bp_npy_write(path, &outs[i], &e) < 0) {
      fprintf(stderr, "bitpipec run: %s\n", e.msg);
      rc = 1;
      break;
    }
    char s[160];
    printf("wrote %s (%s %s)\n", path, bp_dtype_name(outs[i].dtype), bp_shape_str(&outs[i], s, sizeof s));
  }
done:
  if (outs)
    for (int i = 0; i < g->noutputs; i++) free(outs[i].data);
  free(outs);
  bp_cli_free_inputs(g, given);
  bp_graph_free(g);
  return rc;
}
