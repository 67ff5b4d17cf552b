/* frontend/op_table.c — the single table of supported ops: the groups defined in frontend/ops/
 * joined into one list, looked up by (domain, op_type). Adding an op = adding one entry to a
 * group (infer + eval + flops), its gradient rule (frontend/grad_rules.c) and its tests; nothing else dispatches on op names. */
#include "frontend/ir.h"

#include <stdio.h>
#include <string.h>

static const bp_op_def *const groups[] = {bp_ops_elementwise, bp_ops_shape, bp_ops_nn, bp_ops_grad};
#define NGROUPS ((int)(sizeof groups / sizeof groups[0]))
#define MAX_OPS 256

static bp_op_def table[MAX_OPS];
static int table_count = -1;

static void build_table(void) {
  if (table_count >= 0) return;
  table_count = 0;
  for (int g = 0; g < NGROUPS; g++)
    for (const bp_op_def *d = groups[g]; d->name; d++)
      if (table_count < MAX_OPS) table[table_count++] = *d;
  /* Gradient builders live together in frontend/grad_rules.c (default domain ops and ours). */
  for (const bp_grad_rule *r = bp_grad_rules; r->name; r++)
    for (int i = 0; i < table_count; i++)
      if (strcmp(table[i].name, r->name) == 0 && !table[i].grad) table[i].grad = r->grad;
}

static int is_default_domain(const char *d) { return !d || !*d || strcmp(d, "ai.onnx") == 0; }

const bp_op_def *bp_op_find(const char *domain, const char *op_type) {
  build_table();
  for (int i = 0; i < table_count; i++) {
    const bp_op_def *d = &table[i];
    int same_domain = is_default_domain(domain) ? is_default_domain(d->domain)
                                                 : (d->domain && strcmp(d->domain, domain) == 0);
    if (same_domain && strcmp(d->name, op_type) == 0) return d;
  }
  return NULL;
}

const bp_op_def *bp_op_table(int *count) {
  build_table();
  *count = table_count;
  return table;
}

int bp_graph_check_ops(const bp_graph *g, bp_err *e) {
  char msg[sizeof e->msg];
  size_t k = 0;
  int missing = 0;
  for (int i = 0; i < g->nnodes; i++) {
    const bp_node *n = g->nodes[i];
    if (n->op) continue;
    int seen = 0;
    for (int j = 0; j < i && !seen; j++)
      seen = !g->nodes[j]->op && strcmp(g->nodes[j]->op_type, n->op_type) == 0 &&
             strcmp(g->nodes[j]->domain, n->domain) == 0;
    if (seen) continue;
    int cnt = 0;
    for (int j = i; j < g->nnodes; j++)
      cnt += !g->nodes[j]->op && strcmp(g->nodes[j]->op_type, n->op_type) == 0 && strcmp(g->nodes[j]->domain, n->domain) == 0;
    if (k < sizeof msg)
      k += (size_t)snprintf(msg + k, sizeof msg - k, "%s%s%s%s (%d node%s, first '%s')", missing ? ", " : "",
                            *n->domain ? n->domain : "", *n->domain ? "::" : "", n->op_type, cnt, cnt > 1 ? "s" : "", n->name);
    missing++;
  }
  if (!missing) return 0;
  return bp_errf(e, "unsupported op%s: %s", missing > 1 ? "s" : "", msg);
}
