/* codegen/emit_c.c — writes the training program's C source (train.c): readable static data for
 * runtime/plan.h and one forward / backward_input / backward_weight function per stage.
 *
 * Layout of the file: a header comment (model, schedule, partition, prediction, memory, how to
 * rebuild), then per stage its tensor table (arena and offset of every tensor), its nodes (op,
 * inputs, outputs, attributes with their data), the three functions (one bp_rt_run_node call per
 * node, with the node's name, op and shapes in a comment), its boundary / data / parameter lists
 * and the bp_rt_stage record; then the schedule program (every rank's instruction list), the
 * parameter table, the model, the hyper-parameters, the plan and main(). */
#include "codegen/codegen.h"

#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* A C string literal (escapes quotes, backslashes and everything outside printable ASCII). */
static void c_str(FILE *f, const char *s) {
  fputc('"', f);
  for (const unsigned char *p = (const unsigned char *)(s ? s : ""); *p; p++) {
    if (*p == '"' || *p == '\\') fprintf(f, "\\%c", *p);
    else if (*p >= 0x20 && *p < 0x7f && *p != '?') fputc(*p, f); /* '?': no trigraphs */
    else fprintf(f, "\\%03o", *p);
  }
  fputc('"', f);
}

/* Text safe inside a C comment. */
static void c_comment(FILE *f, const char *s) {
  for (const char *p = s ? s : ""; *p; p++) {
    if (p[0] == '*' && p[1] == '/') fputs("* ", f);
    else if (p[0] == '/' && p[1] == '*') fputs("/ ", f);
    else if ((unsigned char)*p >= 0x20 || *p == '\t') fputc(*p, f);
    else fputc(' ', f);
  }
}

static const char *dtype_enum(int t) {
  switch (t) {
  case BP_F32: return "BP_F32";
  case BP_U8: return "BP_U8";
  case BP_I8: return "BP_I8";
  case BP_U16: return "BP_U16";
  case BP_I16: return "BP_I16";
  case BP_I32: return "BP_I32";
  case BP_I64: return "BP_I64";
  case BP_BOOL: return "BP_BOOL";
  case BP_F16: return "BP_F16";
  case BP_F64: return "BP_F64";
  case BP_U32: return "BP_U32";
  case BP_U64: return "BP_U64";
  case BP_BF16: return "BP_BF16";
  default: return NULL;
  }
}

static const char *mem_enum(int m) {
  static const char *n[] = {"BP_MEM_PARAM", "BP_MEM_CONST", "BP_MEM_SLOT", "BP_MEM_WORK"};
  return m >= 0 && m < 4 ? n[m] : "BP_MEM_WORK";
}

static const char *op_enum(int op) {
  static const char *n[BP_OP_COUNT] = {"BP_OP_FWD", "BP_OP_BWD", "BP_OP_BWD_INPUT", "BP_OP_BWD_WEIGHT",
                                       "BP_OP_SEND_ACT", "BP_OP_RECV_ACT", "BP_OP_SEND_GRAD", "BP_OP_RECV_GRAD",
                                       "BP_OP_LOCAL_ACT", "BP_OP_LOCAL_GRAD", "BP_OP_ALLREDUCE_START",
                                       "BP_OP_ALLREDUCE_WAIT", "BP_OP_OPTIMIZER_STEP"};
  return op >= 0 && op < BP_OP_COUNT ? n[op] : NULL;
}

static void c_float(FILE *f, double x) {
  if (isnan(x)) fputs("NAN", f);
  else if (isinf(x)) fputs(x > 0 ? "INFINITY" : "-INFINITY", f);
  else {
    char b[64];
    snprintf(b, sizeof b, "%.9g", x);
    fprintf(f, "%s%sf", b, strpbrk(b, ".e") ? "" : ".0"); /* "1f" is not a C constant */
  }
}

static void c_double(FILE *f, double x) {
  if (isnan(x)) fputs("NAN", f);
  else if (isinf(x)) fputs(x > 0 ? "INFINITY" : "-INFINITY", f);
  else fprintf(f, "%.17g", x);
}

static void dims_str(const bp_value *v, char *buf, size_t n) { bp_shape_str(v, buf, n); }

/* The data of a tensor attribute: typed where that reads well, bytes otherwise. */
static int emit_attr_tensor(FILE *f, const char *sym, const bp_value *v, bp_err *e) {
  int64_t n = bp_value_numel(v);
  size_t bytes = bp_value_bytes(v);
  const char *de = dtype_enum(v->dtype);
  if (!de) return bp_errf(e, "attribute tensor '%s' has dtype %s, which the program cannot hold", sym, bp_dtype_name(v->dtype));
  if (v->data && n > 0) {
    if (v->dtype == BP_F32) {
      fprintf(f, "static float %s_data[%" PRId64 "] = {", sym, n);
      for (int64_t i = 0; i < n; i++) fputs(i ? ", " : "", f), c_float(f, ((const float *)v->data)[i]);
    } else if (v->dtype == BP_I64) {
      fprintf(f, "static int64_t %s_data[%" PRId64 "] = {", sym, n);
      for (int64_t i = 0; i < n; i++) fprintf(f, "%s%" PRId64 "LL", i ? ", " : "", ((const int64_t *)v->data)[i]);
    } else if (v->dtype == BP_I32) {
      fprintf(f, "static int32_t %s_data[%" PRId64 "] = {", sym, n);
      for (int64_t i = 0; i < n; i++) fprintf(f, "%s%" PRId32, i ? ", " : "", ((const int32_t *)v->data)[i]);
    } else {
      fprintf(f, "static _Alignas(16) uint8_t %s_data[%zu] = {", sym, bytes);
      for (size_t i = 0; i < bytes; i++) fprintf(f, "%s%u", i ? ", " : "", ((const uint8_t *)v->data)[i]);
    }
    fputs("};\n", f);
  }
  fprintf(f, "static bp_value %s = {.dtype = %s, .rank = %d, .dims = {", sym, de, v->rank);
  for (int d = 0; d < v->rank; d++) fprintf(f, "%s%" PRId64, d ? ", " : "", v->dims[d]);
  if (v->data && n > 0) fprintf(f, "}, .data = %s_data};\n", sym);
  else fputs("}, .data = NULL};\n", f);
  return 0;
}

static int emit_node_data(FILE *f, const bp_cg_stage *st, int i, bp_err *e) {
  const bp_node *n = st->g->nodes[i];
  int s = st->index;
  if (n->nin) {
    fprintf(f, "static int s%d_n%d_in[%d] = {", s, i, n->nin);
    for (int k = 0; k < n->nin; k++) fprintf(f, "%s%d", k ? ", " : "", n->in[k]);
    fputs("};\n", f);
  }
  fprintf(f, "static int s%d_n%d_out[%d] = {", s, i, n->nout > 0 ? n->nout : 1);
  for (int k = 0; k < n->nout; k++) fprintf(f, "%s%d", k ? ", " : "", n->out[k]);
  fputs("};\n", f);
  if (!n->nattr) return 0;
  for (int a = 0; a < n->nattr; a++) {
    const bp_attr *at = &n->attrs[a];
    char sym[64];
    snprintf(sym, sizeof sym, "s%d_n%d_a%d", s, i, a);
    if (at->type == BP_ATTR_INTS && at->n > 0) {
      fprintf(f, "static int64_t %s_ints[%d] = {", sym, at->n);
      for (int k = 0; k < at->n; k++) fprintf(f, "%s%" PRId64 "LL", k ? ", " : "", at->ints[k]);
      fputs("};\n", f);
    } else if (at->type == BP_ATTR_FLOATS && at->n > 0) {
      fprintf(f, "static float %s_floats[%d] = {", sym, at->n);
      for (int k = 0; k < at->n; k++) fputs(k ? ", " : "", f), c_float(f, at->floats[k]);
      fputs("};\n", f);
    } else if (at->type == BP_ATTR_STRINGS && at->n > 0) {
      fprintf(f, "static char *%s_strings[%d] = {", sym, at->n);
      for (int k = 0; k < at->n; k++) fputs(k ? ", " : "", f), c_str(f, at->strings[k]);
      fputs("};\n", f);
    } else if (at->type == BP_ATTR_TENSOR && at->t) {
      if (emit_attr_tensor(f, sym, at->t, e)) return bp_errf(e, "node '%s' (%s) attribute '%s': %s", n->name, n->op_type,
                                                             at->name, e->msg);
    } else if (at->type == BP_ATTR_GRAPH) {
      return bp_errf(e, "node '%s' (%s): graph attribute '%s' is not supported by the code generator", n->name,
                     n->op_type, at->name);
    }
  }
  fprintf(f, "static bp_attr s%d_n%d_attrs[%d] = {\n", s, i, n->nattr);
  for (int a = 0; a < n->nattr; a++) {
    const bp_attr *at = &n->attrs[a];
    fputs("    {.name = ", f);
    c_str(f, at->name);
    switch (at->type) {
    case BP_ATTR_FLOAT: fputs(", .type = BP_ATTR_FLOAT, .f = ", f), c_float(f, at->f); break;
    case BP_ATTR_INT: fprintf(f, ", .type = BP_ATTR_INT, .i = %" PRId64 "LL", at->i); break;
    case BP_ATTR_STRING: fputs(", .type = BP_ATTR_STRING, .s = ", f), c_str(f, at->s); break;
    case BP_ATTR_TENSOR: fprintf(f, ", .type = BP_ATTR_TENSOR, .t = %s", at->t ? "" : "NULL"); break;
    case BP_ATTR_FLOATS: fprintf(f, ", .type = BP_ATTR_FLOATS, .n = %d", at->n); break;
    case BP_ATTR_INTS: fprintf(f, ", .type = BP_ATTR_INTS, .n = %d", at->n); break;
    case BP_ATTR_STRINGS: fprintf(f, ", .type = BP_ATTR_STRINGS, .n = %d", at->n); break;
    default: fputs(", .type = BP_ATTR_UNDEF", f); break;
    }
    if (at->type == BP_ATTR_TENSOR && at->t) fprintf(f, "&s%d_n%d_a%d", s, i, a);
    if (at->type == BP_ATTR_INTS && at->n > 0) fprintf(f, ", .ints = s%d_n%d_a%d_ints", s, i, a);
    if (at->type == BP_ATTR_FLOATS && at->n > 0) fprintf(f, ", .floats = s%d_n%d_a%d_floats", s, i, a);
    if (at->type == BP_ATTR_STRINGS && at->n > 0) fprintf(f, ", .strings = s%d_n%d_a%d_strings", s, i, a);
    fputs("},\n", f);
  }
  fputs("};\n", f);
  return 0;
}

/* "Name: Op(a [1,16,64], W [64,192]) -> y [1,16,192]" */
static void node_comment(FILE *f, const bp_graph *g, const bp_node *n) {
  char sh[128];
  c_comment(f, n->name);
  fputs(": ", f);
  if (n->domain && *n->domain) c_comment(f, n->domain), fputs("::", f);
  c_comment(f, n->op_type);
  fputc('(', f);
  for (int k = 0; k < n->nin; k++) {
    if (k) fputs(", ", f);
    if (n->in[k] < 0) {
      fputs("-", f);
      continue;
    }
    const bp_tensor *t = g->tensors[n->in[k]];
    dims_str(&t->v, sh, sizeof sh);
    c_comment(f, t->name);
    fprintf(f, " %s", sh);
  }
  fputs(") ->", f);
  for (int k = 0; k < n->nout; k++) {
    if (n->out[k] < 0) continue;
    const bp_tensor *t = g->tensors[n->out[k]];
    dims_str(&t->v, sh, sizeof sh);
    fputs(k ? ", " : " ", f);
    c_comment(f, t->name);
    fprintf(f, " %s", sh);
  }
}

static void emit_fn(FILE *f, const bp_cg_stage *st, const char *what, int a, int b) {
  fprintf(f, "/* stage %d %s: nodes [%d, %d) */\nstatic int s%d_%s(bp_rt_exec *x) {\n", st->index, what, a, b, st->index,
          what);
  if (a == b) fputs("  (void)x; /* nothing to do */\n", f);
  for (int i = a; i < b; i++) {
    const bp_rt_fold *fo = st->folds ? &st->folds[i] : NULL;
    if (fo && fo->view) /* its output is planned at its input's bytes (memplan.c) */
      fprintf(f, "  /* node %d, a view: ", i);
    else
      fprintf(f, "  RUN(%d); /* ", i);
    node_comment(f, st->g, st->g->nodes[i]);
    if (fo && (fo->trans[0] || fo->trans[1] || fo->in_log2[0] || fo->in_log2[1] || fo->out_log2))
      fprintf(f, " [folded: A%s x 2^%d, B%s x 2^%d, product x 2^%d]", fo->trans[0] ? "^T" : "", fo->in_log2[0],
              fo->trans[1] ? "^T" : "", fo->in_log2[1], fo->out_log2);
    fputs(" */\n", f);
  }
  fputs("  return 0;\n}\n\n", f);
}

static void emit_int_list(FILE *f, int s, const char *name, const int *v, int n, const bp_graph *g) {
  if (!n) return;
  fprintf(f, "static const int s%d_%s[%d] = {", s, name, n);
  for (int k = 0; k < n; k++) fprintf(f, "%s%d", k ? ", " : "", v[k]);
  fputs("}; /*", f);
  for (int k = 0; k < n && k < 8; k++) fputc(' ', f), c_comment(f, g->tensors[v[k]]->name);
  if (n > 8) fputs(" ...", f);
  fputs(" */\n", f);
}

static const char *mem_short(int m) {
  static const char *n[] = {"PARAM", "CONST", "SLOT", "WORK"};
  return m >= 0 && m < 4 ? n[m] : "?";
}

static int emit_stage(FILE *f, const bp_cg *cg, const bp_cg_stage *st, bp_err *e) {
  const bp_graph *g = st->g;
  int s = st->index;
  fprintf(f, "/* ==== stage %d: layers %d-%d (%s) ====================================================\n", s,
          st->layer_begin, st->layer_end - 1, st->layers);
  fprintf(f, " * %d tensors, %d nodes: forward %d, backward input half %d, weight half %d.\n", g->ntensors, g->nnodes,
          st->n_forward, st->n_bwd_input - st->n_forward, g->nnodes - st->n_bwd_input);
  fprintf(f, " * arenas: PARAM %" PRId64 " B, CONST %" PRId64 " B, SLOT %" PRId64 " B per micro-batch (at least %" PRId64
             " live at once), WORK %" PRId64 " B (at least %" PRId64 ") */\n\n",
          st->param_bytes, st->const_bytes, st->slot_bytes, st->slot_lower_bound, st->work_bytes, st->work_lower_bound);
  fprintf(f, "static const bp_rt_tensor s%d_tensors[%d] = {\n", s, g->ntensors);
  fprintf(f, "    /* id: name, dtype, rank, arena, dims, offset, bytes   [lifetime in node positions] */\n");
  for (int t = 0; t < g->ntensors; t++) {
    const bp_tensor *tt = g->tensors[t];
    const char *de = dtype_enum(tt->v.dtype);
    if (!de) return bp_errf(e, "stage %d tensor '%s' has dtype %s, which the program cannot hold", s, tt->name,
                            bp_dtype_name(tt->v.dtype));
    fprintf(f, "    /* %4d */ {", t);
    c_str(f, tt->name);
    fprintf(f, ", %s, %d, %s, {", de, tt->v.rank, mem_enum(st->mem[t]));
    for (int d = 0; d < tt->v.rank; d++) fprintf(f, "%s%" PRId64, d ? ", " : "", tt->v.dims[d]);
    fprintf(f, "}, %" PRId64 ", %" PRId64 "},", st->offset[t], st->nbytes[t]);
    if (st->mem[t] == BP_MEM_SLOT || st->mem[t] == BP_MEM_WORK)
      fprintf(f, " /* %s [%d, %d] */", mem_short(st->mem[t]), st->live_begin[t], st->live_end[t]);
    fputc('\n', f);
  }
  fputs("};\n\n", f);
  for (int i = 0; i < g->nnodes; i++)
    if (emit_node_data(f, st, i, e)) return -1;
  fprintf(f, "\nstatic bp_node s%d_nodes[%d] = {\n", s, g->nnodes);
  for (int i = 0; i < g->nnodes; i++) {
    const bp_node *n = g->nodes[i];
    fprintf(f, "    /* %4d */ {.name = ", i);
    c_str(f, n->name);
    fputs(", .op_type = ", f);
    c_str(f, n->op_type);
    fputs(", .domain = ", f);
    c_str(f, n->domain);
    fprintf(f, ", .opset = %d, .nin = %d, .in = ", n->opset, n->nin);
    if (n->nin) fprintf(f, "s%d_n%d_in", s, i);
    else fputs("NULL", f);
    fprintf(f, ", .nout = %d, .out = s%d_n%d_out, .nattr = %d, .attrs = ", n->nout, s, i, n->nattr);
    if (n->nattr) fprintf(f, "s%d_n%d_attrs", s, i);
    else fputs("NULL", f);
    fputs("},\n", f);
  }
  fputs("};\n\n", f);
  if (st->folds) {
    fprintf(f, "/* views (do not run; output at the input's bytes) and folds into MatMul: %d views, %d MatMuls with\n"
               " * folds (runtime/plan.h, bp_rt_fold: view, view_in, {trans A, B}, {log2 scale A, B}, log2 product scale) */\n",
            st->n_views, st->n_folds);
    fprintf(f, "static const bp_rt_fold s%d_folds[%d] = {\n", s, g->nnodes);
    for (int i = 0; i < g->nnodes; i++) {
      const bp_rt_fold *fo = &st->folds[i];
      if (!fo->view && !fo->trans[0] && !fo->trans[1] && !fo->in_log2[0] && !fo->in_log2[1] && !fo->out_log2) continue;
      fprintf(f, "    [%d] = {%d, %d, {%d, %d}, {%d, %d}, %d},\n", i, fo->view, fo->view_in, fo->trans[0], fo->trans[1],
              fo->in_log2[0], fo->in_log2[1], fo->out_log2);
    }
    fputs("};\n\n", f);
  }
  emit_fn(f, st, "forward", 0, st->n_forward);
  emit_fn(f, st, "backward_input", st->n_forward, st->n_bwd_input);
  emit_fn(f, st, "backward_weight", st->n_bwd_input, g->nnodes);
  emit_int_list(f, s, "act_in", st->act_in, st->n_act_in, g);
  emit_int_list(f, s, "act_out", st->act_out, st->n_act_out, g);
  emit_int_list(f, s, "grad_in", st->grad_in, st->n_grad_in, g);
  emit_int_list(f, s, "grad_out", st->grad_out, st->n_grad_out, g);
  if (st->n_data) {
    fprintf(f, "static const bp_rt_data_input s%d_data[%d] = {\n", s, st->n_data);
    for (int k = 0; k < st->n_data; k++) {
      static const char *kinds[] = {"BP_DATA_TOKENS", "BP_DATA_TARGETS", "BP_DATA_FIXED"};
      fprintf(f, "    {%d, %s, ", st->data[k].tensor, kinds[st->data[k].kind]);
      c_str(f, g->tensors[st->data[k].tensor]->name);
      fputs("},\n", f);
    }
    fputs("};\n", f);
  }
  if (st->nparams) {
    fprintf(f, "static const bp_rt_param s%d_params[%d] = {\n    /* tensor, gradient, global id */\n", s, st->nparams);
    for (int j = 0; j < st->nparams; j++) {
      const bp_cg_param *p = &st->params[j];
      fprintf(f, "    {%d, %d, %d}, /* ", p->tensor, p->grad, p->global_id);
      c_comment(f, g->tensors[p->tensor]->name);
      if (cg->param_stages[p->global_id] > 1) fprintf(f, " (tied: %d stages)", cg->param_stages[p->global_id]);
      fputs(" */\n", f);
    }
    fputs("};\n", f);
  }
  fputc('\n', f);
  return 0;
}

static void emit_range(FILE *f, const char *name, int s, int n, const bp_rt_range *r) {
  fprintf(f, "     .n_%s = %d, .%s = ", name, n, name);
  if (n) fprintf(f, "s%d_%s", s, name);
  else fputs("NULL", f);
  fprintf(f, ", .%s_range = {%" PRId64 ", %" PRId64 "},\n", name, r->offset, r->nbytes);
}

int bp_cg_emit_c(const bp_cg *cg, const char *path, const char *weights_name, const char *plan_name,
                 const char *command_line, const char *rebuild, bp_err *e) {
  FILE *f = fopen(path, "w");
  if (!f) return bp_errf(e, "%s: cannot open for writing", path);
  const bp_graph *G = cg->t->g;
  const bp_program *p = &cg->prog;
  char buf[1024];
  int S = cg->S, D = p->D, C = p->chunks_per_rank, rc = -1;
  int64_t pel = 0;
  for (int i = 0; i < cg->n_params; i++) pel += cg->param_numel[i];
  fputs("/* ", f);
  { /* the file name */
    const char *b = strrchr(path, '/');
    c_comment(f, b ? b + 1 : path);
  }
  fputs(" — a training program generated by bitpipec. Do not edit: recompile the model instead:\n *   ", f);
  c_comment(f, command_line);
  fputs("\n *\n * model      ", f);
  c_comment(f, cg->o.model);
  fputs(" (", f);
  c_comment(f, G->producer ? G->producer : "unknown producer");
  fprintf(f, ", ONNX IR version %" PRId64 ")\n", G->ir_version);
  fprintf(f, " *            %d trainable parameter tensors (%" PRId64 " elements), %d frozen; micro-batch %d x %d tokens\n",
          cg->n_params, pel, cg->t->nfrozen, cg->o.micro_batch, cg->token_input >= 0 ? (int)(bp_value_numel(&G->tensors[cg->token_input]->v) / cg->o.micro_batch) : 0);
  fprintf(f, " * schedule   %s: D=%d ranks, N=%d micro-batches, %d stages, %d pipe(s), %d chunk(s) per rank%s\n",
          p->schedule, D, p->N, S, p->n_pipes, C, p->split_backward ? ", backward split into input and weight halves" : "");
  fprintf(f, " * partition  %s, layers per stage %s:\n", cg->o.partition ? cg->o.partition : "auto",
          bp_part_format(cg->first, S, buf, sizeof buf));
  for (int s = 0; s < S; s++) {
    fprintf(f, " *              stage %d: %s on", s, cg->stages[s].layers);
    for (int q = 0; q < p->n_pipes; q++) fprintf(f, " rank %d (pipe %d)", p->stage_rank[q * S + s], q);
    fputc('\n', f);
  }
  fputs(" * costs      ", f);
  c_comment(f, cg->lc.source);
  fprintf(f, "\n * predicted  step %.6g ms (simulated with those costs); bubble per rank", cg->pred_step_s * 1e3);
  for (int r = 0; r < D; r++) fprintf(f, " %.3f", cg->pred_bubble[r]);
  fputs("\n * memory     planned bytes per rank (weights, gradients, optimizer state, constants, slots, work):", f);
  for (int r = 0; r < D; r++) fprintf(f, " %" PRId64, cg->rank_bytes[r]);
  fputs("\n * rebuild    ", f);
  c_comment(f, rebuild ? rebuild : "");
  fputs("\n * run        mpirun -np ", f);
  fprintf(f, "%d ./PROGRAM --data TOKENS.bin (or --input NAME=FILE --targets FILE); ./PROGRAM --help\n", D);
  fputs(" *\n * Every tensor of a stage lives in an arena (runtime/plan.h): PARAM (trainable weights), CONST,\n"
        " * SLOT (one per micro-batch in flight: inputs, boundaries, the stash) or WORK (within one compute\n"
        " * instruction), at the byte offset the memory plan gave it; a stage function runs its nodes in order\n"
        " * on those tensors through bp_rt_run_node. Shapes are [B micro-batch sequences, T tokens, ...].\n */\n",
        f);
  fputs("#include <math.h>\n#include <stddef.h>\n#include <stdint.h>\n\n#include \"runtime/plan.h\"\n\n", f);
  fputs("/* Runs node k of the current stage; stops the stage function at the first error (the runtime's\n"
        " * message names the node, stage, rank and micro-batch). */\n"
        "#define RUN(k)                           \\\n  do {                                   \\\n"
        "    if (bp_rt_run_node(x, (k)) != 0) \\\n      return -1;                         \\\n  } while (0)\n\n",
        f);
  for (int s = 0; s < S; s++)
    if (emit_stage(f, cg, &cg->stages[s], e)) goto done;
  fprintf(f, "static const bp_rt_stage stages[%d] = {\n", S);
  for (int s = 0; s < S; s++) {
    const bp_cg_stage *st = &cg->stages[s];
    fprintf(f, "    {.index = %d, .layers = ", s);
    c_str(f, st->layers);
    fprintf(f, ", .ntensors = %d, .tensors = s%d_tensors, .nnodes = %d, .nodes = s%d_nodes,\n", st->g->ntensors, s,
            st->g->nnodes, s);
    if (st->folds) fprintf(f, "     .folds = s%d_folds,\n", s);
    fprintf(f, "     .n_forward = %d, .n_bwd_input = %d, .forward = s%d_forward, .backward_input = s%d_backward_input,\n"
               "     .backward_weight = s%d_backward_weight,\n",
            st->n_forward, st->n_bwd_input, s, s, s);
    emit_range(f, "act_in", s, st->n_act_in, &st->act_in_range);
    emit_range(f, "act_out", s, st->n_act_out, &st->act_out_range);
    emit_range(f, "grad_in", s, st->n_grad_in, &st->grad_in_range);
    emit_range(f, "grad_out", s, st->n_grad_out, &st->grad_out_range);
    fprintf(f, "     .n_data = %d, .data = ", st->n_data);
    if (st->n_data) fprintf(f, "s%d_data", s);
    else fputs("NULL", f);
    fprintf(f, ", .loss = %d, .loss_weight = %d, .nparams = %d, .params = ", st->loss, st->loss_weight, st->nparams);
    if (st->nparams) fprintf(f, "s%d_params", s);
    else fputs("NULL", f);
    fprintf(f, ",\n     .param_bytes = %" PRId64 ", .const_bytes = %" PRId64 ", .slot_bytes = %" PRId64
               ", .work_bytes = %" PRId64 ", .weights_offset = %" PRId64 "},\n",
            st->param_bytes, st->const_bytes, st->slot_bytes, st->work_bytes, st->weights_offset);
  }
  fputs("};\n\n", f);
  /* the schedule program */
  fprintf(f, "/* ==== the schedule: %s, D=%d, N=%d (validated by the compiler) ==== */\n", p->schedule, D, p->N);
  fprintf(f, "static bp_chunk prog_chunk[%d] = { /* rank r's chunk c at [r*%d + c]: {pipe, stage} */\n   ", D * C, C);
  for (int i = 0; i < D * C; i++) fprintf(f, " {%d, %d},%s", p->chunk[i].pipe, p->chunk[i].stage, (i + 1) % C == 0 ? "\n   " : "");
  fputs("};\n", f);
  fprintf(f, "static int prog_stage_rank[%d] = {", p->n_pipes * S);
  for (int i = 0; i < p->n_pipes * S; i++) fprintf(f, "%s%d", i ? ", " : "", p->stage_rank[i]);
  fprintf(f, "};\nstatic int prog_stage_chunk[%d] = {", p->n_pipes * S);
  for (int i = 0; i < p->n_pipes * S; i++) fprintf(f, "%s%d", i ? ", " : "", p->stage_chunk[i]);
  fprintf(f, "};\nstatic int prog_mb_pipe[%d] = {", p->N);
  for (int i = 0; i < p->N; i++) fprintf(f, "%s%d", i ? ", " : "", p->mb_pipe[i]);
  fprintf(f, "};\nstatic int prog_mb_sample[%d] = {", p->N);
  for (int i = 0; i < p->N; i++) fprintf(f, "%s%d", i ? ", " : "", p->mb_sample[i]);
  fputs("};\n", f);
  for (int r = 0; r < D; r++) {
    const bp_rank_program *rp = &p->rank[r];
    fprintf(f, "static bp_instr rank%d_code[%d] = { /* {op, joined, chunk, micro-batch, peer} */\n", r, rp->n > 0 ? rp->n : 1);
    for (int i = 0; i < rp->n; i++) {
      const bp_instr *x = &rp->code[i];
      const char *oe = op_enum(x->op);
      if (!oe) {
        bp_errf(e, "internal: rank %d instruction %d has op %d", r, i, x->op);
        goto done;
      }
      fprintf(f, "    {%s, %d, %d, %d, %d}, /* %4d ", oe, x->joined, x->chunk, x->mb, x->peer, i);
      c_comment(f, bp_instr_str(p, x, buf, sizeof buf));
      fputs(" */\n", f);
    }
    fputs("};\n", f);
  }
  fprintf(f, "static bp_rank_program prog_rank[%d] = {", D);
  for (int r = 0; r < D; r++) fprintf(f, "%s{%d, %d, rank%d_code}", r ? ", " : "", p->rank[r].n, p->rank[r].n, r);
  fputs("};\nstatic const bp_program program = {.schedule = ", f);
  c_str(f, p->schedule);
  fprintf(f, ", .D = %d, .N = %d, .n_stages = %d, .n_pipes = %d,\n    .chunks_per_rank = %d, .split_backward = %d, "
             ".chunk = prog_chunk, .stage_rank = prog_stage_rank, .stage_chunk = prog_stage_chunk,\n"
             "    .mb_pipe = prog_mb_pipe, .mb_sample = prog_mb_sample, .rank = prog_rank};\n\n",
          D, p->N, S, p->n_pipes, C, p->split_backward);
  /* the parameter table */
  fprintf(f, "/* ==== parameters: %d unique (a tied one appears in several stages with one id) ==== */\n", cg->n_params);
  fprintf(f, "static const char *const param_names[%d] = {\n", cg->n_params);
  for (int i = 0; i < cg->n_params; i++) {
    fprintf(f, "    /* %3d */ ", i);
    c_str(f, G->tensors[cg->t->params[i]]->name);
    fputs(",\n", f);
  }
  fprintf(f, "};\nstatic const int64_t param_numel[%d] = {", cg->n_params);
  for (int i = 0; i < cg->n_params; i++) fprintf(f, "%s%" PRId64, i ? ", " : "", cg->param_numel[i]);
  fprintf(f, "};\n/* byte offset of each parameter's raw_data in the ONNX file, for --save-onnx (-1: not patchable) */\n"
             "static const int64_t param_onnx_offset[%d] = {", cg->n_params);
  for (int i = 0; i < cg->n_params; i++) fprintf(f, "%s%" PRId64 "LL", i ? ", " : "", cg->param_onnx_offset[i]);
  fputs("};\n\n", f);
  /* model, hyper-parameters, plan */
  fputs("static const bp_rt_model model = {\n    .model_path = ", f);
  {
    char real[4096];
    c_str(f, realpath(cg->o.model, real) ? real : cg->o.model);
  }
  fputs(",\n    .weights_file = ", f);
  c_str(f, weights_name);
  fprintf(f, ",\n    .fingerprint = 0x%016" PRIx64 "ULL,\n    .n_stages = %d, .stages = stages,\n", cg->fingerprint, S);
  fprintf(f, "    .n_params = %d, .param_names = param_names, .param_numel = param_numel, .param_onnx_offset = "
             "param_onnx_offset,\n",
          cg->n_params);
  int T = cg->token_input >= 0 ? (int)(bp_value_numel(&G->tensors[cg->token_input]->v) / cg->o.micro_batch) : 0;
  fprintf(f, "    .batch = %d, .seq = %d, .vocab = %d, .loss_kind = %d, .ignore_index = %" PRId64 "LL,\n", cg->o.micro_batch,
          T, cg->vocab, (int)cg->o.train.loss, cg->o.train.ignore_index);
  fputs("    .flops_per_token = ", f);
  c_double(f, cg->flops_per_token);
  fputs("};\n\n", f);
  const bp_train_opts *to = &cg->o.train;
  fprintf(f, "static const double predicted_bubble[%d] = {", D);
  for (int r = 0; r < D; r++) fputs(r ? ", " : "", f), c_double(f, cg->pred_bubble[r]);
  fprintf(f, "};\nstatic const int64_t planned_rank_bytes[%d] = {", D);
  for (int r = 0; r < D; r++) fprintf(f, "%s%" PRId64, r ? ", " : "", cg->rank_bytes[r]);
  fputs("};\n\nstatic const bp_rt_plan plan = {\n    .model = &model, .program = &program,\n", f);
  fprintf(f, "    /* baked-in hyper-parameters (./PROGRAM's flags override them) */\n"
             "    .hp = {.optimizer = %d /* %s */, .lr = ",
          (int)to->optimizer, to->optimizer == BP_OPT_ADAMW ? "adamw" : "sgd");
  c_double(f, to->lr);
  fputs(", .momentum = ", f), c_double(f, to->momentum);
  fputs(", .weight_decay = ", f), c_double(f, to->weight_decay);
  fputs(", .clip = ", f), c_double(f, to->clip);
  fputs(",\n           .beta1 = ", f), c_double(f, to->beta1);
  fputs(", .beta2 = ", f), c_double(f, to->beta2);
  fputs(", .eps = ", f), c_double(f, to->eps);
  fprintf(f, ", .dropout = %d, .seed = %" PRIu64 "ULL},\n", to->dropout, to->seed);
  fputs("    .predicted_step_s = ", f);
  c_double(f, cg->pred_step_s);
  fputs(", /* seconds, simulated */\n    .predicted_bubble = predicted_bubble, .planned_rank_bytes = planned_rank_bytes,\n"
        "    .plan_json = ", f);
  c_str(f, plan_name);
  fputs("};\n\nint main(int argc, char **argv) { return bp_rt_main(&plan, argc, argv); }\n", f);
  rc = 0;
done:
  if (ferror(f) && rc == 0) rc = bp_errf(e, "%s: write error", path);
  if (fclose(f) != 0 && rc == 0) rc = bp_errf(e, "%s: write error", path);
  return rc;
}
