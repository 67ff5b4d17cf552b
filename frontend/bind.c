/* frontend/bind.c — binding symbolic dimensions (dim_param) of graph inputs to numbers, from
 * --bind NAME=VALUE or from the shapes of the input values the user gives. */
#include "frontend/passes.h"

#include <string.h>

static int lookup(const bp_binding *b, int nb, const char *name, int64_t *v) {
  for (int i = 0; i < nb; i++)
    if (strcmp(b[i].name, name) == 0) {
      *v = b[i].value;
      return 1;
    }
  return 0;
}

int bp_bind_inputs(bp_graph *g, const bp_binding *binds, int nbinds, bp_value *const *given, bp_err *e) {
  /* First learn bindings implied by given inputs, so one input can bind another's dims. */
  bp_binding learned[64];
  int nlearned = 0;
  for (int i = 0; i < g->ninputs; i++) {
    bp_tensor *t = g->tensors[g->inputs[i]];
    const bp_value *gv = given ? given[i] : NULL;
    if (!gv) continue;
    if (t->v.dtype != BP_UNDEF && gv->dtype != t->v.dtype)
      return bp_errf(e, "input '%s': given %s data but the model declares %s", t->name, bp_dtype_name(gv->dtype),
                     bp_dtype_name(t->v.dtype));
    if (t->v.rank >= 0 && gv->rank != t->v.rank)
      return bp_errf(e, "input '%s': given rank %d but the model declares rank %d", t->name, gv->rank, t->v.rank);
    for (int d = 0; d < gv->rank && t->v.rank >= 0; d++) {
      if (t->v.dims[d] >= 0 && t->v.dims[d] != gv->dims[d])
        return bp_errf(e, "input '%s': dimension %d is %lld in the given data but %lld in the model", t->name, d,
                       (long long)gv->dims[d], (long long)t->v.dims[d]);
      int64_t have;
      if (t->dim_param[d] && !lookup(binds, nbinds, t->dim_param[d], &have) &&
          !lookup(learned, nlearned, t->dim_param[d], &have) && nlearned < 64) {
        learned[nlearned].name = t->dim_param[d];
        learned[nlearned++].value = gv->dims[d];
      }
    }
  }
  for (int i = 0; i < g->ninputs; i++) {
    bp_tensor *t = g->tensors[g->inputs[i]];
    const bp_value *gv = given ? given[i] : NULL;
    if (t->v.rank < 0) {
      if (!gv) return bp_errf(e, "input '%s' has no declared shape; give its data with --input", t->name);
      t->v.rank = gv->rank;
      memcpy(t->v.dims, gv->dims, sizeof t->v.dims);
    }
    if (t->v.dtype == BP_UNDEF) {
      if (!gv) return bp_errf(e, "input '%s' has no declared type", t->name);
      t->v.dtype = gv->dtype;
    }
    for (int d = 0; d < t->v.rank; d++) {
      int64_t v;
      if (t->dim_param[d]) {
        if (lookup(binds, nbinds, t->dim_param[d], &v) || lookup(learned, nlearned, t->dim_param[d], &v)) {
          if (v <= 0)
            return bp_errf(e, "dimension '%s' of input '%s' bound to %lld; it must be positive", t->dim_param[d],
                           t->name, (long long)v);
          if (gv && gv->dims[d] != v)
            return bp_errf(e, "input '%s': dimension '%s' is bound to %lld but the given data has %lld", t->name,
                           t->dim_param[d], (long long)v, (long long)gv->dims[d]);
          t->v.dims[d] = v;
        } else {
          return bp_errf(e, "symbolic dimension '%s' (dimension %d of input '%s') is not bound: use --bind %s=N", t->dim_param[d],
                         d, t->name, t->dim_param[d]);
        }
      } else if (t->v.dims[d] < 0) {
        if (!gv)
          return bp_errf(e, "dimension %d of input '%s' is unknown (no value, no name): give the input's data", d, t->name);
        t->v.dims[d] = gv->dims[d];
      }
    }
  }
  return 0;
}
