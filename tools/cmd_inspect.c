/* tools/cmd_inspect.c — `bitpipec inspect MODEL [--bind N=V]...`: what the model is and what
 * the frontend makes of it (opsets, inputs/outputs, op histograms before and after folding,
 * parameters, forward FLOPs for the bound shapes). */
#include "tools/cli_common.h"
#include "tools/commands.h"
#include "frontend/onnx_load.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void help(FILE *f) {
  fprintf(f, "usage: bitpipec inspect MODEL [--bind NAME=VALUE]... [--input NAME=FILE]...\n"
             "\n"
             "Prints the model's opsets, graph inputs and outputs (with symbolic dimensions), the op\n"
             "histogram before and after constant folding and cleanup, the parameter count and bytes\n"
             "(float initializers the graph uses), and the forward FLOPs for the bound shapes.\n"
             "\n"
             "  --bind NAME=VALUE   bind a symbolic dimension (e.g. --bind batch=8 --bind sequence=1024)\n"
             "  --input NAME=FILE   take an input's shape from a .npy or TensorProto .pb file\n");
}

static void print_value_shape(const bp_tensor *t) {
  printf("[");
  for (int d = 0; d < t->v.rank; d++) {
    if (d) printf(", ");
    if (t->dim_param[d]) printf("%s", t->dim_param[d]);
    else if (t->v.dims[d] < 0) printf("?");
    else printf("%lld", (long long)t->v.dims[d]);
  }
  printf("]");
}

static void print_histogram(const bp_graph *g) {
  /* op types in first-seen order with counts */
  int *count = calloc((size_t)(g->nnodes ? g->nnodes : 1), sizeof(int));
  if (!count) return;
  for (int i = 0; i < g->nnodes; i++) {
    int first = i;
    for (int j = 0; j < i; j++)
      if (strcmp(g->nodes[j]->op_type, g->nodes[i]->op_type) == 0) {
        first = j;
        break;
      }
    count[first]++;
  }
  int col = 0;
  for (int i = 0; i < g->nnodes; i++)
    if (count[i]) {
      col += printf("  %s %d", g->nodes[i]->op_type, count[i]);
      if (col > 90) {
        printf("\n");
        col = 0;
      }
    }
  if (col) printf("\n");
  free(count);
}

static const char *human_bytes(double b, char *buf, size_t n) {
  const char *u[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  int k = 0;
  while (b >= 1024 && k < 4) { b /= 1024; k++; }
  snprintf(buf, n, k ? "%.2f %s" : "%.0f %s", b, u[k]);
  return buf;
}

int bp_cmd_inspect(int argc, char **argv) {
  bp_cli_model_args a;
  memset(&a, 0, sizeof a);
  for (int i = 1; i < argc; i++) {
    if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) { help(stdout); return 0; }
    if (strcmp(argv[i], "--bind") == 0 && i + 1 < argc) { if (bp_cli_parse_bind(&a, argv[++i]) < 0) return 2; }
    else if (strncmp(argv[i], "--bind=", 7) == 0) { if (bp_cli_parse_bind(&a, argv[i] + 7) < 0) return 2; }
    else if (strcmp(argv[i], "--input") == 0 && i + 1 < argc) { if (bp_cli_parse_input(&a, argv[++i]) < 0) return 2; }
    else if (argv[i][0] == '-') { fprintf(stderr, "bitpipec inspect: unknown option '%s' (see --help)\n", argv[i]); return 2; }
    else if (!a.model) a.model = argv[i];
    else { fprintf(stderr, "bitpipec inspect: more than one model given ('%s')\n", argv[i]); return 2; }
  }
  if (!a.model) { help(stderr); return 2; }
  bp_err e = {0};
  bp_graph *g = bp_onnx_load(a.model, &e);
  if (!g) { fprintf(stderr, "bitpipec inspect: %s\n", e.msg); return 1; }
  int rc = 1;
  bp_value *given[BP_MAX_INPUTS] = {0};
  printf("model      %s\n", a.model);
  printf("producer   %s (ONNX IR version %lld)\n", g->producer, (long long)g->ir_version);
  printf("opsets    ");
  for (int i = 0; i < g->nopsets; i++) printf(" %s %lld", *g->opsets[i].domain ? g->opsets[i].domain : "ai.onnx", (long long)g->opsets[i].version);
  printf("\ninputs\n");
  for (int i = 0; i < g->ninputs; i++) {
    const bp_tensor *t = g->tensors[g->inputs[i]];
    printf("  %-24s %-8s ", t->name, bp_dtype_name(t->v.dtype));
    print_value_shape(t);
    printf("\n");
  }
  printf("outputs\n");
  for (int i = 0; i < g->noutputs; i++) {
    const bp_tensor *t = g->tensors[g->outputs[i]];
    printf("  %-24s %-8s ", t->name, bp_dtype_name(t->v.dtype));
    print_value_shape(t);
    printf("\n");
  }
  printf("nodes before folding: %d\n", g->nnodes);
  print_histogram(g);
  if (g->ninputs > BP_MAX_INPUTS) { fprintf(stderr, "bitpipec inspect: too many graph inputs\n"); goto done; }
  if (bp_cli_read_inputs(g, &a, given, &e) < 0) { fprintf(stderr, "bitpipec inspect: %s\n", e.msg); goto done; }
  bp_ctx ctx = {0};
  bp_fold_stats st;
  if (bp_prepare_graph(g, a.binds, a.nbinds, given, &ctx, 0, &st, &e) < 0) {
    fprintf(stderr, "bitpipec inspect: %s\n", e.msg);
    goto done;
  }
  printf("bound inputs\n");
  for (int i = 0; i < g->ninputs; i++) {
    const bp_tensor *t = g->tensors[g->inputs[i]];
    char s[160];
    printf("  %-24s %-8s %s\n", t->name, bp_dtype_name(t->v.dtype), bp_shape_str(&t->v, s, sizeof s));
  }
  printf("bound outputs\n");
  for (int i = 0; i < g->noutputs; i++) {
    const bp_tensor *t = g->tensors[g->outputs[i]];
    char s[160];
    printf("  %-24s %-8s %s\n", t->name, bp_dtype_name(t->v.dtype), bp_shape_str(&t->v, s, sizeof s));
  }
  printf("nodes after folding and cleanup: %d (%d folded into constants, %d computations on weights only kept as views)\n",
         g->nnodes, st.folded_nodes, st.weight_views);
  print_histogram(g);
  /* Parameters: float initializers still used by the remaining nodes. */
  unsigned char *used = calloc((size_t)g->ntensors, 1);
  if (!used) goto done;
  for (int i = 0; i < g->nnodes; i++)
    for (int k = 0; k < g->nodes[i]->nin; k++)
      if (g->nodes[i]->in[k] >= 0) used[g->nodes[i]->in[k]] = 1;
  long long nparams = 0, nelems = 0;
  double pbytes = 0, cbytes = 0;
  int nconst = 0;
  for (int t = 0; t < g->ntensors; t++) {
    const bp_tensor *tt = g->tensors[t];
    if (!used[t]) continue;
    if (tt->kind == BP_T_INITIALIZER) {
      nparams++;
      nelems += bp_value_numel(&tt->v);
      pbytes += (double)bp_value_bytes(&tt->v);
    } else if (tt->kind == BP_T_CONSTANT) {
      nconst++;
      cbytes += (double)bp_value_bytes(&tt->v);
    }
  }
  free(used);
  char b1[64], b2[64];
  printf("parameters  %lld tensors, %lld elements, %s (float initializers in use)\n", nparams, nelems,
         human_bytes(pbytes, b1, sizeof b1));
  printf("constants   %d tensors, %s (folded or non-float)\n", nconst, human_bytes(cbytes, b2, sizeof b2));
  double fl = bp_graph_flops(g);
  printf("forward     %.4g FLOPs for the bound shapes (analytic count: 2*M*N*K per GEMM, 1 per output element otherwise)\n", fl);
  rc = 0;
done:
  bp_cli_free_inputs(g, given);
  bp_graph_free(g);
  return rc;
}
