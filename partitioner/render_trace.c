/* partitioner/render_trace.c — Chrome trace event JSON of a simulated program (open in
 * chrome://tracing or ui.perfetto.dev): process "pipeline (simulated)", one thread per rank,
 * complete events for compute ops, receive waits and all-reduce waits; timestamps are the
 * simulator's time units written as microseconds. */
#include "partitioner/simulate.h"

int bp_render_trace(FILE *f, const bp_program *p, const bp_sim_result *s) {
  char buf[96];
  fprintf(f, "{\"displayTimeUnit\": \"ms\", \"otherData\": {\"schedule\": \"%s\", \"D\": %d, "
             "\"N\": %d, \"figures\": \"simulated\"},\n \"traceEvents\": [\n",
          p->schedule, p->D, p->N);
  fprintf(f, "  {\"name\": \"process_name\", \"ph\": \"M\", \"pid\": 0, \"args\": {\"name\": "
             "\"pipeline %s (simulated)\"}}", p->schedule);
  for (int r = 0; r < p->D; r++)
    fprintf(f, ",\n  {\"name\": \"thread_name\", \"ph\": \"M\", \"pid\": 0, \"tid\": %d, "
               "\"args\": {\"name\": \"rank %d\"}}", r, r);
  for (int r = 0; r < p->D; r++)
    for (int i = 0; i < p->rank[r].n; i++) {
      const bp_instr *x = &p->rank[r].code[i];
      double a = s->start[r][i], b = s->end[r][i];
      const char *cat;
      if (bp_op_is_compute((bp_op)x->op)) cat = "compute";
      else if (x->op == BP_OP_RECV_ACT || x->op == BP_OP_RECV_GRAD) cat = "p2p wait";
      else if (x->op == BP_OP_ALLREDUCE_WAIT) cat = "all-reduce wait";
      else if (b > a) cat = "other";
      else continue; /* instantaneous: sends, starts */
      if (b <= a && !bp_op_is_compute((bp_op)x->op)) continue;
      int pipe = x->chunk >= 0 ? bp_program_chunk(p, r, x->chunk)->pipe : 0;
      int stage = x->chunk >= 0 ? bp_program_chunk(p, r, x->chunk)->stage : -1;
      fprintf(f, ",\n  {\"name\": \"%s\", \"cat\": \"%s\", \"ph\": \"X\", \"pid\": 0, \"tid\": %d, "
                 "\"ts\": %.6f, \"dur\": %.6f, \"args\": {\"instruction\": %d, \"mb\": %d, "
                 "\"pipe\": %d, \"stage\": %d}}",
              bp_instr_str(p, x, buf, sizeof buf), cat, r, a, b - a, i, x->mb, pipe, stage);
    }
  fprintf(f, "\n]}\n");
  return ferror(f) ? -1 : 0;
}
