/* partitioner/render_ascii.c — text timeline of a simulated program: one row per rank, one
 * column per time unit; an op's label at its start, "~" while it runs, "." when the rank idles.
 * Labels: F<mb>.c<chunk> forward, B backward, b input-gradient, W weight-gradient. */
#include "partitioner/simulate.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define CELL 6

void bp_render_ascii(FILE *f, const bp_program *p, const bp_sim_result *s, double unit) {
  if (unit <= 0) { /* the shortest compute op */
    unit = INFINITY;
    for (int r = 0; r < p->D; r++)
      for (int i = 0; i < p->rank[r].n; i++) {
        double d = s->end[r][i] - s->start[r][i];
        if (bp_op_is_compute((bp_op)p->rank[r].code[i].op) && d > 0 && d < unit) unit = d;
      }
    if (!isfinite(unit)) unit = 1;
  }
  int cols = (int)ceil(s->step_time / unit - 1e-9);
  if (cols > 100000) cols = 100000;
  char *row = malloc((size_t)cols * CELL + 1);
  if (!row) return;
  for (int c0 = 0; c0 < cols; c0 += 40) { /* wrap every 40 columns */
    int c1 = c0 + 40 < cols ? c0 + 40 : cols;
    fprintf(f, "t     ");
    for (int c = c0; c < c1; c++) fprintf(f, "%-*g", CELL, c * unit);
    fprintf(f, "\n");
    for (int r = 0; r < p->D; r++) {
      memset(row, '.', (size_t)cols * CELL);
      for (int c = 0; c < cols; c++) memset(row + c * CELL + 1, ' ', CELL - 1);
      for (int i = 0; i < p->rank[r].n; i++) {
        const bp_instr *x = &p->rank[r].code[i];
        if (!bp_op_is_compute((bp_op)x->op)) continue;
        int a = (int)floor(s->start[r][i] / unit + 1e-9), b = (int)ceil(s->end[r][i] / unit - 1e-9);
        if (b <= a) b = a + 1;
        for (int c = a; c < b && c < cols; c++) {
          memset(row + c * CELL, ' ', CELL);
          row[c * CELL] = '~';
        }
        if (a < cols) {
          char lab[16];
          const char *k = x->op == BP_OP_FWD ? "F" : x->op == BP_OP_BWD ? "B" : x->op == BP_OP_BWD_INPUT ? "b" : "W";
          int n = snprintf(lab, sizeof lab, "%s%d.c%d", k, x->mb, x->chunk);
          memcpy(row + a * CELL, lab, (size_t)(n < CELL ? n : CELL));
        }
      }
      fprintf(f, "D%-4d ", r);
      fwrite(row + c0 * CELL, 1, (size_t)(c1 - c0) * CELL, f);
      fprintf(f, "\n");
    }
    if (c1 < cols) fprintf(f, "\n");
  }
  free(row);
}
