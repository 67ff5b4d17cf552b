/* partitioner/costs.c — reads a cost table for the simulator: one row per layer (or per chunk),
 * `fwd bwd [act_bytes [param_bytes [out_bytes]]]`, '#' to end of line is a comment. */
#include "partitioner/simulate.h"

#include <stdlib.h>
#include <string.h>

void bp_costs_free(bp_costs *c) {
  free(c->layer);
  c->layer = NULL, c->n = 0;
}

int bp_costs_load(const char *path, bp_costs *out, char *err, size_t errlen) {
  out->n = 0, out->layer = NULL;
  FILE *f = fopen(path, "r");
  if (!f) return bp_sched_errf(err, errlen, "costs: cannot open %s", path);
  char line[1024];
  int cap = 0, lineno = 0, rc = 0;
  while (fgets(line, sizeof line, f)) {
    lineno++;
    char *hash = strchr(line, '#');
    if (hash) *hash = 0;
    double v[5] = {0, 0, 0, 0, 0};
    int k = 0;
    char *s = line, *end;
    while (k < 5) {
      double x = strtod(s, &end);
      if (end == s) break;
      v[k++] = x, s = end;
    }
    while (*s == ' ' || *s == '\t' || *s == '\r' || *s == '\n') s++;
    if (k == 0 && *s == 0) continue; /* blank or comment */
    if (k < 2 || *s != 0 || v[0] < 0 || v[1] < 0) {
      rc = bp_sched_errf(err, errlen,
                         "costs: %s line %d: want `fwd bwd [act_bytes [param_bytes [out_bytes]]]` "
                         "with non-negative numbers",
                         path, lineno);
      break;
    }
    if (out->n == cap) {
      cap = cap ? cap * 2 : 16;
      bp_layer_cost *l = realloc(out->layer, sizeof *l * cap);
      if (!l) {
        rc = bp_sched_errf(err, errlen, "costs: out of memory");
        break;
      }
      out->layer = l;
    }
    out->layer[out->n++] = (bp_layer_cost){v[0], v[1], v[2], v[3], v[4]};
  }
  fclose(f);
  if (rc == 0 && out->n == 0) rc = bp_sched_errf(err, errlen, "costs: %s has no rows", path);
  if (rc) bp_costs_free(out);
  return rc;
}
