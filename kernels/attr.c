/* kernels/attr.c — reading a node's attributes with defaults (kernels and inference share it). */
#include "frontend/ir.h"

#include <string.h>

const bp_attr *bp_node_attr(const bp_node *n, const char *name) {
  for (int i = 0; i < n->nattr; i++)
    if (strcmp(n->attrs[i].name, name) == 0) return &n->attrs[i];
  return NULL;
}

int64_t bp_attr_int(const bp_node *n, const char *name, int64_t dflt) {
  const bp_attr *a = bp_node_attr(n, name);
  return a && a->type == BP_ATTR_INT ? a->i : dflt;
}

float bp_attr_float(const bp_node *n, const char *name, float dflt) {
  const bp_attr *a = bp_node_attr(n, name);
  if (!a) return dflt;
  if (a->type == BP_ATTR_FLOAT) return a->f;
  if (a->type == BP_ATTR_INT) return (float)a->i;
  return dflt;
}

const char *bp_attr_string(const bp_node *n, const char *name, const char *dflt) {
  const bp_attr *a = bp_node_attr(n, name);
  return a && a->type == BP_ATTR_STRING ? a->s : dflt;
}

const int64_t *bp_attr_ints(const bp_node *n, const char *name, int *count) {
  const bp_attr *a = bp_node_attr(n, name);
  if (!a || a->type != BP_ATTR_INTS) {
    *count = 0;
    return NULL;
  }
  *count = a->n;
  return a->ints;
}

const float *bp_attr_floats(const bp_node *n, const char *name, int *count) {
  const bp_attr *a = bp_node_attr(n, name);
  if (!a || a->type != BP_ATTR_FLOATS) {
    *count = 0;
    return NULL;
  }
  *count = a->n;
  return a->floats;
}
