/* partitioner/render_svg.c — SVG timeline of a simulated program: one lane per rank, a box per
 * compute op coloured by kind (forward / backward / input-grad / weight-grad) and shaded by pipe
 * (direction), labelled "<mb>.c<chunk>" where it fits; a time axis and a legend. */
#include "partitioner/simulate.h"

#define LANE 28
#define LEFT 70
#define TOP 40
#define WIDTH 1200

/* fill colours: [kind][pipe]; kinds F, B, BWD_INPUT, BWD_WEIGHT */
static const char *const fill[4][2] = {
    {"#1f5fa8", "#7fb0e6"}, {"#d9822b", "#f2bf85"}, {"#c0392b", "#eb9486"}, {"#2e8b57", "#8fd1a9"}};

int bp_render_svg(FILE *f, const bp_program *p, const bp_sim_result *s) {
  double T = s->step_time > 0 ? s->step_time : 1, k = (WIDTH - LEFT - 20) / T;
  int H = TOP + LANE * p->D + 110;
  fprintf(f, "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" "
             "font-family=\"monospace\" font-size=\"10\">\n", WIDTH, H);
  fprintf(f, "<rect width=\"100%%\" height=\"100%%\" fill=\"white\"/>\n");
  fprintf(f, "<text x=\"%d\" y=\"18\" font-size=\"13\">%s: D=%d N=%d, simulated step time %.4g "
             "time units, mean bubble %.3f</text>\n",
          LEFT, p->schedule, p->D, p->N, s->step_time, s->bubble_mean);
  for (int r = 0; r < p->D; r++) {
    int y = TOP + r * LANE;
    fprintf(f, "<text x=\"8\" y=\"%d\">rank %d</text>\n", y + LANE / 2 + 4, r);
    fprintf(f, "<rect x=\"%d\" y=\"%d\" width=\"%.2f\" height=\"%d\" fill=\"#f4f4f4\"/>\n", LEFT,
            y + 2, T * k, LANE - 4);
    for (int i = 0; i < p->rank[r].n; i++) {
      const bp_instr *x = &p->rank[r].code[i];
      if (!bp_op_is_compute((bp_op)x->op)) continue;
      int pipe = bp_program_chunk(p, r, x->chunk)->pipe;
      double a = LEFT + s->start[r][i] * k, w = (s->end[r][i] - s->start[r][i]) * k;
      fprintf(f, "<rect x=\"%.2f\" y=\"%d\" width=\"%.2f\" height=\"%d\" fill=\"%s\" "
                 "stroke=\"white\" stroke-width=\"0.5\"><title>rank %d #%d %s%d.c%d [%.4g, %.4g]"
                 "</title></rect>\n",
              a, y + 2, w, LANE - 4, fill[x->op][pipe & 1], r, i,
              x->op == BP_OP_FWD ? "F" : x->op == BP_OP_BWD ? "B" : x->op == BP_OP_BWD_INPUT ? "b" : "W",
              x->mb, x->chunk, s->start[r][i], s->end[r][i]);
      if (w >= 26)
        fprintf(f, "<text x=\"%.2f\" y=\"%d\" fill=\"%s\">%d.c%d</text>\n", a + 2, y + LANE / 2 + 4,
                pipe ? "black" : "white", x->mb, x->chunk);
    }
  }
  int ya = TOP + p->D * LANE + 14, ticks = 10;
  for (int t = 0; t <= ticks; t++) {
    double v = T * t / ticks, x = LEFT + v * k;
    fprintf(f, "<line x1=\"%.2f\" y1=\"%d\" x2=\"%.2f\" y2=\"%d\" stroke=\"#888\"/>"
               "<text x=\"%.2f\" y=\"%d\">%.3g</text>\n", x, ya - 8, x, ya - 2, x - 6, ya + 10, v);
  }
  fprintf(f, "<text x=\"%d\" y=\"%d\">time (simulated, units of --fwd/--bwd)</text>\n", LEFT,
          ya + 24);
  static const char *const names[4] = {"forward", "backward", "input-grad (B)", "weight-grad (W)"};
  int yl = ya + 40;
  for (int kind = 0; kind < 4; kind++)
    for (int q = 0; q < 2; q++) {
      int x = LEFT + kind * 260 + q * 120;
      fprintf(f, "<rect x=\"%d\" y=\"%d\" width=\"14\" height=\"12\" fill=\"%s\"/>"
                 "<text x=\"%d\" y=\"%d\">%s %s</text>\n",
              x, yl + q * 0, fill[kind][q], x + 18, yl + 10, names[kind], q ? "(pipe 1 / up)" : "(pipe 0)");
    }
  fprintf(f, "<text x=\"%d\" y=\"%d\">light grey: idle. labels: micro-batch.chunk</text>\n", LEFT,
          yl + 34);
  fprintf(f, "</svg>\n");
  return ferror(f) ? -1 : 0;
}
